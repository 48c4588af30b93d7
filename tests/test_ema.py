"""train.ema: the weights' moving average, its checkpoint, exact resume, validation and the verbs that use it."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from charrnn import checkpoint
from charrnn.cli import app
from charrnn.config import load_config
from charrnn.data import load_corpus
from charrnn.evaluation import mean_nll, training_split
from charrnn.model import StackedRNN
from charrnn.optim import ema_update
from charrnn.run_dir import train_run
from charrnn.training import new_state, restore_state, train

from .helpers import assert_one_line_error, invoke, losses, snapshot, write_config
from .test_parallel import assert_same_run, config, run, weights


def test_update_matches_a_hand_computation_over_three_steps():
    average, ema = {"w": np.zeros(2)}, 0.2
    for t, w in enumerate((1.0, 2.0, 4.0)):
        ema_update(average, {"w": np.full(2, w)}, ema, t)
    # t=0: d = 1/10 -> 0.9; t=1: d = 2/11 -> (2 * 0.9 + 9 * 2) / 11 = 1.8; t=2: d = min(0.2, 3/12) -> 0.2*1.8 + 0.8*4
    assert np.allclose(average["w"], 3.56, rtol=0, atol=1e-12)


def test_the_loop_averages_each_update_from_the_initial_weights_and_skips_a_skipped_step(tmp_path, monkeypatch):
    cfg = load_config(write_config(tmp_path, train={"steps": 4, "ema": 0.5}))
    corpus = load_corpus(cfg.data)
    state = new_state(cfg, corpus.vocab.size)
    expected = {k: p.astype(np.float64) for k, p in state.model.params.items()}  # the average starts here
    real, updates = StackedRNN.loss_and_grads, []

    def nan_at_step_2(self, *args, **kwargs):
        loss, grads, h = real(self, *args, **kwargs)
        return (float("nan") if state.step == 1 else loss), grads, h

    def follow_by_hand(event, info):
        if event == "step" and math.isfinite(info["loss"]):  # t counts the updates that reached the weights
            t = len(updates)
            updates.append(t)
            d = min(0.5, (1 + t) / (10 + t))
            for k, p in state.model.params.items():
                expected[k] = d * expected[k] + (1 - d) * p

    monkeypatch.setattr(StackedRNN, "loss_and_grads", nan_at_step_2)
    summary = train(cfg, corpus, state, lambda s, kinds: None, follow_by_hand)
    assert summary["scored"] == "ema" and summary["skipped_steps"] == 1 and updates == [0, 1, 2]
    assert state.average is not None
    assert all(np.allclose(state.average.params[k], v, rtol=1e-6, atol=1e-7) for k, v in expected.items())
    assert not all(np.array_equal(state.average.params[k], p) for k, p in state.model.params.items())


def test_off_by_default_and_the_average_never_feeds_back_into_training(tmp_path):
    path = write_config(tmp_path, train={"steps": 12})
    absent = train_run(str(path), [f"train.out_dir={tmp_path / 'absent'}"])
    zero = train_run(str(path), [f"train.out_dir={tmp_path / 'zero'}", "train.ema=0"])
    averaged = train_run(str(path), [f"train.out_dir={tmp_path / 'ema'}", "train.ema=0.9"])
    assert (absent["scored"], zero["scored"], averaged["scored"]) == ("raw", "raw", "ema")
    assert losses(tmp_path / "absent") == losses(tmp_path / "zero")
    plain, kept = weights(tmp_path / "zero"), weights(tmp_path / "ema")
    assert not any(k.startswith("ema/") for k in plain)
    assert {k for k in kept if k.startswith("ema/")} == {f"ema/{k[6:]}" for k in plain if k.startswith("param/")}
    # the raw weights and the training losses are the run without the average, to the bit
    assert all(np.array_equal(v, kept[k]) for k, v in plain.items())
    train_losses = [[line["train_loss"] for line in losses(tmp_path / out)] for out in ("zero", "ema")]
    assert train_losses[0] == train_losses[1]
    assert {line["scored"] for line in losses(tmp_path / "ema")} == {"ema"}


def test_validation_scores_the_average_and_load_trained_gives_either(tmp_path):
    path = write_config(tmp_path, train={"steps": 12, "ema": 0.9, "workers": 1})
    run_dir = tmp_path / "run"
    summary = train_run(str(path), [f"train.out_dir={run_dir}"])
    meta, arrays = checkpoint.load(run_dir / "latest.json")
    cfg, vocab, averaged, _ = checkpoint.load_trained(run_dir / "latest.json")
    _, _, raw, _ = checkpoint.load_trained(run_dir / "latest.json", raw=True)
    assert all(np.array_equal(averaged.params[k], arrays[f"ema/{k}"]) for k in averaged.params)
    assert all(np.array_equal(raw.params[k], arrays[f"param/{k}"]) for k in raw.params)
    _, val, _ = training_split(cfg, vocab)
    B, T = cfg.train.batch_size, cfg.train.seq_length
    assert summary["val_loss"] == meta["metrics"]["val_loss"] == mean_nll(averaged, val, B, T)[0]
    assert summary["val_loss"] != mean_nll(raw, val, B, T)[0]
    # and a fresh state restores both from the checkpoint
    state = new_state(cfg, vocab.size)
    restore_state(state, meta, arrays)
    assert state.average is not None and np.array_equal(state.average.params["W_hy"], arrays["ema/W_hy"])


@pytest.mark.parametrize("workers", [1, 2])
def test_resume_is_exact_with_the_average(tmp_path, workers):
    path = config(tmp_path, steps=30, dropout=0.25, ema=0.95)
    run(path, "whole", f"train.workers={workers}")
    stopped = []

    def stop_at_17(event, info):
        if event == "step" and info["step"] == 17:
            stopped.append(True)

    first = run(path, "parts", f"train.workers={workers}", report=stop_at_17, stop_requested=lambda: bool(stopped))
    assert first["interrupted"] and first["step"] == 17
    run(path, "parts", f"train.workers={workers}", resume=True)
    assert any(k.startswith("ema/") for k in weights(tmp_path / "whole"))
    assert_same_run(tmp_path / "whole", tmp_path / "parts")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny LSTM trained 300 steps with train.ema 0.99, and the same without an average."""
    folder = tmp_path_factory.mktemp("ema")
    path = write_config(
        folder,
        model={"cell": "lstm"},
        train={"steps": 300, "eval_every": 100, "checkpoint_every": 100, "learning_rate": 1.0e-2},
    )
    for name, ema in (("ema", 0.99), ("plain", 0.0)):
        train_run(str(path), [f"train.out_dir={folder / name}", f"train.ema={ema}"])
    return folder


