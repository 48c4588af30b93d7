"""`charrnn sweep` end to end on a tiny text: grid and random search, pruning, interrupt and resume, an existing
Dask cluster, an address where no scheduler listens, and bad sweep files. Real clusters, on 127.0.0.1 only."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from charrnn.sweep_file import load_sweep

from .helpers import COMMAND, assert_one_line_error, invoke, losses, snapshot, write_config

ROOT = Path(__file__).parents[1]
GRID = {"model.hidden_size": [8, 12], "train.learning_rate": [1.0e-2, 3.0e-3]}


@pytest.fixture(autouse=True)
def _scratch_in_tmp_path(tmp_path, monkeypatch):
    """Dask's scratch space (a temporary folder) under tmp_path too, in this process and the ones it starts."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))


def write_sweep(folder: Path, name: str = "sweep.yaml", **keys) -> Path:
    """A sweep over the tiny run of helpers.write_config (H=8, L=2, 12 steps, validation every 4)."""
    if not (folder / "run.yaml").exists():
        write_config(folder)
    spec = {"config": "run.yaml", "space": GRID, "out_dir": str(folder / "out"), **keys}
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def json_lines(stdout: str) -> tuple[list[dict], dict]:
    lines = [json.loads(line) for line in stdout.splitlines()]
    return lines[:-1], lines[-1]


@contextlib.contextmanager
def started(*argv: str, cwd: Path, **kwargs):
    """A process in its own session, ended (TERM, then KILL) with all its children whatever the test did."""
    with open(cwd / f"{Path(argv[0]).name}-{argv[1]}.log", "w") as log:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
        try:
            yield proc
        finally:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=wait)
                    break


