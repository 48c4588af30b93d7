"""`charrnn info`: config, printable vocabulary, parameter counts, step, losses, format version."""

import json

import pytest
from typer.testing import CliRunner

from charrnn import checkpoint
from charrnn.cli import app
from charrnn.commands.info import printable
from charrnn.vocab import Vocab

from .test_shell import TINY_TEXT, train_tiny

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("info"))


def test_printable_escapes_what_cannot_be_seen():
    assert [printable(c) for c in "a \n\t\r\\\x00\u200bé"] == [
        "a",
        "␣",
        "\\n",
        "\\t",
        "\\r",
        "\\\\",
        "\\x00",
        "\\u200b",
        "é",
    ]


def test_json_holds_config_vocab_parameters_and_losses(run_dir):
    result = runner.invoke(app, ["info", str(run_dir), "--json"])
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    meta = json.loads((run_dir / "latest.json").read_text())
    assert (info["format"], info["version"]) == (checkpoint.FORMAT, checkpoint.VERSION)
    assert info["checkpoint"] == str(run_dir / "latest.json") and info["weights"] == meta["weights"]
    assert (info["step"], info["steps"]) == (40, 40)
    assert info["best_val_loss"] == meta["metrics"]["best_val_loss"] and info["best_step"] in (20, 40)
    assert info["vocab"]["chars"] == Vocab.from_texts([TINY_TEXT]).chars
    V, H, L = info["vocab"]["size"], 16, 2
    assert len(set(TINY_TEXT)) + 2 == V
    shapes = {
        "W_xh": [H, V],
        "W_hht.1": [H, H],
        "b_h.1": [H],
        "W_hht.2": [H, H],
        "b_h.2": [H],
        "W_hhd.2": [H, H],
        "W_hy": [V, H],
        "b_y": [V],
    }
    assert {k: v["shape"] for k, v in info["parameters"].items()} == shapes
    assert info["total_parameters"] == H * V + L * (H * H + H) + (L - 1) * H * H + V * H + V
    assert info["config"]["model"] == {
        "cell": "rnn",
        "hidden_size": 16,
        "num_layers": 2,
        "dropout": 0.0,
        "init": "torch",
        "init_scale": None,
    }


def test_text_report(run_dir):
    result = runner.invoke(app, ["info", str(run_dir / "best.json")])
    assert result.exit_code == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    best = json.loads((run_dir / "best.json").read_text())
    assert lines[0] == f"checkpoint   {run_dir / 'best.json'}"
    assert lines[1] == f"format       {checkpoint.FORMAT} version {checkpoint.VERSION}"
    assert lines[3].startswith(f"step         {best['step']} of 40 (epoch ")
    w, t = best["workers"], best["threads"]  # a toy model: one worker, with every core's BLAS threads
    assert lines[4] == "model        rnn, 2 x 16"
    assert w == 1 and lines[5] == f"trained on   1 worker x {t} BLAS thread{'s' * (t > 1)}"
    assert lines[9] == "weights used raw"  # a run that kept no average (train.ema 0)
    assert lines[10] == 'vocabulary   22 ids: <s> </s> \\n ␣ " ( ) . a c d e h i n o p r s t u w'
    assert "  W_hht.2  (16, 16)  256" in lines
    assert "  data.records: file" in lines and "  sample.top_k: null" in lines


def test_missing_checkpoint_is_one_line(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "nope")])
    assert result.exit_code == 1 and result.stderr == f"Error: {tmp_path / 'nope'}: no such checkpoint\n"
