"""`charrnn visualize --show` and `--saturation` on gated cells: the gates and tanh(c) trace records, the
saturation fractions, and the verb end to end on tiny lstm, gru and rnn runs."""

import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from charrnn.activations import Trace, trace
from charrnn.checkpoint import load_trained
from charrnn.cli import app
from charrnn.gate_saturation import fractions, saturation, to_json
from charrnn.heatmap import SPARK
from charrnn.model import StackedRNN, forward
from charrnn.vocab import BOS, Vocab

from .test_shell import train_tiny

runner = CliRunner()
TEXT = 'he said "stop" (now)\nshe ran'


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kwargs)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gates")
    return {cell: train_tiny(folder, cell, cell=cell) for cell in ("rnn", "lstm", "gru")}


@pytest.mark.parametrize(
    "cell, labels", [("lstm", ("input", "forget", "candidate", "output")), ("gru", ("reset", "update", "new"))]
)
def test_trace_records_the_gates_the_window_forward_computes(cell, labels):
    vocab = Vocab.from_texts([TEXT])
    model = StackedRNN(vocab.size, 6, 2, seed=1, dtype=np.float64, cell=cell)
    tr = trace(model, vocab, TEXT)
    ids = np.array([BOS, *vocab.encode(TEXT).tolist()])[:, None]  # (T, 1)
    _, cache = forward(model.params, ids, model.zero_state(1))
    assert list(tr.gates) == list(labels)
    for l, layer in enumerate(cache["caches"]):
        for k, name in enumerate(labels):  # the window's gates buffer (T, B, G, H) holds them in torch's order
            np.testing.assert_allclose(tr.gates[name][:, l], layer["gates"][1:, 0, k], rtol=1e-5, atol=1e-6)
        if cell == "lstm":
            np.testing.assert_allclose(tr.cs[:, l], layer["tc"][1:, 0], rtol=1e-5, atol=1e-6)
    assert (tr.cs is None) == (cell == "gru")


def test_the_rnn_trace_stores_no_gates():
    vocab = Vocab.from_texts([TEXT])
    tr = trace(StackedRNN(vocab.size, 4, 2, seed=1), vocab, TEXT)
    assert tr.cell == "rnn" and tr.gates == {} and tr.cs is None


def test_saturation_fractions_on_a_hand_made_trace():
    f = np.array([[0.05, 0.5], [0.95, 0.5], [0.1, 0.91], [0.0, 0.2], [0.99, 0.99]])  # (N=5, H=2), one layer
    i = np.full((5, 1, 2), 0.5)
    tr = Trace("abcd\n", np.array([True] * 4 + [False]), np.zeros((5, 1, 2)), np.zeros((5, 3)), "lstm")
    tr.gates = {"input": i, "forget": f[:, None, :], "candidate": i, "output": i}
    s = saturation(tr, None)
    assert list(s.left) == ["input", "forget", "output"] and s.characters == 4  # the unread newline is left out
    assert s.left["forget"].tolist() == [[0.5, 0.0]] and s.right["forget"].tolist() == [[0.25, 0.25]]
    assert s.left["input"].tolist() == [[0.0, 0.0]]
    assert to_json(s)["layers"][0] == {
        "layer": 1,
        "gates": {
            "input": {"left": [0.0, 0.0], "right": [0.0, 0.0]},
            "forget": {"left": [0.5, 0.0], "right": [0.25, 0.25]},
            "output": {"left": [0.0, 0.0], "right": [0.0, 0.0]},
        },
    }
    np.testing.assert_array_equal(fractions(f[:4])[0], s.left["forget"][0])


def test_a_gate_uses_its_own_scale(runs):
    result = invoke(
        "visualize", "-c", runs["lstm"], "--text", "he said", "--show", "forget", "--neuron", "3", "-l", "1"
    )
    assert result.exit_code == 0 and result.stderr == ""
    _, vocab, model, _ = load_trained(runs["lstm"])
    values = trace(model, vocab, "he said").gates["forget"][:, 0, 3]
    levels = "".join(SPARK[round(v * 7)] for v in values)
    assert (
        result.stdout == f"activation under each line: ▁ 0 ... █ 1\n\nlayer 1 unit 3 forget gate\nhe said\n{levels}\n"
    )


