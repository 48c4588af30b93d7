"""The bench scripts end to end on tiny inputs: they are how bench/README.md's figures are reproduced."""

import json
import math
import os
import re
import subprocess
import sys

import pytest

from .conftest import ROOT

# a second corpus unlike the play: code, with tabs, digits and a non-ASCII character
CODE = "def f(x):\n\treturn x * 2  # doubles\n\nprint(f(21), 'π')\n" * 12


def run_bench(script: str, *args, cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    """The script in cwd, its temporary files (sweep runs, speed's scratch) under cwd too; env adds variables."""
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *map(str, args)],
        cwd=cwd,
        env={**os.environ, **(env or {}), "TMPDIR": str(cwd)},
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_quality_races_torch_on_a_second_corpus(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "code.txt").write_text(CODE, encoding="utf-8")
    done = run_bench(
        "quality.py",
        "--data",
        tmp_path / "code.txt",
        "--sizes",
        "1x8",
        "--steps",
        20,
        "--seconds",
        1,
        "--every",
        10,
        "--threads",
        1,
        "--set",
        "train.seq_length=8",
        "--set",
        "train.batch_size=4",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "## 1 x 8 on code.txt" in out
    steps_part, time_part = out.split("### equal wall-clock: 1 s of training")
    rows = dict(re.findall(r"^\| (charrnn|torch) \| 20 \| [\d.]+ \| ([\d.]+) \|", steps_part, re.M))
    assert set(rows) == {"charrnn", "torch"}, steps_part
    ours, theirs = float(rows["charrnn"]), float(rows["torch"])
    # same weights, data and math for 20 steps: only float32 rounding may tell the two apart
    assert math.isfinite(ours) and abs(ours - theirs) < 1e-3, (ours, theirs)
    assert f"charrnn - torch: {ours - theirs:+.4f} nats" in steps_part
    assert len(re.findall(r"^\| (charrnn|torch) \| \d+ \| [\d.]+ \| [\d.]+ \|", time_part, re.M)) == 2, time_part


@pytest.mark.parametrize("cell, seeds", [("lstm", 1), ("gru", 2)])
def test_quality_races_the_gated_cells_from_the_same_weights(tmp_path, cell, seeds):
    pytest.importorskip("torch")
    (tmp_path / "code.txt").write_text(CODE, encoding="utf-8")
    done = run_bench(
        "quality.py",
        *("--cell", cell, "--seeds", seeds, "--data", tmp_path / "code.txt", "--sizes", "1x8"),
        *("--steps", 20, "--seconds", 0, "--every", 10, "--threads", 1),
        *("--set", "train.seq_length=8", "--set", "train.batch_size=4"),
        # a rate at which a wrong copy (a gate block out of place, the GRU's r and z rows of b_hh trained)
        # moves torch's loss by 0.02 nats or more in 20 steps
        *("--set", "train.learning_rate=0.03"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"## 1 x 8 on code.txt: cell {cell}, " in out and "equal wall-clock" not in out
    rows = re.findall(r"^\| (charrnn|torch) \| 20 \| [\d.]+ \| ([\d.]+) \|", out, re.M)
    assert [name for name, _ in rows] == ["charrnn", "torch"] * seeds, out
    finals = {name: [float(v) for n, v in rows if n == name] for name in ("charrnn", "torch")}
    for ours, theirs in zip(finals["charrnn"], finals["torch"]):
        # same weights, data and math for 20 steps: only float32 rounding may tell the two apart
        assert math.isfinite(ours) and abs(ours - theirs) < 1e-3, (ours, theirs)
    if seeds > 1:
        assert finals["charrnn"][0] != finals["charrnn"][1]  # each seed draws its own weights
        mean = sum(finals["charrnn"]) / seeds
        each = " | ".join(f"{v:.4f}" for v in finals["charrnn"])
        assert f"| charrnn | {each} | {mean:.4f} |" in out.split(f"mean of {seeds} seeds")[1]


def test_sweep_targets_measures_asha_and_the_cluster(tmp_path):
    pytest.importorskip("optuna")
    pytest.importorskip("distributed")
    (tmp_path / "code.txt").write_text(CODE * 4, encoding="utf-8")
    tiny = ["--steps", 12, "--hidden", 8, "--seq-length", 8, "--batch-size", 4, "--every", 4]
    done = run_bench(
        "sweep_targets.py",
        "--text",
        tmp_path / "code.txt",
        *tiny,
        "--random",
        3,
        "--repeats",
        1,
        "--skip",
        "grid",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    asha = report["asha"]
    assert asha["none"]["steps_trained"] == 36 and asha["none"]["pruned"] == 0
    assert asha["asha"]["steps_trained"] <= 36 and asha["steps_ratio"] == asha["asha"]["steps_trained"] / 36
    assert report["cluster"]["seconds"] > 0 and "grid" not in report
    assert "steps with ASHA / without" in done.stderr and "start and stop" in done.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("charrnn-")] == []  # its runs are removed


def test_speed_times_both_and_reports_the_ratio(tmp_path):
    pytest.importorskip("torch")
    done = run_bench(
        "speed.py",
        "--configs",
        "a",
        "--threads",
        1,
        "--repeats",
        1,
        "--seconds",
        0.2,
        "--scale-mb",
        0,
        "--skip",
        "cli,parallel,sampling,sweep",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    [row] = report["training"]
    assert (row["config"], row["layers"], row["hidden"], row["threads"]) == ("a", 1, 100, 1)
    assert row["charrnn_chars_per_sec"] > 0 and row["torch_chars_per_sec"] > 0
    assert row["ratio"] == pytest.approx(row["charrnn_chars_per_sec"] / row["torch_chars_per_sec"])
    assert "ratio" in done.stderr  # the table goes to stderr with --json


def test_speed_races_a_gated_cell_in_both_kernels(tmp_path, shakespeare):
    """--cells lstm against nn.LSTM with OpenBLAS's own kernel and the configured one, timed loop and `charrnn
    train`: each row names its cell and kernel, and the native children lose the configured variables."""
    pytest.importorskip("torch")
    done = run_bench(
        "speed.py",
        *("--configs", "a", "--cells", "lstm", "--kernels", "native,configured", "--threads", 1),
        *("--repeats", 1, "--seconds", 0.05, "--cli-seconds", 0.05, "--scale-mb", 0),
        *("--skip", "parallel,sampling,sweep", "--json"),
        cwd=tmp_path,
        env={"OPENBLAS_L2_SIZE": "512"},  # a setting `native` must drop and `configured` keep
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    kernels = report["environment"]["kernels"]
    assert kernels["native"]["env"] == {} and kernels["configured"]["env"]["OPENBLAS_L2_SIZE"] == "512"
    rows = report["training"]
    assert [(r["config"], r["cell"], r["kernel"]) for r in rows] == [
        ("a", "lstm", "native"),
        ("a", "lstm", "configured"),
    ]
    for r in rows:
        assert r["blas_kernel"] == kernels[r["kernel"]]["architecture"]
        assert min(r["charrnn_chars_per_sec"], r["torch_chars_per_sec"], r["charrnn_cli_chars_per_sec"]) > 0
        # 1 x 100 over 67 characters, four gate blocks: 6 (4 H^2 + H V) per character
        assert r["charrnn_gflops"] == pytest.approx(r["charrnn_chars_per_sec"] * 6 * (4 * 100**2 + 100 * 67) / 1e9)
    assert set(report["peaks"]) == {"native", "configured"}
    assert "a   lstm 1x100 s25 b1        1 native (" in done.stderr  # the table, with its cell and kernel columns


def test_speed_races_the_data_parallel_command(tmp_path, shakespeare):
    """The real `charrnn train` with its defaults, with 1 and 2 workers, under mpiexec when there is one, and
    two at once: each figure is what the command's --json reported."""
    pytest.importorskip("torch")
    done = run_bench(
        "speed.py",
        *("--configs", "b", "--threads", 1, "--repeats", 1, "--seconds", 0.05, "--cli-seconds", 0.05),
        *("--max-workers", 2, "--side-by-side", "b", "--break-even", "16", "--scale-mb", 0),
        *("--skip", "cli,sampling,sweep", "--json"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)["data_parallel"]["configs"]
    assert {"defaults", "workers=1", "workers=2"} <= set(row["chars_per_sec"])
    assert all(rate > 0 for rate in row["chars_per_sec"].values()) and row["sum_ms_per_step"]["workers=2"] > 0
    [side] = json.loads(done.stdout)["data_parallel"]["side_by_side"]
    assert len(side["together"]) == 2 and all(rate > 0 for rate in side["together"])
    assert "side by side (b)" in done.stderr
    [even] = json.loads(done.stdout)["data_parallel"]["break_even"]
    assert even["hidden"] == 16 and even["workers=1"] > 0 and even["workers=2"] > 0


def test_stdlib_corpus_writes_the_second_corpus(tmp_path):
    done = run_bench("stdlib_corpus.py", tmp_path / "stdlib.txt", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "stdlib.txt").read_text(encoding="utf-8")
    assert len(text) > 1_100_000 and text.isascii() and "def " in text
    assert done.stderr.startswith(f"{tmp_path / 'stdlib.txt'}: {len(text):,} characters from ")
