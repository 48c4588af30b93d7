"""What `charrnn eval` does: score a text under a trained model, and measure how novel its samples are."""

from __future__ import annotations

import sys

import numpy as np

from . import checkpoint
from .data import decode_text, read_text
from .errors import DataError
from .evaluate import encode_text, novelty, records_of, text_loss, training_split
from .model import StackedRNN
from .run import load_trained
from .sample import sample
from .vocab import Vocab


def _read(file: str, encoding: str, errors: str) -> tuple[str, str]:
    if file == "-":
        return decode_text(sys.stdin.buffer.read(), "<stdin>", encoding, errors), "<stdin>"
    return read_text(file, encoding, errors), file


def sampled_records(
    model: StackedRNN, vocab: Vocab, length: int, temperature: float, top_k: int | None, rng: np.random.Generator
) -> list[str]:
    """Samples from <s>, one record each, until `length` characters (end tokens counted) are written."""
    records, written = [], 0
    while written < length:
        text = sample(model, vocab, "", length - written, temperature, top_k, rng)
        records.append(text)
        written += len(text) + 1  # the end token counts, so a model that ends at once still finishes
    return records


def _prefix(records: list[str], length: int) -> list[str]:
    """The first `length` characters of a list of records, records kept apart."""
    out = []
    for r in records:
        if length <= 0:
            break
        out.append(r[:length])
        length -= len(r) + 1
    return out


def assess(
    checkpoint_path: str | None,
    file: str | None,
    skip_unknown: bool = False,
    novelty_chars: int = 0,
    temperature: float | None = None,
    seed: int = 0,
) -> dict:
    """Mean NLL of FILE ("-": stdin; None: the run's validation split) under a checkpoint, and with
    novelty_chars > 0 the n-gram novelty of that many sampled characters against the training text.

    Returns {"loss", "bpc", "tokens", "text", "checkpoint", "step", "skipped"[, "novelty"]}; skipped
    counts the characters --skip-unknown dropped.
    """
    json_path = checkpoint.resolve(checkpoint_path, "best")
    cfg, vocab, model, meta = load_trained(json_path)
    d = cfg.data
    # data.path is read only when needed: a FILE can be scored on a machine without the training text
    train, val, skipped = training_split(cfg, vocab, skip_unknown) if file is None or novelty_chars else (None,) * 3
    if file is None:
        if len(val) < 2:
            raise DataError(
                f"{d.path}: the run holds out no validation text (data.val_fraction "
                f"{d.val_fraction}); pass a FILE to evaluate"
            )
        ids, source = val, f"validation split of {d.path}"
    else:
        text, source = _read(file, d.encoding, d.errors)
        ids, skipped = encode_text(text, source, vocab, d.records, skip_unknown)
    result = {
        **text_loss(model, ids),
        "text": source,
        "checkpoint": str(json_path),
        "step": meta.get("step"),
        "skipped": dict(sorted(skipped.items())),
    }
    if novelty_chars:
        t = cfg.sample.temperature if temperature is None else temperature
        reference = records_of(train, vocab)
        drawn = sampled_records(model, vocab, novelty_chars, t, cfg.sample.top_k, np.random.default_rng(seed))
        held_out = _prefix(records_of(val, vocab), novelty_chars)
        result["novelty"] = {
            "sample_chars": novelty_chars,
            "temperature": t,
            "seed": seed,
            "sample": novelty(drawn, reference),
            # the same measure on unseen real text: what "as novel as the author" looks like
            "held_out": novelty(held_out, reference) if held_out else None,
        }
    return result
