"""Data-parallel training: local worker processes and MPI ranks against one process, exactness, stops, kills."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from charrnn import checkpoint, parallel
from charrnn.config import load_config
from charrnn.run_dir import train_run

from .helpers import COMMAND, assert_clean_run, assert_one_line_error, invoke, losses, write_config

TEXT = "the quick brown fox jumps over the lazy dog\n" * 200
SHAPE = {"model": {"hidden_size": 32, "num_layers": 2}, "train": {"seq_length": 16, "batch_size": 8}}


def config(folder: Path, steps: int = 50, dropout: float = 0.0, cell: str = "rnn", **train) -> Path:
    return write_config(
        folder,
        text=TEXT,
        model={**SHAPE["model"], "dropout": dropout, "cell": cell},
        train={**SHAPE["train"], "steps": steps, "eval_every": 10, "checkpoint_every": 10, "log_every": 1, **train},
    )


def run(path: Path, out: str, *overrides: str, **kwargs) -> dict:
    return train_run(str(path), [f"train.out_dir={path.parent / out}", *overrides], **kwargs)


def weights(run_dir: Path) -> dict[str, np.ndarray]:
    return checkpoint.load(run_dir / "latest.json")[1]


def relative_gap(a: list[dict], b: list[dict], key: str) -> float:
    assert [x["step"] for x in a] == [y["step"] for y in b]
    return max(abs(x[key] - y[key]) / abs(x[key]) for x, y in zip(a, b) if x[key] is not None)


def test_tracks_are_shared_out_whole_and_evenly():
    assert parallel.track_slices(50, 3) == [slice(0, 17), slice(17, 34), slice(34, 50)]
    assert parallel.track_slices(2, 2) == [slice(0, 1), slice(1, 2)]


@pytest.mark.parametrize(
    "hidden, batch, steps, cores, expected",
    [
        (128, 50, 2000, 2, (2, 1)),  # char-rnn's default shape: one worker per core, one thread each
        (512, 50, 2000, 4, (4, 1)),
        (64, 32, 2000, 2, (2, 1)),  # names.yaml's shape: 16 tracks of 64 units each still gain
        (128, 16, 2000, 4, (2, 2)),  # at least 8 tracks per worker; the cores left become threads
        (32, 50, 2000, 2, (1, 2)),  # (25, 32)·(32, 32) products: calls cost more than a second core gains
        (8, 4, 12, 2, (1, 2)),  # a toy
        (128, 50, 5, 2, (1, 2)),  # five steps: not worth starting a process
        (128, 1, 2000, 2, (1, 2)),  # one track, one worker
    ],
)
def test_auto_plan(tmp_path, hidden, batch, steps, cores, expected):
    cfg = load_config(
        write_config(
            tmp_path, model={"hidden_size": hidden}, train={"seq_length": 50, "batch_size": batch, "steps": steps}
        )
    )
    chosen = parallel.plan(cfg, 67, available=cores)
    assert (chosen.workers, chosen.threads) == expected and chosen.reason.startswith("auto")


def test_set_workers_and_threads_are_honoured_and_checked(tmp_path):
    cfg = load_config(config(tmp_path), ["train.workers=3", "train.threads=2"])
    assert parallel.plan(cfg, 30, available=2) == parallel.Plan(3, 2, "train.workers")
    result = invoke("train", config(tmp_path), "--set", "train.workers=9")
    assert_one_line_error(
        result.exit_code, result.stdout, result.stderr, 2, "train.workers: 9 workers need at least as many tracks"
    )
    assert not (tmp_path / "runs").exists()
    for bad in ("0", "two", "1.5"):
        result = invoke("train", config(tmp_path), "--set", f"train.threads={bad}")
        assert_one_line_error(result.exit_code, result.stdout, result.stderr, 2, "train.threads: expected a positive")


@pytest.mark.parametrize("cell, steps", [("rnn", 500), ("lstm", 150)])  # an LSTM step costs 4 vanilla ones
def test_two_workers_match_one_and_show_it(tmp_path, cell, steps):
    """Without dropout the losses agree to 1e-4 over 50 steps; eval of the weights after `steps` to 1e-3."""
    path = config(tmp_path, steps=steps, cell=cell)
    one = run(path, "one", "train.workers=1", "train.steps=50")
    two = run(path, "two", "train.workers=2", "train.steps=50")
    assert (one["workers"], two["workers"], two["threads"]) == (1, 2, 1) and two["sum_ms_per_step"] > 0
    assert relative_gap(losses(tmp_path / "one"), losses(tmp_path / "two"), "train_loss") < 1e-4
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert {(json.loads(line)["workers"], json.loads(line)["threads"]) for line in lines} == {(2, 1)}
    info = json.loads(invoke("info", tmp_path / "two", "--json").stdout)
    assert (info["workers"], info["threads"]) == (2, 1)
    for out, workers in (("one", 1), ("two", 2)):
        run(path, out, f"train.workers={workers}", resume=True)
    evals = [json.loads(invoke("eval", "-c", tmp_path / out, "--json").stdout)["loss"] for out in ("one", "two")]
    assert abs(evals[0] - evals[1]) / evals[0] < 1e-3


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_same_seed_and_workers_give_the_same_run_and_resume_is_exact(tmp_path, cell):
    """With dropout: two 2-worker runs are equal to the bit, and so is one stopped at step 17 and resumed."""
    path = config(tmp_path, steps=30, dropout=0.25, cell=cell)
    run(path, "a", "train.workers=2")
    run(path, "b", "train.workers=2")
    stopped = []

    def stop_at_17(event, info):
        if event == "step" and info["step"] == 17:
            stopped.append(True)

    first = run(path, "c", "train.workers=2", report=stop_at_17, stop_requested=lambda: bool(stopped))
    assert first["interrupted"] and first["step"] == 17
    run(path, "c", "train.workers=2", resume=True)
    for other in ("b", "c"):
        assert_same_run(tmp_path / "a", tmp_path / other)
    # another worker count resumes too: the checkpoint holds every track's state
    run(path, "d", "train.workers=2", report=stop_at_17, stop_requested=lambda: True)
    assert run(path, "d", "train.workers=1", resume=True)["step"] == 30


def assert_same_run(run_dir: Path, other: Path) -> None:
    """Equal to the bit: every logged loss and every array of latest.json; and clean."""
    assert losses(run_dir) == losses(other)
    a, b = weights(run_dir), weights(other)
    assert a.keys() == b.keys() and all(np.array_equal(v, b[k]) for k, v in a.items())
    assert_clean_run(other)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def start_training(path: Path, out: str, *args: str) -> tuple[subprocess.Popen, list[int]]:
    """The real command with 2 workers, in its own session (as a terminal's job); returns it and its workers
    once a first checkpoint shows it is training."""
    proc = subprocess.Popen(
        [*COMMAND, "train", path.name, "--set", "train.workers=2", "--set", f"train.out_dir={out}", *args],
        cwd=path.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not (path.parent / out / "latest.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    started = children(proc.pid)  # the worker, and multiprocessing's resource tracker: neither may outlive the run
    assert sum("spawn_main" in Path(f"/proc/{p}/cmdline").read_text() for p in started) == 1, started
    return proc, started


def resume_matches_the_uninterrupted_run(path: Path, run_dir: Path) -> None:
    """Resume a stopped 2-worker run for 3 more steps: it equals, to the bit, one run that never stopped."""
    step = json.loads((run_dir / "latest.json").read_text())["step"]
    steps = f"train.steps={step + 3}"
    resumed = invoke(
        "train", path, "-q", "--set", "train.workers=2", "--set", f"train.out_dir={run_dir}", "--set", steps, "--resume"
    )
    assert resumed.exit_code == 0, resumed.stderr
    run(path, "whole", "train.workers=2", steps)
    assert_same_run(path.parent / "whole", run_dir)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_every_worker_at_a_step_boundary(tmp_path, sig, code, cell):
    path = config(tmp_path, steps=100000, dropout=0.25, cell=cell, checkpoint_every=5)
    proc, workers = start_training(path, "run", "-q")
    os.killpg(proc.pid, sig) if sig == signal.SIGINT else proc.send_signal(sig)  # Ctrl-C reaches the whole job
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert "resume with: charrnn train run.yaml --set train.workers=2 --set train.out_dir=run --resume" in stderr
    assert gone_within(workers, 5)
    assert_clean_run(tmp_path / "run")
    resume_matches_the_uninterrupted_run(path, tmp_path / "run")


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("victim", ["main", "worker"])
def test_kill_9_leaves_no_orphan_and_an_intact_checkpoint_to_resume(tmp_path, victim, cell):
    path = config(tmp_path, steps=100000, dropout=0.25, cell=cell, checkpoint_every=5)
    proc, workers = start_training(path, "run", "-q")
    worker = next(p for p in workers if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text())
    os.kill(proc.pid if victim == "main" else worker, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=30)
    if victim == "worker":
        assert proc.returncode == 1 and "Traceback" not in stderr
        assert stderr.startswith("Error: worker 1 (pid ") and stderr.count("\n") == 1, stderr
        assert "stopped unexpectedly (killed by signal 9)" in stderr
    assert gone_within(workers, 5)
    checkpoint.load(tmp_path / "run" / "latest.json")
    resume_matches_the_uninterrupted_run(path, tmp_path / "run")


# ---- MPI: real mpiexec, two ranks on this machine


def mpiexec(*args: str, cwd: Path, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MPIEXEC, "-n", "2", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")


@pytest.fixture
def mpi():
    pytest.importorskip("mpi4py")
    if MPIEXEC is None:
        pytest.skip("no mpiexec (pip install 'charrnn[mpi]')")


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_two_mpi_ranks_train_as_two_local_workers(tmp_path, mpi, cell):
    path = config(tmp_path, steps=50, dropout=0.25, cell=cell)
    local = run(path, "local", "train.workers=2")
    done = mpiexec(*COMMAND, "train", path.name, "--set", "train.out_dir=ranks", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # rank 0 alone writes stdout: one JSON line
    assert (summary["workers"], summary["step"]) == (2, 50) and summary["sum_ms_per_step"] > 0
    assert done.stderr.startswith("training on 2 workers x 1 thread (mpiexec ranks)\n")
    assert local["step"] == 50
    assert_same_run(tmp_path / "local", tmp_path / "ranks")


def test_mpi_refuses_a_conflicting_worker_count_and_a_different_text_on_one_rank(tmp_path, mpi):
    path = config(tmp_path)
    done = mpiexec(*COMMAND, "train", path.name, "--set", "train.workers=3", cwd=tmp_path)
    assert_one_line_error(
        done.returncode, done.stdout, done.stderr, 2, "train.workers: 3 conflicts with the 2 ranks mpiexec started"
    )
    (tmp_path / "other.txt").write_text(TEXT.replace("dog", "cat"))
    rank = [*COMMAND, "train", path.name, "--set", "train.out_dir=run"]
    done = subprocess.run(
        [MPIEXEC, "-n", "1", *rank, ":", "-n", "1", *rank, "--set", "data.path=other.txt"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(done.returncode, done.stdout, done.stderr, 1, "rank 1 on ", "read a different text")
    assert not (tmp_path / "run").exists()


def test_without_mpi4py_under_mpiexec_one_line_says_what_to_install(tmp_path):
    """As mpiexec would start rank 0 of 2, with an mpi4py that cannot load."""
    broken = tmp_path / "site" / "mpi4py"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('libmpi.so.12: cannot open shared object file')\n")
    env = {**os.environ, "PMI_SIZE": "2", "PMI_RANK": "0", "PYTHONPATH": str(tmp_path / "site")}
    done = subprocess.run(
        [*COMMAND, "train", config(tmp_path)], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60
    )
    assert_one_line_error(done.returncode, done.stdout, done.stderr, 1, "pip install 'charrnn[mpi]'")


def test_with_two_workers_divergence_max_seconds_and_early_stop_still_work(tmp_path):
    path = config(tmp_path, steps=100000)
    failed = invoke("train", path, "-q", "--set", "train.workers=2", "--set", "train.learning_rate=1.0e+300")
    assert_one_line_error(failed.exit_code, failed.stdout, failed.stderr, 1, "made the weights non-finite")
    assert not (tmp_path / "runs").exists()  # it failed before its first checkpoint: nothing half-made remains
    timed = run(path, "timed", "train.workers=2", "train.max_seconds=1")
    assert timed["stop_reason"] == "max_seconds" and 0 < timed["step"] < 100000
    assert json.loads((tmp_path / "timed" / "latest.json").read_text())["step"] == timed["step"]
    early = run(path, "early", "train.workers=2", "train.early_stop_patience=1", "train.learning_rate=0.5")
    assert early["stop_reason"] == "early_stop" and early["step"] % 10 == 0
    assert_clean_run(tmp_path / "early")