def test_eval_scores_the_average_unless_raw(runs):
    ema = json.loads(invoke("eval", "-c", runs / "ema", "--json").stdout)
    raw = json.loads(invoke("eval", "-c", runs / "ema", "--json", "--raw").stdout)
    assert (ema["weights"], raw["weights"]) == ("ema", "raw")
    assert ema["loss"] != raw["loss"] and abs(ema["loss"] - raw["loss"]) < 0.5
    text = invoke("eval", "-c", runs / "ema")
    assert text.exit_code == 0 and text.stderr == "weights ema (train.ema 0.99; --raw for the raw ones)\n"
    assert invoke("eval", "-c", runs / "ema", "--raw").stderr == "weights raw (--raw)\n"


@pytest.mark.parametrize("raw", [False, True])
def test_every_verb_says_which_weights_it_used(runs, raw):
    flag, used = (["--raw"], "raw") if raw else ([], "ema")
    for run_dir, expected in ((runs / "ema", used), (runs / "plain", "raw")):
        sample = invoke("sample", "-c", run_dir, "-n", "20", "-s", "1", "--json", *flag)
        assert sample.exit_code == 0 and sample.stderr == "" and json.loads(sample.stdout)["weights"] == expected
        info = json.loads(invoke("info", run_dir, "--json", *flag).stdout)
        assert info["weights_used"] == expected
        assert f"weights used {expected}" in invoke("info", run_dir, *flag).stdout.splitlines()[9]
        gates = invoke("visualize", "-c", run_dir, "--text", "the fox", "--saturation", "--json", *flag)
        assert gates.exit_code == 0 and json.loads(gates.stdout)["weights"] == expected
        reach = gradients(run_dir, "--json", *flag)
        assert reach.exit_code == 0 and json.loads(reach.stdout)["runs"][0]["weights"] == expected
    # on text output one stderr line, for a run that kept an average only
    line = "weights ema (train.ema 0.99; --raw for the raw ones)\n" if not raw else "weights raw (--raw)\n"
    assert invoke("sample", "-c", runs / "ema", "-n", "5", "-s", "1", *flag).stderr == line
    assert invoke("sample", "-c", runs / "plain", "-n", "5", "-s", "1", *flag).stderr == ""
    assert invoke("visualize", "-c", runs / "ema", "--text", "the fox", "--neuron", "1", *flag).stderr == line
    assert gradients(runs / "ema", *flag).stderr == f"{runs / 'ema'}: {line}"


def gradients(run_dir, *args):
    """`charrnn gradients` of one run over a line on stdin."""
    args = ["gradients", "-c", str(run_dir), "--text", "-", "-k", "3", *args]
    return CliRunner().invoke(app, args, input="the dog\n")


def test_the_average_differs_from_the_weights_where_it_should(runs):
    _, arrays = checkpoint.load(runs / "ema" / "latest.json")
    averaged, raw = arrays["ema/W_hy"], arrays["param/W_hy"]
    assert not np.array_equal(averaged, raw) and np.allclose(averaged, raw, atol=0.5)


@pytest.mark.parametrize("value", ["1", "1.5", "-0.1", "yes", "'0.9'"])
def test_bad_values_exit_2_with_nothing_written(tmp_path, value):
    path = write_config(tmp_path)
    before = snapshot(tmp_path)
    result = invoke("train", path, "--set", f"train.ema={value}")
    assert_one_line_error(result.exit_code, result.stdout, result.stderr, 2, "train.ema: expected a number in [0, 1)")
    assert snapshot(tmp_path) == before
