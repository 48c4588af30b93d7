"""A stack of recurrent layers: forward, backpropagation through time, and one step for sampling.

The math, in the seed's orientation (W_xh is (G*H, V) and x_t a one-hot column; G is the cell's gate count):

    pre_t^1 = W_xh x_t          + b_h^1
    pre_t^l = W_hhd^l h_t^{l-1} + b_h^l      for l = 2..L
    h_t^l   = cell(pre_t^l, state_{t-1}^l)   with the cell's own W_hht^l (charrnn.cells)
    y_t     = W_hy h_t^L + b_y,    p_t = softmax(y_t)

The vanilla cell (rnn, G = 1) is h_t = tanh(W_hht h_{t-1} + pre_t); lstm and gru follow torch.nn.LSTM and
torch.nn.GRU. state_0 = 0, and every layer's whole state (h, and c for the LSTM) restarts at 0 before a step
whose input is the start token <s>. Arrays hold examples in rows, so the code reads
`h_prev @ W_hht.T + W_xh[:, ids].T + b_h`: W_xh x_t is a column gather, never a product with a one-hot array.
The stack sees a cell only through its contract; it never asks which cell it holds.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .cells import CELLS
from .init import init_params
from .scratch import scratch
from .vocab import BOS


def num_layers(params: dict) -> int:
    return sum(1 for name in params if name.startswith("W_hht."))


def cell_of(params: dict) -> ModuleType:
    """The cell whose parameters these are, known from the shapes: W_hht.1 is (G*H, H), b_hn.1 only a GRU's."""
    G = params["W_hht.1"].shape[0] // params["W_hht.1"].shape[1]
    return CELLS["gru" if "b_hn.1" in params else {1: "rnn", 4: "lstm"}[G]]


def _layer(params: dict, cell: ModuleType, l: int) -> dict:
    return {name: params[f"{name}.{l}"] for name in cell.RECURRENT}


def forward(
    params: dict,
    inputs: np.ndarray,
    h0: np.ndarray,
    dropout: float = 0.0,
    rng: np.random.Generator | None = None,
    work: dict | None = None,
) -> tuple[np.ndarray, dict]:
    """Logits for every position of a window, and what backward needs.

    inputs (T, B) ids, h0 (L, B, S) the carried state (S = H, or 2H for the LSTM's h and c). Dropout (rate
    `dropout`, masks drawn from `rng`) applies to each layer's output on its way up, never along time.
    `work` (a dict) lends scratch arrays that outlive the call; the logits and the cache then live in it
    until the next call. Returns logits (T*B, V), position (t, b) in row t*B + b, and the cache.
    """
    T, B = inputs.shape
    L = num_layers(params)
    cell = cell_of(params)
    dtype = params["W_xh"].dtype
    GH, V = params["W_xh"].shape
    H = GH // cell.GATES
    if inputs.size and (inputs.max() >= V or (inputs.dtype.kind == "i" and inputs.min() < 0)):
        raise IndexError(f"input ids must be in [0, {V}), got {inputs.min()}..{inputs.max()}")
    restarts = (inputs == BOS).any(axis=1).tolist()  # per step: does any track restart there
    # the keep mask is only built, and only applied, where a window holds <s>
    keep = (inputs != BOS)[:, :, None].astype(dtype) if any(restarts) else None  # (T, B, 1)
    pre = scratch(work, "pre", (T, B, GH), dtype)  # (T, B, G*H) each layer's input part, bias included
    caches: list[dict] = []
    lasts: list[np.ndarray] = []
    ups: list[np.ndarray] = []  # (T, B, H) what each layer hands up
    masks: list[np.ndarray | None] = []
    for l in range(1, L + 1):
        b_h = params[f"b_h.{l}"]
        if l == 1:  # a row gather of W_xh.T, the bias added to its V rows rather than to T*B
            np.take(params["W_xh"].T + b_h, inputs, axis=0, out=pre, mode="clip")  # ids checked above
        else:  # the whole window in one product
            np.dot(ups[-1].reshape(T * B, H), params[f"W_hhd.{l}"].T, out=pre.reshape(T * B, GH))
            pre += b_h
        up, last, layer_cache = cell.forward_window(
            _layer(params, cell, l), pre, h0[l - 1], restarts, keep, work, str(l)
        )
        mask = None
        if dropout > 0:
            if rng is None:
                raise ValueError("dropout needs an rng to draw its masks from")
            mask = (rng.random(up.shape) >= dropout).astype(dtype) / dtype.type(1 - dropout)  # (T, B, H)
            up = up * mask
        caches.append(layer_cache)
        lasts.append(last)
        ups.append(up)
        masks.append(mask)
    logits = np.dot(ups[-1].reshape(T * B, H), params["W_hy"].T, out=scratch(work, "logits", (T * B, V), dtype))
    logits += params["b_y"]
    return logits, {
        "inputs": inputs,
        "cell": cell,
        "caches": caches,
        "last": lasts,
        "ups": ups,
        "masks": masks,
        "work": work,
    }


