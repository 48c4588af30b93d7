"""A text with each character's background coloured by one unit's activation: hidden, tanh(c) or a gate.

As in Karpathy, Johnson and Fei-Fei, "Visualizing and Understanding Recurrent Networks" (2015): each
character shows tanh unit h_t^l[n] in [-1, 1] after reading it (red -1, white 0, blue +1), or an LSTM's
tanh(c), or a gate (a sigmoid gate in [0, 1] spans the same colours, red 0 .. blue 1), and
`--predictions` adds under it the model's five likeliest next characters. In a terminal through Rich,
or as one self-contained HTML page. What is shown comes from charrnn.activations.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from rich.color import Color
from rich.console import Console
from rich.style import Style
from rich.text import Text

from .activations import SIGMOID, Trace, View
from .errors import CharrnnError
from .vocab import BOS, EOS, SPECIALS, Vocab

SPARK = "▁▂▃▄▅▆▇█"  # activation -1 .. +1 where there is no colour
TOP = 5  # next-character guesses shown per character


def guesses(probs: np.ndarray) -> np.ndarray:
    """Ids of the TOP likeliest next characters or </s>, likeliest first: (N, V) -> (N, min(TOP, V - 1)).

    <s> is left out: it only ever starts a record, and sampling never draws it.
    """
    key = -probs
    key[:, BOS] = np.inf
    return np.argsort(key, axis=1, kind="stable")[:, : min(TOP, probs.shape[1] - 1)]


def token(vocab: Vocab, i: int) -> str:
    """A guessed id as one character cell; ∎ is the end token."""
    return "∎" if i == EOS else cell(vocab.chars[i - len(SPECIALS)])


def cell(c: str) -> str:
    """Each character as exactly one cell, so that rows line up: ↵ newline, → tab, · anything invisible."""
    return {"\n": "↵", "\t": "→"}.get(c, c if c.isprintable() else "·")


def level(view: View, v: float) -> float:
    """Where a value sits on the colour scale, -1 .. +1: a sigmoid gate's 0 .. 1 stretched onto it."""
    return 2 * v - 1 if view.quantity in SIGMOID else v


def scale_labels(view: View) -> list[str]:
    """The legend's five values, at levels -1, -0.5, 0, 0.5, 1."""
    if view.quantity in SIGMOID:
        return ["0", "0.25", "0.5", "0.75", "1"]
    return [f"{v:+.1f}" for v in (-1, -0.5, 0, 0.5, 1)]


def activation_rgb(v: float) -> tuple[int, int, int]:
    """-1 red, 0 white, +1 blue; never fully saturated, so the character on it stays legible."""
    fade = round(255 * (1 - 0.75 * min(abs(v), 1.0)))
    return (255, fade, fade) if v < 0 else (fade, fade, 255)


def activation_style(v: float) -> Style:
    """Black on the paler colours, white on the strong ones."""
    return Style(color="white" if abs(v) > 0.6 else "black", bgcolor=Color.from_rgb(*activation_rgb(v)))


def probability_rgb(p: float) -> tuple[int, int, int]:
    """0 white, 1 green."""
    fade = round(255 * (1 - 0.7 * p))
    return fade, 255, fade


def _lines(tr: Trace) -> list[list[int]]:
    """Character indices per displayed line; a newline the model read stays at its line's end (as ↵)."""
    lines, current = [], []
    for i, c in enumerate(tr.text):
        if c == "\n":
            if tr.seen[i]:
                current.append(i)
            lines.append(current)
            current = []
        else:
            current.append(i)
    if current or not lines:
        lines.append(current)
    return lines


def _chunks(tr: Trace, width: int) -> list[list[int]]:
    return [line[s : s + width] for line in _lines(tr) for s in range(0, max(len(line), 1), width)]


