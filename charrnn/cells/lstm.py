"""The LSTM cell, as torch.nn.LSTM: gate rows in the order i, f, g, o (each H rows of W_xh, W_hhd, W_hht, b_h).

    a = W_hht h_{t-1} + pre_t,   i, f, o = sigmoid(a_i, a_f, a_o),   g = tanh(a_g)
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

The carried state is h and c side by side, (B, 2H), h first. As in torch-rnn, one (T, B, 4H) gates buffer
holds a window's activations, and backward walks time backwards carrying dh_next and dc_next.
"""

from __future__ import annotations

import numpy as np

from ..scratch import scratch, transposed

GATES = 4
STATE = 2
RECURRENT = ("W_hht",)
GATE_NAMES = ("input", "forget", "cell", "output")

# sigmoid(x) = tanh(x/2)/2 + 1/2, so one tanh call covers all four gates; the factors are powers of two, so
# scaling before or after a sum gives the same bits, and forward_window may scale W_hht and pre once a window
_HALF_BUT_G = (0.5, 0.5, 1.0, 0.5)  # per gate block i, f, g, o
_SHIFT = (0.5, 0.5, 0.0, 0.5)


def _per_gate(values: tuple, H: int, dtype) -> np.ndarray:
    return np.repeat(np.array(values, dtype), H)  # (4H,)


def forward_window(p: dict, pre: np.ndarray, state0: np.ndarray, restarts: list, keep, work, tag: str):
    """pre (T, B, 4H) input parts, bias included; state0 (B, 2H). Returns out (T, B, H), last state, cache.

    keep (T, B, 1) is 0 where the input is <s> (None when the window holds none); restarts[t] says whether
    step t holds one.
    """
    T, B, H4 = pre.shape
    H, dtype = H4 // 4, pre.dtype
    scale, shift = _per_gate(_HALF_BUT_G, H, dtype), _per_gate(_SHIFT, H, dtype)
    pre *= scale  # (T, B, 4H) the caller's scratch: scaled here once, not at every step
    # (H, 4H) laid out row by row: OpenBLAS multiplies it a fifth faster than the transposed view at B = 50
    W_hht_T = transposed(work, f"W_hht_T.{tag}", p["W_hht"], scale)
    gates = scratch(work, f"gates.{tag}", (T, B, 4, H), dtype)  # (T, B, 4, H) activations i, f, g, o
    h = scratch(work, f"h.{tag}", (T + 1, B, H), dtype)  # (T+1, B, H), h[0] = h0
    c = scratch(work, f"c.{tag}", (T + 1, B, H), dtype)  # (T+1, B, H), c[0] = c0
    tc = scratch(work, f"tc.{tag}", (T, B, H), dtype)  # (T, B, H) tanh(c_t)
    ig = scratch(work, f"ig.{tag}", (B, H), dtype)
    h[0], c[0] = state0[:, :H], state0[:, H:]
    for t in range(T):
        h_prev, c_prev = h[t], c[t]
        if restarts[t]:  # zero rows whose input is <s>: state restarts at each start token
            h_prev, c_prev = h_prev * keep[t], c_prev * keep[t]
        a, a_flat = gates[t], gates[t].reshape(B, H4)
        np.dot(h_prev, W_hht_T, out=a_flat)
        a_flat += pre[t]
        np.tanh(a_flat, out=a_flat)
        a_flat *= scale
        a_flat += shift
        np.multiply(a[:, 1], c_prev, out=c[t + 1])
        np.multiply(a[:, 0], a[:, 2], out=ig)
        c[t + 1] += ig
        np.tanh(c[t + 1], out=tc[t])
        np.multiply(a[:, 3], tc[t], out=h[t + 1])
    last = np.concatenate([h[-1], c[-1]], axis=1)  # (B, 2H)
    return h[1:], last, {"h": h, "c": c, "tc": tc, "gates": gates, "keep": keep, "restarts": restarts}


