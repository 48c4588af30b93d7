"""Where a verb writes: what was asked for on stdout, everything else (progress, notes, tables of runs
on request) through a Rich console on stderr."""

from __future__ import annotations

import sys

from rich.console import Console

from ..errors import CharrnnError


def err_console() -> Console:
    """A stderr console made at each call: Rich looks sys.stderr up then, so test runners capture it."""
    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def write_stdout(text: str) -> None:
    """Write and flush `text`; a full disk or closed terminal is a CharrnnError, a reader that left is not."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise  # the reader left (`| head`): the command line exits quietly
    except OSError as err:
        raise CharrnnError(f"cannot write to stdout: {err.strerror}") from None