def backward(params: dict, dlogits: np.ndarray, cache: dict, dhs: list | None = None) -> tuple[dict, np.ndarray]:
    """Gradients of every parameter and of the initial state h0, given the loss gradient wrt the logits
    (T*B, V). dhs, when given a list, receives each layer's (T, B, H) gradient wrt its outputs, layer 1 first.
    """
    inputs, cell, caches, ups, masks, work = (cache[k] for k in ("inputs", "cell", "caches", "ups", "masks", "work"))
    T, B = inputs.shape
    L = len(caches)
    H = ups[0].shape[-1]
    GH = cell.GATES * H
    V = dlogits.shape[1]
    dtype = dlogits.dtype
    grads = {"W_hy": np.dot(dlogits.T, ups[-1].reshape(T * B, H)), "b_y": dlogits.sum(axis=0)}
    # (T, B, H) loss gradient wrt layer l's output; two buffers, as each layer's is made from the one above
    dup = np.dot(dlogits, params["W_hy"], out=scratch(work, f"dup.{L % 2}", (T * B, H), dtype)).reshape(T, B, H)
    dh0 = np.empty((L, B, cell.STATE * H), dtype)
    for l in range(L, 0, -1):
        if masks[l - 1] is not None:
            dup *= masks[l - 1]
        dpre, cell_grads, dh0[l - 1] = cell.backward_window(_layer(params, cell, l), dup, caches[l - 1], work, str(l))
        if dhs is not None:
            dhs.insert(0, dup.copy())
        grads.update({f"{name}.{l}": g for name, g in cell_grads.items()})
        dpre = dpre.reshape(T * B, GH)
        grads[f"b_h.{l}"] = dpre.sum(axis=0)
        if l > 1:
            grads[f"W_hhd.{l}"] = np.dot(dpre.T, ups[l - 2].reshape(T * B, H))
            dup = np.dot(
                dpre, params[f"W_hhd.{l}"], out=scratch(work, f"dup.{(l - 1) % 2}", (T * B, H), dtype)
            ).reshape(T, B, H)
        else:
            # the scatter-add of rows back to input columns, done as a product: np.add.at is slower
            one_hot = scratch(work, "one_hot", (T * B, V), dtype)  # (T*B, V)
            one_hot.fill(0)
            one_hot[np.arange(T * B), inputs.reshape(-1)] = 1
            grads["W_xh"] = np.dot(dpre.T, one_hot)
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


