"""charrnn in a shell: JSON samples, stdin, seeds, closed pipes, help, completion, colour, runs, example configs."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from charrnn.checkpoint import load_trained
from charrnn.cli import app
from charrnn.model import log_softmax
from charrnn.vocab import BOS, EOS

from .conftest import ROOT

runner = CliRunner()
TINY_TEXT = 'she said "run (now)" and ran.\nhe said (twice) "stop".\n' * 30


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kwargs)


def train_tiny(folder: Path, name: str = "tiny", steps: int = 40, cell: str = "rnn") -> Path:
    """A small trained run on a text with quotes, parentheses and lines; returns its run directory."""
    (folder / "tiny.txt").write_text(TINY_TEXT)
    config = folder / f"{name}.yaml"
    config.write_text(
        "data:\n  path: tiny.txt\n  val_fraction: 0.1\nmodel:\n  hidden_size: 16\n  num_layers: 2\n"
        f"train:\n  seq_length: 16\n  batch_size: 4\n  steps: {steps}\n  eval_every: 20\n  log_every: 10\n"
        f"  checkpoint_every: 20\n  out_dir: {folder / 'runs' / name}\n"
    )
    result = invoke("train", config, "-q", "--set", f"model.cell={cell}")
    assert result.exit_code == 0, result.stderr
    return folder / "runs" / name


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("shell"))


def charrnn(*args, **kwargs):
    """The real process, as a shell runs it."""
    return subprocess.run([sys.executable, "-m", "charrnn", *map(str, args)], capture_output=True, text=True, **kwargs)


def test_sample_json_lines_carry_a_seed_that_redraws_them(run_dir):
    result = invoke("sample", "-c", run_dir, "--prime", "she", "-n", "60", "--num", "3", "--json")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3 and result.stdout.endswith("\n")
    assert [line["seed"] for line in lines] == [lines[0]["seed"] + i for i in range(3)]
    for line in lines:
        assert set(line) == {"text", "prime", "seed", "temperature", "top_k", "length", "ended", "log_prob", "weights"}
        assert line["prime"] == "she" and line["text"].startswith("she")
        assert line["temperature"] == 1.0 and line["top_k"] is None and line["log_prob"] < 0
        assert line["ended"] == (len(line["text"]) - 3 < 60)
    again = invoke("sample", "-c", run_dir, "--prime", "she", "-n", "60", "--seed", lines[1]["seed"], "--json")
    assert json.loads(again.stdout) == lines[1]
    plain = invoke("sample", "-c", run_dir, "--prime", "she", "-n", "60", "--seed", lines[2]["seed"])
    assert plain.stdout == lines[2]["text"] + "\n"
    other = invoke("sample", "-c", run_dir, "--prime", "she", "-n", "60", "--json")
    assert json.loads(other.stdout)["seed"] != lines[0]["seed"]  # a fresh seed each time, 1 in 2^31 to collide


def test_log_prob_is_the_models_likelihood_of_the_continuation(run_dir):
    line = json.loads(
        invoke(
            "sample", "-c", run_dir, "--prime", "he", "-n", "30", "-t", "1.5", "--top-k", "4", "--seed", "7", "--json"
        ).stdout
    )
    _, vocab, model, _ = load_trained(run_dir)
    ids = [BOS, *vocab.encode(line["text"]).tolist()] + ([EOS] if line["ended"] else [])
    h, expected = model.zero_state(1), 0.0
    for t, i in enumerate(ids[:-1]):  # one step at a time, at temperature 1, as sampling reads
        logits, h = model.step(np.array([i]), h)
        if t >= len("he"):  # predicting a character after the prime
            expected += float(log_softmax(logits[0].astype(np.float64))[ids[t + 1]])
    assert line["log_prob"] == pytest.approx(expected, rel=1e-4)
    assert line["temperature"] == 1.5 and line["top_k"] == 4


def test_prime_from_stdin(run_dir):
    result = invoke("sample", "-c", run_dir, "--prime", "-", "-n", "0", "--json", input="he said\n")
    assert result.exit_code == 0, result.stderr
    line = json.loads(result.stdout)
    assert (line["prime"], line["text"], line["log_prob"]) == ("he said", "he said", 0.0)
    bad = invoke("sample", "-c", run_dir, "--prime", "-", input="zebra\n")
    assert bad.exit_code == 2 and bad.stderr == "Error: --prime: characters not in the model's vocabulary: 'b', 'z'\n"


SGR = re.compile(r"\x1b\[([0-9;]*)m")


def colour_codes(text: str) -> list[str]:
    """The SGR parameters that set a foreground or background colour (bold and reset are not colour)."""
    codes = [c for m in SGR.finditer(text) for c in m.group(1).split(";") if c]
    return [c for c in codes if 30 <= int(c) <= 49 or 90 <= int(c) <= 107]


def test_closed_pipe_is_quiet_for_every_verb(run_dir, tmp_path):
    """`| head` closes the pipe early: no traceback, no "Exception ignored", exit 1 as documented."""
    done = subprocess.run(
        [
            "bash",
            "-c",
            f'"{sys.executable}" -m charrnn sample -c "{run_dir}" -n 5000 --num 40 --seed 1 '
            f'2>"{tmp_path}/err" | head -c 100; echo "${{PIPESTATUS[0]}}" >"{tmp_path}/rc"',
        ],
        capture_output=True,
        text=True,
    )
    assert len(done.stdout) == 100
    assert (tmp_path / "err").read_text() == "" and (tmp_path / "rc").read_text() == "1\n"
    verbs = (
        ["--help"],
        ["info", run_dir],
        ["runs", run_dir.parent],
        ["plot", run_dir],
        ["visualize", "-c", run_dir, "--text", "she said", "--neuron", "0"],
    )
    procs = []
    for args in verbs:  # side by side: each pays Python's start-up
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "charrnn", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        )
        procs[-1].stdout.close()  # the reader is gone before the first write (start-up takes far longer)
    for args, proc in zip(verbs, procs):
        err = proc.stderr.read().decode()
        assert (proc.wait(), err) == (1, ""), args


def all_commands():
    group = get_command(app)
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from ([name, sub] for sub in command.commands)
        else:
            yield [name]


def test_every_verb_has_help_with_an_example():
    names = [" ".join(c) for c in all_commands()]
    assert {"train", "sample", "info", "runs", "plot", "visualize", "data get"} <= set(names)
    for command in all_commands():
        result = invoke(*command, "--help")
        assert result.exit_code == 0 and "Example" in result.stdout, command
        example = result.stdout.split("Example", 1)[1]
        assert f"charrnn {command[0]}" in example, command
    top = invoke("--help")
    assert "Exit codes: 0 ok, 1 runtime error" in top.stdout and "130 interrupted" in " ".join(top.stdout.split())


def test_version_is_the_installed_distributions():
    from importlib.metadata import version

    installed = charrnn("--version")  # the real process: an eager option must stop before any verb is needed
    assert (installed.returncode, installed.stdout, installed.stderr) == (0, f"charrnn {version('charrnn')}\n", "")


def test_installed_completion_completes_verbs_and_options(tmp_path):
    """--install-completion writes Typer's bash script; sourcing it completes with the real program."""
    bindir = Path(sys.executable).parent
    env = {**os.environ, "HOME": str(tmp_path), "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([bindir / "charrnn", "--install-completion", "bash"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    script = tmp_path / ".bash_completions" / "charrnn.sh"
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()

    def complete(*words):
        line = (
            f"source '{script}'; COMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}; "
            "_charrnn_completion charrnn; printf '%s\\n' \"${COMPREPLY[@]}\""
        )  # bash passes the command as $1
        return subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=env).stdout.split()

    assert complete("charrnn", "vis") == ["visualize"]
    assert "--predictions" in complete("charrnn", "visualize", "--pre")


