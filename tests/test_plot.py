"""`charrnn plot`: metrics.jsonl read back, a braille chart worked out by hand, the PNG with and without matplotlib."""

import json
import sys

import pytest
from typer.testing import CliRunner

from charrnn.cli import app
from charrnn.loss_chart import LABEL_W, chart, read_metrics

from .test_shell import train_tiny

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("plot"))


def test_chart_dots_by_hand():
    # 5 x 2 cells = 10 x 8 dots; train runs from dot (0, 0) to (9, 7), val sits at dot (9, 4)
    lines = [line.plain for line in chart([(0, 2.0), (10, 1.0)], [(10, 1.5)], width=5, height=2)]
    pad = " " * (LABEL_W - 1)
    assert lines == [
        "       2 ┤⠑⠤⡀  ",
        "       1 ┤  ⠈⠒●",
        pad + "└─────",
        " " * LABEL_W + "0 10 step",
        " " * LABEL_W + "⣀⣀ train loss   ● val loss   (nats per character)",
    ]


def test_read_metrics_skips_what_a_crash_cut_short(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [
        {"step": 10, "train_loss": 3.0, "val_loss": None},
        {"step": 20, "train_loss": 2.5, "val_loss": 2.7},
        {"step": 30, "train_loss": float("nan"), "val_loss": None},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 40, "train_lo')
    assert read_metrics(path) == ([(10, 3.0), (20, 2.5)], [(20, 2.7)])


def test_plot_a_run(run_dir):
    result = runner.invoke(app, ["plot", str(run_dir), "--height", "6"], env={"COLUMNS": "70"})
    assert result.exit_code == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert lines[0].startswith(f"{run_dir}  step 40  train {logged[-1]['train_loss']:.4f}  val ")
    assert len(lines) == 1 + 6 + 3 and all(len(line) == 69 for line in lines[1:8])  # one column spare
    assert sum(line.count("●") for line in lines[1:7]) >= 1  # evaluations at steps 20 and 40
    assert lines[-2].rstrip().endswith("40 step")


def test_plot_without_metrics_is_one_line(tmp_path):
    result = runner.invoke(app, ["plot", str(tmp_path)])
    assert result.exit_code == 1
    assert (
        result.stderr == f"Error: {tmp_path / 'metrics.jsonl'}: no metrics file; `charrnn train` writes one "
        "into each run directory\n"
    )


def test_png_without_matplotlib_says_how_to_get_it(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    result = runner.invoke(app, ["plot", str(run_dir), "--png", str(tmp_path / "loss.png")])
    assert result.exit_code == 1 and "pip install 'charrnn[plot]'" in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "loss.png").exists()


def test_png_with_matplotlib(run_dir, tmp_path):
    pytest.importorskip("matplotlib")
    result = runner.invoke(app, ["plot", str(run_dir), "--png", str(tmp_path / "loss.png")])
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == f"wrote {tmp_path / 'loss.png'}\n"
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
