"""The gate-saturation summary drawn: per layer a table and a scatter of left- against right-saturated
fraction in the terminal (one letter per gate, as Figure 3 of Karpathy, Johnson and Fei-Fei 2015 uses
one colour), or the same scatters as a PNG with matplotlib.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.text import Text

from . import charts
from .gate_saturation import LEFT, RIGHT, Saturation

# each gate's letter (the paper's symbols) and colour, in the terminal and in the PNG
MARK = {"input": "i", "forget": "f", "output": "o", "reset": "r", "update": "z"}
COLOUR = {"input": "green", "forget": "blue", "output": "magenta", "reset": "red", "update": "cyan"}
WIDTH, HEIGHT = 41, 11  # scatter cells: left fraction 0..1 in steps of 0.025, right in steps of 0.1


def table(s: Saturation, k: int) -> list[str]:
    """One row per gate: mean fractions, and how many units are saturated more than half of the time."""
    rows = [f"  {'gate':<8}  {'mean left':>9}  {'mean right':>10}  {'units > 50% left':>16}  {'units > 50% right':>17}"]
    for gate in s.left:
        left, right = s.left[gate][k], s.right[gate][k]
        rows.append(
            f"  {gate:<8}  {left.mean():>9.3f}  {right.mean():>10.3f}  "
            f"{int((left > 0.5).sum()):>16}  {int((right > 0.5).sum()):>17}"
        )
    return rows


def scatter(s: Saturation, k: int) -> list[Text]:
    """Each unit's gate as its gate's letter at (left fraction, right fraction); * where gates overlap."""
    grid: list[list[str | None]] = [[None] * WIDTH for _ in range(HEIGHT)]  # [row][column], row 0 on top
    for gate in s.left:
        for x, y in zip(s.left[gate][k], s.right[gate][k]):
            row, col = HEIGHT - 1 - round(float(y) * (HEIGHT - 1)), round(float(x) * (WIDTH - 1))
            grid[row][col] = gate if grid[row][col] in (None, gate) else "*"
    lines = [Text("  right-saturated fraction")]
    for r, cells in enumerate(grid):
        line = Text(f"  {'1' if r == 0 else '0' if r == HEIGHT - 1 else ' '} │", style="dim")
        while cells and cells[-1] is None:  # no trailing blanks
            cells = cells[:-1]
        for g in cells:
            line.append(MARK.get(g, g) if g else " ", style=COLOUR.get(g or "", ""))
        lines.append(line)
    lines.append(Text("    └" + "─" * WIDTH, style="dim"))
    lines.append(Text(f"     0{'left-saturated fraction':^{WIDTH - 2}}1"))
    return lines


def print_summary(s: Saturation, H: int, console: Console) -> None:
    """The table and the scatter of each layer."""
    console.print(
        f"{s.cell}: {s.characters} characters read; left-saturated: activation < {LEFT}, right: > {RIGHT}",
        soft_wrap=True,
        markup=False,
    )
    key = ", ".join(f"{MARK[g]} {g}" for g in s.left)
    for k, layer in enumerate(s.layers):
        console.print()
        console.print(Text(f"layer {layer} ({H} units)", style="bold"), soft_wrap=True)
        for row in table(s, k):
            console.print(row, soft_wrap=True, markup=False, highlight=False)
        for line in scatter(s, k):
            console.print(line, soft_wrap=True, highlight=False)
        console.print(f"  {key}; * more than one gate", soft_wrap=True, markup=False, highlight=False)


def save_png(s: Saturation, title: str, path: Path) -> None:
    """One scatter per layer, left fraction on x, right on y, one colour per gate."""
    fig = charts.figure(3.6 * len(s.layers) + 0.6, 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(s.layers), sharey=True))
    for k, (ax, layer) in enumerate(zip(axes, s.layers)):
        ax.plot([0, 1], [1, 0], color="0.8", linewidth=0.8)  # left + right <= 1: no unit lies beyond
        for gate in s.left:
            left, right = s.left[gate][k], s.right[gate][k]
            ax.scatter(left, right, s=12, alpha=0.7, label=gate, color=COLOUR[gate], clip_on=False)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="fraction left-saturated", title=f"layer {layer}")
    axes[0].set_ylabel("fraction right-saturated")
    axes[-1].legend(loc="upper right")
    fig.suptitle(title, fontsize=9)
    charts.save(fig, path)
