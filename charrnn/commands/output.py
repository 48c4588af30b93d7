"""Where a verb writes: what was asked for on stdout, everything else (progress, notes, tables of runs
on request) through a Rich console on stderr."""

from __future__ import annotations

import sys

from rich.console import Console

from ..config import Config
from ..errors import CharrnnError


def err_console() -> Console:
    """A stderr console made at each call: Rich looks sys.stderr up then, so test runners capture it."""
    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def note_weights(cfg: Config, used: str, where: str = "") -> None:
    """One stderr line saying which weights a verb uses (checkpoint.weights_used), for a run that kept an
    average: `weights ema (train.ema 0.999; --raw for the raw ones)`, or `weights raw (--raw)`. Silent for a
    run that kept none, whose raw weights are all there is."""
    if cfg.train.ema > 0:
        how = f"(train.ema {cfg.train.ema:g}; --raw for the raw ones)" if used == "ema" else "(--raw)"
        err_console().print(f"{where}weights {used} {how}", markup=False)


def write_stdout(text: str) -> None:
    """Write and flush `text`; a full disk or closed terminal is a CharrnnError, a reader that left is not."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise  # the reader left (`| head`): the command line exits quietly
    except OSError as err:
        raise CharrnnError(f"cannot write to stdout: {err.strerror}") from None
