"""`charrnn eval`: score a text under a trained model, and measure how novel its samples are."""

from __future__ import annotations

import json
import sys
from collections import Counter

import numpy as np

from .. import checkpoint
from ..data import decode_text, read_text
from ..errors import DataError
from ..evaluation import encode_text, novelty, prefix, records_of, sampled_records, text_loss, training_split
from .output import err_console, note_weights, write_stdout


def _read(file: str, encoding: str, errors: str) -> tuple[str, str]:
    if file == "-":
        return decode_text(sys.stdin.buffer.read(), "<stdin>", encoding, errors), "<stdin>"
    return read_text(file, encoding, errors), file


def assess(
    checkpoint_path: str | None,
    file: str | None,
    skip_unknown: bool = False,
    novelty_chars: int = 0,
    temperature: float | None = None,
    seed: int = 0,
    raw: bool = False,
    say: bool = False,
) -> dict:
    """Mean NLL of FILE ("-": stdin; None: the run's validation split) under a checkpoint, and with
    novelty_chars > 0 the n-gram novelty of that many sampled characters against the training text.

    Returns {"loss", "bpc", "tokens", "text", "checkpoint", "step", "weights", "skipped"[, "novelty"]}; skipped
    counts the characters --skip-unknown dropped, weights says which were scored ("ema": the run's average,
    unless `raw`; see checkpoint.weights_used), on stderr too when `say`.
    """
    json_path = checkpoint.resolve(checkpoint_path, "best")
    cfg, vocab, model, meta = checkpoint.load_trained(json_path, raw=raw)
    used = checkpoint.weights_used(cfg, raw)
    if say:
        note_weights(cfg, used)
    d = cfg.data
    # data.path is read only when needed: a FILE can be scored on a machine without the training text
    nothing = np.empty(0, vocab.id_dtype)
    train, val, skipped = (
        training_split(cfg, vocab, skip_unknown) if file is None or novelty_chars else (nothing, nothing, Counter())
    )
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
        "weights": used,
        "skipped": dict(sorted(skipped.items())),
    }
    if novelty_chars:
        t = cfg.sample.temperature if temperature is None else temperature
        reference = records_of(train, vocab)
        drawn = sampled_records(model, vocab, novelty_chars, t, cfg.sample.top_k, np.random.default_rng(seed))
        held_out = prefix(records_of(val, vocab), novelty_chars)
        result["novelty"] = {
            "sample_chars": novelty_chars,
            "temperature": t,
            "seed": seed,
            "sample": novelty(drawn, reference),
            # the same measure on unseen real text: what "as novel as the author" looks like
            "held_out": novelty(held_out, reference) if held_out else None,
        }
    return result


def run(
    checkpoint_path: str | None,
    file: str | None,
    as_json: bool,
    skip_unknown: bool,
    novelty_chars: int,
    temperature: float | None,
    seed: int,
    raw: bool,
) -> None:
    """Print assess()'s result as lines or JSON; characters --skip-unknown dropped are counted on stderr,
    and for a run that kept an average, which weights were scored."""
    result = assess(checkpoint_path, file, skip_unknown, novelty_chars, temperature, seed, raw, say=not as_json)
    if result["skipped"]:
        listed = ", ".join(f"{c!r} ({n}x)" for c, n in result["skipped"].items())
        err_console().print(
            f"skipped {sum(result['skipped'].values())} characters not in the vocabulary: {listed}", markup=False
        )
    write_stdout(json.dumps(result) + "\n" if as_json else lines(result))


def lines(result: dict) -> str:
    """The plain report: the loss line, then the novelty lines when --novelty asked for them."""
    out = [
        f"loss {result['loss']:.4f} nats/token  {result['bpc']:.4f} bits/char  "
        f"{result['tokens']} tokens  ({result['text']}, step {result['step']})"
    ]
    novel = result.get("novelty")
    if novel:
        out.append(f"novel n-grams in {novel['sample_chars']} sampled chars: {_shares(novel['sample'])}")
        if novel["held_out"]:
            out.append(f"novel n-grams in as much held-out text: {_shares(novel['held_out'])}")
    return "".join(line + "\n" for line in out)


def _shares(by_n: dict) -> str:
    return "  ".join(f"{n}-grams {share:.3f}" for n, share in by_n.items() if share is not None)
