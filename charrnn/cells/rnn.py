"""The vanilla tanh cell: h_t = tanh(W_hht h_{t-1} + pre_t), where pre_t is the layer's input part with b_h.

Every cell module keeps one contract, so the stack above (charrnn.model) never asks which cell it holds:
GATES and STATE (blocks of H in the gate rows and in the carried state, h first), RECURRENT (the layer's
own parameters besides the input weights and b_h), forward_window, backward_window and step.
"""

from __future__ import annotations

import numpy as np

from ..scratch import scratch

GATES = 1
STATE = 1
RECURRENT = ("W_hht",)
GATE_NAMES: tuple[str, ...] = ()


def forward_window(p: dict, pre: np.ndarray, state0: np.ndarray, restarts: list, keep, work, tag: str):
    """pre (T, B, H) input parts, bias included; state0 (B, H). Returns out (T, B, H), last state (B, H), cache.

    keep (T, B, 1) is 0 where the input is <s> (None when the window holds none); restarts[t] says whether
    step t holds one.
    """
    T, B, H = pre.shape
    h = scratch(work, f"h.{tag}", (T + 1, B, H), pre.dtype)  # (T+1, B, H), h[0] = h0
    h[0] = state0
    keep_t = list(keep) if keep is not None else []  # (B, 1) views, read only at steps that restart
    h_t, pre_t, W_hht_T = list(h), list(pre), p["W_hht"].T  # views made once: the loop below is call-bound
    for t in range(T):
        # zero rows whose input is <s>: state restarts at each start token
        h_prev = h_t[t] * keep_t[t] if restarts[t] else h_t[t]
        np.dot(h_prev, W_hht_T, out=h_t[t + 1])
        np.add(h_t[t + 1], pre_t[t], out=h_t[t + 1])
        np.tanh(h_t[t + 1], out=h_t[t + 1])
    return h[1:], h[-1], {"h": h, "keep": keep, "restarts": restarts}


def backward_window(p: dict, dh: np.ndarray, cache: dict, work, tag: str):
    """dh (T, B, H) arrives holding the loss gradient wrt each step's output from above, and leaves holding
    the whole gradient wrt it (above plus along time). Returns dpre (T, B, H), {"W_hht": ...}, dstate0 (B, H).
    """
    h, keep, restarts = cache["h"], cache["keep"], cache["restarts"]
    T, B, H = dh.shape
    W_hht = p["W_hht"]
    dpre = scratch(work, f"dpre.{tag}", (T, B, H), dh.dtype)
    np.multiply(h[1:], h[1:], out=dpre)  # tanh' = 1 - h^2, from the stored activations, whole window
    np.subtract(1, dpre, out=dpre)
    dh_t, dpre_t = list(dh), list(dpre)
    dh_next = np.empty((B, H), dh.dtype)  # written by every step; after step 0 it is the gradient wrt h0
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            np.add(dh_t[t], dh_next, out=dh_t[t])
        np.multiply(dh_t[t], dpre_t[t], out=dpre_t[t])  # dh_raw: the gradient wrt the pre-activation
        np.dot(dpre_t[t], W_hht, out=dh_next)
        if restarts[t]:
            dh_next *= keep[t]  # no gradient flows past a restart
    h_prev = h[:-1]  # (T, B, H) what W_hht multiplied
    if keep is not None:
        h_prev = np.multiply(h_prev, keep, out=scratch(work, "h_prev", (T, B, H), dh.dtype))
    dW_hht = np.dot(dpre.reshape(T * B, H).T, h_prev.reshape(T * B, H))
    return dpre, {"W_hht": dW_hht}, dh_next


def step(p: dict, pre: np.ndarray, state: np.ndarray):
    """One step: pre (B, H), state (B, H) -> h (B, H), new state (B, H), gates {} (the cell has none).

    The same sums, in the same order, as forward_window's loop.
    """
    h = np.dot(state, p["W_hht"].T)
    np.add(h, pre, out=h)
    np.tanh(h, out=h)
    return h, h, {}
