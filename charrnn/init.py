"""Initial weights of a stacked RNN of any cell, in the seed's orientation.

Schemes (model.init), each with its own meaning of model.init_scale (None: the scheme's default):
- torch: every weight uniform in ±scale, scale 1/sqrt(H), as torch.nn.RNN and nn.Linear start.
- uniform: every weight uniform in ±scale, scale 0.08, as char-rnn starts.
- orthogonal: W_hht a random orthogonal matrix times scale (gain 1.0); the rest as torch.
- identity: W_hht the identity times scale (gain 1.0), as Le, Jaitly and Hinton's IRNN; the rest as torch.
Biases start at zero in every scheme. A gated cell (G gate blocks) draws each weight G*H rows tall in the
same order, and orthogonal or identity makes each of W_hht's G blocks of H rows so.
"""

from __future__ import annotations

import numpy as np

from .cells import CELLS

SCHEMES = ("torch", "uniform", "orthogonal", "identity")


def default_scale(scheme: str, hidden_size: int) -> float:
    return {"torch": 1.0 / np.sqrt(hidden_size), "uniform": 0.08}.get(scheme, 1.0)


def orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random (n, n) orthogonal matrix, uniform over the orthogonal group (QR with sign-fixed R)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))  # without the sign fix QR would favour some rotations


def init_params(
    vocab_size: int,
    hidden_size: int,
    num_layers: int,
    rng: np.random.Generator,
    dtype=np.float32,
    scheme: str = "torch",
    scale: float | None = None,
    cell: str = "rnn",
) -> dict[str, np.ndarray]:
    """Weights drawn as `scheme` says, biases zero.

    torch's bound keeps each pre-activation's variance near 1/3 whatever H is, so tanh starts unsaturated;
    an orthogonal or identity W_hht keeps every singular value at `scale`, so early gradients through
    time neither vanish nor explode.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}")
    V, H, L = vocab_size, hidden_size, num_layers
    G = CELLS[cell].GATES
    scale = default_scale(scheme, H) if scale is None else scale
    bound = scale if scheme in ("torch", "uniform") else 1.0 / np.sqrt(H)

    def uniform(*shape):
        return rng.uniform(-bound, bound, size=shape).astype(dtype)

    params = {"W_xh": uniform(G * H, V)}  # (G*H, V): column v is layer 1's input for character v
    for l in range(1, L + 1):
        params[f"W_hht.{l}"] = uniform(G * H, H)  # (G*H, H) along time
        if l > 1:
            params[f"W_hhd.{l}"] = uniform(G * H, H)  # (G*H, H) along depth, from layer l-1
        params[f"b_h.{l}"] = np.zeros(G * H, dtype)
        if "b_hn" in CELLS[cell].RECURRENT:
            params[f"b_hn.{l}"] = np.zeros(H, dtype)  # (H,) the GRU's bias inside r's product
    params["W_hy"] = uniform(V, H)  # (V, H)
    params["b_y"] = np.zeros(V, dtype)
    # replaced only after every uniform draw: the other weights are the same draws in every scheme
    for l in range(1, L + 1):
        if scheme == "orthogonal":
            params[f"W_hht.{l}"] = (scale * np.vstack([orthogonal(H, rng) for _ in range(G)])).astype(dtype)
        elif scheme == "identity":
            params[f"W_hht.{l}"] = (scale * np.vstack([np.eye(H)] * G)).astype(dtype)
    return params
