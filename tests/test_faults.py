"""Faults: SIGINT/SIGTERM, a second Ctrl-C, kill -9 at random moments, and resuming to the same bits."""

import json
import os
import random
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from charrnn import checkpoint
from charrnn.model import StackedRNN
from charrnn.run_dir import train_run

from .helpers import COMMAND, assert_clean_run, assert_one_line_error, invoke, losses, write_config


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def latest_step(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "latest.json").read_text())["step"]
    except FileNotFoundError:
        return -1


def wait_until(ok, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not ok():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "the run made no progress"
        time.sleep(0.01)


def assert_checkpoints_load(run_dir: Path) -> None:
    """What a kill may leave: a stale lock, temporary files, unnamed weights; never a checkpoint that fails."""
    for kind in checkpoint.KINDS:
        if (run_dir / f"{kind}.json").exists():
            checkpoint.load(run_dir / f"{kind}.json")


def test_sigint_and_sigterm_save_at_a_step_boundary_and_say_how_to_resume(in_tmp):
    path = write_config(in_tmp, train={"steps": 10**6, "checkpoint_every": 50, "eval_every": 50})
    procs = {
        sig: subprocess.Popen(
            COMMAND + ["train", path.name, "-q", "--set", f"train.out_dir={sig.name}"],
            cwd=in_tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    for sig, proc in procs.items():
        wait_until(lambda sig=sig: latest_step(in_tmp / sig.name) >= 50, proc)
    # one writer: while it runs, a second train into its directory is refused and changes nothing
    second = invoke("train", path, "-q", "--resume", "--set", "train.out_dir=SIGINT")
    assert_one_line_error(
        second.exit_code,
        second.stdout,
        second.stderr,
        1,
        f"another charrnn train (pid {procs[signal.SIGINT].pid}) is writing",
    )
    for sig, proc in procs.items():
        proc.send_signal(sig)
    for sig, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        run_dir = in_tmp / sig.name
        step = latest_step(run_dir)
        assert proc.returncode == 128 + sig, stderr
        assert stdout == ""
        assert stderr.splitlines() == [
            f"interrupted at step {step}; checkpoint saved in {run_dir}",
            f"resume with: charrnn train {path.name} --set train.out_dir={sig.name} --resume",
        ]
        assert_clean_run(run_dir)
        hint = shlex.split(stderr.splitlines()[1].removeprefix("resume with: "))
        resumed = invoke(*hint[1:], "-q", "--set", f"train.steps={step + 2}")
        assert resumed.exit_code == 0, resumed.stderr
        assert latest_step(run_dir) == step + 2


def test_second_sigint_stops_at_once_and_keeps_the_last_checkpoint(in_tmp):
    """A real process, signalled twice in a row: the second lands in the step or in the interrupt's save
    (a few fsyncs); either way it exits 130 at once and leaves a checkpoint that loads."""
    path = write_config(in_tmp, train={"steps": 10**6, "checkpoint_every": 3})
    proc = subprocess.Popen(
        COMMAND + ["train", path.name, "-q"], cwd=in_tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_until(lambda: latest_step(in_tmp / "runs/run") >= 3, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert (
        "interrupted again: stopped at once; the last complete checkpoint is intact" in stderr
        or "interrupted at step" in stderr
    )
    assert_checkpoints_load(in_tmp / "runs/run")
    assert not (in_tmp / "runs/run/lock").exists()


def test_second_sigint_during_the_save_leaves_the_previous_checkpoint(in_tmp, monkeypatch):
    """Deterministic: Ctrl-C during step 6, then Ctrl-C again inside the write of the interrupt's checkpoint."""
    real_step, real_fsync = StackedRNN.loss_and_grads, os.fsync
    sent = []

    def first_during_step_6(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        if len(sent) == 0 and latest_step(in_tmp / "runs/run") == 5:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)
        return out

    def second_while_saving(fd):
        real_fsync(fd)
        if len(sent) == 1:
            sent.append(2)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(StackedRNN, "loss_and_grads", first_during_step_6)
    monkeypatch.setattr(os, "fsync", second_while_saving)
    result = invoke("train", write_config(in_tmp, train={"steps": 100, "eval_every": 100}), "-q")
    assert result.exit_code == 130
    assert result.stderr == "interrupted again: stopped at once; the last complete checkpoint is intact\n"
    assert_clean_run(in_tmp / "runs/run")
    assert latest_step(in_tmp / "runs/run") == 5


def _stop_at(k: int, signals: list):
    def report(event, info):
        if event == "step" and info["step"] == k:
            signals.append(signal.SIGINT)  # what the SIGINT handler does: the loop stops at the next boundary

    return report


def assert_same_run(a: Path, b: Path) -> None:
    """Same losses in metrics.jsonl and the same checkpoints, array by array, to the last bit."""
    assert losses(a) == losses(b)
    for kind in checkpoint.KINDS:
        meta_a, arrays_a = checkpoint.load(a / f"{kind}.json")
        meta_b, arrays_b = checkpoint.load(b / f"{kind}.json")
        for key in ("step", "window", "epoch", "optimizer_t", "metrics", "data_sha256", "bad_in_a_row"):
            assert meta_a[key] == meta_b[key], (kind, key)
        assert arrays_a.keys() == arrays_b.keys()
        for name in arrays_a:
            assert arrays_a[name].dtype == arrays_b[name].dtype
            assert arrays_a[name].tobytes() == arrays_b[name].tobytes(), (kind, name)


CONFIG = {"model": {"dropout": 0.25}, "train": {"steps": 30, "eval_every": 4, "checkpoint_every": 5, "log_every": 1}}


def test_interrupted_at_step_k_and_resumed_matches_the_uninterrupted_run_bit_for_bit(in_tmp):
    """k = 1, a validation step, a checkpoint step, an odd step, the epoch wrap (24 windows) and the step
    before last."""
    path = str(write_config(in_tmp, **CONFIG))
    train_run(path, ["train.out_dir=whole"])
    for k in (1, 4, 5, 11, 24, 29):
        out = [f"train.out_dir=k{k}"]
        signals = []
        stop = _stop_at(k, signals)
        stopped = train_run(path, out, report=stop, stop_requested=lambda signals=signals: bool(signals))
        assert stopped["interrupted"] and stopped["step"] == k
        assert train_run(path, out, resume=True)["step"] == 30
        assert_same_run(in_tmp / "whole", in_tmp / f"k{k}")


def test_kill_9_at_random_moments_then_resume_matches_the_uninterrupted_run(in_tmp):
    """SIGKILL the real command while it writes a checkpoint every step; every time, latest.json and best.json
    load; resumed to the end, the run equals one that was never killed, bit for bit."""
    path = write_config(
        in_tmp, model={"dropout": 0.2}, train={"steps": 150, "eval_every": 3, "checkpoint_every": 1, "log_every": 1}
    )
    seldom = "train.checkpoint_every=1000"  # where checkpoints are not under test: each costs a few fsyncs
    train_run(str(path), ["train.out_dir=whole", seldom])
    run_dir, chance, kills = in_tmp / "killed", random.Random(0), 0
    for _ in range(5):
        before = latest_step(run_dir)
        resume = ["--resume"] if before >= 0 else []
        proc = subprocess.Popen(
            COMMAND + ["train", path.name, "-q", "--set", "train.out_dir=killed", *resume],
            cwd=in_tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_until(lambda before=before, proc=proc: latest_step(run_dir) > before or proc.poll() is not None, proc)
        time.sleep(chance.uniform(0, 0.1))
        proc.kill()
        proc.wait()
        assert proc.returncode in (-signal.SIGKILL, 0), proc.stderr.read()
        assert_checkpoints_load(run_dir)
        kills += proc.returncode == -signal.SIGKILL
        if latest_step(run_dir) == 150:
            break
    assert kills >= 3  # the run was really cut, more than once
    if latest_step(run_dir) < 150:
        assert train_run(str(path), ["train.out_dir=killed", seldom], resume=True)["step"] == 150
    assert_clean_run(run_dir)
    assert_same_run(in_tmp / "whole", run_dir)
