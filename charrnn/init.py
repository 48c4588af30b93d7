"""Initial weights of a stacked RNN, in the seed's orientation."""

from __future__ import annotations

import numpy as np


def init_params(vocab_size: int, hidden_size: int, num_layers: int,
                rng: np.random.Generator, dtype=np.float32) -> dict[str, np.ndarray]:
    """Weights uniform in ±1/sqrt(H), as torch.nn.RNN and nn.Linear start; biases zero.

    The bound keeps each pre-activation's variance near 1/3 whatever H is, so tanh starts unsaturated.
    """
    V, H, L = vocab_size, hidden_size, num_layers
    bound = 1.0 / np.sqrt(H)

    def uniform(*shape):
        return rng.uniform(-bound, bound, size=shape).astype(dtype)

    params = {"W_xh": uniform(H, V)}  # (H, V): column v is layer 1's input for character v
    for l in range(1, L + 1):
        params[f"W_hht.{l}"] = uniform(H, H)  # (H, H) along time
        if l > 1:
            params[f"W_hhd.{l}"] = uniform(H, H)  # (H, H) along depth, from layer l-1
        params[f"b_h.{l}"] = np.zeros(H, dtype)
    params["W_hy"] = uniform(V, H)  # (V, H)
    params["b_y"] = np.zeros(V, dtype)
    return params
