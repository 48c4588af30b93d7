"""Gate saturation, Figure 3 of Karpathy, Johnson and Fei-Fei (2015): how often each unit's gates sit near 0 or 1.

A sigmoid gate is left-saturated at a character when its activation is below 0.1 and right-saturated
above 0.9. For each layer, gate and unit: the fraction of the text's characters where it is. The
gates are the sigmoid ones the paper plots: i, f, o of the LSTM, r, z of the GRU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import SIGMOID, Trace, check_layer
from .errors import ConfigError

LEFT, RIGHT = 0.1, 0.9  # the paper's thresholds


@dataclass
class Saturation:
    cell: str
    characters: int  # how many characters the model read (a line-records model skips newlines)
    layers: list[int]  # 1-based
    left: dict[str, np.ndarray]  # gate -> (len(layers), H) fraction of characters with activation < LEFT
    right: dict[str, np.ndarray]  # gate -> (len(layers), H) fraction with activation > RIGHT


def fractions(acts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Over the first axis of acts (N, ...): the fraction below LEFT and the fraction above RIGHT, each (...).

    >>> [f.tolist() for f in fractions(np.array([[0.05, 0.5], [0.95, 0.5], [0.1, 0.91], [0.0, 0.2]]))]
    [[0.5, 0.0], [0.25, 0.25]]
    """
    return (acts < LEFT).mean(axis=0), (acts > RIGHT).mean(axis=0)


def check_cell(cell: str) -> None:
    if cell == "rnn":
        raise ConfigError("--saturation: the rnn cell has no gates")


def saturation(tr: Trace, layer: int | None) -> Saturation:
    """The fractions for every sigmoid gate of --layer (default every layer), over the characters read."""
    check_cell(tr.cell)
    L = tr.hs.shape[1]
    check_layer(layer, L)
    layers = [layer] if layer else list(range(1, L + 1))
    n = int(tr.seen.sum())
    if n == 0:
        raise ConfigError("--text: no character to read")
    left, right = {}, {}
    for gate, acts in tr.gates.items():
        if gate in SIGMOID:
            left[gate], right[gate] = fractions(acts[tr.seen][:, [l - 1 for l in layers]])
    return Saturation(tr.cell, n, layers, left, right)


def to_json(s: Saturation) -> dict:
    """{"cell", "characters", "layers": [{"layer": 1, "gates": {"input": {"left": [H], "right": [H]}, ...}}]}."""
    layers = [
        {"layer": l, "gates": {g: {"left": s.left[g][k].tolist(), "right": s.right[g][k].tolist()} for g in s.left}}
        for k, l in enumerate(s.layers)
    ]
    return {"cell": s.cell, "characters": s.characters, "layers": layers}
