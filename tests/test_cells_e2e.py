"""The gated cells through the real commands: hello learnt by an LSTM and a GRU, and sample, eval, info, runs
and plot on an lstm and a gru run. (Workers, MPI, signals and kill -9 per cell are in test_parallel.py; sweeps
over model.cell in test_sweep.py; bad input per cell in test_reliability.py.)"""

import json
from pathlib import Path

import pytest

from .conftest import ROOT
from .helpers import invoke, write_config

GATED = ["lstm", "gru"]


@pytest.mark.parametrize("cell", GATED)
def test_hello_round_trip(tmp_path, monkeypatch, cell):
    monkeypatch.chdir(tmp_path)
    result = invoke("train", ROOT / "configs" / "hello.yaml", "-q", "--set", f"model.cell={cell}")
    assert result.exit_code == 0, result.stderr
    assert invoke("sample", "--prime", "h").stdout == "hello\n"
    assert invoke("sample", "--prime", "he", "--temperature", "0", "--num", "2").stdout == "hello\nhello\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A folder holding one tiny trained run per gated cell, runs/<cell>, 2 layers of 16 units."""
    folder = tmp_path_factory.mktemp("cells")
    for cell in GATED:
        out_dir = str(folder / "runs" / cell)
        path = write_config(folder, f"{cell}.yaml", model={"cell": cell, "hidden_size": 16}, train={"out_dir": out_dir})
        result = invoke("train", path, "-q")
        assert result.exit_code == 0, result.stderr
    return folder / "runs"


@pytest.mark.parametrize("cell", GATED)
def test_every_reading_verb_on_a_gated_run(runs, cell):
    run_dir = runs / cell
    G = {"lstm": 4, "gru": 3}[cell]

    info = invoke("info", run_dir)
    assert info.exit_code == 0 and info.stderr == "", info.stderr
    assert f"model        {cell}, 2 x 16" in info.stdout.splitlines()
    data = json.loads(invoke("info", run_dir, "--json").stdout)
    assert data["cell"] == data["config"]["model"]["cell"] == cell
    V = data["vocab"]["size"]
    shapes = {k: v["shape"] for k, v in data["parameters"].items()}
    assert shapes["W_xh"] == [G * 16, V] and shapes["W_hhd.2"] == shapes["W_hht.2"] == [G * 16, 16]
    assert ("b_hn.1" in shapes) == (cell == "gru")

    sampled = invoke("sample", "-c", run_dir, "--prime", "the", "-n", "30", "--num", "2", "--seed", "3", "--json")
    assert sampled.exit_code == 0 and sampled.stderr == "", sampled.stderr
    lines = [json.loads(line) for line in sampled.stdout.splitlines()]
    assert [line["seed"] for line in lines] == [3, 4] and all(line["text"].startswith("the") for line in lines)
    again = invoke("sample", "-c", run_dir, "--prime", "the", "-n", "30", "--seed", "4")
    assert again.stdout == lines[1]["text"] + "\n"  # a seed redraws its sample

    evaluated = invoke("eval", "-c", run_dir, "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    scores = json.loads(evaluated.stdout)
    assert 0 < scores["loss"] < 5 and scores["checkpoint"] == str(run_dir / "best.json")
    assert "loss" in invoke("eval", "-c", run_dir).stdout

    listed = invoke("runs", runs, "--json")
    assert listed.exit_code == 0, listed.stderr
    assert sorted(Path(r["run"]).name for r in json.loads(listed.stdout)) == sorted(GATED)
    assert invoke("runs", runs).stdout.count("12/12") == 2

    plotted = invoke("plot", run_dir)
    assert plotted.exit_code == 0, plotted.stderr
    assert plotted.stdout.startswith(f"{run_dir}  step 12  train ") and "val loss" in plotted.stdout
