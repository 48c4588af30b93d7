"""Mean negative log-likelihood of an id stream under a model, hidden state carried along each track."""

from __future__ import annotations

import numpy as np

from .model import StackedRNN
from .vocab import BOS


def mean_nll(model: StackedRNN, ids: np.ndarray, num_tracks: int, seq_length: int) -> tuple[float, int]:
    """Mean NLL in nats of ids[1:] given what precedes, and the number of predicted tokens.

    The stream is cut into `num_tracks` contiguous tracks evaluated side by side, each starting from
    a zero state; with num_tracks=1 the state is carried through the whole stream.
    """
    inputs, targets = ids[:-1], ids[1:]
    count = len(targets)
    if count == 0:
        return float("nan"), 0
    B = min(num_tracks, count)
    n = -(-count // B)  # ceil: the last track is padded at its end, pads weigh 0
    pad = B * n - count
    X = np.concatenate([inputs, np.full(pad, BOS, inputs.dtype)]).reshape(B, n)  # (B, n)
    Y = np.concatenate([targets, np.zeros(pad, targets.dtype)]).reshape(B, n)
    weight = np.concatenate([np.ones(count), np.zeros(pad)]).reshape(B, n)
    total, h = 0.0, None
    for start in range(0, n, seq_length):
        stop = start + seq_length
        logp, h = model.log_probs(X[:, start:stop].T, Y[:, start:stop].T, h)  # (T, B)
        total -= float(np.sum(logp * weight[:, start:stop].T, dtype=np.float64))
    return total / count, count
