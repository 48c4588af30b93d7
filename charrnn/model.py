"""Stacked vanilla (tanh) RNN: forward, backpropagation through time, and one step for sampling.

The math, in the seed's orientation (W_xh is (H, V) and x_t a one-hot column):

    h_t^1 = tanh(W_hht^1 h_{t-1}^1 + W_xh x_t           + b_h^1)
    h_t^l = tanh(W_hht^l h_{t-1}^l + W_hhd^l h_t^{l-1}  + b_h^l)      for l = 2..L
    y_t   = W_hy h_t^L + b_y,        p_t = softmax(y_t)

h_0 = 0, and every layer's state restarts at 0 before a step whose input is the start token <s>.
Arrays hold examples in rows, so the code reads `h_prev @ W_hht.T + W_xh[:, ids].T + b_h`:
W_xh x_t is a column gather, never a product with a one-hot array.
"""

from __future__ import annotations

import numpy as np

from .init import init_params
from .vocab import BOS


def num_layers(params: dict) -> int:
    return sum(1 for name in params if name.startswith("W_hht."))


def forward(params: dict, inputs: np.ndarray, h0: np.ndarray, dropout: float = 0.0,
            rng: np.random.Generator | None = None) -> tuple[np.ndarray, dict]:
    """Logits for every position of a window, and what backward needs.

    inputs (T, B) ids, h0 (L, B, H). Dropout (rate `dropout`, masks drawn from `rng`) applies to each
    layer's output on its way up, never along time.
    Returns logits (T*B, V), position (t, b) in row t*B + b, and the cache.
    """
    T, B = inputs.shape
    L = num_layers(params)
    dtype = params["W_xh"].dtype
    keep = (inputs != BOS)[:, :, None].astype(dtype)  # (T, B, 1) 0 where the state restarts
    hs, ups, masks = [], [], []
    up = None  # (T, B, H) what the layer below hands up
    for l in range(1, L + 1):
        W_hht, b_h = params[f"W_hht.{l}"], params[f"b_h.{l}"]
        if l == 1:
            pre = params["W_xh"].T[inputs] + b_h  # (T, B, H) row gather of W_xh.T
        else:
            pre = (up @ params[f"W_hhd.{l}"].T) + b_h  # (T, B, H) whole window at once
        h = np.empty((T + 1,) + pre.shape[1:], dtype)  # (T+1, B, H), h[0] = h0
        h[0] = h0[l - 1]
        for t in range(T):
            h_prev = h[t] * keep[t]  # zero rows whose input is <s>: state restarts at each start token
            np.tanh(pre[t] + h_prev @ W_hht.T, out=h[t + 1])
        up = h[1:]
        mask = None
        if dropout > 0:
            mask = (rng.random(up.shape) >= dropout).astype(dtype) / dtype.type(1 - dropout)  # (T, B, H)
            up = up * mask
        hs.append(h)
        ups.append(up)
        masks.append(mask)
    H = up.shape[-1]
    logits = up.reshape(T * B, H) @ params["W_hy"].T + params["b_y"]  # (T*B, V)
    return logits, {"inputs": inputs, "keep": keep, "hs": hs, "ups": ups, "masks": masks}