def backward_window(p: dict, dh: np.ndarray, cache: dict, work, tag: str):
    """dh (T, B, H) arrives holding the loss gradient wrt each step's output from above, and leaves holding
    the whole gradient wrt it (above plus along time). Returns dpre (T, B, 4H), {"W_hht": ...}, dstate0 (B, 2H).
    """
    h, c, tc, gates, keep, restarts = (cache[k] for k in ("h", "c", "tc", "gates", "keep", "restarts"))
    T, B, H = dh.shape
    dtype = dh.dtype
    W_hht = p["W_hht"]
    h_prev, c_prev = h[:-1], c[:-1]  # (T, B, H) what each step read
    if keep is not None:
        h_prev = np.multiply(h_prev, keep, out=scratch(work, "h_prev", (T, B, H), dtype))
        c_prev = np.multiply(c_prev, keep, out=scratch(work, "c_prev", (T, B, H), dtype))
    # dgates = P * (dc for i, f, g; dh for o), P made step by step: the step's slices stay in cache for the loop
    P = scratch(work, f"dgates.{tag}", (T, B, 4, H), dtype)  # becomes dpre in place, one step at a time
    Q = np.empty((B, H), dtype)  # dc_t/dh_t = o * (1 - tanh(c)^2)
    dc = np.empty((B, H), dtype)
    dh_next = np.zeros((B, H), dtype)  # after step 0, the gradients wrt h0 and c0
    dc_next = np.zeros((B, H), dtype)
    for t in range(T - 1, -1, -1):
        a, Pt = gates[t], P[t]  # (B, 4, H)
        np.multiply(a, a, out=Pt)
        np.subtract(a, Pt, out=Pt)  # sigmoid' = s - s^2 for i, f, o
        np.multiply(a[:, 2], a[:, 2], out=Pt[:, 2])  # ... and tanh' = 1 - g^2 for g
        np.subtract(1, Pt[:, 2], out=Pt[:, 2])
        Pt[:, 0] *= a[:, 2]  # dL/da_i = dc * g * i'
        Pt[:, 1] *= c_prev[t]  # dL/da_f = dc * c_prev * f'
        Pt[:, 2] *= a[:, 0]  # dL/da_g = dc * i * g'
        Pt[:, 3] *= tc[t]  # dL/da_o = dh * tanh(c) * o'
        np.multiply(tc[t], tc[t], out=Q)
        np.subtract(1, Q, out=Q)
        Q *= a[:, 3]
        if t < T - 1:
            np.add(dh[t], dh_next, out=dh[t])
        np.multiply(dh[t], Q, out=dc)
        dc += dc_next
        np.multiply(Pt[:, :3], dc[:, None, :], out=Pt[:, :3])
        np.multiply(Pt[:, 3], dh[t], out=Pt[:, 3])
        np.multiply(dc, a[:, 1], out=dc_next)
        np.dot(Pt.reshape(B, 4 * H), W_hht, out=dh_next)
        if restarts[t]:  # no gradient flows past a restart
            dh_next *= keep[t]
            dc_next *= keep[t]
    dpre = P.reshape(T, B, 4 * H)
    dW_hht = np.dot(dpre.reshape(T * B, 4 * H).T, h_prev.reshape(T * B, H))
    return dpre, {"W_hht": dW_hht}, np.concatenate([dh_next, dc_next], axis=1)


def step(p: dict, pre: np.ndarray, state: np.ndarray):
    """One step: pre (B, 4H), state (B, 2H) -> h (B, H), new state (B, 2H), gates {name: (B, H)}.

    The same sums, in the same order, as forward_window's loop.
    """
    B, H4 = pre.shape
    H, dtype = H4 // 4, pre.dtype
    h_prev, c_prev = state[:, :H], state[:, H:]
    scale, shift = _per_gate(_HALF_BUT_G, H, dtype), _per_gate(_SHIFT, H, dtype)
    a_flat = np.dot(h_prev, p["W_hht"].T)
    a_flat += pre
    a_flat *= scale
    np.tanh(a_flat, out=a_flat)
    a_flat *= scale
    a_flat += shift
    a = a_flat.reshape(B, 4, H)
    new = np.empty((B, 2 * H), dtype)
    h, c = new[:, :H], new[:, H:]
    np.multiply(a[:, 1], c_prev, out=c)
    c += a[:, 0] * a[:, 2]
    np.multiply(a[:, 3], np.tanh(c), out=h)
    return h, new, dict(zip(GATE_NAMES, (a[:, 0], a[:, 1], a[:, 2], a[:, 3])))
