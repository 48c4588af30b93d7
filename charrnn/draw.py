"""Samples as `charrnn sample` prints them: each with its own seed, and its log-probability under the model."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .model import StackedRNN
from .sample import sample
from .vocab import BOS, EOS, Vocab


def draw_seed() -> int:
    """A fresh seed short enough to retype; reported with each sample so that --seed reproduces it."""
    return int(np.random.SeedSequence().entropy % (1 << 31))


def samples(
    model: StackedRNN, vocab: Vocab, prime: str, length: int, temperature: float, top_k: int | None, seed: int, num: int
) -> Iterator[tuple[int, str]]:
    """`num` continuations of `prime`, the i-th drawn with seed `seed + i`: any one is reproducible alone."""
    for i in range(num):
        yield seed + i, sample(model, vocab, prime, length, temperature, top_k, np.random.default_rng(seed + i))


def log_prob(model: StackedRNN, vocab: Vocab, prime: str, text: str, ended: bool) -> float:
    """Log-probability in nats of `text` after <s> + `prime` at temperature 1, with </s> if the sample ended there.

    The model's own likelihood, whatever temperature or top-k drew the text: samples can be ranked by it.
    """
    ids = np.concatenate([[BOS], vocab.encode(prime), vocab.encode(text), [EOS] if ended else []]).astype(np.intp)
    if len(ids) == 1:
        return 0.0  # nothing was predicted
    logp, _ = model.log_probs(ids[:-1, None], ids[1:, None])  # (T, 1), row j scores ids[j + 1]
    return float(logp[len(prime) :, 0].sum(dtype=np.float64))


def record(
    model: StackedRNN,
    vocab: Vocab,
    prime: str,
    text: str,
    seed: int,
    length: int,
    temperature: float,
    top_k: int | None,
) -> dict:
    """One line of `sample --json`: the full text (prime + continuation) and how to draw it again."""
    ended = len(text) < length  # only the end token stops a sample short of its length
    return {
        "text": prime + text,
        "prime": prime,
        "seed": seed,
        "temperature": temperature,
        "top_k": top_k,
        "length": length,
        "ended": ended,
        "log_prob": log_prob(model, vocab, prime, text, ended),
    }