def test_top_ranks_units_by_the_shown_quantity(runs):
    result = invoke("visualize", "-c", runs["lstm"], "--text", TEXT, "--show", "cell", "--top", "1")
    assert result.exit_code == 0 and result.stderr == ""
    titles = [line for line in result.stdout.splitlines() if line.startswith("layer ")]
    assert len(titles) == 3 and all(" tanh(c): r = " in t for t in titles)
    assert result.stdout.startswith("activation under each line: ▁ -1 ... █ +1\n")


def test_html_names_the_gate(runs, tmp_path):
    page = tmp_path / "z.html"
    result = invoke("visualize", "-c", runs["gru"], "--text", TEXT, "--show", "update", "--neuron", "0", "--html", page)
    assert result.exit_code == 0 and result.stderr == f"wrote {page}\n"
    html = page.read_text()
    assert "update gate activation (sigmoid, in [0, 1])" in html and ">0.25</span>" in html
    assert "<h2>layer 2 unit 0 update gate</h2>" in html


@pytest.mark.parametrize("cell, gates", [("lstm", ["input", "forget", "output"]), ("gru", ["reset", "update"])])
def test_saturation_json(runs, cell, gates):
    result = invoke("visualize", "-c", runs[cell], "--text", TEXT, "--saturation", "--json")
    assert result.exit_code == 0 and result.stderr == ""
    out = json.loads(result.stdout)
    assert out["cell"] == cell and out["characters"] == len(TEXT)
    assert [layer["layer"] for layer in out["layers"]] == [1, 2]
    _, vocab, model, _ = load_trained(runs[cell])
    tr = trace(model, vocab, TEXT)
    for k, layer in enumerate(out["layers"]):
        assert list(layer["gates"]) == gates
        for gate, got in layer["gates"].items():
            assert len(got["left"]) == len(got["right"]) == 16
            assert got["left"] == (tr.gates[gate][:, k] < 0.1).mean(axis=0).tolist()
            assert got["right"] == (tr.gates[gate][:, k] > 0.9).mean(axis=0).tolist()
    one = json.loads(invoke("visualize", "-c", runs[cell], "--text", TEXT, "--saturation", "--json", "-l", "2").stdout)
    assert one["layers"] == out["layers"][1:]


def test_saturation_in_the_terminal(runs):
    result = invoke("visualize", "-c", runs["gru"], "--text", TEXT, "--saturation")
    assert result.exit_code == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == f"gru: {len(TEXT)} characters read; left-saturated: activation < 0.1, right: > 0.9"
    assert "layer 1 (16 units)" in lines and "layer 2 (16 units)" in lines
    assert [line.split()[0] for line in lines if line.startswith(("  reset ", "  update "))] == ["reset", "update"] * 2
    assert lines.count("  r reset, z update; * more than one gate") == 2


def test_saturation_png(runs, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "gates.png"
    result = invoke("visualize", "-c", runs["lstm"], "--text", TEXT, "--saturation", "--png", png)
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == f"wrote {png}\n"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_saturation_png_without_matplotlib_says_how_to_get_it(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    result = invoke("visualize", "-c", runs["gru"], "--text", TEXT, "--saturation", "--png", tmp_path / "g.png")
    assert result.exit_code == 1 and "pip install 'charrnn[plot]'" in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "g.png").exists()


@pytest.mark.parametrize(
    "cell, args, message",
    [
        (
            "rnn",
            ["--show", "forget"],
            "--show: expected hidden (the rnn cell has no gates and no cell state), got 'forget'",
        ),
        ("rnn", ["--saturation"], "--saturation: the rnn cell has no gates"),
        ("gru", ["--show", "cell"], "--show: expected one of hidden, reset, update, new for this gru run, got 'cell'"),
        (
            "lstm",
            ["--show", "g"],
            "--show: expected one of hidden, cell, input, forget, candidate, output for this lstm run, got 'g'",
        ),
        ("lstm", ["--json"], "--json: only with --saturation"),
        ("lstm", ["--png", "x.png"], "--png: only with --saturation"),
        (
            "lstm",
            ["--saturation", "--neuron", "1", "--show", "input"],
            "--saturation: draws no coloured text, so it takes no --neuron, --show",
        ),
        ("gru", ["--saturation", "-l", "3"], "--layer: expected 1..2 (the model has 2 layers), got 3"),
    ],
)
def test_bad_options_are_one_line_exit_2(runs, cell, args, message):
    result = invoke("visualize", "-c", runs[cell], "--text", "he", *args)
    assert (result.exit_code, result.stderr, result.stdout) == (2, f"Error: {message}\n", "")
