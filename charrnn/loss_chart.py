"""A run's train and validation loss from metrics.jsonl, drawn in braille in the terminal or as a PNG.

Train loss is a braille line, validation loss a `●` per evaluation (charrnn.charts draws both).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.text import Text

from . import charts
from .charts import LABEL_W, Series, plot_area
from .errors import CharrnnError

TRAIN_STYLE, VAL_STYLE = "cyan", "bold magenta"
VAL_MARK = "●"


def read_metrics(path: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, train loss) and (step, val loss) points of a metrics.jsonl; lines a crash cut short are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise CharrnnError(f"{path}: no metrics file; `charrnn train` writes one into each run directory") from None
    except OSError as err:
        raise CharrnnError(f"{path}: cannot read: {err.strerror}") from None
    train: list[tuple[int, float]] = []
    val: list[tuple[int, float]] = []
    for line in lines:
        try:
            m = json.loads(line)
            step = int(m["step"])
        except (ValueError, KeyError, TypeError):
            continue
        for series, key in ((train, "train_loss"), (val, "val_loss")):
            value = m.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                series.append((step, float(value)))
    if not train and not val:
        raise CharrnnError(f"{path}: no losses logged yet")
    return train, val


def chart(train: list[tuple[int, float]], val: list[tuple[int, float]], width: int, height: int) -> list[Text]:
    """The chart's lines: y labels and axis, `height` rows of `width` cells, the x axis, its labels and a legend."""
    series = [Series(train, TRAIN_STYLE), Series(val, VAL_STYLE, VAL_MARK)]
    lines = plot_area(series, width, height, "step")
    legend = Text(" " * LABEL_W)
    for points, mark, style, name in ((train, "⣀⣀", TRAIN_STYLE, "train"), (val, VAL_MARK, VAL_STYLE, "val")):
        if points:
            legend.append(mark, style=style)
            legend.append(f" {name} loss   ")
    legend.append("(nats per character)")
    lines.append(legend)
    return lines


def headline(run_dir: Path, train: list[tuple[int, float]], val: list[tuple[int, float]]) -> Text:
    """The run and its latest numbers, above the chart."""
    text = Text(str(run_dir), style="bold")
    if train:
        text.append(f"  step {train[-1][0]}  train {train[-1][1]:.4f}")
    if val:
        best_step, best = min(val, key=lambda p: p[1])
        text.append(f"  val {val[-1][1]:.4f} (best {best:.4f} at step {best_step})")
    return text


def print_chart(
    run_dir: Path, train: list[tuple[int, float]], val: list[tuple[int, float]], height: int, console: Console
) -> None:
    """Headline and chart, as wide as the console."""
    console.print(headline(run_dir, train, val), soft_wrap=True)
    for line in chart(train, val, max(console.width - LABEL_W - 1, 10), height):
        console.print(line, soft_wrap=True)


def save_png(train: list[tuple[int, float]], val: list[tuple[int, float]], title: str, path: Path) -> None:
    """The same curves with matplotlib, which charrnn does not require: `pip install 'charrnn[plot]'`."""
    fig = charts.figure()
    ax = fig.subplots()
    if train:
        ax.plot(*zip(*train), label="train loss", linewidth=1)
    if val:
        ax.plot(*zip(*val), "o-", label="val loss", markersize=3)
    ax.set(xlabel="step", ylabel="loss (nats per character)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    charts.save(fig, path)
