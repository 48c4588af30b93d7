"""The real commands, end to end, on tmp_path."""

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from charrnn import checkpoint
from charrnn.cli import app
from charrnn.config import DataConfig
from charrnn.data import load_corpus
from charrnn.evaluation import mean_nll
from charrnn.model import StackedRNN

from .conftest import ROOT

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_hello_trains_and_samples_hello(in_tmp):
    result = invoke("train", ROOT / "configs" / "hello.yaml")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # progress and summary are diagnostics: stderr only
    assert "done: 300 steps" in result.stderr
    assert (in_tmp / "runs" / "hello" / "latest.json").is_file()
    result = invoke("sample", "--prime", "h")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "hello\n"
    greedy = invoke("sample", "--prime", "he", "--temperature", "0", "--num", "2")
    assert greedy.stdout == "hello\nhello\n"


def test_shakespeare_lowers_val_loss(in_tmp, shakespeare):
    result = invoke(
        "train",
        ROOT / "configs" / "shakespeare-128.yaml",
        "--set",
        f"data.path={shakespeare}",
        "--set",
        "train.steps=300",
        "--set",
        "train.eval_every=150",
        "--quiet",
    )
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    meta = json.loads((in_tmp / "runs" / "shakespeare-128" / "latest.json").read_text())
    corpus = load_corpus(DataConfig(path=str(shakespeare)))
    untrained, _ = mean_nll(StackedRNN(corpus.vocab.size, 128, 2), corpus.val, 50, 50)
    assert untrained > 4.0  # about ln(67): it knows nothing yet
    assert meta["metrics"]["best_val_loss"] < untrained - 1.5
    sample = invoke(
        "sample", "-c", in_tmp / "runs" / "shakespeare-128", "--prime", "ROMEO:", "-n", "200", "--seed", "3"
    )
    assert sample.exit_code == 0 and sample.stdout.startswith("ROMEO:") and sample.stdout.endswith("\n")
    again = invoke("sample", "-c", in_tmp / "runs" / "shakespeare-128", "--prime", "ROMEO:", "-n", "200", "--seed", "3")
    assert again.stdout == sample.stdout


def tiny_config(tmp_path, steps=20, **train):
    (tmp_path / "t.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 40)
    extra = "".join(f"  {k}: {v}\n" for k, v in train.items())
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "data:\n  path: t.txt\n  val_fraction: 0.1\nmodel:\n  hidden_size: 16\n  num_layers: 2\n"
        f"train:\n  seq_length: 8\n  batch_size: 4\n  steps: {steps}\n  eval_every: 5\n"
        f"  checkpoint_every: 5\n{extra}"
    )
    return path


def test_config_error_is_one_line_exit_2_and_touches_nothing(in_tmp):
    path = tiny_config(in_tmp, learning_rate="-1")
    result = invoke("train", path)
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {path}: train.learning_rate: expected a positive number, got -1\n")
    assert not (in_tmp / "runs").exists()
    result = invoke("train", tiny_config(in_tmp), "--set", "train.batch_size=500")
    assert result.exit_code == 2 and "train.batch_size: 500 tracks" in result.stderr
    assert not (in_tmp / "runs").exists()


def test_existing_run_needs_resume_or_force(in_tmp):
    path = tiny_config(in_tmp)
    assert invoke("train", path, "-q").exit_code == 0
    refused = invoke("train", path, "-q")
    assert refused.exit_code == 1 and "--resume" in refused.stderr and "--force" in refused.stderr
    assert invoke("train", path, "-q", "--force").exit_code == 0
    longer = invoke("train", path, "-q", "--resume", "--set", "train.steps=30", "--json")
    assert longer.exit_code == 0
    summary = json.loads(longer.stdout)
    assert summary["step"] == 30 and summary["run_dir"] == str(in_tmp / "runs" / "tiny")
    logged = [json.loads(line) for line in (in_tmp / "runs" / "tiny" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in logged] == [5, 10, 15, 20, 25, 30]
    assert all(m["val_loss"] is not None for m in logged)
    assert json.loads((in_tmp / "runs" / "tiny" / "latest.json").read_text())["step"] == 30
    changed = invoke("train", path, "-q", "--resume", "--set", "train.steps=40", "--set", "model.hidden_size=8")
    assert changed.exit_code == 2 and "model.hidden_size" in changed.stderr


def test_resume_before_any_checkpoint_starts_from_zero(in_tmp):
    path = tiny_config(in_tmp, log_every=10)
    result = invoke("train", path, "--resume")
    assert result.exit_code == 0, result.stderr
    assert "no checkpoint to resume yet; starting from step 0" in result.stderr
    assert [line.split()[1] for line in result.stderr.splitlines() if line.startswith("step ")] == ["10/20", "20/20"]
    assert json.loads((in_tmp / "runs" / "tiny" / "latest.json").read_text())["step"] == 20


def test_resumed_run_matches_an_uninterrupted_one(in_tmp):
    path = tiny_config(in_tmp, steps=20, optimizer="adam")
    assert invoke("train", path, "-q", "--set", "train.out_dir=whole").exit_code == 0
    assert invoke("train", path, "-q", "--set", "train.out_dir=split", "--set", "train.steps=13").exit_code == 0
    assert invoke("train", path, "-q", "--set", "train.out_dir=split", "--resume").exit_code == 0
    whole = checkpoint.load(in_tmp / "whole" / "latest.json")
    split = checkpoint.load(in_tmp / "split" / "latest.json")
    assert whole[0]["metrics"] == split[0]["metrics"]
    for name, array in whole[1].items():
        np.testing.assert_array_equal(array, split[1][name], err_msg=name)


def test_sample_errors(in_tmp):
    result = invoke("sample")
    assert result.exit_code == 1 and "no checkpoint under ./runs" in result.stderr
    assert invoke("train", ROOT / "configs" / "hello.yaml", "-q").exit_code == 0
    result = invoke("sample", "--prime", "hex!")
    assert result.exit_code == 2
    assert result.stderr == "Error: --prime: characters not in the model's vocabulary: '!', 'x'\n"
    for args, option in [
        (["--length", "-1"], "--length"),
        (["--temperature", "-0.5"], "--temperature"),
        (["--top-k", "0"], "--top-k"),
    ]:
        result = invoke("sample", *args)
        assert result.exit_code == 2 and result.stderr.startswith(f"Error: {option}: expected"), result.stderr
    assert result.stdout == ""


def test_damaged_checkpoint_is_a_clear_error(in_tmp):
    assert invoke("train", ROOT / "configs" / "hello.yaml", "-q").exit_code == 0
    weights = next((in_tmp / "runs" / "hello").glob("weights-*.npz"))
    weights.write_bytes(weights.read_bytes()[:100])
    result = invoke("sample", "--prime", "h")
    assert result.exit_code == 1 and "damaged" in result.stderr and "Traceback" not in result.stderr


def test_installed_command_runs(in_tmp):
    """`python -m charrnn` as a subprocess: the real process, exit codes and streams."""
    done = subprocess.run(
        [sys.executable, "-m", "charrnn", "train", ROOT / "configs" / "hello.yaml"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, "-m", "charrnn", "sample", "--prime", "h"], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, "hello\n")
    done = subprocess.run([sys.executable, "-m", "charrnn", "train", "nope.yaml"], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (2, "Error: nope.yaml: no such config file\n")