def render_terminal(tr: Trace, vocab: Vocab, views: list[View], predictions: bool, console: Console) -> None:
    """Print each view; coloured backgrounds on a colour terminal, else a ▁..█ row under each line."""
    colour = console.color_system is not None and not console.no_color
    top = guesses(tr.probs) if predictions else np.empty((len(tr.text), 0), int)  # (N, guesses shown)
    labels = scale_labels(views[0])  # one quantity per call
    if colour:
        legend = Text("activation  ")
        for v, label in zip((-1, -0.5, 0, 0.5, 1), labels):
            legend.append(f" {label} ", style=activation_style(v))
        if predictions:
            legend.append("\nrows below each line: the 5 likeliest next characters, greener = likelier (∎ end)")
    else:
        low, high = ("0", "1") if views[0].quantity in SIGMOID else ("-1", "+1")
        legend = Text(f"activation under each line: {SPARK[0]} {low} ... {SPARK[-1]} {high}")
        if predictions:
            legend.append("\nthen the 5 likeliest next characters, likeliest first (∎ end)")
    console.print(legend, soft_wrap=True)
    for view in views:
        console.print()
        console.print(Text(view.title, style="bold"), soft_wrap=True)
        for chunk in _chunks(tr, max(console.width, 8)):
            row = Text()
            for i in chunk:
                row.append(
                    cell(tr.text[i]), style=activation_style(level(view, float(view.values[i]))) if colour else None
                )
            console.print(row, soft_wrap=True)
            if not colour:
                console.print(
                    "".join(
                        SPARK[round((level(view, float(view.values[i])) + 1) / 2 * (len(SPARK) - 1))] for i in chunk
                    ),
                    soft_wrap=True,
                )
            for rank in range(top.shape[1]):
                row = Text()
                for i in chunk:
                    g = int(top[i, rank])
                    style = Style(color="black", bgcolor=Color.from_rgb(*probability_rgb(tr.probs[i, g])))
                    row.append(token(vocab, g), style=style if colour else None)
                console.print(row, soft_wrap=True)
            if predictions:
                console.print()


def activation_css(v: float) -> str:
    """The same colours as activation_style, for the HTML page."""
    return "background:rgb({},{},{})".format(*activation_rgb(v)) + (";color:white" if abs(v) > 0.6 else "")


def probability_css(p: float) -> str:
    return "background:rgb({},{},{})".format(*probability_rgb(p))


def _tooltip(tr: Trace, vocab: Vocab, top: np.ndarray, i: int, v: float) -> str:
    guessed = ", ".join(f"{token(vocab, int(g))} {tr.probs[i, g]:.2f}" for g in top[i])
    return f"{cell(tr.text[i])}  activation {v:+.3f}  next: {guessed}"


def html_page(tr: Trace, vocab: Vocab, views: list[View], predictions: bool, source: str) -> str:
    """One self-contained page (inline CSS, no scripts): each view as coloured text; hover a character for numbers."""
    top = guesses(tr.probs)
    sections = []
    for view in views:
        parts = []
        for line in _lines(tr):
            for i in line:
                v = float(view.values[i])
                ch = f'<span class="ch" style="{activation_css(level(view, v))}">{html.escape(cell(tr.text[i]))}</span>'
                if predictions:
                    ch += "".join(
                        f'<span class="p" style="{probability_css(tr.probs[i, g])}">'
                        f"{html.escape(token(vocab, int(g)))}</span>"
                        for g in top[i]
                    )
                parts.append(f'<span class="col" title="{html.escape(_tooltip(tr, vocab, top, i, v))}">{ch}</span>')
            parts.append("<br>\n")
        sections.append(f'<h2>{html.escape(view.title)}</h2>\n<div class="text">{"".join(parts)}</div>')
    swatches = "".join(
        f'<span class="ch" style="{activation_css(v)}">{label}</span>'
        for v, label in zip((-1, -0.5, 0, 0.5, 1), scale_labels(views[0]))
    )
    note = (
        " Under each character: the model's 5 likeliest next characters, greener = likelier (∎ end)."
        if predictions
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>charrnn visualize: {html.escape(source)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
.text {{ font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 15px; line-height: 1.6; }}
.col {{ display: inline-block; vertical-align: top; }}
.ch, .p {{ display: block; white-space: pre; text-align: center; min-width: 0.6em; }}
.p {{ font-size: 11px; line-height: 1.3; color: #333; }}
.legend .ch {{ display: inline-block; padding: 0 0.4em; font-family: monospace; }}
</style></head>
<body>
<h1>charrnn visualize</h1>
<p>{html.escape(source)}: each character's background is one {_what(views[0])} after reading it.
Hover a character for its value{" and the model's next-character guesses" if not predictions else ""}.{note}</p>
<p class="legend">{swatches}</p>
{chr(10).join(sections)}
</body></html>
"""


def _what(view: View) -> str:
    if view.quantity == "hidden":
        return "hidden unit's tanh activation"
    if view.quantity == "cell":
        return "unit's tanh(c), its LSTM cell state squashed into [-1, 1]"
    kind = "sigmoid, in [0, 1]" if view.quantity in SIGMOID else "tanh, in [-1, 1]"
    return f"unit's {view.quantity} gate activation ({kind})"


def write_html(path: Path, tr: Trace, vocab: Vocab, views: list[View], predictions: bool, source: str) -> None:
    try:
        path.write_text(html_page(tr, vocab, views, predictions, source), encoding="utf-8")
    except OSError as err:
        raise CharrnnError(f"{path}: cannot write: {err.strerror}") from None
