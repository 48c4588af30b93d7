"""`charrnn gradients`: dL_t/dh_{t-k} against central differences for each cell, the vanilla cell's vanishing
beside the LSTM's carry, records that stop the gradient, and the verb end to end."""

import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from charrnn.cells import CELLS
from charrnn.cli import app
from charrnn.errors import ConfigError
from charrnn.gradient_reach import chain_ends, gradients_back, reach
from charrnn.model import StackedRNN, cell_of, log_softmax
from charrnn.vocab import BOS

from .helpers import assert_one_line_error, invoke
from .test_shell import TINY_TEXT, train_tiny

V, H, L, K = 7, 4, 2, 4


def loss_at_end(params: dict, ids: np.ndarray, target: int, nudge: tuple[int, int, int, float]) -> float:
    """L_t = -log p(target) after reading ids one step at a time from a zero state, with h^l at step s
    moved by eps along unit i (nudge = (s, l, i, eps)) before anything reads it."""
    cell = cell_of(params)
    state = np.zeros((L, 1, cell.STATE * H))  # (L, 1, S)
    for s, x in enumerate(ids):
        h_t = None
        for l in range(1, L + 1):
            if l == 1:
                pre = params["W_xh"].T[[x]] + params["b_h.1"]
            else:
                pre = h_t @ params[f"W_hhd.{l}"].T + params[f"b_h.{l}"]
            layer = {name: params[f"{name}.{l}"] for name in cell.RECURRENT}
            _, new, _ = cell.step(layer, pre, state[l - 1])
            new = new.copy()
            if nudge[:2] == (s, l):
                new[0, nudge[2]] += nudge[3]
            state[l - 1], h_t = new, new[:, :H]
    logits = h_t @ params["W_hy"].T + params["b_y"]
    return float(-log_softmax(logits)[0, target])


@pytest.mark.parametrize("cell", list(CELLS))
def test_each_k_matches_central_differences(cell):
    model = StackedRNN(V, H, L, seed=1, dtype=np.float64, cell=cell)
    for name, p in model.params.items():  # non-zero biases, so every bias path is exercised
        if name.startswith("b_"):
            p[:] = np.random.default_rng(3).standard_normal(p.shape) * 0.3
    inputs = np.random.default_rng(2).integers(2, V, size=(K + 3, 2))  # (T, B) two chains
    targets = np.array([3, 5])
    grads = gradients_back(model.params, inputs, targets, K)
    assert [g.shape for g in grads] == [(K + 1, 2, H)] * L
    T, eps = len(inputs), 1e-5
    for j in range(2):
        for l in range(1, L + 1):
            for k in range(K + 1):
                numeric = [
                    (
                        loss_at_end(model.params, inputs[:, j], targets[j], (T - 1 - k, l, i, eps))
                        - loss_at_end(model.params, inputs[:, j], targets[j], (T - 1 - k, l, i, -eps))
                    )
                    / (2 * eps)
                    for i in range(H)
                ]
                assert np.allclose(grads[l - 1][k, j], numeric, rtol=1e-6, atol=1e-9), (j, l, k)
    # k = 0 at the top layer is the output error sent back through W_hy
    _, h = model.step(inputs[0], model.zero_state(2))
    for x in inputs[1:]:
        logits, h = model.step(x, h)
    probs = np.exp(log_softmax(logits))  # (B, V)
    probs[np.arange(2), targets] -= 1
    assert np.allclose(grads[-1][0], probs @ model.params["W_hy"], rtol=1e-10, atol=1e-12)


def test_the_vanilla_gradient_vanishes_where_the_lstm_carries_it():
    ids = np.random.default_rng(0).integers(2, V, size=400)
    rnn = StackedRNN(V, H, L, seed=0, cell="rnn")
    for l in range(1, L + 1):
        rnn.params[f"W_hht.{l}"] *= 0.3  # a small recurrent matrix: each step back multiplies by less than 1
    vanilla = reach(rnn, ids, 30, "ids").mean_norm  # (L, K+1)
    assert vanilla.shape == (L, 31)
    assert (np.diff(vanilla[:, 1:], axis=1) < 0).all()  # shrinks at every step back
    assert (vanilla[:, 30] < 1e-5 * vanilla[:, 5]).all()
    lstm = StackedRNN(V, H, L, seed=0, cell="lstm")
    for l in range(1, L + 1):
        lstm.params[f"b_h.{l}"][H : 2 * H] = 6.0  # forget gates at ~1: the cell path c_t = f c_{t-1} + ... holds
    carried = reach(lstm, ids, 30, "ids").mean_norm
    assert (carried[:, 30] > 0.3 * carried[:, 5]).all()


def test_a_start_token_stops_the_gradient():
    ids = np.tile(np.array([BOS, 2, 3, 4, 5, 6, 2, 3, 1]), 30)  # records of 7 characters: <s> ... </s>
    model = StackedRNN(V, H, L, seed=0)
    r = reach(model, ids, 12, "ids")
    assert (r.mean_norm[:, :7] > 0).all()
    assert (r.mean_norm[:, 9:] == 0).all()  # every chain's record starts fewer than 9 steps back
    ends, _ = chain_ends(ids, 12, 64, "ids")
    assert (ids[ends + 1] != BOS).all()  # no chain predicts a <s>, which the model never learns to


def test_chains_spread_and_short_texts():
    ids = np.full(1000, 2)
    ends, warmup = chain_ends(ids, 50, 64, "t")
    assert warmup == 50 and len(ends) == 64 and ends[0] == 100 and ends[-1] == 998
    ends, warmup = chain_ends(np.full(12, 2), 10, 64, "t")  # a short text: no warm-up, one chain
    assert warmup == 0 and ends.tolist() == [10]
    with pytest.raises(ConfigError, match="--text: t: 11 ids are too few for --steps 10"):
        chain_ends(np.full(11, 2), 10, 64, "t")


