"""Hidden units along a text: every layer's activations, simple features of the text, and the units that track them.

The text is read one character at a time with model.step, exactly as sampling reads a prime, so the
activation shown for a character is h_t^l after reading it; for the gated cells also each gate's
activation and, for the LSTM, tanh(c_t^l). Units are ranked by the Pearson correlation of their
activation with a feature, as in Karpathy, Johnson and Fei-Fei (2015).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cells import CELLS
from .errors import ConfigError, DataError
from .model import StackedRNN, log_softmax
from .vocab import BOS, SPECIALS, Vocab


@dataclass
class Trace:
    text: str
    seen: np.ndarray  # (N,) False at a newline that ends a record: a line-records model never reads it
    hs: np.ndarray  # (N, L, H) every layer's state after reading character i
    probs: np.ndarray  # (N, V) the next-character distribution after reading character i
    cell: str = "rnn"  # the model's cell: rnn, lstm or gru
    gates: dict[str, np.ndarray] = field(default_factory=dict)  # gate (SHOWN's name) -> (N, L, H) after char i
    cs: np.ndarray | None = None  # (N, L, H) an LSTM's tanh(c_t^l) after reading character i; None for others

    def quantity(self, show: str) -> np.ndarray:
        """(N, L, H) what --show names: hidden, cell (tanh(c)) or a gate; check it first with check_show."""
        if show == "hidden":
            return self.hs
        if show == "cell":
            assert self.cs is not None
            return self.cs
        return self.gates[show]


@dataclass
class View:
    title: str
    values: np.ndarray  # (N,) one unit's activation per character
    quantity: str = "hidden"  # what values are: hidden, cell or a gate name (SIGMOID's lie in [0, 1])


# what --show accepts per cell; "cell" is tanh(c) as in the paper, so the LSTM's g (the cell module's
# "cell") is called "candidate" here
SHOWN = {
    "rnn": ("hidden",),
    "lstm": ("hidden", "cell", "input", "forget", "candidate", "output"),
    "gru": ("hidden", "reset", "update", "new"),
}
SIGMOID = ("input", "forget", "output", "reset", "update")  # gates in [0, 1]; candidate and new are tanh


def _gate_label(name: str) -> str:
    """A cell module's gate name as --show spells it."""
    return "candidate" if name == "cell" else name


def check_show(cell: str, show: str) -> None:
    """--show must name something this run's cell has."""
    if show in SHOWN[cell]:
        return
    if cell == "rnn":
        raise ConfigError(f"--show: expected hidden (the rnn cell has no gates and no cell state), got {show!r}")
    raise ConfigError(f"--show: expected one of {', '.join(SHOWN[cell])} for this {cell} run, got {show!r}")


def read_text_arg(value: str) -> str:
    """--text: `-` is stdin, the path of an existing file is its content, anything else the text itself."""
    if value == "-":
        return sys.stdin.read()
    path = Path(value)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"{path}: cannot read as UTF-8 text: {err}") from None
    return value


def trace(model: StackedRNN, vocab: Vocab, text: str) -> Trace:
    """Every layer's activations and the next-character probabilities along `text`, starting from <s>.

    When the vocabulary has no newline (a model of line records), each line is read as its own record.
    """
    breaks = "\n" not in vocab.chars
    unknown = vocab.unknown(text.replace("\n", "") if breaks else text)
    if unknown:
        raise ConfigError(f"--text: characters not in the model's vocabulary: {', '.join(map(repr, unknown))}")
    index = {c: i + len(SPECIALS) for i, c in enumerate(vocab.chars)}
    N = len(text)
    L, H = model.num_layers, model.hidden_size
    hs = np.zeros((N, L, H), np.float32)  # (N, L, H)
    # (N, L, H) per gate, and tanh(c) for the LSTM; the rnn stores nothing more and steps as before
    gates = {_gate_label(g): np.zeros((N, L, H), np.float32) for g in CELLS[model.cell].GATE_NAMES}
    cs = np.zeros((N, L, H), np.float32) if model.cell == "lstm" else None
    probs = np.zeros((N, vocab.size))  # (N, V)
    seen = np.ones(N, bool)
    h, at_start = model.zero_state(1), True
    for i, c in enumerate(text):
        if breaks and c == "\n":
            seen[i], at_start = False, True
            continue
        if at_start:
            _, h = model.step(np.array([BOS]), h)
            at_start = False
        layer_gates: list | None = [] if gates else None
        logits, h = model.step(np.array([index[c]]), h, layer_gates)
        hs[i] = model.hidden(h)[:, 0]
        for l, named in enumerate(layer_gates or []):
            for name, a in named.items():
                gates[_gate_label(name)][i, l] = a[0]
        if cs is not None:
            cs[i] = np.tanh(h[:, 0, H:])  # the LSTM's state is [h | c]
        probs[i] = np.exp(log_softmax(logits[0].astype(np.float64)))
    return Trace(text, seen, hs, probs, model.cell, gates, cs)


