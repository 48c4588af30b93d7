"""`charrnn train`: train the run a config describes, show its progress, and say how it ended."""

from __future__ import annotations

import json
import math
import shlex

from ..errors import CharrnnError
from ..parallel import mpi_rank
from ..progress import Reporter
from ..run_dir import stop_on_signals, train_run
from .output import err_console, write_stdout

WHY_STOPPED = {
    "max_seconds": " (stopped: train.max_seconds reached)",
    "early_stop": " (stopped early: no new best val loss in train.early_stop_patience validations)",
}


def run(config: str, overrides: list[str], resume: bool, force: bool, quiet: bool, as_json: bool) -> int:
    """Train; returns the exit code: 0, or 128 + the signal that stopped the run (130 SIGINT, 143 SIGTERM).

    Under mpiexec, ranks other than 0 print nothing at all: rank 0 speaks for the run.
    """
    if mpi_rank() > 0:
        try:
            train_run(config, overrides, resume, force)
        except CharrnnError as err:
            return err.exit_code
        return 0
    with stop_on_signals() as received:
        reporter = Reporter(quiet=quiet)
        try:
            summary = train_run(config, overrides, resume, force, reporter, lambda: bool(received))
        except (KeyboardInterrupt, Exception) as err:
            # a second signal stops at once: as KeyboardInterrupt, or as whatever the code it hit made of it
            if not isinstance(err, KeyboardInterrupt) and len(received) < 2:
                raise
            reporter.close()
            err_console().print("interrupted again: stopped at once; the last complete checkpoint is intact")
            return _signal_exit(received)
        finally:
            reporter.close()
    if as_json:
        bits = {
            f"{k}_bits_per_char": summary[k] / math.log(2) if summary[k] is not None else None
            for k in ("train_loss", "val_loss", "best_val_loss")
        }
        write_stdout(json.dumps({**summary, **bits}) + "\n")
    console = err_console()
    if summary["interrupted"]:
        again = ["charrnn", "train", config, *(a for s in overrides for a in ("--set", s)), "--resume"]
        console.print(f"interrupted at step {summary['step']}; checkpoint saved in {summary['run_dir']}", markup=False)
        console.print(f"resume with: {shlex.join(again)}", markup=False)
        return _signal_exit(received)
    if not quiet:
        val = summary["best_val_loss"]
        best = f", best val loss {val:.4f} at step {summary['best_step']}" if val is not None else ""
        why = WHY_STOPPED.get(summary["stop_reason"], "")
        train_loss = "-" if summary["train_loss"] is None else f"{summary['train_loss']:.4f}"
        console.print(
            f"done: {summary['step']} steps{why}, train loss {train_loss}{best}; run directory {summary['run_dir']}"
        )
    return 0


def _signal_exit(received: list[int]) -> int:
    return 128 + int(received[-1]) if received else 130  # the shell's convention: 130 SIGINT, 143 SIGTERM
