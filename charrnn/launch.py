"""The `charrnn` command's entry point: Ctrl-C exits 130 without a traceback from its first line on.

Importing the CLI (Typer, Rich, NumPy) takes a good fraction of a second, and a KeyboardInterrupt raised in
there would print a traceback through their internals. So this module imports nothing heavy: its `main`
first routes SIGINT to a quiet exit, then imports and runs the CLI. A verb that handles Ctrl-C itself
(`train` and `sweep` stop at a step boundary) installs its own handler over this one while it runs.
"""

from __future__ import annotations

import signal
import sys


def _interrupted(signum, frame) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while exiting prints nothing either
    sys.stderr.write("\n")  # the shell's prompt on a line of its own, after the ^C the terminal echoed
    raise SystemExit(130)  # the shell's convention for Ctrl-C; no `except Exception` or click handler stops it


def main() -> None:
    # an ignored SIGINT (a background job of a script) stays ignored, as Python itself leaves it
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupted)
    try:
        from .cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:  # a verb's own handler raised it for a second Ctrl-C: still no traceback
        sys.stderr.write("\n")
        raise SystemExit(130) from None
    finally:
        # Python's shutdown puts SIGINT's default action back, which a late Ctrl-C would turn into a kill
        signal.signal(signal.SIGINT, signal.SIG_IGN)
