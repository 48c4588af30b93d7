"""Stopping rules and schedules in the loop: max_seconds, early stop, plateau, and resuming through them."""

import json
from types import SimpleNamespace

import numpy as np
from typer.testing import CliRunner

import charrnn.training as train_mod
from charrnn import checkpoint
from charrnn.cli import app
from charrnn.config import load_config
from charrnn.data import load_corpus
from charrnn.training import new_state, train

runner = CliRunner()


def tiny(tmp_path, **train_keys):
    (tmp_path / "t.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 40)
    path = tmp_path / "tiny.yaml"
    keys = {"seq_length": 8, "batch_size": 4, "steps": 40, "eval_every": 5, "checkpoint_every": 100, **train_keys}
    path.write_text(
        "data:\n  path: t.txt\nmodel:\n  hidden_size: 16\ntrain:\n" + "".join(f"  {k}: {v}\n" for k, v in keys.items())
    )
    return path


def run_loop(path, val_losses=None, seconds_per_step=None, monkeypatch=None):
    """train() on a tiny config; optionally scripted validation losses and a clock that a step advances."""
    cfg = load_config(path)
    corpus = load_corpus(cfg.data)
    state = new_state(cfg, corpus.vocab.size)
    events, saves = [], []
    clock = SimpleNamespace(now=0.0, perf_counter=lambda: clock.now)
    if seconds_per_step is not None:
        monkeypatch.setattr(train_mod, "time", clock)  # only the loop's clock: a step takes exactly this long
    if val_losses is not None:
        losses = iter(val_losses)
        monkeypatch.setattr(train_mod, "mean_nll", lambda *args: (next(losses), 1))

    def report(event, info):
        events.append((event, info))
        if event == "step" and seconds_per_step is not None:
            clock.now += seconds_per_step

    summary = train(cfg, corpus, state, lambda s, kinds: saves.append((s.step, kinds)) or "ckpt", report)
    return summary, events, saves


def test_max_seconds_stops_cleanly_measures_and_saves(tmp_path, monkeypatch):
    summary, events, saves = run_loop(
        tiny(tmp_path, max_seconds=11.5), seconds_per_step=1.0, monkeypatch=monkeypatch, val_losses=[3.0, 2.0, 1.5]
    )
    assert (summary["step"], summary["stop_reason"], summary["interrupted"]) == (12, "max_seconds", False)
    # validations at 5 and 10, then one where time ran out, so the best checkpoint can be the last step
    assert [i["step"] for e, i in events if e == "eval"] == [5, 10, 12]
    assert saves[-1] == (12, ("latest", "best")) and summary["best_step"] == 12


def test_early_stop_counts_validations_without_a_new_best(tmp_path, monkeypatch):
    path = tiny(tmp_path, early_stop_patience=3)
    summary, events, saves = run_loop(
        path, val_losses=[3.0, 2.0, 2.5, 1.9, 2.0, 2.1, 2.2, 9, 9], monkeypatch=monkeypatch
    )
    assert (summary["step"], summary["stop_reason"]) == (35, "early_stop")
    assert (summary["best_step"], summary["best_val_loss"], summary["evals_since_best"]) == (20, 1.9, 3)
    assert saves[-1] == (35, ("latest",))


def test_plateau_lowers_the_rate_when_validation_stalls(tmp_path, monkeypatch):
    path = tiny(tmp_path, lr_schedule="plateau", lr_decay=0.5, lr_patience=2, learning_rate="1.0e-2", steps=30)
    _, events, _ = run_loop(path, val_losses=[3.0, 2.0, 2.5, 2.1, 1.0, 1.1], monkeypatch=monkeypatch)
    lrs = {i["step"]: i["lr"] for e, i in events if e == "step"}
    assert lrs[20] == 1e-2 and lrs[21] == 5e-3 and lrs[30] == 5e-3  # two stalls after step 10's best, at 15 and 20


def test_plateau_run_resumes_bit_exact(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # a high rate with patience 1: validation stalls at step 20, the rate halves before the cut at 23
    path = tiny(tmp_path, lr_schedule="plateau", lr_decay=0.5, lr_patience=1, learning_rate="5.0e-2")

    def cli(*args):
        result = runner.invoke(app, ["train", str(path), "-q", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.stderr

    cli("--set", "train.out_dir=whole")
    cli("--set", "train.out_dir=split", "--set", "train.steps=23")  # validates at 23, off the schedule
    cli("--set", "train.out_dir=split", "--resume")
    whole = checkpoint.load(tmp_path / "whole" / "latest.json")
    split = checkpoint.load(tmp_path / "split" / "latest.json")
    assert whole[0]["plateau"]["scale"] == 0.5  # the schedule really moved
    assert whole[0]["plateau"] == split[0]["plateau"]
    assert whole[0]["metrics"]["val_loss"] == split[0]["metrics"]["val_loss"]
    for name, array in whole[1].items():
        np.testing.assert_array_equal(array, split[1][name], err_msg=name)
    logged = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [m["lr"] for m in logged if m["step"] == 25] == [2.5e-2]  # the resumed run kept the lowered rate


def test_train_says_why_it_stopped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", str(tiny(tmp_path, max_seconds="1.0e-9"))], catch_exceptions=False)
    assert result.exit_code == 0
    assert "done: 0 steps (stopped: train.max_seconds reached), train loss -" in result.stderr
    meta = json.loads((tmp_path / "runs" / "tiny" / "latest.json").read_text())
    assert meta["step"] == 0
    again = runner.invoke(
        app,
        ["train", str(tiny(tmp_path)), "--resume", "--json", "-q", "--set", "train.max_seconds=0"],
        catch_exceptions=False,
    )
    assert again.exit_code == 0 and json.loads(again.stdout)["stop_reason"] == "steps"
