"""The gradient's reach (charrnn.gradient_reach) of one or more runs on one chart: in the terminal, a log
scale in braille with a table of the numbers under it; or as a PNG.

One line per run and layer: k steps back on x, the mean norm of dL_t/dh_{t-k} on a log scale on y.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.text import Text

from . import charts
from .charts import LABEL_W, Series, plot_area
from .gradient_reach import Reach

STYLES = ("cyan", "magenta", "green", "yellow", "blue", "red")
MARKS = "●■▲◆○□△◇"  # each line also gets its own mark, so the lines stay apart without colour
TABLE_KS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


@dataclass
class RunReach:
    run: str  # the run directory, as the user named it
    cell: str  # rnn, lstm or gru
    text: str  # where the ids came from
    reach: Reach
    weights: str  # measured with: ema, the run's average, or raw (checkpoint.weights_used)


def _lines(runs: list[RunReach]):
    """(run, layer, mean norms (K+1,), style, mark) per run and layer, in the order drawn."""
    looks = zip(itertools.cycle(STYLES), itertools.cycle(MARKS))
    for r in runs:
        for l, norms in enumerate(r.reach.mean_norm, start=1):
            yield r, l, norms, *next(looks)


def _label(r: RunReach, layer: int) -> str:
    return f"{r.run} layer {layer} ({r.cell})"


def chart(runs: list[RunReach], width: int, height: int) -> list[Text]:
    """The plot area, then one legend line per run and layer."""
    series, legend = [], []
    for r, l, norms, style, mark in _lines(runs):
        K = len(norms) - 1
        # a mean of 0 (every chain cut off by a record start) has no log: the line stops before it
        points = [(k, float(np.log10(n))) for k, n in enumerate(norms) if n > 0]
        series.append(Series(points, style))
        series.append(Series([p for p in points if p[0] in {K // 4, K // 2, 3 * K // 4, K}], style, mark))
        legend.append(Text(" " * LABEL_W).append(f"⣀⣀{mark} {_label(r, l)}", style=style))
    lines = plot_area(series, width, height, "steps back (k)", lambda y: f"{10**y:.1e}")
    return lines + legend


def table(runs: list[RunReach]) -> list[str]:
    """The mean norms at a few k, one row per run and layer, named by its mark in the legend."""
    K = runs[0].reach.steps
    ks = sorted({k for k in TABLE_KS if k <= K} | {K})
    rows = ["k" + " " * 9 + "".join(f"{k:>8}" for k in ks)]
    for _, l, norms, _, mark in _lines(runs):
        rows.append(f"{mark} layer {l:<2}" + "".join(f"{norms[k]:>8.1e}" for k in ks))
    return rows


def print_report(runs: list[RunReach], height: int, console: Console) -> None:
    """A headline per run, the chart as wide as the console, and the table."""
    for r in runs:
        console.print(
            f"{r.run} ({r.cell}): mean |dL_t/dh_(t-k)| over {r.reach.chains} positions of {r.text}",
            soft_wrap=True,
            markup=False,
        )
    for line in chart(runs, max(console.width - LABEL_W - 1, 10), height):
        console.print(line, soft_wrap=True)
    console.print()
    for row in table(runs):
        console.print(row, soft_wrap=True, markup=False)


def save_png(runs: list[RunReach], path: Path) -> None:
    """The same lines with matplotlib, on a log y axis."""
    fig = charts.figure()
    ax = fig.subplots()
    for r, l, norms, *_ in _lines(runs):
        ax.semilogy(np.arange(len(norms)), norms, label=_label(r, l), linewidth=1)
    ax.set(xlabel="steps back (k)", ylabel="mean |dL_t / dh_{t-k}|", title="How far back the gradient reaches")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    charts.save(fig, path)