def gradients(*args, **kwargs):
    return CliRunner().invoke(app, ["gradients", *map(str, args)], catch_exceptions=False, **kwargs)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gradients")
    rnn = train_tiny(folder, "rnn", steps=20)
    result = invoke(
        "train",
        folder / "rnn.yaml",
        "-q",
        "--set",
        "model.cell=lstm",
        "--set",
        f"train.out_dir={folder / 'runs' / 'lstm'}",
    )
    assert result.exit_code == 0, result.stderr
    return rnn, folder / "runs" / "lstm"


def test_json_has_every_run_and_layer(runs):
    result = gradients("-c", runs[0], "-c", runs[1], "--steps", 20, "--json")
    assert result.exit_code == 0 and result.stderr == ""
    out = json.loads(result.stdout)
    assert out["steps"] == 20 and out["chains"] == 64
    assert [(r["run"], r["cell"]) for r in out["runs"]] == [(str(runs[0]), "rnn"), (str(runs[1]), "lstm")]
    for r in out["runs"]:
        assert r["text"].startswith("validation split of ") and r["chains"] >= 1
        assert [layer["layer"] for layer in r["layers"]] == [1, 2]
        assert all(len(layer["mean_norm"]) == 21 and layer["mean_norm"][0] > 0 for layer in r["layers"])


def test_the_terminal_chart_and_table(runs):
    result = gradients("-c", runs[0], "-c", runs[1], "--steps", 20, env={"COLUMNS": "80"})
    assert result.exit_code == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{runs[0]} (rnn): mean |dL_t/dh_(t-k)| over ")
    assert lines[1].startswith(f"{runs[1]} (lstm): ")
    assert "┤" in lines[2] and len(lines[2]) == 79
    assert lines[2 + 12 + 1].strip().endswith("20 steps back (k)")
    legend = [line.strip() for line in lines[2 + 12 + 2 : 2 + 12 + 6]]
    assert legend == [
        f"⣀⣀● {runs[0]} layer 1 (rnn)",
        f"⣀⣀■ {runs[0]} layer 2 (rnn)",
        f"⣀⣀▲ {runs[1]} layer 1 (lstm)",
        f"⣀⣀◆ {runs[1]} layer 2 (lstm)",
    ]
    table = lines[-5:]
    assert table[0].split() == ["k", "0", "1", "2", "5", "10", "20"]
    numbers = json.loads(gradients("-c", runs[0], "-c", runs[1], "--steps", 20, "--json").stdout)
    first = numbers["runs"][0]["layers"][0]["mean_norm"]
    assert table[1].split() == ["●", "layer", "1"] + [f"{first[k]:.1e}" for k in (0, 1, 2, 5, 10, 20)]
    assert [row.split()[:3] for row in table[2:]] == [["■", "layer", "2"], ["▲", "layer", "1"], ["◆", "layer", "2"]]


def test_text_from_stdin_and_a_file(runs, tmp_path):
    piped = gradients("-c", runs[0], "--text", "-", "--json", "--steps", 5, input=TINY_TEXT[:200])
    assert piped.exit_code == 0, piped.stderr
    assert json.loads(piped.stdout)["runs"][0]["text"] == "<stdin>"
    (tmp_path / "x.txt").write_text(TINY_TEXT[:200])
    from_file = gradients("-c", runs[0], "--text", tmp_path / "x.txt", "--json", "--steps", 5)
    assert json.loads(from_file.stdout)["runs"][0]["layers"] == json.loads(piped.stdout)["runs"][0]["layers"]


def test_png(runs, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "reach.png"
    result = gradients("-c", runs[0], "-c", runs[1], "--steps", 10, "--png", png)
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == f"wrote {png}\n"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_without_matplotlib_says_how_to_get_it(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    result = gradients("-c", runs[0], "--png", tmp_path / "reach.png")
    assert_one_line_error(result.exit_code, result.stdout, result.stderr, 1, "pip install 'charrnn[plot]'")
    assert not (tmp_path / "reach.png").exists()


@pytest.mark.parametrize("steps", ["0", "-3"])
def test_steps_below_one_is_a_usage_error(runs, steps):
    result = gradients("-c", runs[0], "--steps", steps)
    assert_one_line_error(
        result.exit_code, result.stdout, result.stderr, 2, f"--steps: expected an integer >= 1, got {steps}"
    )


def test_errors_are_one_line(runs, tmp_path):
    missing = gradients("-c", runs[0], "-c", tmp_path / "nope")
    assert_one_line_error(
        missing.exit_code, missing.stdout, missing.stderr, 1, f"{tmp_path / 'nope'}: no such checkpoint"
    )
    (tmp_path / "short.txt").write_text("she said")
    short = gradients("-c", runs[0], "--text", tmp_path / "short.txt", "--steps", 20)
    assert_one_line_error(
        short.exit_code, short.stdout, short.stderr, 2, "short.txt: 10 ids are too few for --steps 20"
    )
    nofile = gradients("-c", runs[0], "--text", tmp_path / "nope.txt")
    assert_one_line_error(nofile.exit_code, nofile.stdout, nofile.stderr, 2, "--text: ", "nope.txt: no such file")
    unknown = gradients("-c", runs[0], "--text", "-", input="she said Z")
    assert_one_line_error(unknown.exit_code, unknown.stdout, unknown.stderr, 2, "--text: <stdin>: characters not in")
