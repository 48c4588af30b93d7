"""How well a model predicts a text (mean NLL), and how much of what it writes is copied (n-gram novelty)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from .config import Config
from .data import DATA_PATH_HINT, encode_records, read_text, split_records, split_train_val
from .errors import DataError
from .model import StackedRNN
from .parallel import Workers
from .sampling import sample
from .vocab import BOS, EOS, Vocab

EVAL_WINDOW = 1000  # steps per forward call when one track is carried through a whole text
NOVELTY_SIZES = (5, 10, 15, 20)


def mean_nll(
    model: StackedRNN, ids: np.ndarray, num_tracks: int, seq_length: int, workers: Workers | None = None
) -> tuple[float, int]:
    """Mean NLL in nats of ids[1:] given what precedes, and the number of predicted tokens.

    Every character and </s> counts as a predicted token; a <s> does not, as it always follows </s>.
    The stream is cut into `num_tracks` contiguous tracks evaluated side by side, each starting from
    a zero state; with num_tracks=1 the state is carried through the whole stream. With `workers`,
    each worker scores its share of the tracks and every worker returns the sum of all shares.
    """
    inputs, targets = ids[:-1], ids[1:]
    count = int(np.count_nonzero(targets != BOS))
    if count == 0:
        return float("nan"), 0
    B = min(num_tracks, len(targets))
    n = -(-len(targets) // B)  # ceil: the last track is padded at its end, pads weigh 0
    pad = B * n - len(targets)
    X = np.concatenate([inputs, np.full(pad, BOS, inputs.dtype)]).reshape(B, n)  # (B, n)
    Y = np.concatenate([targets, np.zeros(pad, targets.dtype)]).reshape(B, n)
    weight = np.concatenate([targets != BOS, np.zeros(pad, bool)]).reshape(B, n)
    if workers is not None:
        mine = workers.tracks(B)
        X, Y, weight = X[mine], Y[mine], weight[mine]
    total, h = 0.0, None
    for start in range(0, n, seq_length):
        stop = start + seq_length
        logp, h = model.log_probs(X[:, start:stop].T, Y[:, start:stop].T, h)  # (T, B)
        total -= float(np.sum(logp * weight[:, start:stop].T, dtype=np.float64))
    if workers is not None:
        total = float(workers.add(np.array([total]))[0])
    return total / count, count


def text_loss(model: StackedRNN, ids: np.ndarray) -> dict:
    """loss (nats per predicted token), bpc (bits per character: loss / ln 2) and tokens, state carried
    through the whole stream as one track."""
    loss, tokens = mean_nll(model, ids, 1, EVAL_WINDOW)
    if tokens == 0:
        raise DataError("nothing to evaluate: the text has no character to predict")
    return {"loss": loss, "bpc": loss / math.log(2), "tokens": tokens}


def encode_text(
    text: str, source: str, vocab: Vocab, records: str, skip_unknown: bool = False
) -> tuple[np.ndarray, Counter]:
    """The text as the model was trained on it: records `<s> ids </s>` as data.records splits them.

    Characters the vocabulary lacks are an error naming them, or with skip_unknown are dropped and
    returned counted.
    """
    pieces = split_records(text, records)  # first: the newlines that separate records are no characters
    strange = set().union(*(vocab.unknown(p) for p in pieces))
    unknown = Counter(c for p in pieces for c in p if c in strange)
    if unknown and not skip_unknown:
        listed = ", ".join(f"{c!r} ({n}x)" for c, n in sorted(unknown.items()))
        raise DataError(f"{source}: characters not in the model's vocabulary: {listed}; drop them with --skip-unknown")
    if unknown:
        pieces = [kept for p in pieces if (kept := "".join(c for c in p if c not in strange))]
    if not pieces:
        raise DataError(f"{source}: no text to evaluate")
    return encode_records(pieces, vocab), unknown


def training_split(cfg: Config, vocab: Vocab, skip_unknown: bool = False) -> tuple[np.ndarray, np.ndarray, Counter]:
    """Train and validation ids of the run's data.path, re-read and split exactly as training split it."""
    d = cfg.data
    text = read_text(d.path, d.encoding, d.errors, DATA_PATH_HINT)
    ids, unknown = encode_text(text, d.path, vocab, d.records, skip_unknown)
    train, val = split_train_val(ids, d.val_fraction)
    return train, val, unknown


def records_of(ids: np.ndarray, vocab: Vocab) -> list[str]:
    """The texts of the records in an id stream, cut at <s> and </s>."""
    cuts = np.flatnonzero((ids == BOS) | (ids == EOS))
    return [vocab.decode(piece) for piece in np.split(ids, cuts) if len(piece)]


def novelty(sample: list[str], reference: list[str], sizes=NOVELTY_SIZES) -> dict[int, float | None]:
    """For each n, the share of the sample's n-grams (counted with repeats, never across records)
    that occur nowhere in the reference records; None when the sample has no n-gram that long.

    >>> novelty(["abcd"], ["abc", "xcd"], sizes=(2, 3))
    {2: 0.0, 3: 0.5}
    """
    shares = {}
    for n in sizes:
        grams = [r[i : i + n] for r in sample for i in range(len(r) - n + 1)]
        # one n at a time: a set of a 1M-character text's n-grams is ~100 MB, gone before the next n
        known = {r[i : i + n] for r in reference for i in range(len(r) - n + 1)}
        shares[n] = sum(g not in known for g in grams) / len(grams) if grams else None
    return shares


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


def prefix(records: list[str], length: int) -> list[str]:
    """The first `length` characters of a list of records, records kept apart."""
    out = []
    for r in records:
        if length <= 0:
            break
        out.append(r[:length])
        length -= len(r) + 1
    return out