def backward(params: dict, dlogits: np.ndarray, cache: dict) -> tuple[dict, np.ndarray]:
    """Gradients of every parameter and of h0, given the loss gradient wrt the logits (T*B, V)."""
    inputs, keep, hs, ups, masks = (cache[k] for k in ("inputs", "keep", "hs", "ups", "masks"))
    T, B = inputs.shape
    L = len(hs)
    H = hs[0].shape[-1]
    grads = {"W_hy": dlogits.T @ ups[-1].reshape(T * B, H), "b_y": dlogits.sum(axis=0)}
    dup = (dlogits @ params["W_hy"]).reshape(T, B, H)  # (T, B, H) loss gradient wrt layer L's output
    dh0 = np.empty((L, B, H), dlogits.dtype)
    for l in range(L, 0, -1):
        h, W_hht = hs[l - 1], params[f"W_hht.{l}"]
        if masks[l - 1] is not None:
            dup = dup * masks[l - 1]
        dh_raw = np.empty_like(dup)  # (T, B, H) gradient wrt the pre-activations
        dh_next = np.zeros((B, H), dlogits.dtype)
        for t in range(T - 1, -1, -1):
            dh = dup[t] + dh_next
            dh_raw[t] = dh * (1 - h[t + 1] * h[t + 1])  # tanh' from the stored activation
            dh_next = (dh_raw[t] @ W_hht) * keep[t]  # no gradient flows past a restart
        dh0[l - 1] = dh_next
        dh_raw2 = dh_raw.reshape(T * B, H)
        h_prev = (h[:-1] * keep).reshape(T * B, H)
        grads[f"W_hht.{l}"] = dh_raw2.T @ h_prev
        grads[f"b_h.{l}"] = dh_raw2.sum(axis=0)
        if l > 1:
            grads[f"W_hhd.{l}"] = dh_raw2.T @ ups[l - 2].reshape(T * B, H)
            dup = (dh_raw2 @ params[f"W_hhd.{l}"]).reshape(T, B, H)
        else:
            dW_xh = np.zeros_like(params["W_xh"])
            np.add.at(dW_xh.T, inputs.reshape(-1), dh_raw2)  # scatter-add rows back to input columns
            grads["W_xh"] = dW_xh
    return grads, dh0


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy in nats over all rows, and its gradient wrt the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)  # subtract the max: exp never overflows
    probs = np.exp(shifted)
    sums = probs.sum(axis=1, keepdims=True)
    rows = np.arange(len(targets))
    loss = float(np.mean(np.log(sums[:, 0]) - shifted[rows, targets]))
    probs /= sums
    probs[rows, targets] -= 1
    probs /= len(targets)
    return loss, probs


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def step(params: dict, ids: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One time step for B tracks: ids (B,), h (L, B, H) -> logits (B, V), new h (L, B, H)."""
    keep = (ids != BOS)[:, None].astype(h.dtype)  # (B, 1)
    h_new = np.empty_like(h)
    below = None
    for l in range(1, len(h) + 1):
        x_part = params["W_xh"].T[ids] if l == 1 else below @ params[f"W_hhd.{l}"].T  # (B, H)
        below = h_new[l - 1] = np.tanh(x_part + (h[l - 1] * keep) @ params[f"W_hht.{l}"].T + params[f"b_h.{l}"])
    return below @ params["W_hy"].T + params["b_y"], h_new


class StackedRNN:
    """The model: its parameters and the loss/gradient interface the trainer and other tools use.

    params holds "W_xh" (H, V), "W_hht.{l}" (H, H) and "b_h.{l}" (H,) for l = 1..L,
    "W_hhd.{l}" (H, H) for l = 2..L, "W_hy" (V, H) and "b_y" (V,).
    """

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int, seed: int = 0, dtype=np.float32,
                 init: str = "torch", init_scale: float | None = None):
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.dtype = np.dtype(dtype)
        self.params = init_params(vocab_size, hidden_size, num_layers, np.random.default_rng(seed), self.dtype,
                                  init, init_scale)

    def zero_state(self, batch_size: int) -> np.ndarray:
        return np.zeros((self.num_layers, batch_size, self.hidden_size), self.dtype)  # (L, B, H)

    def loss_and_grads(self, inputs, targets, h0=None, dropout: float = 0.0,
                       rng: np.random.Generator | None = None) -> tuple[float, dict, np.ndarray]:
        """Mean cross-entropy (nats) over the T*B positions, its gradients, and the last hidden state.

        inputs, targets: int (T, B), time-major. h0, h_last: (L, B, H); h0=None means zeros.
        """
        inputs, targets = np.asarray(inputs), np.asarray(targets)
        h0 = self.zero_state(inputs.shape[1]) if h0 is None else np.asarray(h0, self.dtype)
        logits, cache = forward(self.params, inputs, h0, dropout, rng)
        loss, dlogits = cross_entropy(logits, targets.reshape(-1))
        grads, _ = backward(self.params, dlogits, cache)
        return loss, grads, np.stack([h[-1] for h in cache["hs"]])

    def log_probs(self, inputs, targets, h0=None) -> tuple[np.ndarray, np.ndarray]:
        """Log-probability (T, B) of each target, and the last hidden state; no gradients."""
        inputs, targets = np.asarray(inputs), np.asarray(targets)
        T, B = inputs.shape
        h0 = self.zero_state(B) if h0 is None else np.asarray(h0, self.dtype)
        logits, cache = forward(self.params, inputs, h0)
        logp = log_softmax(logits)[np.arange(T * B), targets.reshape(-1)]
        return logp.reshape(T, B), np.stack([h[-1] for h in cache["hs"]])

    def step(self, ids, h) -> tuple[np.ndarray, np.ndarray]:
        return step(self.params, np.asarray(ids), h)
