"""How far back the gradient reaches: the mean norm of dL_t/dh_{t-k} for k = 0..K, per layer.

L_t = -log p(x_{t+1}) is the loss of one prediction. Its gradient wrt layer l's output k steps earlier,
h^l_{t-k}, is what backpropagation through time hands back along the recurrence; when its norm falls
towards 0 as k grows, what the model read k steps ago no longer teaches it anything (docs/model.md).
The gradients come from model.backward on windows that each end at one chosen position t_j.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import encode_records, split_records
from .errors import ConfigError
from .model import StackedRNN, backward, cell_of, forward, log_softmax, num_layers
from .vocab import BOS, Vocab

CHAINS = 64  # end positions averaged over: enough for a steady mean, still one small batch
# steps read before the K measured ones, from a zero state: the state at t-K then carries context, as
# it does in training, and not the zero state's atypically large tanh' (warm-up steps are not measured)
WARMUP = 50


@dataclass
class Reach:
    steps: int  # K
    chains: int  # end positions averaged over
    warmup: int  # steps read before each chain's K + 1 measured ones (WARMUP, fewer in a short text)
    mean_norm: np.ndarray  # (L, K+1) mean over chains of |dL_t/dh^l_{t-k}|, layer 1 first


def encode(text: str, source: str, vocab: Vocab, records: str) -> np.ndarray:
    """The text as the model was trained on it, records `<s> ids </s>`; a character it lacks is an error."""
    pieces = split_records(text, records)
    unknown = sorted(set().union(*(vocab.unknown(p) for p in pieces)))
    if unknown:
        listed = ", ".join(map(repr, unknown))
        raise ConfigError(f"--text: {source}: characters not in the model's vocabulary: {listed}")
    return encode_records(pieces, vocab)


def chain_ends(ids: np.ndarray, steps: int, chains: int, source: str) -> tuple[np.ndarray, int]:
    """Up to `chains` positions t spread evenly over ids, each with steps + warm-up ids before it and
    a next id that is not <s> (a record's end predicts nothing); returns them and the warm-up used.
    """
    warmup = min(WARMUP, len(ids) - steps - 2)  # a short text gets a shorter warm-up
    ends = np.arange(steps + max(warmup, 0), len(ids) - 1)
    ends = ends[ids[ends + 1] != BOS]
    if warmup < 0 or not len(ends):
        raise ConfigError(
            f"--text: {source}: {len(ids)} ids are too few for --steps {steps}: a chain reads steps + 1 ids "
            "and predicts one more; lower --steps or give a longer text"
        )
    picked = np.unique(np.linspace(0, len(ends) - 1, min(chains, len(ends))).round().astype(int))
    return ends[picked], warmup


def gradients_back(params: dict, inputs: np.ndarray, targets: np.ndarray, steps: int) -> list[np.ndarray]:
    """dL_t/dh^l_{t-k} for each chain, where inputs (T, B) are B windows from a zero state, t the last step
    of each and targets (B,) the ids that follow. Returns per layer (K+1, B, H), index k; layer 1 first.
    """
    T, B = inputs.shape
    H = params["W_hht.1"].shape[1]
    h0 = np.zeros((num_layers(params), B, cell_of(params).STATE * H), params["W_xh"].dtype)  # (L, B, S)
    logits, cache = forward(params, inputs, h0)
    V = logits.shape[1]
    dlogits = np.zeros((T, B, V), logits.dtype)  # (T, B, V) only L_t, at the last step, has a gradient
    dlogits[-1] = np.exp(log_softmax(logits.reshape(T, B, V)[-1]))  # softmax - onehot(target)
    dlogits[-1, np.arange(B), targets] -= 1
    dhs: list[np.ndarray] = []
    backward(params, dlogits.reshape(T * B, V), cache, dhs=dhs)
    return [dh[T - 1 - np.arange(steps + 1)] for dh in dhs]


def reach(model: StackedRNN, ids: np.ndarray, steps: int, source: str, chains: int = CHAINS) -> Reach:
    """Mean norm of dL_t/dh^l_{t-k} over up to `chains` end positions t of ids, for k = 0..steps.

    The model runs in float64 copies of its parameters. A window holding <s> restarts the state there,
    so no gradient reaches past it: such chains add zeros to the mean at the k beyond their record's start.
    """
    ends, warmup = chain_ends(ids, steps, chains, source)
    params = {name: p.astype(np.float64) for name, p in model.params.items()}
    offsets = np.arange(-steps - warmup, 1)  # (T,) each window's positions relative to its end
    inputs = ids[ends[None, :] + offsets[:, None]]  # (T, B) time-major windows
    grads = gradients_back(params, inputs, ids[ends + 1], steps)
    mean_norm = np.stack([np.linalg.norm(g, axis=-1).mean(axis=1) for g in grads])  # (L, K+1)
    return Reach(steps, len(ends), warmup, mean_norm)
