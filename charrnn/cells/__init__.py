"""The recurrent cells a layer can be: rnn (vanilla tanh), lstm and gru, each a module with one contract.

A cell module holds GATES and STATE (blocks of H in its gate rows and in its carried state, h first),
RECURRENT (its own parameters per layer), GATE_NAMES, forward_window, backward_window and step.
"""

from __future__ import annotations

from types import ModuleType

from . import gru, lstm, rnn

CELLS: dict[str, ModuleType] = {"rnn": rnn, "lstm": lstm, "gru": gru}
