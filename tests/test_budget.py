"""train.steps: auto: a count fitted to train.max_seconds, kept by --resume, refused where it has no meaning."""

import itertools
import json
import math
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from charrnn import parallel, training
from charrnn.config import load_config
from charrnn.optim import learning_rate
from charrnn.run_dir import train_run

from .helpers import assert_one_line_error, invoke, losses, write_config

TEXT = "the quick brown fox jumps over the lazy dog\n" * 40
LR, LR_MIN = 1.0e-2, 1.0e-4


def budget_config(folder: Path, max_seconds: float = 2.0, **train) -> Path:
    """A tiny cosine run of train.steps: auto, logging every step so every rate is in metrics.jsonl."""
    keys = {
        "steps": "auto",
        "max_seconds": max_seconds,
        "lr_schedule": "cosine",
        "learning_rate": LR,
        "lr_min": LR_MIN,
        "warmup_steps": 10,
        "eval_every": 50,
        "checkpoint_every": 200,
        "log_every": 1,
        "out_dir": str(folder / "run"),
        **train,
    }
    return write_config(folder, text=TEXT, train=keys)


def fake_clock(monkeypatch, tick: float = 1e-3) -> None:
    """The loop's clock moves `tick` seconds per reading: the same count every time, whatever the machine does."""
    ticks = itertools.count()
    monkeypatch.setattr(training, "time", SimpleNamespace(perf_counter=lambda: next(ticks) * tick))


def lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_the_count_ends_the_schedule_at_its_floor_before_the_budget(tmp_path, monkeypatch):
    """The rates: warm-up, then the base rate while the stretch is timed, then cosine over the fixed count."""
    fake_clock(monkeypatch)
    path = budget_config(tmp_path)
    summary = train_run(str(path), [])
    fitted = summary["auto_steps"]
    steps = summary["steps"]
    assert (summary["stop_reason"], summary["step"], fitted["steps"]) == ("steps", steps, steps)
    assert fitted["fixed_at_step"] >= training.AUTO_WARM_STEPS + training.AUTO_MEASURE_STEPS
    assert summary["wall_seconds"] <= 2.0
    logged = lines(tmp_path / "run")
    assert [line["step"] for line in logged] == list(range(1, steps + 1))
    cfg = load_config(path).train
    fixed = cfg.__class__(**{**cfg.__dict__, "steps": steps})
    for line in logged:  # a line's step is the number of updates done: its rate was update step - 1's
        schedule = cfg if line["step"] <= fitted["fixed_at_step"] else fixed
        assert line["lr"] == learning_rate(schedule, line["step"] - 1)
    assert logged[fitted["fixed_at_step"] - 1]["lr"] == LR  # the stretch ran at the base rate
    assert logged[-1]["lr"] == LR_MIN  # the last update, step N-1 of N, runs at the floor


def test_a_resumed_run_keeps_the_count_and_every_rate(tmp_path, monkeypatch):
    """Stopped after its count was fixed and resumed: the same count, the same numbers to the bit."""
    path = budget_config(tmp_path)
    fake_clock(monkeypatch)
    whole = train_run(str(path), [f"train.out_dir={tmp_path / 'whole'}"])
    stopped: list[bool] = []
    stop_at = whole["auto_steps"]["fixed_at_step"] + 7

    def stop_after(event, info):
        if event == "step" and info["step"] == stop_at:
            stopped.append(True)

    parts = [f"train.out_dir={tmp_path / 'parts'}"]
    fake_clock(monkeypatch)
    first = train_run(str(path), parts, report=stop_after, stop_requested=lambda: bool(stopped))
    assert (first["step"], first["steps"]) == (stop_at, whole["steps"])
    fake_clock(monkeypatch)
    rest = train_run(str(path), parts, resume=True)
    assert rest["auto_steps"] == {"steps": whole["steps"], "from_checkpoint": True}
    assert (rest["step"], rest["stop_reason"]) == (whole["steps"], "steps")
    assert losses(tmp_path / "parts") == losses(tmp_path / "whole")
    info = json.loads(invoke("info", tmp_path / "parts", "--json").stdout)
    assert (info["step"], info["steps"]) == (whole["steps"], whole["steps"])


def test_two_workers_validate_together_at_a_fixed_last_step(tmp_path, monkeypatch):
    """The other workers learn the count from worker 0's lead: the last step, no multiple of eval_every,
    validates on all of them (a worker that did not would leave worker 0 waiting in the sum)."""
    fake_clock(monkeypatch)
    path = budget_config(tmp_path, eval_every=10_000, workers=2)
    summary = train_run(str(path), [])
    assert (summary["workers"], summary["stop_reason"], summary["step"]) == (2, "steps", summary["steps"])
    last = lines(tmp_path / "run")[-1]
    assert last["step"] == summary["steps"] and last["val_loss"] is not None


def test_a_real_budget_ends_near_its_count_and_says_so(tmp_path):
    """On the real clock, through the command. A loaded machine may slow the run after its stretch was timed,
    so the stop itself is the fake clock's test above; here, the wall time and what the run reports."""
    path = budget_config(tmp_path, max_seconds=2.0, log_every=100)
    began = time.perf_counter()
    done = invoke("train", path, "--json")
    wall = time.perf_counter() - began
    assert done.exit_code == 0, done.stderr
    summary = json.loads(done.stdout)
    steps, fitted = summary["steps"], summary["auto_steps"]
    assert 1.0 <= wall <= 4.0
    assert fitted["steps"] == steps and fitted["budget_seconds"] == 2.0 and fitted["steps_per_sec"] > 0
    assert summary["step"] == steps or summary["stop_reason"] == "max_seconds"
    assert "train.steps: auto: the count is fitted to the 2 s budget after a timed stretch of steps\n" in done.stderr
    assert f"train.steps: auto: {steps} steps fit the 2 s budget (" in done.stderr
    last = lines(tmp_path / "run")[-1]
    if summary["stop_reason"] == "steps":
        assert last["lr"] == pytest.approx(LR_MIN, abs=1e-4 * (LR - LR_MIN))


def test_auto_needs_a_budget_and_other_words_are_refused(tmp_path):
    path = write_config(tmp_path, train={"steps": "auto"})
    done = invoke("train", path)
    assert_one_line_error(
        done.exit_code,
        done.stdout,
        done.stderr,
        2,
        f"Error: {path}: train.steps: auto needs train.max_seconds > 0 (the budget the schedule is fitted to); "
        "set it, or give a number of steps\n",
    )
    done = invoke("train", path, "--set", "train.steps=lots")
    assert_one_line_error(
        done.exit_code, done.stdout, done.stderr, 2, "train.steps: expected a positive integer or auto, got 'lots'"
    )
    assert not (tmp_path / "runs").exists() and not (tmp_path / "run").exists()


def test_a_sweep_refuses_auto_and_the_plan_takes_a_budget_as_long(tmp_path):
    write_config(tmp_path, train={"steps": "auto", "max_seconds": 60})
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"config": "run.yaml", "space": {"model.hidden_size": [8, 16]}}))
    done = invoke("sweep", sweep)
    assert_one_line_error(
        done.exit_code, done.stdout, done.stderr, 2, "train.steps: auto fits each trial's count to its own speed"
    )
    big = write_config(
        tmp_path, "big.yaml", model={"hidden_size": 128}, train={"steps": "auto", "max_seconds": 1, "batch_size": 50}
    )
    assert parallel.plan(load_config(big), 67, available=2).workers == 2
    assert math.isclose(load_config(big).train.max_seconds, 1.0)
