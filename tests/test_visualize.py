"""`charrnn visualize` and charrnn.activations: activations as training computes them, features, ranking, output."""

import re

import numpy as np
import pytest
from typer.testing import CliRunner

from charrnn.activations import Trace, correlations, features, top_units, trace
from charrnn.checkpoint import load_trained
from charrnn.cli import app
from charrnn.heatmap import SPARK, guesses
from charrnn.model import StackedRNN, forward, log_softmax
from charrnn.vocab import BOS, Vocab

from .conftest import ROOT
from .test_shell import train_tiny

runner = CliRunner()


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kwargs)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("visualize"))


def test_activations_match_the_batched_forward():
    vocab = Vocab.from_texts(['he said "no" (twice)\n'])
    model = StackedRNN(vocab.size, 6, 3, seed=1, dtype=np.float64)
    text = 'he said "no" (twice)\nhe'
    tr = trace(model, vocab, text)
    ids = np.array([BOS, *vocab.encode(text).tolist()])[:, None]  # (T, 1)
    logits, cache = forward(model.params, ids, model.zero_state(1))
    for l in range(3):
        np.testing.assert_allclose(tr.hs[:, l, :], cache["ups"][l][1:, 0, :], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tr.probs, np.exp(log_softmax(logits[1:])), rtol=1e-6, atol=1e-9)
    assert tr.seen.all()


def test_a_model_without_newlines_reads_each_line_as_a_record(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("train", ROOT / "configs" / "hello.yaml", "-q", "--set", "train.steps=20").exit_code == 0
    _, vocab, model, _ = load_trained(tmp_path / "runs" / "hello")
    tr = trace(model, vocab, "hello\nhell")
    alone = trace(model, vocab, "hell")
    assert tr.seen.tolist() == [True] * 5 + [False] + [True] * 4
    np.testing.assert_array_equal(tr.hs[6:], alone.hs)  # the state restarted at the line break


def test_features():
    f = features('a"b"(c(d))\nxy')
    assert f["inside quotes"].tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert f["inside parentheses"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    assert f["position in line"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1]


def test_correlations_match_numpy_and_ignore_constant_units():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(50, 4))
    acts[:, 2] = 0.3  # a unit that never moves
    f = rng.normal(size=50) + acts[:, 0]
    r = correlations(acts, f)
    expected = [np.corrcoef(acts[:, j], f)[0, 1] for j in (0, 1, 3)]
    np.testing.assert_allclose(r[[0, 1, 3]], expected, rtol=1e-12)
    assert r[2] == 0


def test_top_units_finds_a_planted_quote_unit():
    text = 'say "hi" and "bye" (now) "then"\n' * 4
    rng = np.random.default_rng(0)
    hs = np.tanh(rng.normal(size=(len(text), 2, 8)))  # (N, L, H) noise
    quoted = features(text)["inside quotes"]
    hs[:, 1, 5] = 0.9 * quoted - 0.45 + 0.05 * rng.normal(size=len(text))
    tr = Trace(text, np.ones(len(text), bool), hs.astype(np.float32), np.zeros((len(text), 4)))
    views, notes = top_units(tr, 1, [1, 2])
    assert views[0].title.startswith("layer 2 unit 5: r = +0.9") and views[0].title.endswith("with inside quotes")
    np.testing.assert_array_equal(views[0].values, tr.hs[:, 1, 5])
    assert len(views) == 3 and notes == []
    only_first, _ = top_units(tr, 2, [1])
    assert all(v.title.startswith("layer 1 ") for v in only_first) and len(only_first) == 6


def test_terminal_without_colour_shows_a_row_of_levels(run_dir):
    result = invoke("visualize", "-c", run_dir, "--text", "he said", "--layer", "1", "--neuron", "3")
    assert result.exit_code == 0 and result.stderr == ""
    _, vocab, model, _ = load_trained(run_dir)
    values = trace(model, vocab, "he said").hs[:, 0, 3]
    levels = "".join(SPARK[round((v + 1) / 2 * 7)] for v in values)
    assert result.stdout == f"activation under each line: ▁ -1 ... █ +1\n\nlayer 1 unit 3\nhe said\n{levels}\n"


def test_predictions_are_the_five_likeliest_next_characters(run_dir):
    result = invoke("visualize", "-c", run_dir, "--text", "-", "--neuron", "0", "--predictions", input="she (")
    assert result.exit_code == 0, result.stderr
    _, vocab, model, _ = load_trained(run_dir)
    tr = trace(model, vocab, "she (")
    top = guesses(tr.probs)
    assert BOS not in top and np.all(np.diff(np.take_along_axis(tr.probs, top, 1), axis=1) <= 0)
    rows = result.stdout.splitlines()[4:]  # after two legend lines, a blank one and the title
    assert rows[0] == "she (" and len(rows) == 2 + 5 + 1
    first = "".join("∎" if i == 1 else {"\n": "↵"}.get(vocab.chars[i - 2], vocab.chars[i - 2]) for i in top[:, 0])
    assert rows[2] == first and all(len(r) == 5 for r in rows[2:7])


def test_top_reports_the_features_it_could_not_rank(run_dir):
    result = invoke("visualize", "-c", run_dir, "--text", "he said that", "--top", "2")
    assert result.exit_code == 0
    assert result.stderr == (
        "inside quotes: constant in this text, no unit ranked for it\n"
        "inside parentheses: constant in this text, no unit ranked for it\n"
    )
    titles = [line for line in result.stdout.splitlines() if line.startswith("layer ")]
    assert len(titles) == 2 and all(t.endswith("with position in line") for t in titles)


def test_html_page_is_self_contained(run_dir, tmp_path):
    (tmp_path / "in.txt").write_text('he said "stop" (twice)\nshe ran')
    page = tmp_path / "units.html"
    result = invoke(
        "visualize", "-c", run_dir, "--text", tmp_path / "in.txt", "--top", "1", "--predictions", "--html", page
    )
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == f"wrote {page}\n"
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "<script" not in html and not re.search(r"(src|href)=", html)
    assert html.count("<h2>") == 3 and html.count('class="col"') == 3 * (len('he said "stop" (twice)') + 1 + 7)
    assert html.count('class="p"') == 5 * html.count('class="col"')
    assert "&quot;" in html and "with inside quotes</h2>" in html


@pytest.mark.parametrize(
    "args, message",
    [
        (["--text", "xyz!"], "Error: --text: characters not in the model's vocabulary: '!', 'x', 'y', 'z'\n"),
        (["--text", "he", "--neuron", "1", "--top", "2"], "Error: --neuron and --top: give one of them\n"),
        (["--text", "he", "--layer", "3"], "Error: --layer: expected 1..2 (the model has 2 layers), got 3\n"),
        (["--text", "he", "--neuron", "16"], "Error: --neuron: expected 0..15 (each layer has 16 units), got 16\n"),
        (["--text", "h"], "Error: --text: too short to rank units (no feature varies in it); pick one with --neuron\n"),
    ],
)
def test_bad_options_are_one_line_exit_2(run_dir, args, message):
    result = invoke("visualize", "-c", run_dir, *args)
    assert (result.exit_code, result.stderr, result.stdout) == (2, message, "")