def step(params: dict, ids: np.ndarray, h: np.ndarray, gates: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One time step for B tracks: ids (B,), h (L, B, S) -> logits (B, V), new state (L, B, S).

    The same sums, in the same order, as forward's loop: sampling and training see one model.
    gates, when given a list, receives each layer's gate activations {name: (B, H)}, layer 1 first.
    """
    if (ids == BOS).any():
        h = h * (ids != BOS)[None, :, None]  # zero rows whose input is <s>: state restarts at each start token
    cell = cell_of(params)
    h_new = np.empty_like(h)  # (L, B, S)
    h_t = h[0]  # (B, H) after each layer, its output: the next layer's input
    for l in range(1, len(h) + 1):
        b_h = params[f"b_h.{l}"]
        if l == 1:
            pre = params["W_xh"].T[ids] + b_h  # (B, G*H)
        else:
            pre = np.dot(h_t, params[f"W_hhd.{l}"].T)
            pre += b_h
        h_t, h_new[l - 1], layer_gates = cell.step(_layer(params, cell, l), pre, h[l - 1])
        if gates is not None:
            gates.append(layer_gates)
    logits = np.dot(h_t, params["W_hy"].T)  # (B, V)
    logits += params["b_y"]
    return logits, h_new


class StackedRNN:
    """The model: its parameters and the loss/gradient interface the trainer and other tools use.

    cell: rnn, lstm or gru (charrnn.cells), with G = 1, 4 or 3 gate blocks. params holds "W_xh" (G*H, V),
    "W_hht.{l}" (G*H, H) and "b_h.{l}" (G*H,) for l = 1..L, "W_hhd.{l}" (G*H, H) for l = 2..L, a GRU's
    "b_hn.{l}" (H,), "W_hy" (V, H) and "b_y" (V,). The carried state is (L, B, S): S = H, or 2H for the
    LSTM, whose h and c sit side by side (h first).
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
        cell: str = "rnn",
    ):
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; expected one of {', '.join(CELLS)}")
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.cell = cell
        self.dtype = np.dtype(dtype)
        self.params = init_params(
            vocab_size, hidden_size, num_layers, np.random.default_rng(seed), self.dtype, init, init_scale, cell
        )
        # scratch arrays loss_and_grads and log_probs reuse from one window to the next
        self._work: dict[str, np.ndarray] = {}

    def zero_state(self, batch_size: int) -> np.ndarray:
        S = CELLS[self.cell].STATE * self.hidden_size
        return np.zeros((self.num_layers, batch_size, S), self.dtype)  # (L, B, S)

    def hidden(self, state: np.ndarray) -> np.ndarray:
        """The h part of a state (..., S): what each layer outputs."""
        return state[..., : self.hidden_size]

    def loss_and_grads(
        self,
        inputs,
        targets,
        h0=None,
        dropout: float = 0.0,
        rng: np.random.Generator | None = None,
        mean_over: int | None = None,
    ) -> tuple[float, dict, np.ndarray]:
        """Mean cross-entropy (nats) over the T*B positions, its gradients, and the last state.

        inputs, targets: int (T, B), time-major. h0, h_last: (L, B, S); h0=None means zeros.
        mean_over: divide by this count instead of T*B, when these tracks are one worker's part of a batch.
        """
        inputs, targets = np.asarray(inputs), np.asarray(targets)
        h0 = self.zero_state(inputs.shape[1]) if h0 is None else np.asarray(h0, self.dtype)
        logits, cache = forward(self.params, inputs, h0, dropout, rng, self._work)
        loss, dlogits = cross_entropy(logits, targets.reshape(-1), out=logits, mean_over=mean_over)
        grads, _ = backward(self.params, dlogits, cache)
        return loss, grads, np.stack(cache["last"])

    def log_probs(self, inputs, targets, h0=None) -> tuple[np.ndarray, np.ndarray]:
        """Log-probability (T, B) of each target, and the last state; no gradients."""
        inputs, targets = np.asarray(inputs), np.asarray(targets)
        T, B = inputs.shape
        h0 = self.zero_state(B) if h0 is None else np.asarray(h0, self.dtype)
        logits, cache = forward(self.params, inputs, h0, work=self._work)
        logp = log_softmax(logits)[np.arange(T * B), targets.reshape(-1)]
        return logp.reshape(T, B), np.stack(cache["last"])

    def step(self, ids, h, gates: list | None = None) -> tuple[np.ndarray, np.ndarray]:
        return step(self.params, np.asarray(ids), h, gates)
