"""`charrnn eval`: mean NLL with the state carried through the text, unknown characters, novelty."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from charrnn.checkpoint import load_trained
from charrnn.cli import app
from charrnn.data import load_corpus
from charrnn.evaluation import encode_text, novelty
from charrnn.vocab import BOS

from .conftest import ROOT

runner = CliRunner()
LINES = "the cat sat\non the mat\n\nthe dog ate\nthe cat\n" * 20


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kwargs)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small line-records model, trained once for the module; returns its run directory."""
    tmp = tmp_path_factory.mktemp("eval")
    (tmp / "t.txt").write_text(LINES)
    config = tmp / "lines.yaml"
    config.write_text(
        "data:\n  path: t.txt\n  records: line\n  val_fraction: 0.2\nmodel:\n  hidden_size: 24\n"
        f"train:\n  seq_length: 10\n  batch_size: 4\n  steps: 60\n  eval_every: 20\n  out_dir: {tmp / 'run'}\n"
    )
    assert invoke("train", config, "-q").exit_code == 0
    return tmp / "run"


def stepwise_nll(model, ids):
    """The definition, one step at a time: -log p(next | everything before) over every target but <s>."""
    h, total, count = model.zero_state(1), 0.0, 0
    for x, y in zip(ids[:-1], ids[1:]):
        logits, h = model.step(np.array([x]), h)
        if y != BOS:
            z = logits[0].astype(np.float64)
            total += np.log(np.exp(z - z.max()).sum()) + z.max() - z[y]
            count += 1
    return total / count


def test_eval_of_a_file_is_the_stepwise_nll_of_its_records(trained, tmp_path):
    text = "the cat ate\nthe mat sat on the dog\n"
    (tmp_path / "x.txt").write_text(text)
    result = invoke("eval", "-c", trained, tmp_path / "x.txt", "--json")
    assert result.exit_code == 0, result.stderr
    got = json.loads(result.stdout)
    cfg, vocab, model, _ = load_trained(trained)
    ids, _ = encode_text(text, "x", vocab, "line")
    assert ids[0] == BOS and got["tokens"] == len(ids) - 2  # 33 characters and 2 </s>: neither <s> is a target
    assert got["loss"] == pytest.approx(stepwise_nll(model, ids), rel=1e-5)
    assert got["bpc"] == pytest.approx(got["loss"] / math.log(2))
    piped = invoke("eval", "-c", trained, "-", input=text)
    assert piped.stdout.startswith(f"loss {got['loss']:.4f} nats/token  {got['bpc']:.4f} bits/char  {got['tokens']}")


def test_default_text_is_the_validation_split(trained):
    result = invoke("eval", "-c", trained, "--json")
    assert result.exit_code == 0, result.stderr
    got = json.loads(result.stdout)
    cfg, _, model, meta = load_trained(trained)
    val = load_corpus(cfg.data).val
    assert got["tokens"] == np.count_nonzero(val[1:] != BOS) and got["step"] == meta["step"]
    assert got["loss"] == pytest.approx(stepwise_nll(model, val), rel=1e-5)
    assert got["loss"] < 1.5  # it learned something: ln(vocab) would be ~2.8


def test_unknown_characters_are_an_error_or_skipped(trained, tmp_path):
    (tmp_path / "x.txt").write_text("the cat!\nthe Zebra!\n")
    result = invoke("eval", "-c", trained, tmp_path / "x.txt")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        f"Error: {tmp_path / 'x.txt'}: characters not in the model's vocabulary: "
        "'!' (2x), 'Z' (1x), 'b' (1x), 'r' (1x); drop them with --skip-unknown\n"
    )
    skipped = invoke("eval", "-c", trained, tmp_path / "x.txt", "--skip-unknown", "--json")
    assert skipped.exit_code == 0
    assert skipped.stderr == "skipped 5 characters not in the vocabulary: '!' (2x), 'Z' (1x), 'b' (1x), 'r' (1x)\n"
    (tmp_path / "clean.txt").write_text("the cat\nthe ea\n")
    clean = json.loads(invoke("eval", "-c", trained, tmp_path / "clean.txt", "--json").stdout)
    assert json.loads(skipped.stdout)["loss"] == pytest.approx(clean["loss"])


def test_eval_errors(trained, tmp_path):
    missing = invoke("eval", "-c", trained, tmp_path / "nope.txt")
    assert (missing.exit_code, missing.stderr) == (1, f"Error: {tmp_path / 'nope.txt'}: no such file\n")
    assert invoke("eval", "-c", tmp_path / "nope").exit_code == 1
    assert invoke("eval", "-c", trained, "--novelty", "-3").exit_code == 2
    hello_dir = tmp_path / "hello"
    assert invoke("train", ROOT / "configs" / "hello.yaml", "-q", "--set", f"train.out_dir={hello_dir}").exit_code == 0
    no_val = invoke("eval", "-c", hello_dir)
    assert no_val.exit_code == 1 and "no validation text" in no_val.stderr and "pass a FILE" in no_val.stderr


def test_novelty_counts_ngrams_absent_from_the_reference():
    assert novelty(["abcd"], ["abc", "xcd"], sizes=(2, 3)) == {2: 0.0, 3: 0.5}
    assert novelty(["abcab"], ["zabc"], sizes=(3, 6)) == {3: 2 / 3, 6: None}  # bca and cab are new; no 6-gram to judge
    assert novelty(["ab", "cd"], ["abcd"], sizes=(3,)) == {3: None}  # never across records


def test_eval_novelty_reports_sample_and_held_out(trained):
    result = invoke("eval", "-c", trained, "--novelty", "300", "--json", "--seed", "1")
    novel = json.loads(result.stdout)["novelty"]
    assert novel["sample_chars"] == 300 and novel["seed"] == 1
    # the held-out lines all occur in training (the text repeats), so none of their n-grams is new
    assert set(novel["held_out"].values()) <= {0.0, None}
    assert all(share is None or 0 <= share <= 1 for share in novel["sample"].values())
    text = invoke("eval", "-c", trained, "--novelty", "300", "--seed", "1").stdout.splitlines()
    assert text[1].startswith("novel n-grams in 300 sampled chars: 5-grams ")
