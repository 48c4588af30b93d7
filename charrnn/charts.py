"""Drawing shared by the charts: a braille plot area for the terminal, and matplotlib figures for --png.

The terminal needs nothing beyond Rich: a line is drawn in braille (2 x 4 dots per character cell), a
series of marks as one character per point, so series stay apart even without colour.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from .errors import CharrnnError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

AXIS_STYLE = "dim"
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


@dataclass
class Series:
    points: Sequence[tuple[float, float]]  # (x, y)
    style: str
    mark: str | None = None  # None: a braille line through the points; else this character at each point


def _line(a: tuple[int, int], b: tuple[int, int]) -> list[tuple[int, int]]:
    """Dots from a to b, one per step of the longer axis."""
    n = max(abs(b[0] - a[0]), abs(b[1] - a[1]), 1)
    return [(round(a[0] + (b[0] - a[0]) * i / n), round(a[1] + (b[1] - a[1]) * i / n)) for i in range(n + 1)]


def plot_area(
    series: list[Series], width: int, height: int, x_unit: str, y_label: Callable[[float], str] = "{:.4g}".format
) -> list[Text]:
    """y labels and axis, `height` rows of `width` cells, the x axis and its end labels (x_unit after the last).

    Marks drawn later cover what is drawn before them; a cell crossed by several lines takes the last one's style.
    """
    points = [p for s in series for p in s.points]
    x0, x1 = min(x for x, _ in points), max(x for x, _ in points)
    lo, hi = min(y for _, y in points), max(y for _, y in points)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5  # a flat curve sits mid-chart
    X, Y = 2 * width, 4 * height  # dots across and down

    def dot(x: float, y: float) -> tuple[int, int]:
        return 0 if x1 == x0 else round((x - x0) / (x1 - x0) * (X - 1)), round((hi - y) / (hi - lo) * (Y - 1))

    bits = [[0] * width for _ in range(height)]  # (height, width) braille dots set per cell
    styles: dict[tuple[int, int], str] = {}  # (row, col) -> the style of the last line through the cell
    marks: dict[tuple[int, int], tuple[str, str]] = {}  # (row, col) -> (mark, style)
    for s in series:
        dots = [dot(x, y) for x, y in s.points]
        if s.mark is not None:
            marks.update({(y // 4, x // 2): (s.mark, s.style) for x, y in dots})
            continue
        for a, b in zip(dots, dots[1:] or dots):
            for x, y in _line(a, b):
                bits[y // 4][x // 2] |= DOT_BITS[(x % 2, y % 4)]
                styles[(y // 4, x // 2)] = s.style

    labels = {0: hi, dot(x0, (hi + lo) / 2)[1] // 4: (hi + lo) / 2, height - 1: lo}  # top, middle, bottom
    lines = []
    for row in range(height):
        line = Text()
        line.append(
            f"{y_label(labels[row]):>{LABEL_W - 2}} ┤" if row in labels else " " * (LABEL_W - 1) + "│",
            style=AXIS_STYLE,
        )
        cells = [
            marks[(row, col)]
            if (row, col) in marks
            else (chr(0x2800 + bits[row][col]), styles[(row, col)])
            if bits[row][col]
            else (" ", "")
            for col in range(width)
        ]
        for style, run in itertools.groupby(cells, key=lambda c: c[1]):  # one span per run: fewer escape codes
            line.append("".join(c for c, _ in run), style=style)
        lines.append(line)
    lines.append(Text(" " * (LABEL_W - 1) + "└" + "─" * width, style=AXIS_STYLE))
    left, right = str(x0), f"{x1} {x_unit}"
    lines.append(Text(" " * LABEL_W + left + right.rjust(max(width - len(left), len(right) + 1)), style=AXIS_STYLE))
    return lines


def figure(width: float = 8, height: float = 4.5) -> Figure:
    """An empty matplotlib figure, in inches; matplotlib is an extra: `pip install 'charrnn[plot]'`."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise CharrnnError(
            "--png needs matplotlib, which is not installed: pip install 'charrnn[plot]' "
            "(the terminal chart needs nothing more)"
        ) from None
    return Figure(figsize=(width, height), dpi=100)


def save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as err:
        raise CharrnnError(f"{path}: cannot write: {err.strerror or err}") from None
