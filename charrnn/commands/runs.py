"""`charrnn runs`: the runs under a folder with their model, step, best validation loss and age, as text or JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..errors import CharrnnError
from .output import err_console, write_stdout

COLUMNS = ("run", "model", "step", "best val loss", "age")


def list_runs(root: Path) -> tuple[list[dict], list[str]]:
    """One entry per run directory under `root` (any with a latest.json), by name; and warnings about damaged ones.

    Reads the checkpoint JSON only, never the weights: listing stays fast however big the runs are.
    """
    runs, warnings = [], []
    now = time.time()
    for latest in sorted(root.glob("*/latest.json")):
        try:
            meta = json.loads(latest.read_text(encoding="utf-8"))
            metrics = meta.get("metrics") or {}
            model = meta["config"]["model"]
            runs.append(
                {
                    "run": str(latest.parent),
                    "cell": model.get("cell", "rnn"),  # checkpoints before the gated cells hold no cell
                    "num_layers": model["num_layers"],
                    "hidden_size": model["hidden_size"],
                    "step": meta["step"],
                    "steps": meta.get("steps") or meta["config"]["train"]["steps"],  # auto's fixed count
                    "best_val_loss": metrics.get("best_val_loss"),
                    "best_step": metrics.get("best_step"),
                    "train_loss": metrics.get("train_loss"),
                    "age_seconds": now - latest.stat().st_mtime,
                }
            )
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
            warnings.append(f"{latest}: unreadable, skipped")
    return runs, warnings


def age(seconds: float) -> str:
    """Coarse, like `ls -l` would want it: 42s, 5m, 3h, 12d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(int(seconds), 0)}s"


def _cells(run: dict) -> tuple[str, ...]:
    best = "-" if run["best_val_loss"] is None else f"{run['best_val_loss']:.4f}"
    model = f"{run['cell']} {run['num_layers']}x{run['hidden_size']}"
    return run["run"], model, f"{run['step']}/{run['steps']}", best, age(run["age_seconds"])


def render_plain(runs: list[dict]) -> str:
    """Aligned columns with a header line, for pipes: split on two or more spaces, or use --json."""
    rows = [COLUMNS] + [_cells(r) for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n" for row in rows)


def show(runs: list[dict], console: Console) -> None:
    """A Rich table on a terminal; elsewhere the plain columns, which no console width can wrap."""
    if not console.is_terminal:
        console.file.write(render_plain(runs))
        return
    table = Table(*COLUMNS, box=None, header_style="bold")
    for run in runs:
        table.add_row(*_cells(run))
    console.print(table)


def run(root: str | None, as_json: bool) -> None:
    """List the runs under `root` (default ./runs): a table (plain columns off a terminal) or a JSON array.

    A FOLDER that does not exist is a mistake, as for `ls`; ./runs before the first run is just empty.
    """
    if root is not None and not Path(root).is_dir():
        raise CharrnnError(f"{root}: {'not a folder' if Path(root).exists() else 'no such folder'}")
    root = "runs" if root is None else root
    found, warnings = list_runs(Path(root))
    err = err_console()
    for warning in warnings:
        err.print(f"warning: {warning}", markup=False)
    if as_json:
        write_stdout(json.dumps(found) + "\n")
    elif not found:
        err.print(f"no runs under {root}", markup=False)
    else:
        show(found, Console())