def features(text: str) -> dict[str, np.ndarray]:
    """Per character, after reading it: inside "double quotes", inside (parentheses), column in its line.

    >>> {k: v.tolist() for k, v in features('a"b"(c)\\nd').items()}  # doctest: +NORMALIZE_WHITESPACE
    {'inside quotes': [0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
     'inside parentheses': [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0],
     'position in line': [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 0.0]}
    """
    quoted, depth, col = False, 0, 0
    out = np.zeros((3, len(text)))  # (features, N)
    for i, c in enumerate(text):
        quoted ^= c == '"'
        depth = depth + 1 if c == "(" else max(depth - 1, 0) if c == ")" else depth
        out[:, i] = quoted, depth > 0, col
        col = 0 if c == "\n" else col + 1
    return dict(zip(("inside quotes", "inside parentheses", "position in line"), out))


def correlations(acts: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson r of each column of acts (N, H) with feature (N,); 0 where either is constant."""
    a = acts - acts.mean(axis=0)  # (N, H)
    f = feature - feature.mean()  # (N,)
    denom = np.sqrt((a * a).sum(axis=0) * (f @ f))  # (H,)
    return np.divide(f @ a, denom, out=np.zeros(acts.shape[1]), where=denom > 1e-12)


def _unit(layer: int, unit: int, show: str) -> str:
    """A view's title: layer 1 unit 3, then what it shows unless that is the hidden state."""
    what = {"hidden": "", "cell": " tanh(c)"}.get(show, f" {show} gate")
    return f"layer {layer} unit {unit}{what}"


def top_units(tr: Trace, k: int, layers: list[int], show: str = "hidden") -> tuple[list[View], list[str]]:
    """For each feature that varies in the text, the k units of `layers` (1-based) whose `show` tracks it best.

    Returns the views and a note for each feature left out because it is constant in this text.
    """
    shown = tr.quantity(show)  # (N, L, H)
    acts = shown[tr.seen][:, [l - 1 for l in layers]].astype(np.float64)  # (N', layers, H)
    n, nl, H = acts.shape
    views, notes = [], []
    for name, f in features(tr.text).items():
        f = f[tr.seen]
        if n < 2 or f.min() == f.max():
            notes.append(f"{name}: constant in this text, no unit ranked for it")
            continue
        r = correlations(acts.reshape(n, nl * H), f)  # (layers * H,) layer-major
        for j in np.argsort(-np.abs(r), kind="stable")[:k]:
            layer, unit = layers[j // H], int(j % H)
            title = f"{_unit(layer, unit, show)}: r = {r[j]:+.2f} with {name}"
            views.append(View(title, shown[:, layer - 1, unit], show))
    return views, notes


def check_layer(layer: int | None, num_layers: int) -> None:
    if layer is not None and not 1 <= layer <= num_layers:
        raise ConfigError(f"--layer: expected 1..{num_layers} (the model has {num_layers} layers), got {layer}")


def select(
    tr: Trace, layer: int | None, neuron: int | None, top: int | None, show: str = "hidden"
) -> tuple[list[View], list[str]]:
    """The views the options ask for: one --neuron (of --layer, default the top layer), or --top K per feature,
    of the quantity --show names (checked against the run's cell with check_show)."""
    L, H = tr.hs.shape[1:]
    check_layer(layer, L)
    if neuron is not None and top is not None:
        raise ConfigError("--neuron and --top: give one of them")
    if neuron is not None:
        if not 0 <= neuron < H:
            raise ConfigError(f"--neuron: expected 0..{H - 1} (each layer has {H} units), got {neuron}")
        layer = layer or L
        return [View(_unit(layer, neuron, show), tr.quantity(show)[:, layer - 1, neuron], show)], []
    if top is not None and top < 1:
        raise ConfigError(f"--top: expected an integer >= 1, got {top}")
    views, notes = top_units(tr, top or 1, [layer] if layer else list(range(1, L + 1)), show)
    if not views:
        raise ConfigError("--text: too short to rank units (no feature varies in it); pick one with --neuron")
    return views, notes
