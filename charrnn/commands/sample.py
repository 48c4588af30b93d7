"""`charrnn sample`: print samples of a trained model, each with its own seed, as text or JSON lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import numpy as np

from ..checkpoint import load_trained, weights_used
from ..errors import ConfigError
from ..model import StackedRNN
from ..sampling import log_prob, sample
from ..vocab import Vocab
from .output import note_weights, write_stdout


def run(
    checkpoint: str | None,
    prime: str,
    length: int | None,
    temperature: float | None,
    top_k: int | None,
    seed: int | None,
    num: int,
    as_json: bool,
    raw: bool = False,
) -> None:
    """Write `num` samples on stdout; unset options come from the run config's sample section. The run's
    averaged weights sample, when it kept them, unless `raw`: --json says which in "weights", else stderr."""
    if prime == "-":
        prime = sys.stdin.read().removesuffix("\n")
    cfg, vocab, model, _ = load_trained(checkpoint, raw=raw)
    used = weights_used(cfg, raw)
    if not as_json:
        note_weights(cfg, used)
    unknown = vocab.unknown(prime)
    if unknown:
        raise ConfigError(f"--prime: characters not in the model's vocabulary: {', '.join(map(repr, unknown))}")
    s = cfg.sample
    length = s.length if length is None else length
    temperature = s.temperature if temperature is None else temperature
    top_k = s.top_k if top_k is None else top_k
    first = draw_seed() if seed is None else seed
    for i, text in samples(model, vocab, prime, length, temperature, top_k, first, num):
        drawn = {**record(model, vocab, prime, text, i, length, temperature, top_k), "weights": used}
        line = json.dumps(drawn) if as_json else prime + text
        write_stdout(line + "\n")


def draw_seed() -> int:
    """A fresh seed short enough to retype; reported with each sample so that --seed reproduces it."""
    return int(np.random.default_rng().integers(1 << 31))


def samples(
    model: StackedRNN, vocab: Vocab, prime: str, length: int, temperature: float, top_k: int | None, seed: int, num: int
) -> Iterator[tuple[int, str]]:
    """`num` continuations of `prime`, the i-th drawn with seed `seed + i`: any one is reproducible alone."""
    for i in range(num):
        yield seed + i, sample(model, vocab, prime, length, temperature, top_k, np.random.default_rng(seed + i))


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
