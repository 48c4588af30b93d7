"""A run's train and validation loss from metrics.jsonl, drawn in braille in the terminal or as a PNG.

The terminal chart needs nothing beyond Rich: train loss is a braille line (2 x 4 dots per character cell),
validation loss a `●` per evaluation, so the two stay apart even without colour.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

from rich.console import Console
from rich.text import Text

from .errors import CharrnnError

TRAIN_STYLE, VAL_STYLE, AXIS_STYLE = "cyan", "bold magenta", "dim"
VAL_MARK = "●"
# bit of each dot in a braille cell, by (x, y) within its 2 x 4 grid (Unicode's dot numbering)
DOT_BITS = {
    (0, 0): 0x01,
    (0, 1): 0x02,
    (0, 2): 0x04,
    (1, 0): 0x08,
    (1, 1): 0x10,
    (1, 2): 0x20,
    (0, 3): 0x40,
    (1, 3): 0x80,
}
LABEL_W = 10  # characters left of the axis for the y labels


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


def _line(a: tuple[int, int], b: tuple[int, int]) -> list[tuple[int, int]]:
    """Dots from a to b, one per step of the longer axis."""
    n = max(abs(b[0] - a[0]), abs(b[1] - a[1]), 1)
    return [(round(a[0] + (b[0] - a[0]) * i / n), round(a[1] + (b[1] - a[1]) * i / n)) for i in range(n + 1)]


def chart(train: list[tuple[int, float]], val: list[tuple[int, float]], width: int, height: int) -> list[Text]:
    """The chart's lines: y labels and axis, `height` rows of `width` cells, the x axis, its labels and a legend."""
    points = train + val
    x0, x1 = min(s for s, _ in points), max(s for s, _ in points)
    lo, hi = min(v for _, v in points), max(v for _, v in points)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5  # a flat curve sits mid-chart
    X, Y = 2 * width, 4 * height  # dots across and down

    def dot(step: int, value: float) -> tuple[int, int]:
        x = 0 if x1 == x0 else round((step - x0) / (x1 - x0) * (X - 1))
        return x, round((hi - value) / (hi - lo) * (Y - 1))

    bits = [[0] * width for _ in range(height)]  # (height, width) braille dots set per cell
    train_dots = [dot(s, v) for s, v in train]
    for a, b in zip(train_dots, train_dots[1:] or train_dots):
        for x, y in _line(a, b):
            bits[y // 4][x // 2] |= DOT_BITS[(x % 2, y % 4)]
    marks = {(y // 4, x // 2) for x, y in (dot(s, v) for s, v in val)}

    labels = {0: hi, dot(x0, (hi + lo) / 2)[1] // 4: (hi + lo) / 2, height - 1: lo}  # top, middle, bottom
    lines = []
    for row in range(height):
        line = Text()
        line.append(
            f"{labels[row]:>{LABEL_W - 2}.4g} ┤" if row in labels else " " * (LABEL_W - 1) + "│", style=AXIS_STYLE
        )
        cells = [
            (VAL_MARK, VAL_STYLE)
            if (row, col) in marks
            else (chr(0x2800 + bits[row][col]), TRAIN_STYLE)
            if bits[row][col]
            else (" ", "")
            for col in range(width)
        ]
        for style, run in itertools.groupby(cells, key=lambda c: c[1]):  # one span per run: fewer escape codes
            line.append("".join(c for c, _ in run), style=style)
        lines.append(line)
    lines.append(Text(" " * (LABEL_W - 1) + "└" + "─" * width, style=AXIS_STYLE))
    left, right = str(x0), f"{x1} step"
    lines.append(Text(" " * LABEL_W + left + right.rjust(max(width - len(left), len(right) + 1)), style=AXIS_STYLE))
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


def new_figure(width: float, height: float):
    """A matplotlib Figure of width x height inches; matplotlib is optional: `pip install 'charrnn[plot]'`."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise CharrnnError(
            "--png needs matplotlib, which is not installed: pip install 'charrnn[plot]' "
            "(the terminal chart needs nothing more)"
        ) from None
    return Figure(figsize=(width, height), dpi=100)


def save_figure(fig, path: Path) -> None:
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as err:
        raise CharrnnError(f"{path}: cannot write: {err.strerror or err}") from None


def save_png(train: list[tuple[int, float]], val: list[tuple[int, float]], title: str, path: Path) -> None:
    """The same curves with matplotlib."""
    fig = new_figure(8, 4.5)
    ax = fig.subplots()
    if train:
        ax.plot(*zip(*train), label="train loss", linewidth=1)
    if val:
        ax.plot(*zip(*val), "o-", label="val loss", markersize=3)
    ax.set(xlabel="step", ylabel="loss (nats per character)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)
