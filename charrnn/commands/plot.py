"""`charrnn plot`: a run's train and validation loss curves, in the terminal or as a PNG."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from .. import checkpoint, loss_chart
from .output import err_console


def run(run_dir: str | None, png: str | None, height: int) -> None:
    folder = run_folder(run_dir)
    train_points, val_points = loss_chart.read_metrics(folder / "metrics.jsonl")
    if png is not None:
        loss_chart.save_png(train_points, val_points, str(folder), Path(png))
        err_console().print(f"wrote {png}", markup=False)
        return
    loss_chart.print_chart(folder, train_points, val_points, height, Console())


def run_folder(arg: str | None) -> Path:
    """The run directory named by RUN_DIR, or by a checkpoint file in it; None is the newest under ./runs."""
    if arg is None:
        return checkpoint.resolve(None).parent
    path = Path(arg)
    return path if path.is_dir() else path.parent
