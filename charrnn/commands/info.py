"""`charrnn info`: what a checkpoint holds — config, vocabulary, parameter counts, step, losses, file format."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .. import checkpoint
from ..config import config_to_dict
from ..vocab import SPECIALS
from .output import write_stdout


def printable(c: str) -> str:
    """One vocabulary character as it is shown: ␣ for a space, an escape for anything invisible.

    >>> [printable(c) for c in "a \\n\\t\\\\\\x00é"]
    ['a', '␣', '\\\\n', '\\\\t', '\\\\\\\\', '\\\\x00', 'é']
    """
    if c == " ":
        return "␣"
    if c == "\\":
        return "\\\\"
    return c if c.isprintable() else c.encode("unicode_escape").decode("ascii")


def describe(path: str | Path | None, raw: bool = False) -> dict:
    """Everything `info` reports about the checkpoint at `path` (a run directory's latest, by default);
    weights_used says which weights the other verbs take from it, with --raw or without (`raw`)."""
    json_path = checkpoint.resolve(path, prefer="latest")
    cfg, vocab, model, meta = checkpoint.load_trained(json_path, raw=raw)
    metrics = meta.get("metrics") or {}
    params = {name: {"shape": list(p.shape), "count": int(p.size)} for name, p in model.params.items()}
    return {
        "checkpoint": str(json_path),
        "format": meta["format"],
        "version": meta["version"],
        "weights": meta.get("weights"),
        "weights_used": checkpoint.weights_used(cfg, raw),
        "step": meta.get("step"),
        "epoch": meta.get("epoch"),
        "steps": meta.get("steps") or cfg.train.steps,  # train.steps: auto's fixed count, once there is one
        "cell": cfg.model.cell,
        # how the step was trained; absent from checkpoints of charrnn before data-parallel training
        "workers": meta.get("workers", 1),
        "threads": meta.get("threads"),
        **{k: metrics.get(k) for k in ("train_loss", "val_loss", "best_val_loss", "best_step")},
        "vocab": {"size": vocab.size, "specials": list(SPECIALS), "chars": vocab.chars},
        "parameters": params,
        "total_parameters": sum(p["count"] for p in params.values()),
        "config": config_to_dict(cfg),
    }


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f} ({value / math.log(2):.4f} bits/char)"


def render(info: dict) -> str:
    """The plain-text report: aligned `name  value` lines, then parameters and config indented."""
    best = _loss(info["best_val_loss"])
    if info["best_step"] is not None:
        best += f" at step {info['best_step']}"
    vocab, model = info["vocab"], info["config"]["model"]
    lines = [
        f"checkpoint   {info['checkpoint']}",
        f"format       {info['format']} version {info['version']}",
        f"weights      {info['weights']}",
        f"step         {info['step']} of {info['steps']} (epoch {info['epoch']})",
        f"model        {info['cell']}, {model['num_layers']} x {model['hidden_size']}",
        f"trained on   {info['workers']} worker{'s' * (info['workers'] > 1)}"
        + (f" x {info['threads']} BLAS thread{'s' * (info['threads'] > 1)}" if info["threads"] else ""),
        f"train loss   {_loss(info['train_loss'])}",
        f"val loss     {_loss(info['val_loss'])}",
        f"best val     {best}",
        f"weights used {info['weights_used']}"
        + (f" (train.ema {info['config']['train']['ema']:g})" if info["weights_used"] == "ema" else ""),
        f"vocabulary   {vocab['size']} ids: " + " ".join(vocab["specials"] + [printable(c) for c in vocab["chars"]]),
        f"parameters   {info['total_parameters']:,}",
    ]
    params = info["parameters"]
    name_w = max(map(len, params))
    shape_w = max(len(str(tuple(p["shape"]))) for p in params.values())
    count_w = max(len(f"{p['count']:,}") for p in params.values())
    for name, p in params.items():
        lines.append(f"  {name:<{name_w}}  {str(tuple(p['shape'])):<{shape_w}}  {p['count']:>{count_w},}")
    lines.append("config")
    for section, values in info["config"].items():
        for key, value in values.items():
            lines.append(f"  {section}.{key}: {'null' if value is None else value}")
    return "\n".join(lines) + "\n"


def run(path: str | None, as_json: bool, raw: bool = False) -> None:
    described = describe(path, raw)
    write_stdout(json.dumps(described) + "\n" if as_json else render(described))