def test_colour_only_on_a_terminal_and_never_with_no_color(run_dir):
    env = {"FORCE_COLOR": None, "NO_COLOR": None, "TERM": "xterm-256color"}
    plain = invoke("plot", run_dir, env=env)
    assert plain.exit_code == 0 and "\x1b" not in plain.stdout  # a runner's stdout is no terminal
    forced = invoke("plot", run_dir, env={**env, "FORCE_COLOR": "1"})
    assert colour_codes(forced.stdout)
    no_color = invoke("plot", run_dir, env={**env, "FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert no_color.exit_code == 0 and colour_codes(no_color.stdout) == []
    visual = invoke("visualize", "-c", run_dir, "--text", "he said", "--neuron", "0", env={**env, "FORCE_COLOR": "1"})
    assert any(int(c) >= 40 for c in colour_codes(visual.stdout))  # backgrounds carry the activation
    visual = invoke(
        "visualize",
        "-c",
        run_dir,
        "--text",
        "he said",
        "--neuron",
        "0",
        env={**env, "FORCE_COLOR": "1", "NO_COLOR": "1"},
    )
    assert colour_codes(visual.stdout) == [] and "▁ -1" in visual.stdout  # the ▁..█ row stands in for colour
    trained = invoke(
        "train",
        run_dir / "config.yaml",
        "--set",
        f"train.out_dir={run_dir.parent / 'again'}",
        "--set",
        "train.steps=3",
        env=env,
    )
    assert trained.exit_code == 0 and "\x1b" not in trained.stderr  # no bar redraws off a terminal


def test_runs_lists_model_step_best_val_loss_and_age(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("runs")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "no runs under runs\n")
    assert invoke("runs", "--json").stdout == "[]\n"
    train_tiny(tmp_path, "b", steps=20, cell="lstm")
    train_tiny(tmp_path, "a", steps=20)
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / "latest.json").write_text("{not json")
    listed = json.loads(invoke("runs", "--json").stdout)
    assert [r["run"] for r in listed] == [str(Path("runs") / "a"), str(Path("runs") / "b")]
    best = json.loads((tmp_path / "runs" / "a" / "latest.json").read_text())["metrics"]["best_val_loss"]
    assert listed[0]["step"] == 20 and listed[0]["best_val_loss"] == best and 0 <= listed[0]["age_seconds"] < 600
    assert [(r["cell"], r["num_layers"], r["hidden_size"]) for r in listed] == [("rnn", 2, 16), ("lstm", 2, 16)]
    text = invoke("runs")
    assert text.stderr == f"warning: {Path('runs') / 'broken' / 'latest.json'}: unreadable, skipped\n"
    rows = [re.split(r"\s{2,}", line) for line in text.stdout.splitlines()]
    assert rows[0] == ["run", "model", "step", "best val loss", "age"]
    assert rows[1][:4] == [str(Path("runs") / "a"), "rnn 2x16", "20/20", f"{best:.4f}"]
    assert rows[2][1] == "lstm 2x16"
    assert re.fullmatch(r"\d+[smhd]", rows[1][4])
    assert len(rows) == 3


def test_runs_refuses_a_folder_that_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in (["no-such-folder"], ["no-such-folder", "--json"]):
        result = invoke("runs", *args)
        assert (result.exit_code, result.stdout, result.stderr) == (1, "", "Error: no-such-folder: no such folder\n")
    (tmp_path / "a-file").write_text("x")
    assert invoke("runs", "a-file").stderr == "Error: a-file: not a folder\n"
    (tmp_path / "empty").mkdir()
    empty = invoke("runs", "empty", "--json")
    assert (empty.exit_code, empty.stdout, empty.stderr) == (0, "[]\n", "")


@pytest.mark.parametrize("config", ["names", "code"])
def test_example_configs_train_and_sample(config, tmp_path):
    # one BLAS thread: on a busy 2-core machine OpenBLAS's spinning threads make these (32, 128) products 10x slower
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    done = charrnn(
        "train",
        ROOT / "configs" / f"{config}.yaml",
        "-q",
        "--set",
        "train.steps=2",
        "--set",
        "train.eval_every=2",
        "--set",
        f"train.out_dir={tmp_path / config}",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / config / "latest.json").read_text())
    assert meta["step"] == 2 and meta["metrics"]["best_val_loss"] is not None
    sample = charrnn("sample", "-c", tmp_path / config, "-n", "20", "--seed", "0", env=env)
    assert sample.returncode == 0 and sample.stdout.endswith("\n")


def test_example_data_is_small_and_names_are_reproducible(tmp_path):
    names = ROOT / "data" / "names.txt"
    assert names.stat().st_size < 100_000 and (ROOT / "data" / "charrnn-code.txt").stat().st_size < 300_000
    done = subprocess.run(
        [sys.executable, ROOT / "data" / "make_names.py", tmp_path / "names.txt"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "names.txt").read_text() == names.read_text()
    lines = names.read_text().splitlines()
    assert len(lines) == len(set(lines)) == 3000
