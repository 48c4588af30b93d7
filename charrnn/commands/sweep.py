"""`charrnn sweep`: search a run config's keys for the lowest validation loss, then show the leaderboard."""

from __future__ import annotations

import json
import shlex

from ..errors import CharrnnError
from ..run_dir import stop_on_signals
from ..sweep_file import load_sweep
from ..sweep_progress import SweepProgress, show_leaderboard, shown_path
from .output import err_console, write_stdout

JSON_FIELDS = ("trial", "values", "state", "step", "steps", "best_val_loss", "best_step", "run_dir", "error")
REPEAT_FIELDS = ("spread", "repeats")  # with repeats > 1: each trial's min..max best loss, and each repeat's result


def run(
    sweep_file: str, sets: list[str], resume: bool, force: bool, quiet: bool, as_json: bool, scheduler: str | None
) -> int:
    """Run the sweep; returns the exit code: 0, or 128 + the signal that stopped it (130 SIGINT, 143 SIGTERM)."""
    sweep = load_sweep(sweep_file, sets)  # a bad file is refused before the engines load
    try:
        from .. import sweep as engine  # optuna and dask: only here, never for train, sample or --help
    except ImportError as err:
        raise CharrnnError(
            f"charrnn sweep needs optuna and dask ({err.name or err} is missing): pip install 'charrnn[sweep]'"
        ) from None
    again = ["charrnn", "sweep", sweep_file, *(a for s in sets for a in ("--set", s)), "--resume"]
    again += ["--scheduler", scheduler] if scheduler else []
    console = err_console()
    with stop_on_signals() as received:
        progress = SweepProgress(quiet)
        try:
            summary = engine.run_sweep(sweep, resume, force, scheduler, progress, lambda: bool(received))
        except KeyboardInterrupt:
            # a second signal: the cluster is closed at once; each trial's last complete checkpoint is intact
            progress.close()
            console.print("interrupted again: stopped at once; each trial keeps its last complete checkpoint")
            console.print(f"resume with: {shlex.join(again)}", markup=False)
            return _signal_exit(received)
        finally:
            progress.close()
    repeats = summary["repeats"]
    if as_json:
        fields = JSON_FIELDS if repeats == 1 else (*JSON_FIELDS, *REPEAT_FIELDS)
        lines = [json.dumps({k: row.get(k) for k in fields}) for row in summary["rows"]]
        best = summary["best"]
        spread = {} if repeats == 1 else {"repeats": repeats, "best_spread": best["spread"] if best else None}
        lines.append(
            json.dumps(
                {
                    "sweep": summary["out_dir"],
                    **{k: summary[k] for k in ("trials", "complete", "pruned", "failed", "unfinished")},
                    "steps_trained": summary["steps_trained"],
                    "best_trial": best["trial"] if best else None,
                    "best_val_loss": best["best_val_loss"] if best else None,
                    **spread,
                    "best_values": best["values"] if best else None,
                    "best_yaml": summary["best_yaml"],
                    "stop_reason": summary["stop_reason"],
                    "wall_seconds": summary["wall_seconds"],
                }
            )
        )
        write_stdout("".join(line + "\n" for line in lines))
    if not quiet and summary["rows"]:
        show_leaderboard(summary["rows"], summary["keys"], console, repeats)
    if not quiet and summary["best"]:
        best = summary["best"]
        loss = f"validation loss {best['best_val_loss']:.4f}"
        if repeats > 1:
            low, high = best["spread"]
            loss = f"mean best {loss} over {repeats} seeds ({low:.4f}..{high:.4f})"
        console.print(
            f"best: {best['trial']}, {loss} at step {best['best_step']}; "
            f"train it again with: charrnn train {shlex.quote(shown_path(summary['best_yaml']))}",
            markup=False,
        )
    if summary["stop_reason"] in ("interrupted", "max_seconds"):
        why = "interrupted" if summary["interrupted"] else "out of time (max_seconds)"
        console.print(f"{why}: {summary['unfinished']} trial(s) unfinished, each with its checkpoint", markup=False)
        console.print(f"resume with: {shlex.join(again)}", markup=False)
    return _signal_exit(received) if summary["interrupted"] else 0


def _signal_exit(received: list[int]) -> int:
    return 128 + int(received[-1]) if received else 130  # the shell's convention: 130 SIGINT, 143 SIGTERM
