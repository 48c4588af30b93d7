"""`charrnn gradients`: how far back each run's gradient reaches, several runs on one chart."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from .. import checkpoint, reach_chart
from ..data import decode_text, read_text
from ..errors import ConfigError
from ..evaluation import training_split
from ..gradient_reach import CHAINS, encode, reach
from ..reach_chart import RunReach
from .output import err_console, note_weights, write_stdout

CHART_HEIGHT = 12


def measure(
    run: str | None, text: str | None, stdin: bytes | None, steps: int, raw: bool = False, say: bool = False
) -> RunReach:
    """One run's reach over --text (stdin's bytes when it is -), or over its own validation split; from its
    averaged weights when it kept them, unless `raw` (which, on stderr too when `say`)."""
    json_path = checkpoint.resolve(run)
    cfg, vocab, model, _ = checkpoint.load_trained(json_path, raw=raw)
    used = checkpoint.weights_used(cfg, raw)
    if say:
        note_weights(cfg, used, f"{json_path.parent}: ")
    d = cfg.data
    if text is None:
        train, val, _ = training_split(cfg, vocab)
        # the held-out part when there is one: text the model has not been fitted to
        ids, source = (val, f"validation split of {d.path}") if len(val) else (train, d.path)
    else:
        if stdin is None:
            if not Path(text).is_file():
                raise ConfigError(f"--text: {text}: no such file (- reads stdin)")
            content, source = read_text(text, d.encoding, d.errors), text
        else:
            content, source = decode_text(stdin, "<stdin>", d.encoding, d.errors), "<stdin>"
        ids = encode(content, source, vocab, d.records)
    return RunReach(str(json_path.parent), cfg.model.cell, source, reach(model, ids, steps, source), used)


def run(runs: list[str], text: str | None, steps: int, as_json: bool, png: str | None, raw: bool = False) -> None:
    stdin = sys.stdin.buffer.read() if text == "-" else None  # read once, for every run
    named: list[str | None] = [*runs] or [None]  # no -c: the newest run under ./runs
    measured = [measure(r, text, stdin, steps, raw, say=not as_json) for r in named]
    if as_json:
        write_stdout(json.dumps(report(measured, steps)) + "\n")
    elif png is None:
        reach_chart.print_report(measured, CHART_HEIGHT, Console())
    if png is not None:
        reach_chart.save_png(measured, Path(png))
        err_console().print(f"wrote {png}", markup=False)


def report(measured: list[RunReach], steps: int) -> dict:
    """What --json prints: per run and layer, the mean norm for k = 0..steps."""
    return {
        "steps": steps,
        "chains": CHAINS,
        "runs": [
            {
                "run": m.run,
                "cell": m.cell,
                "text": m.text,
                "weights": m.weights,
                "chains": m.reach.chains,
                "warmup": m.reach.warmup,
                "layers": [
                    {"layer": l, "mean_norm": norms.tolist()} for l, norms in enumerate(m.reach.mean_norm, start=1)
                ],
            }
            for m in measured
        ],
    }
