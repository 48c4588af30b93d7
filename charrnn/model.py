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


def _scratch(work: dict | None, name: str, shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array, kept in `work` when given: the next window of the same shape reuses it
    instead of page-faulting fresh memory in (a fifth of the time at char-rnn's shapes)."""
    if work is None:
        return np.empty(shape, dtype)
    a = work.get(name)
    if a is None or a.shape != shape or a.dtype != dtype:
        a = work[name] = np.empty(shape, dtype)
    return a


def forward(
    params: dict,
    inputs: np.ndarray,
    h0: np.ndarray,
    dropout: float = 0.0,
    rng: np.random.Generator | None = None,
    work: dict | None = None,
) -> tuple[np.ndarray, dict]:
    """Logits for every position of a window, and what backward needs.

    inputs (T, B) ids, h0 (L, B, H). Dropout (rate `dropout`, masks drawn from `rng`) applies to each
    layer's output on its way up, never along time. `work` (a dict) lends scratch arrays that outlive
    the call; the logits and the cache then live in it until the next call.
    Returns logits (T*B, V), position (t, b) in row t*B + b, and the cache.
    """
    T, B = inputs.shape
    L = num_layers(params)
    dtype = params["W_xh"].dtype
    H, V = params["W_xh"].shape
    if inputs.size and (inputs.max() >= V or (inputs.dtype.kind == "i" and inputs.min() < 0)):
        raise IndexError(f"input ids must be in [0, {V}), got {inputs.min()}..{inputs.max()}")
    restarts = (inputs == BOS).any(axis=1).tolist()  # per step: does any track restart there
    # the keep mask is only built, and only applied, where a window holds <s>
    keep = (inputs != BOS)[:, :, None].astype(dtype) if any(restarts) else None  # (T, B, 1)
    pre = _scratch(work, "pre", (T, B, H), dtype)  # (T, B, H) each layer's input part, bias included
    keep_t = list(keep) if keep is not None else []  # (B, 1) views, read only at steps that restart
    hs: list[np.ndarray] = []
    ups: list[np.ndarray] = []  # (T, B, H) what each layer hands up
    masks: list[np.ndarray | None] = []
    for l in range(1, L + 1):
        W_hht, b_h = params[f"W_hht.{l}"], params[f"b_h.{l}"]
        if l == 1:  # a row gather of W_xh.T, the bias added to its V rows rather than to T*B
            np.take(params["W_xh"].T + b_h, inputs, axis=0, out=pre, mode="clip")  # ids checked above
        else:  # the whole window in one product
            np.dot(ups[-1].reshape(T * B, H), params[f"W_hhd.{l}"].T, out=pre.reshape(T * B, H))
            pre += b_h
        h = _scratch(work, f"h.{l}", (T + 1, B, H), dtype)  # (T+1, B, H), h[0] = h0
        h[0] = h0[l - 1]
        h_t, pre_t, W_hht_T = list(h), list(pre), W_hht.T  # views made once: the loop below is call-bound
        for t in range(T):
            # zero rows whose input is <s>: state restarts at each start token
            h_prev = h_t[t] * keep_t[t] if restarts[t] else h_t[t]
            np.dot(h_prev, W_hht_T, out=h_t[t + 1])
            np.add(h_t[t + 1], pre_t[t], out=h_t[t + 1])
            np.tanh(h_t[t + 1], out=h_t[t + 1])
        up = h[1:]
        mask = None
        if dropout > 0:
            if rng is None:
                raise ValueError("dropout needs an rng to draw its masks from")
            mask = (rng.random(up.shape) >= dropout).astype(dtype) / dtype.type(1 - dropout)  # (T, B, H)
            up = up * mask
        hs.append(h)
        ups.append(up)
        masks.append(mask)
    logits = np.dot(ups[-1].reshape(T * B, H), params["W_hy"].T, out=_scratch(work, "logits", (T * B, V), dtype))
    logits += params["b_y"]
    return logits, {
        "inputs": inputs,
        "keep": keep,
        "restarts": restarts,
        "hs": hs,
        "ups": ups,
        "masks": masks,
        "work": work,
    }


def backward(params: dict, dlogits: np.ndarray, cache: dict) -> tuple[dict, np.ndarray]:
    """Gradients of every parameter and of h0, given the loss gradient wrt the logits (T*B, V)."""
    inputs, keep, restarts, hs, ups, masks, work = (
        cache[k] for k in ("inputs", "keep", "restarts", "hs", "ups", "masks", "work")
    )
    T, B = inputs.shape
    L = len(hs)
    H = hs[0].shape[-1]
    V = dlogits.shape[1]
    dtype = dlogits.dtype
    grads = {"W_hy": np.dot(dlogits.T, ups[-1].reshape(T * B, H)), "b_y": dlogits.sum(axis=0)}
    # (T, B, H) loss gradient wrt layer l's output; two buffers, as each layer's is made from the one above
    dup = np.dot(dlogits, params["W_hy"], out=_scratch(work, f"dup.{L % 2}", (T * B, H), dtype)).reshape(T, B, H)
    dtanh = _scratch(work, "dtanh", (T, B, H), dtype)
    dh0 = np.empty((L, B, H), dtype)
    for l in range(L, 0, -1):
        h, W_hht = hs[l - 1], params[f"W_hht.{l}"]
        if masks[l - 1] is not None:
            dup *= masks[l - 1]
        np.multiply(h[1:], h[1:], out=dtanh)  # tanh' = 1 - h^2, from the stored activations, whole window
        np.subtract(1, dtanh, out=dtanh)
        # dup becomes dh_raw (the gradient wrt the pre-activations) in place, one step at a time
        dh_raw_t, dtanh_t = list(dup), list(dtanh)
        dh_next = dh0[l - 1]  # (B, H) written by every step; after step 0 it is the gradient wrt h0
        for t in range(T - 1, -1, -1):
            if t < T - 1:
                np.add(dh_raw_t[t], dh_next, out=dh_raw_t[t])
            np.multiply(dh_raw_t[t], dtanh_t[t], out=dh_raw_t[t])
            np.dot(dh_raw_t[t], W_hht, out=dh_next)
            if restarts[t]:
                dh_next *= keep[t]  # no gradient flows past a restart
        dh_raw = dup.reshape(T * B, H)
        h_prev = h[:-1]  # (T, B, H) what W_hht multiplied
        if keep is not None:
            h_prev = np.multiply(h_prev, keep, out=_scratch(work, "h_prev", (T, B, H), dtype))
        grads[f"W_hht.{l}"] = np.dot(dh_raw.T, h_prev.reshape(T * B, H))
        grads[f"b_h.{l}"] = dh_raw.sum(axis=0)
        if l > 1:
            grads[f"W_hhd.{l}"] = np.dot(dh_raw.T, ups[l - 2].reshape(T * B, H))
            dup = np.dot(
                dh_raw, params[f"W_hhd.{l}"], out=_scratch(work, f"dup.{(l - 1) % 2}", (T * B, H), dtype)
            ).reshape(T, B, H)
        else:
            # the scatter-add of rows back to input columns, done as a product: np.add.at is slower
            one_hot = _scratch(work, "one_hot", (T * B, V), dtype)  # (T*B, V)
            one_hot.fill(0)
            one_hot[np.arange(T * B), inputs.reshape(-1)] = 1
            grads["W_xh"] = np.dot(dh_raw.T, one_hot)
    return grads, dh0


def cross_entropy(
    logits: np.ndarray, targets: np.ndarray, out: np.ndarray | None = None, mean_over: int | None = None
) -> tuple[float, np.ndarray]:
    """Mean cross-entropy in nats over all rows, and its gradient wrt the logits (in `out` when given,
    which may be `logits` itself).

    mean_over: the count the mean divides by, when these rows are a worker's part of a larger batch
    (default: the rows here); the parts' losses and gradients then add up to the whole batch's.
    """
    N = len(targets) if mean_over is None else mean_over
    rows = np.arange(len(targets))
    # subtract the max: exp never overflows
    shifted = np.subtract(logits, logits.max(axis=1, keepdims=True), out=out)
    picked = shifted[rows, targets]
    probs = np.exp(shifted, out=shifted)
    sums = probs.sum(axis=1, keepdims=True)
    loss = float((np.log(sums[:, 0]) - picked).sum()) / N
    probs /= sums * N  # softmax, already divided by N for the mean
    probs[rows, targets] -= 1 / N
    return loss, probs


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def step(params: dict, ids: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One time step for B tracks: ids (B,), h (L, B, H) -> logits (B, V), new h (L, B, H).

    The same sums, in the same order, as forward's loop: sampling and training see one model.
    """
    if (ids == BOS).any():
        h = h * (ids != BOS)[None, :, None]  # zero rows whose input is <s>: state restarts at each start token
    h_new = np.empty_like(h)  # (L, B, H)
    for l in range(1, len(h) + 1):
        b_h = params[f"b_h.{l}"]
        if l == 1:
            pre = params["W_xh"].T[ids] + b_h  # (B, H)
        else:
            pre = np.dot(h_new[l - 2], params[f"W_hhd.{l}"].T)
            pre += b_h
        np.dot(h[l - 1], params[f"W_hht.{l}"].T, out=h_new[l - 1])
        np.add(h_new[l - 1], pre, out=h_new[l - 1])
        np.tanh(h_new[l - 1], out=h_new[l - 1])
    logits = np.dot(h_new[-1], params["W_hy"].T)  # (B, V)
    logits += params["b_y"]
    return logits, h_new


class StackedRNN:
    """The model: its parameters and the loss/gradient interface the trainer and other tools use.

    params holds "W_xh" (H, V), "W_hht.{l}" (H, H) and "b_h.{l}" (H,) for l = 1..L,
    "W_hhd.{l}" (H, H) for l = 2..L, "W_hy" (V, H) and "b_y" (V,).
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        num_layers: int,
        seed: int = 0,
        dtype=np.float32,
        init: str = "torch",
        init_scale: float | None = None,
    ):
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.dtype = np.dtype(dtype)
        self.params = init_params(
            vocab_size, hidden_size, num_layers, np.random.default_rng(seed), self.dtype, init, init_scale
        )
        # scratch arrays loss_and_grads and log_probs reuse from one window to the next
        self._work: dict[str, np.ndarray] = {}

    def zero_state(self, batch_size: int) -> np.ndarray:
        return np.zeros((self.num_layers, batch_size, self.hidden_size), self.dtype)  # (L, B, H)

    def loss_and_grads(
        self,
        inputs,
        targets,
        h0=None,
        dropout: float = 0.0,
        rng: np.random.Generator | None = None,
        mean_over: int | None = None,
    ) -> tuple[float, dict, np.ndarray]:
        """Mean cross-entropy (nats) over the T*B positions, its gradients, and the last hidden state.

        inputs, targets: int (T, B), time-major. h0, h_last: (L, B, H); h0=None means zeros.
        mean_over: divide by this count instead of T*B, when these tracks are one worker's part of a batch.
        """
        inputs, targets = np.asarray(inputs), np.asarray(targets)
        h0 = self.zero_state(inputs.shape[1]) if h0 is None else np.asarray(h0, self.dtype)
        logits, cache = forward(self.params, inputs, h0, dropout, rng, self._work)
        loss, dlogits = cross_entropy(logits, targets.reshape(-1), out=logits, mean_over=mean_over)
        grads, _ = backward(self.params, dlogits, cache)
        return loss, grads, np.stack([h[-1] for h in cache["hs"]])

    def log_probs(self, inputs, targets, h0=None) -> tuple[np.ndarray, np.ndarray]:
        """Log-probability (T, B) of each target, and the last hidden state; no gradients."""
        inputs, targets = np.asarray(inputs), np.asarray(targets)
        T, B = inputs.shape
        h0 = self.zero_state(B) if h0 is None else np.asarray(h0, self.dtype)
        logits, cache = forward(self.params, inputs, h0, work=self._work)
        logp = log_softmax(logits)[np.arange(T * B), targets.reshape(-1)]
        return logp.reshape(T, B), np.stack([h[-1] for h in cache["hs"]])

    def step(self, ids, h) -> tuple[np.ndarray, np.ndarray]:
        return step(self.params, np.asarray(ids), h)
