"""`charrnn visualize`: colour a text by one hidden unit's activation, in the terminal or as an HTML page."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from .. import activations, checkpoint, heatmap
from .output import err_console


def run(
    text: str,
    checkpoint_path: str | None,
    layer: int | None,
    neuron: int | None,
    top: int | None,
    predictions: bool,
    html_file: str | None,
) -> None:
    source = checkpoint.resolve(checkpoint_path)
    _, vocab, model, _ = checkpoint.load_trained(source)
    traced = activations.trace(model, vocab, activations.read_text_arg(text))
    views, notes = activations.select(traced, layer, neuron, top)
    for note in notes:
        err_console().print(note, markup=False)
    if html_file is not None:
        heatmap.write_html(Path(html_file), traced, vocab, views, predictions, str(source))
        err_console().print(f"wrote {html_file}", markup=False)
        return
    heatmap.render_terminal(traced, vocab, views, predictions, Console())
