"""Scratch arrays that outlive one window, so the next window of the same shape reuses them, and the
row-major copies of weights that a window's per-step products read."""

from __future__ import annotations

import numpy as np


def scratch(work: dict | None, name: str, shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array, kept in `work` when given: the next window of the same shape reuses it
    instead of page-faulting fresh memory in (a fifth of the time at char-rnn's shapes)."""
    if work is None:
        return np.empty(shape, dtype)
    a = work.get(name)
    if a is None or a.shape != shape or a.dtype != dtype:
        a = work[name] = np.empty(shape, dtype)
    return a


def transposed(work: dict | None, name: str, W: np.ndarray, col_scale: np.ndarray | None = None) -> np.ndarray:
    """W.T (times col_scale per column) laid out row by row, in a scratch array: (G*H, H) -> (H, G*H).

    Copied 64 rows of W at a time: numpy's one-call transposed copy walks memory with a long stride and
    took 7.9 ms at 2048 x 512 here, the blocks 1.4 ms.
    """
    out = scratch(work, name, W.shape[::-1], W.dtype)
    for i in range(0, W.shape[0], 64):
        if col_scale is None:
            out[:, i : i + 64] = W[i : i + 64].T
        else:
            np.multiply(W[i : i + 64].T, col_scale[i : i + 64], out=out[:, i : i + 64])
    return out