def interrupted(sweep: Path, sets: list[str], ready: list[Path]) -> tuple[int, str, str]:
    """`charrnn sweep` in its own process, Ctrl-C'd once every file of `ready` exists; its code, stdout, stderr."""
    proc = subprocess.Popen(
        [*COMMAND, "sweep", str(sweep), *sets],
        cwd=sweep.parent,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not all(path.exists() for path in ready):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C does: the whole process group, workers included
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, stdout, stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- refused before anything starts: no engine needed ---------------------------------------------------------


BAD = [
    ({"serach": "grid"}, "serach: unknown key (did you mean search?)"),
    ({"space": {"model.hidden_sise": [8]}}, "space: model.hidden_sise: unknown key (did you mean model.hidden_size?)"),
    ({"space": {"hidden_size": [8]}}, "space: hidden_size: expected a config key as section.key"),
    ({"space": {"model.hidden_size": [8, 0]}}, "space: model.hidden_size: expected a positive integer, got 0"),
    ({"space": {"train.learning_rate": ["1e-3"]}}, "train.learning_rate: expected a positive number, got '1e-3'"),
    ({"space": {}}, "space: empty"),
    ({"space": {"model.hidden_size": []}}, "space: model.hidden_size: expected a non-empty list"),
    (
        {"space": {"model.dropout": {"uniform": [0.0, 1.0]}}, "search": "random", "samples": 2},
        "space: model.dropout: uniform high: expected a number in [0, 1), got 1.0",
    ),
    (
        {"space": {"model.hidden_size": {"uniform": [8, 16]}}, "search": "random", "samples": 2},
        "space: model.hidden_size: uniform low: expected a positive integer, got 8.0",
    ),
    (
        {"space": {"train.learning_rate": {"loguniform": [0, 0.1]}}, "search": "tpe", "samples": 2},
        "space: train.learning_rate: loguniform: expected low > 0",
    ),
    (
        {"space": {"model.hidden_size": {"int": [16, 8]}}, "search": "random", "samples": 2},
        "space: model.hidden_size: int: expected low < high",
    ),
    (
        {"space": {"model.hidden_size": {"gaussian": [8, 16]}}, "search": "random", "samples": 2},
        "space: model.hidden_size: gaussian: unknown",
    ),
    ({"space": {"model.dropout": {"uniform": [0.0, 0.5]}}}, "a grid search needs a list of values"),
    ({"search": "random"}, "samples: missing; a random search needs the number of trials"),
    ({"search": "tpe", "samples": 0}, "samples: expected a positive integer, got 0"),
    ({"samples": 4}, "samples: a grid search runs every point"),
    ({"pruner": "asha!"}, "pruner: expected one of none, asha, hyperband, median"),
    ({"space": {"train.out_dir": ["a", "b"]}}, "space: train.out_dir: the sweep sets it"),
    ({"space": {"train.steps": ["auto", 12]}}, "train.steps: auto fits each trial's count to its own speed"),
    ({"config": "missing.yaml"}, "config: ", "missing.yaml: no such config file"),
    ({"repeats": 0}, "repeats: expected a positive integer (runs of each trial), got 0"),
    ({"repeats": 1.5}, "repeats: expected a positive integer (runs of each trial), got 1.5"),
    ({"repeats": "2"}, "repeats: expected a positive integer (runs of each trial), got '2'"),
    # tied keys: each part checked as a single key, no key twice, entries of the right length, values checked
    ({"space": {"model.cell,model.num_lyers": [["rnn", 1]]}}, "space: model.num_lyers: unknown key (did you mean"),
    ({"space": {"model.cell,train.out_dir": [["rnn", "a"]]}}, "space: train.out_dir: the sweep sets it"),
    ({"space": {"model.cell,model.cell": [["rnn", "gru"]]}}, "space: model.cell: appears twice in the space"),
    (
        {"space": {"model.cell,model.num_layers": [["rnn", 1]], "model.cell": ["gru"]}},
        "space: model.cell: appears twice in the space",
    ),
    (
        {"space": {"model.cell,model.num_layers": [["rnn", 1], ["gru", 1, 8]]}},
        "space: model.cell,model.num_layers: expected each entry a list of 2 values, got ['gru', 1, 8]",
    ),
    (
        {"space": {"model.cell,model.num_layers": ["rnn", 1]}},
        "space: model.cell,model.num_layers: expected each entry a list of 2 values, got 'rnn'",
    ),
    (
        {"space": {"model.cell,model.num_layers": [["rnn", 0]]}},
        'space: model.cell,model.num_layers: ["rnn", 0]: model.num_layers: expected a positive integer, got 0',
    ),
    (
        {"space": {"model.cell,model.num_layers": [["lstn", 1]]}},
        "model.cell: expected one of rnn, lstm, gru, got 'lstn'",
    ),
    (
        {"space": {"model.hidden_size,model.num_layers": {"uniform": [1, 2]}}, "search": "random", "samples": 2},
        "space: model.hidden_size,model.num_layers: tied keys take a list of entries, each a list of 2 values",
        "not a distribution",
    ),
    (
        {"space": {"model.cell,model.num_layers": [["rnn", 1], ["rnn", 1]]}},
        "space: model.cell,model.num_layers: an entry appears twice",
    ),
]


@pytest.mark.parametrize(("keys", "fragments"), [(b[0], b[1:]) for b in BAD])
def test_bad_sweep_files_are_refused_before_anything_starts(tmp_path, keys, fragments):
    sweep = write_sweep(tmp_path, **keys)
    done = invoke("sweep", sweep)
    assert_one_line_error(done.exit_code, done.stdout, done.stderr, 2, f"{sweep}: ", *fragments)
    assert not (tmp_path / "out").exists()


def test_bad_yaml_and_bad_set_options(tmp_path):
    sweep = write_sweep(tmp_path)
    sweep.write_text("config: run.yaml\nspace: {model.hidden_size: [8, 16]\n")
    done = invoke("sweep", sweep)
    assert_one_line_error(done.exit_code, done.stdout, done.stderr, 2, f"{sweep}:3:1: YAML syntax error")
    sweep = write_sweep(tmp_path)
    for option, fragment in [
        ("sampels=3", "--set sampels=3: sampels: unknown sweep key (did you mean samples?)"),
        ("train.stepz=3", "--set train.stepz=3: train.stepz: unknown key (did you mean train.steps?)"),
        ("train.workers=2", "--set train.workers=2: the sweep sets it"),
        ("model.hidden_size=16", "space: model.hidden_size: also given with --set"),
        ("data.val_fraction=0", "data.val_fraction: a sweep ranks its trials by validation loss"),
        ("repeats=-1", "--set repeats=-1: expected a positive integer (runs of each trial), got -1"),
    ]:
        done = invoke("sweep", sweep, "--set", option)
        assert_one_line_error(done.exit_code, done.stdout, done.stderr, 2, fragment)
    done = invoke("sweep", sweep, "--scheduler", "no address")
    assert_one_line_error(done.exit_code, done.stdout, done.stderr, 2, "--scheduler: expected an address")
    assert not (tmp_path / "out").exists()


def test_train_sample_and_help_never_import_the_engines(tmp_path):
    config = write_config(tmp_path)
    sweep = write_sweep(tmp_path, pruner="asha!")
    code = (
        "import sys; from typer.testing import CliRunner; from charrnn.cli import app\n"
        "r = CliRunner()\n"
        "assert r.invoke(app, ['--help']).exit_code == 0\n"
        "assert r.invoke(app, ['sweep', '--help']).exit_code == 0\n"
        f"assert r.invoke(app, ['sweep', {str(sweep)!r}]).exit_code == 2\n"
        f"assert r.invoke(app, ['train', {str(config)!r}, '-q', '--set', 'train.steps=2']).exit_code == 0\n"
        "assert r.invoke(app, ['sample', '-c', 'runs/run', '-n', '5']).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('optuna', 'dask', 'distributed')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_without_the_extra_one_line_names_the_pip_command(tmp_path, monkeypatch):
    import charrnn

    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    monkeypatch.delitem(sys.modules, "charrnn.sweep", raising=False)
    monkeypatch.delattr(charrnn, "sweep", raising=False)
    done = invoke("sweep", write_sweep(tmp_path))
    assert_one_line_error(done.exit_code, done.stdout, done.stderr, 1, "optuna", "pip install 'charrnn[sweep]'")


def test_a_folder_another_sweep_holds_is_one_line_naming_its_pid(tmp_path):
    pytest.importorskip("optuna")
    pytest.importorskip("distributed")
    from charrnn.run_dir import held

    sweep, out = write_sweep(tmp_path), tmp_path / "out"
    out.mkdir()
    with held(out / "sweep.lock", "busy", "it"):  # this process holds the folder, as a running sweep would
        done = invoke("sweep", sweep)
    fragment = f"{out}: another charrnn sweep (pid {os.getpid()}) is running in this folder"
    assert_one_line_error(done.exit_code, done.stdout, done.stderr, 1, fragment)
    assert sorted(p.name for p in out.iterdir()) == []


# --- real sweeps ------------------------------------------------------------------------------------------------


def test_grid_sweep_trains_every_point_as_a_run_directory(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    pytest.importorskip("distributed")
    monkeypatch.chdir(tmp_path)
    sweep = write_sweep(tmp_path)
    done = invoke("sweep", sweep, "--json")
    assert done.exit_code == 0, done.stderr
    trials, summary = json_lines(done.stdout)
    out = tmp_path / "out"
    # every grid point once, in order, the last key varying fastest
    assert [t["trial"] for t in trials] == ["t000", "t001", "t002", "t003"]
    assert [list(t["values"].values()) for t in trials] == [[8, 0.01], [8, 0.003], [12, 0.01], [12, 0.003]]
    assert {(t["state"], t["step"], t["steps"]) for t in trials} == {("complete", 12, 12)}
    best = min(trials, key=lambda t: t["best_val_loss"])
    assert summary["trials"] == summary["complete"] == 4 and summary["pruned"] == summary["failed"] == 0
    assert (summary["best_trial"], summary["best_values"]) == (best["trial"], best["values"])
    assert summary["steps_trained"] == 48 and summary["stop_reason"] == "done"
    # each trial an ordinary run directory: one worker, its values, its own checkpoints, how it ended
    for t in trials:
        run_dir = Path(t["run_dir"])
        assert run_dir == out / "trials" / t["trial"]
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert cfg["model"]["hidden_size"] == t["values"]["model.hidden_size"]
        assert (cfg["train"]["workers"], cfg["train"]["threads"], cfg["train"]["out_dir"]) == (1, 1, str(run_dir))
        assert json.loads((run_dir / "trial.json").read_text())["state"] == "complete"
    listed = invoke("runs", out / "trials", "--json")
    assert [Path(r["run"]).name for r in json.loads(listed.stdout)] == ["t000", "t001", "t002", "t003"]
    assert invoke("info", out / "trials" / "t002").exit_code == 0
    # the engines' own logging went to the log, the table and leaderboard to stderr
    log = (out / "sweep.log").read_text()
    assert "distributed" in log and "Traceback" not in log
    assert "distributed" not in done.stderr and "optuna" not in done.stderr.lower()
    assert "t000 running" in done.stderr and f"best: {best['trial']}" in done.stderr
    assert (out / "leaderboard.md").read_text().splitlines()[2].startswith(f"| 1 | {best['trial']} |")

    # best.yaml: the best trial's complete run config, trained again as it is
    best_yaml = yaml.safe_load((out / "best.yaml").read_text())
    assert best_yaml["model"]["hidden_size"] == best["values"]["model.hidden_size"]
    assert best_yaml["train"]["workers"] == "auto" and best_yaml["train"]["out_dir"] is None
    again = invoke("train", out / "best.yaml", "--set", "train.steps=3", "--json", "-q")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["step"] == 3 and (tmp_path / "runs" / "best" / "latest.json").exists()

    # the folder now holds a sweep: it needs --resume or --force; --resume of a finished one trains nothing
    before = snapshot(out / "trials")
    done = invoke("sweep", sweep)
    assert_one_line_error(done.exit_code, done.stdout, done.stderr, 1, "already holds a sweep", "--resume", "--force")
    done = invoke("sweep", sweep, "--resume", "--json")
    assert done.exit_code == 0, done.stderr
    assert json_lines(done.stdout)[0] == trials and snapshot(out / "trials") == before
    done = invoke("sweep", sweep, "--resume", "--set", "search=random", "--set", "samples=4")
    assert_one_line_error(done.exit_code, done.stdout, done.stderr, 2, "cannot resume, the sweep changed (search)")


def test_a_sweep_over_the_cell_trains_each_and_best_yaml_names_it(tmp_path):
    pytest.importorskip("optuna")
    pytest.importorskip("distributed")
    done = invoke("sweep", write_sweep(tmp_path, space={"model.cell": ["rnn", "lstm"]}), "--json")
    assert done.exit_code == 0, done.stderr
    trials, summary = json_lines(done.stdout)
    assert [(t["values"], t["state"]) for t in trials] == [({"model.cell": c}, "complete") for c in ("rnn", "lstm")]
    for t in trials:
        info = json.loads(invoke("info", t["run_dir"], "--json").stdout)
        assert info["cell"] == t["values"]["model.cell"]
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    assert best["model"]["cell"] == summary["best_values"]["model.cell"]


def test_repeats_train_each_trial_with_other_seeds_and_rank_it_by_the_mean(tmp_path):
    optuna = pytest.importorskip("optuna")
    pytest.importorskip("distributed")
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from charrnn.loss_chart import read_metrics

    # a pruner, so that each trial waits for the answer to every validation it posts (the median one never
    # prunes with fewer than 5 trials finished)
    sweep = write_sweep(tmp_path, space={"model.hidden_size": [8, 12]}, repeats=2, pruner="median")
    done = invoke("sweep", sweep, "--json")
    assert done.exit_code == 0, done.stderr
    trials, summary = json_lines(done.stdout)
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["t000-r0", "t000-r1", "t001-r0", "t001-r1"]
    study = optuna.load_study(
        study_name="charrnn", storage=JournalStorage(JournalFileBackend(str(out / "study.journal")))
    )
    for t, frozen in zip(trials, study.trials):
        dirs = [out / "trials" / f"{t['trial']}-r{r}" for r in range(2)]
        records = [json.loads((d / "trial.json").read_text()) for d in dirs]
        seeds = [yaml.safe_load((d / "config.yaml").read_text())["train"]["seed"] for d in dirs]
        assert seeds == [0, 1] and [r["seed"] for r in records] == seeds and [r["repeat"] for r in records] == [0, 1]
        bests = [json.loads((d / "best.json").read_text())["metrics"]["best_val_loss"] for d in dirs]
        assert [r["best_val_loss"] for r in records] == bests and bests[0] != bests[1]  # other seeds, other runs
        assert t["best_val_loss"] == pytest.approx(sum(bests) / 2) and t["spread"] == [min(bests), max(bests)]
        assert [r["run_dir"] for r in t["repeats"]] == [str(d) for d in dirs] and (t["step"], t["steps"]) == (24, 24)
        # Optuna saw, and the pruners would judge, the mean of the repeats' losses at each validation
        curves = [dict(read_metrics(d / "metrics.jsonl")[1]) for d in dirs]
        assert frozen.intermediate_values == {k: pytest.approx((curves[0][k] + curves[1][k]) / 2) for k in (4, 8, 12)}
        assert frozen.value == pytest.approx(t["best_val_loss"])
    best = min(trials, key=lambda t: t["best_val_loss"])
    assert (summary["best_trial"], summary["best_val_loss"], summary["best_spread"]) == (
        best["trial"],
        best["best_val_loss"],
        best["spread"],
    )
    low, high = best["spread"]
    row = f"| 1 | {best['trial']} | {best['values']['model.hidden_size']} | 24/24 | {best['best_val_loss']:.4f} | "
    board = (out / "leaderboard.md").read_text()
    assert board.startswith("| # | trial | hidden_size | steps | mean best | spread | at step | state |")
    assert board.splitlines()[2].startswith(row + f"{low:.4f}..{high:.4f} | 12 | complete |")
    assert f"mean best validation loss {best['best_val_loss']:.4f} over 2 seeds ({low:.4f}..{high:.4f})" in done.stderr
    header = (out / "best.yaml").read_text().splitlines()[0]
    assert f"mean best validation loss {best['best_val_loss']:.4f} over 2 seeds, {low:.4f}..{high:.4f}" in header
    assert yaml.safe_load((out / "best.yaml").read_text())["train"]["seed"] == 0
    listed = invoke("runs", out / "trials", "--json")
    assert len(json.loads(listed.stdout)) == 4
    done = invoke("sweep", sweep, "--resume", "--set", "repeats=1")
    assert_one_line_error(done.exit_code, done.stdout, done.stderr, 2, "cannot resume, the sweep changed (repeats)")


def test_a_sweep_of_repeats_interrupted_then_resumed_completes_every_repeat(tmp_path):
    pytest.importorskip("optuna")
    pytest.importorskip("distributed")
    # a short trial that finishes; a long one that Ctrl-C stops in its second repeat, its first one done
    sweep = write_sweep(tmp_path, space={"train.steps": [20, 3000]})
    sets = ["--set", "repeats=2", "--set", "train.checkpoint_every=20", "--set", "train.eval_every=100"]
    trials = tmp_path / "out" / "trials"
    code, _, stderr = interrupted(sweep, sets, [trials / "t000-r1" / "trial.json", trials / "t001-r1" / "latest.json"])
    assert code == 130 and "t001 stopped at step" in stderr, stderr
    stopped = json.loads((trials / "t001-r1" / "latest.json").read_text())["step"]
    assert 0 < stopped < 3000 and json.loads((trials / "t001-r0" / "trial.json").read_text())["state"] == "complete"
    kept = {n: snapshot(trials / n) for n in ("t000-r0", "t000-r1", "t001-r0")}

    done = invoke("sweep", sweep, *sets, "--resume", "--json")
    assert done.exit_code == 0, done.stderr
    rows, summary = json_lines(done.stdout)
    assert [(t["trial"], t["state"], t["step"]) for t in rows] == [("t000", "complete", 40), ("t001", "complete", 6000)]
    assert [[(r["state"], r["step"], r["seed"]) for r in t["repeats"]] for t in rows] == [
        [("complete", 20, 0), ("complete", 20, 1)],
        [("complete", 3000, 0), ("complete", 3000, 1)],
    ]
    assert f"t001 running from step {3000 + stopped}" in done.stderr
    snaps = {n: snapshot(trials / n) for n in kept}
    assert snaps == kept  # the finished trial and the finished repeat, byte for byte
    again = invoke("train", trials / "t001-r1" / "config.yaml", "-q", "--set", f"train.out_dir={tmp_path / 'again'}")
    assert again.exit_code == 0, again.stderr
    assert losses(trials / "t001-r1") == losses(tmp_path / "again")  # the stopped repeat continued exactly
    done = invoke("sweep", sweep, *sets, "--resume")
    assert done.exit_code == 0 and "its 2 trials have finished; nothing to train" in done.stderr, done.stderr


TIED = {"model.cell,model.num_layers,model.hidden_size": [["rnn", 1, 12], ["gru", 2, 6]]}


def test_a_tied_grid_crossed_with_a_key_trains_each_combination_with_the_tied_values(tmp_path):
    pytest.importorskip("optuna")
    pytest.importorskip("distributed")
    sweep = write_sweep(tmp_path, space={**TIED, "train.learning_rate": [1.0e-2, 3.0e-3]})
    done = invoke("sweep", sweep, "--json", "--set", "train.steps=4")
    assert done.exit_code == 0, done.stderr
    trials, summary = json_lines(done.stdout)
    keys = ["model.cell", "model.num_layers", "model.hidden_size", "train.learning_rate"]
    expected = [["rnn", 1, 12, 1.0e-2], ["rnn", 1, 12, 3.0e-3], ["gru", 2, 6, 1.0e-2], ["gru", 2, 6, 3.0e-3]]
    assert [[t["values"][k] for k in keys] for t in trials] == expected and summary["complete"] == 4
    assert list(summary["best_values"]) == keys  # each key separately, as if single
    for t in trials:
        info = json.loads(invoke("info", t["run_dir"], "--json").stdout)
        model = info["config"]["model"]
        assert [info["cell"], model["num_layers"], model["hidden_size"]] == [t["values"][k] for k in keys[:3]]
        assert info["parameters"]["W_hht.1"]["shape"][1] == t["values"]["model.hidden_size"]
        assert json.loads((Path(t["run_dir"]) / "trial.json").read_text())["values"] == t["values"]
    out = tmp_path / "out"
    header = "| # | trial | cell | num_layers | hidden_size | learning_rate |"
    assert (out / "leaderboard.md").read_text().startswith(header)
    best = yaml.safe_load((out / "best.yaml").read_text())["model"]
    assert [best["cell"], best["num_layers"], best["hidden_size"]] == [summary["best_values"][k] for k in keys[:3]]
    done = invoke("sweep", sweep, "--json", "--set", "train.steps=4", "--resume")  # finished: nothing to train
    assert done.exit_code == 0, done.stderr
    assert json_lines(done.stdout)[0] == trials


def test_a_random_search_draws_whole_tied_entries(tmp_path):
    pytest.importorskip("optuna")
    pytest.importorskip("distributed")
    sweep = write_sweep(tmp_path, space=TIED, search="random", samples=3)
    done = invoke("sweep", sweep, "--json", "--set", "train.steps=2", "-q")
    assert done.exit_code == 0, done.stderr
    trials, summary = json_lines(done.stdout)
    assert summary["complete"] == 3
    entries = [dict(zip(["model.cell", "model.num_layers", "model.hidden_size"], e)) for e in TIED[next(iter(TIED))]]
    assert all(t["values"] in entries for t in trials), trials
    for t in trials:
        cfg = yaml.safe_load((Path(t["run_dir"]) / "config.yaml").read_text())["model"]
        assert {f"model.{k}": cfg[k] for k in ("cell", "num_layers", "hidden_size")} == t["values"]
    # resumed to draw one more: the study's labels map back to the same values
    done = invoke("sweep", sweep, "--json", "--set", "train.steps=2", "-q", "--resume", "--set", "samples=4")
    assert done.exit_code == 0, done.stderr
    more = json_lines(done.stdout)[0]
    assert more[:3] == trials and more[3]["values"] in entries and more[3]["state"] == "complete"


def test_a_tied_trial_killed_before_its_row_was_saved_gets_its_values_from_the_study(tmp_path):
    pytest.importorskip("optuna")
    from charrnn import sweep as engine

    sweep = load_sweep(write_sweep(tmp_path, space=TIED, search="random", samples=2))
    sweep.out_dir.mkdir()
    study = engine._open_study(sweep)
    trial = study.ask()
    label = engine._suggest(trial, sweep.space[0])
    (frozen,) = engine._open_study(sweep).get_trials()  # read back from the journal, as --resume does
    assert frozen.params == {next(iter(TIED)): label} and frozen.user_attrs == {}
    cell, layers, hidden = json.loads(label)
    values = {"model.cell": cell, "model.num_layers": layers, "model.hidden_size": hidden}
    assert engine._row_of(frozen, sweep)["values"] == values and [cell, layers, hidden] in TIED[next(iter(TIED))]


SHIPPED = sorted((ROOT / "configs" / "sweeps").glob("*.yaml")) + sorted((ROOT / "bench" / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_shipped_sweep_file_loads_and_passes_its_checks(path):
    sweep = load_sweep(path)
    assert sweep.trials() >= 1 and sweep.config.exists()


def test_the_cells_sweep_matches_parameter_counts_as_its_comments_say():
    """configs/sweeps/cells.yaml: every (cell, layers) once at equal training, each near the 2 x 128 LSTM's count."""
    from charrnn.model import StackedRNN

    path = ROOT / "configs" / "sweeps" / "cells.yaml"
    sweep = load_sweep(path)
    (tied,) = sweep.space

    def count(cell, H, L):  # V = 67: Tiny Shakespeare's 65 characters plus <s> and </s>
        return sum(p.size for p in StackedRNN(67, H, L, cell=cell).params.values())

    target = count("lstm", 128, 2)
    assert sorted((c, n) for c, n, _ in tied.values) == [(c, n) for c in ("gru", "lstm", "rnn") for n in (1, 2, 3)]
    for cell, layers, hidden in tied.values:
        n = count(cell, hidden, layers)
        assert abs(n - target) / target < 0.01 and f"[{cell}, {layers}, {hidden}]  " in path.read_text()
        assert f"{n:,}" in path.read_text()  # the count its comment gives
    assert (sweep.search, sweep.pruner, sweep.base.model.dropout) == ("grid", "none", 0.0)


def test_the_local_workers_keep_glibc_s_own_malloc_trimming(tmp_path):
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_ for its workers; under it a 2 x 512 trial trained 20 % slower."""
    pytest.importorskip("distributed")
    from distributed import Client

    from charrnn.sweep import local_cluster

    cluster = local_cluster(1, tmp_path / "sweep.log", str(tmp_path))
    try:
        with Client(cluster, set_as_default=False) as client:
            (environ,) = client.run(lambda: dict(os.environ)).values()
    finally:
        cluster.close()
    assert "MALLOC_TRIM_THRESHOLD_" not in environ and environ["OPENBLAS_NUM_THREADS"] == "1"


def test_random_search_prunes_on_an_existing_dask_cluster(tmp_path):
    """A real `dask scheduler` and `dask worker` on 127.0.0.1; the pruner answers the trials through it."""
    pytest.importorskip("optuna")
    distributed = pytest.importorskip("distributed")
    dask = str(Path(sys.executable).with_name("dask"))
    if not Path(dask).exists():
        pytest.skip("no dask command beside this python")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    worker = [dask, "worker", address, "--host", "127.0.0.1", "--no-dashboard", "--nthreads", "1", "--nworkers", "2"]
    scheduler = [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    with started(*scheduler, cwd=tmp_path), started(*worker, cwd=tmp_path, env=env):
        with distributed.Client(address, timeout=60) as client:  # both workers up before the sweep looks
            client.wait_for_workers(2, timeout=60)
        sweep = write_sweep(
            tmp_path,
            space={"train.learning_rate": {"loguniform": [1.0e-3, 3.0e-2]}, "model.hidden_size": {"int": [8, 16]}},
            search="random",
            samples=6,
            pruner="asha",
            concurrent=1,  # one at a time: the pruner sees the trials in order, so the test knows the outcome
        )
        done = invoke("sweep", sweep, "--json", "--scheduler", address, "--set", "train.steps=24")
        # a text the workers cannot read (nor this machine, which leaves the check to them): one clear error
        gone = tmp_path / "elsewhere" / "t.txt"
        unread = invoke(
            "sweep",
            sweep,
            "--scheduler",
            address,
            "--set",
            f"data.path={gone}",
            "--set",
            f"out_dir={tmp_path / 'out2'}",
        )
    assert done.exit_code == 0, done.stderr
    trials, summary = json_lines(done.stdout)
    assert f"on 2 Dask workers of {address}" in done.stderr
    assert len(trials) == 6 and summary["complete"] + summary["pruned"] == 6
    for t in trials:
        assert 1.0e-3 <= t["values"]["train.learning_rate"] <= 3.0e-2 and 8 <= t["values"]["model.hidden_size"] <= 16
    pruned = [t for t in trials if t["state"] == "pruned"]
    assert pruned and summary["pruned"] == len(pruned) and summary["steps_trained"] < 6 * 24
    for t in pruned:  # stopped at a validation, its directory kept with a checkpoint and marked pruned
        run_dir = Path(t["run_dir"])
        assert t["step"] < 24 and t["step"] % 4 == 0
        assert json.loads((run_dir / "trial.json").read_text())["state"] == "pruned"
        assert json.loads((run_dir / "latest.json").read_text())["step"] == t["step"]
    assert trials[0]["state"] == "complete"  # the first trial at each rung goes on

    assert unread.exit_code == 1 and unread.stdout == ""
    last = unread.stderr.splitlines()[-1]
    assert last.startswith("Error: trial t000 on the worker at tcp://127.0.0.1:") and "Traceback" not in unread.stderr
    assert f"{gone}: data file not found" in last and "the same path on every worker" in last


def test_interrupt_then_resume_continues_the_unfinished_trials_exactly(tmp_path):
    pytest.importorskip("optuna")
    pytest.importorskip("distributed")
    # two short trials that finish, two long ones that Ctrl-C stops after their first checkpoints
    sweep = write_sweep(tmp_path, space={"train.steps": [20, 3000], "train.learning_rate": [1.0e-2, 3.0e-3]})
    sets = ["--set", "train.checkpoint_every=20", "--set", "train.eval_every=100"]
    trials = tmp_path / "out" / "trials"
    ready = [trials / n / f for n, f in [("t000", "trial.json"), ("t001", "trial.json")]]
    ready += [trials / n / "latest.json" for n in ("t002", "t003")]
    code, stdout, stderr = interrupted(sweep, sets, ready)
    assert code == 130, stderr
    assert stdout == ""
    resume = f"resume with: charrnn sweep {sweep} {' '.join(sets)} --resume"
    assert resume in stderr and "t002 stopped at step" in stderr, stderr
    stopped = {n: json.loads((trials / n / "latest.json").read_text())["step"] for n in ("t002", "t003")}
    assert all(0 < step < 3000 for step in stopped.values()), stopped
    finished = {n: snapshot(trials / n) for n in ("t000", "t001")}

    done = invoke("sweep", sweep, *sets, "--resume", "--json")
    assert done.exit_code == 0, done.stderr
    rows, summary = json_lines(done.stdout)
    assert [(t["trial"], t["state"], t["step"]) for t in rows] == [
        ("t000", "complete", 20),
        ("t001", "complete", 20),
        ("t002", "complete", 3000),
        ("t003", "complete", 3000),
    ]
    assert {n: snapshot(trials / n) for n in finished} == finished  # untouched, byte for byte
    assert f"t002 running from step {stopped['t002']}" in done.stderr
    # continued from its checkpoint exactly as one uninterrupted run of its config
    again = invoke("train", trials / "t002" / "config.yaml", "-q", "--set", f"train.out_dir={tmp_path / 'again'}")
    assert again.exit_code == 0, again.stderr
    assert losses(trials / "t002") == losses(tmp_path / "again")


def test_an_address_where_no_scheduler_listens_is_one_line_within_bounded_time(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    from charrnn import sweep as engine

    monkeypatch.setattr(engine, "CONNECT_SECONDS", 2)
    sweep = write_sweep(tmp_path)
    address = f"tcp://127.0.0.1:{free_port()}"
    began = time.monotonic()
    done = invoke("sweep", sweep, "--scheduler", address)
    assert time.monotonic() - began < 15
    assert_one_line_error(done.exit_code, done.stdout, done.stderr, 1, f"--scheduler {address}: no Dask scheduler")
    assert not (tmp_path / "out").exists()  # no half-made sweep left behind
