"""The GRU cell, as torch.nn.GRU: gate rows in the order r, z, n (each H rows of W_xh, W_hhd, W_hht, b_h).

    a = W_hht h_{t-1},   r = sigmoid(pre_r + a_r),   z = sigmoid(pre_z + a_z)
    n = tanh(pre_n + r * (a_n + b_hn)),   h_t = (1 - z) * n + z * h_{t-1}

b_h holds torch's b_ir + b_hr, b_iz + b_hz and b_in; b_hn, inside r's product, is the cell's own parameter.
The carried state is h, (B, H).
"""

from __future__ import annotations

import numpy as np

from ..scratch import scratch, transposed

GATES = 3
STATE = 1
RECURRENT = ("W_hht", "b_hn")
GATE_NAMES = ("reset", "update", "new")


def _sigmoid(a: np.ndarray) -> None:
    """In place: sigmoid(x) = tanh(x/2)/2 + 1/2, exact scalings, one transcendental call."""
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5


def _cell(a: np.ndarray, pre: np.ndarray, b_hn: np.ndarray, h_prev: np.ndarray, gates: np.ndarray, hn, h):
    """The step after the product a = h_prev W_hht^T (B, 3, H): gates (B, 3, H) r, z, n; hn = a_n + b_hn; h."""
    np.add(a[:, :2], pre[:, :2], out=gates[:, :2])
    _sigmoid(gates[:, :2])
    np.add(a[:, 2], b_hn, out=hn)
    n = gates[:, 2]
    np.multiply(gates[:, 0], hn, out=n)
    n += pre[:, 2]
    np.tanh(n, out=n)
    np.subtract(h_prev, n, out=h)  # h = n + z * (h_prev - n)
    h *= gates[:, 1]
    h += n


def forward_window(p: dict, pre: np.ndarray, state0: np.ndarray, restarts: list, keep, work, tag: str):
    """pre (T, B, 3H) input parts, bias included; state0 (B, H). Returns out (T, B, H), last state, cache."""
    T, B, H3 = pre.shape
    H, dtype = H3 // 3, pre.dtype
    gates = scratch(work, f"gates.{tag}", (T, B, 3, H), dtype)  # (T, B, 3, H) r, z, n
    hn = scratch(work, f"hn.{tag}", (T, B, H), dtype)  # (T, B, H) W_hn h_{t-1} + b_hn, what r multiplied
    h = scratch(work, f"h.{tag}", (T + 1, B, H), dtype)  # (T+1, B, H), h[0] = h0
    a = scratch(work, f"a.{tag}", (B, 3, H), dtype)
    h[0] = state0
    # (H, 3H) laid out row by row: OpenBLAS multiplies it a fifth faster than the transposed view at B = 50
    W_hht_T, b_hn = transposed(work, f"W_hht_T.{tag}", p["W_hht"]), p["b_hn"]
    pre4 = pre.reshape(T, B, 3, H)
    for t in range(T):
        # zero rows whose input is <s>: state restarts at each start token
        h_prev = h[t] * keep[t] if restarts[t] else h[t]
        np.dot(h_prev, W_hht_T, out=a.reshape(B, H3))
        _cell(a, pre4[t], b_hn, h_prev, gates[t], hn[t], h[t + 1])
    return h[1:], h[-1], {"h": h, "hn": hn, "gates": gates, "keep": keep, "restarts": restarts}


def backward_window(p: dict, dh: np.ndarray, cache: dict, work, tag: str):
    """dh (T, B, H) arrives holding the loss gradient wrt each step's output from above, and leaves holding
    the whole gradient wrt it (above plus along time). Returns dpre (T, B, 3H), {"W_hht", "b_hn"}, dstate0.
    """
    h, hn, gates, keep, restarts = (cache[k] for k in ("h", "hn", "gates", "keep", "restarts"))
    T, B, H = dh.shape
    dtype = dh.dtype
    W_hht = p["W_hht"]
    r, z, n = gates[:, :, 0], gates[:, :, 1], gates[:, :, 2]
    h_prev = h[:-1]  # (T, B, H) what each step read
    if keep is not None:
        h_prev = np.multiply(h_prev, keep, out=scratch(work, "h_prev", (T, B, H), dtype))
    # each step's factors made at that step, so its slices stay in cache for the rest of the step
    da = scratch(work, f"da.{tag}", (T, B, 3, H), dtype)  # gradient wrt a = W_hht h_{t-1} (+ b_hn for n)
    dpre = scratch(work, f"dpre.{tag}", (T, B, 3, H), dtype)
    dz_h = np.empty((B, H), dtype)
    dh_next = np.zeros((B, H), dtype)  # after step 0, the gradient wrt h0
    for t in range(T - 1, -1, -1):
        D, E = da[t], dpre[t]  # (B, 3, H)
        np.subtract(1, r[t], out=D[:, 0])
        D[:, 0] *= r[t]
        D[:, 0] *= hn[t]  # dL/da_r = dn_raw * hn * r'
        np.subtract(h_prev[t], n[t], out=D[:, 1])
        D[:, 1] *= z[t]
        np.subtract(1, z[t], out=E[:, 0])
        D[:, 1] *= E[:, 0]  # dL/da_z = dh * (h_prev - n) * z'
        dn_raw = E[:, 2]
        np.multiply(n[t], n[t], out=dn_raw)
        np.subtract(1, dn_raw, out=dn_raw)
        dn_raw *= E[:, 0]  # dn_raw = dh * (1 - z) * (1 - n^2)
        if t < T - 1:
            np.add(dh[t], dh_next, out=dh[t])
        dn_raw *= dh[t]
        D[:, 0] *= dn_raw
        D[:, 1] *= dh[t]
        np.multiply(dn_raw, r[t], out=D[:, 2])
        E[:, :2] = D[:, :2]  # r's and z's pre-activations take a's gradient; n's took dn_raw
        np.dot(D.reshape(B, 3 * H), W_hht, out=dh_next)
        np.multiply(dh[t], z[t], out=dz_h)
        dh_next += dz_h
        if restarts[t]:  # no gradient flows past a restart
            dh_next *= keep[t]
    da2 = da.reshape(T * B, 3 * H)
    grads = {"W_hht": np.dot(da2.T, h_prev.reshape(T * B, H)), "b_hn": da[:, :, 2].reshape(T * B, H).sum(axis=0)}
    return dpre.reshape(T, B, 3 * H), grads, dh_next


def step(p: dict, pre: np.ndarray, state: np.ndarray):
    """One step: pre (B, 3H), state (B, H) -> h (B, H), new state (B, H), gates {name: (B, H)}.

    The same sums, in the same order, as forward_window's loop.
    """
    B, H3 = pre.shape
    H = H3 // 3
    a = np.dot(state, p["W_hht"].T).reshape(B, 3, H)
    gates, hn, h = np.empty_like(a), np.empty((B, H), pre.dtype), np.empty((B, H), pre.dtype)
    _cell(a, pre.reshape(B, 3, H), p["b_hn"], state, gates, hn, h)
    return h, h, dict(zip(GATE_NAMES, (gates[:, 0], gates[:, 1], gates[:, 2])))
