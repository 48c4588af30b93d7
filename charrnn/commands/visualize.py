"""`charrnn visualize`: colour a text by one unit's activation (hidden, tanh(c) or a gate), in the terminal or
as an HTML page, or summarise how saturated a gated cell's gates are along it."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from .. import activations, checkpoint, gate_saturation, heatmap, saturation_chart
from ..errors import ConfigError
from .output import err_console, note_weights, write_stdout


def run(
    text: str,
    checkpoint_path: str | None,
    layer: int | None,
    neuron: int | None,
    top: int | None,
    predictions: bool,
    html_file: str | None,
    show: str,
    saturation: bool,
    as_json: bool,
    png: str | None,
    raw: bool = False,
) -> None:
    _check_options(neuron, top, predictions, html_file, show, saturation, as_json, png)
    source = checkpoint.resolve(checkpoint_path)
    cfg, vocab, model, _ = checkpoint.load_trained(source, raw=raw)
    used = checkpoint.weights_used(cfg, raw)
    if not as_json:
        note_weights(cfg, used)
    if saturation:
        _saturation(model, vocab, text, layer, as_json, png, str(source), used)
        return
    activations.check_show(model.cell, show)
    traced = activations.trace(model, vocab, activations.read_text_arg(text))
    views, notes = activations.select(traced, layer, neuron, top, show)
    for note in notes:
        err_console().print(note, markup=False)
    if html_file is not None:
        heatmap.write_html(Path(html_file), traced, vocab, views, predictions, str(source))
        err_console().print(f"wrote {html_file}", markup=False)
        return
    heatmap.render_terminal(traced, vocab, views, predictions, Console())


def _saturation(
    model, vocab, text: str, layer: int | None, as_json: bool, png: str | None, source: str, used: str
) -> None:
    gate_saturation.check_cell(model.cell)  # before reading the text, which may be stdin
    traced = activations.trace(model, vocab, activations.read_text_arg(text))
    summary = gate_saturation.saturation(traced, layer)
    if png is not None:
        saturation_chart.save_png(summary, source, Path(png))
        err_console().print(f"wrote {png}", markup=False)
    if as_json:
        write_stdout(json.dumps({**gate_saturation.to_json(summary), "weights": used}) + "\n")
    elif png is None:
        saturation_chart.print_summary(summary, model.hidden_size, Console())


def _check_options(neuron, top, predictions, html_file, show, saturation, as_json, png) -> None:
    """--saturation draws no coloured text; --json and --png belong to it."""
    if saturation:
        given = [
            name
            for name, on in (
                ("--neuron", neuron is not None),
                ("--top", top is not None),
                ("--predictions", predictions),
                ("--html", html_file is not None),
                ("--show", show != "hidden"),
            )
            if on
        ]
        if given:
            raise ConfigError(f"--saturation: draws no coloured text, so it takes no {', '.join(given)}")
    elif as_json or png is not None:
        raise ConfigError(f"{'--json' if as_json else '--png'}: only with --saturation")
