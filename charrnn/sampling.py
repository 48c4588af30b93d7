"""Generate text: start from <s>, feed the prime, then feed each sampled character back in; and score what was drawn."""

from __future__ import annotations

import numpy as np

from .model import StackedRNN
from .vocab import BOS, EOS, Vocab


def pick(logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator) -> int:
    """One id from logits (V,): greedy argmax at temperature 0, else softmax(logits / T) over the top k."""
    logits = logits.astype(np.float64)  # (V,) a copy: everything below works in place on it
    logits[BOS] = -np.inf  # <s> only ever starts a record; it is never a continuation
    if temperature == 0:
        return int(logits.argmax())
    if top_k is not None and top_k < len(logits):
        logits[np.argsort(logits)[:-top_k]] = -np.inf
    logits -= logits.max()  # shift first: a tiny temperature then gives -inf, never inf - inf
    with np.errstate(over="ignore"):
        logits /= temperature
    cdf = np.exp(logits, out=logits).cumsum(out=logits)
    return int(min(cdf.searchsorted(rng.random() * cdf[-1], side="right"), len(cdf) - 1))


def sample(
    model: StackedRNN,
    vocab: Vocab,
    prime: str,
    length: int,
    temperature: float,
    top_k: int | None,
    rng: np.random.Generator,
) -> str:
    """The continuation of `prime` (without it): at most `length` characters, ending early at </s>."""
    h = model.zero_state(1)  # (L, 1, H)
    for i in [BOS, *vocab.encode(prime).tolist()]:
        logits, h = model.step(np.array([i]), h)
    out: list[int] = []
    while len(out) < length:
        i = pick(logits[0], temperature, top_k, rng)
        if i == EOS:
            break
        out.append(i)
        logits, h = model.step(np.array([i]), h)
    return vocab.decode(out)


def log_prob(model: StackedRNN, vocab: Vocab, prime: str, text: str, ended: bool) -> float:
    """Log-probability in nats of `text` after <s> + `prime` at temperature 1, with </s> if the sample ended there.

    The model's own likelihood, whatever temperature or top-k drew the text: samples can be ranked by it.
    """
    ids = np.concatenate([[BOS], vocab.encode(prime), vocab.encode(text), [EOS] if ended else []]).astype(np.intp)
    if len(ids) == 1:
        return 0.0  # nothing was predicted
    logp, _ = model.log_probs(ids[:-1, None], ids[1:, None])  # (T, 1), row j scores ids[j + 1]
    return float(logp[len(prime) :, 0].sum(dtype=np.float64))
