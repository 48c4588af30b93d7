"""Config loading: defaults, overrides, path resolution, and one clear line for every mistake."""

from pathlib import Path

import pytest

from charrnn.config import load_config
from charrnn.errors import ConfigError


def write(tmp_path: Path, text: str, name="run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_paths_and_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg").mkdir()
    path = write(tmp_path / "cfg", "data:\n  path: ../text.txt\ntrain:\n  steps: 10\n")
    cfg = load_config(path, ["train.learning_rate=0.01", "model.hidden_size=64"])
    assert cfg.data.path == str(tmp_path / "text.txt")  # against the config's folder
    assert cfg.train.out_dir == str(tmp_path / "runs" / "run")  # against the cwd
    assert (cfg.train.steps, cfg.train.learning_rate, cfg.model.hidden_size) == (10, 0.01, 64)
    assert (cfg.train.optimizer, cfg.train.seq_length, cfg.data.val_fraction) == ("adam", 50, 0.1)
    # a path given on the command line is the user's, so it resolves against the cwd
    assert load_config(path, ["data.path=other.txt"]).data.path == str(tmp_path / "other.txt")


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        (
            "data:\n  path: x\ntrain:\n  learning_rat: 0.1\n",
            [],
            "run.yaml: train.learning_rat: unknown key (did you mean train.learning_rate?)",
        ),
        ("data:\n  path: x\ntrian:\n  steps: 1\n", [], "run.yaml: trian: unknown section (did you mean train?)"),
        (
            "data:\n  path: x\ntrain:\n  learning_rate: 1e-3\n",
            [],
            "run.yaml: train.learning_rate: expected a positive number, got '1e-3' "
            "(a string; YAML needs a dot and a signed exponent: write 1.0e-3)",
        ),
        (
            "data:\n  path: x\nmodel:\n  hidden_size: 0\n",
            [],
            "run.yaml: model.hidden_size: expected a positive integer, got 0",
        ),
        (
            "data:\n  path: x\ntrain:\n  learning_rate: -0.1\n",
            [],
            "run.yaml: train.learning_rate: expected a positive number, got -0.1",
        ),
        (
            "data:\n  path: x\n  val_fraction: 1.0\n",
            [],
            "run.yaml: data.val_fraction: expected a number in [0, 1), got 1.0",
        ),
        (
            "data:\n  path: x\ntrain:\n  seq_length: 0\n",
            [],
            "run.yaml: train.seq_length: expected a positive integer, got 0",
        ),
        (
            "data:\n  path: x\ntrain:\n  optimizer: adamw\n",
            [],
            "run.yaml: train.optimizer: expected one of adam, sgd, rmsprop, adagrad, got 'adamw' (a string)",
        ),
        (
            "data:\n  path: x\ntrain:\n  steps: yes\n",
            [],
            "run.yaml: train.steps: expected a positive integer or auto, got True",
        ),
        (
            "data:\n  path: x\n",
            ["train.steps=abc"],
            "--set train.steps=abc: train.steps: expected a positive integer or auto, got 'abc' (a string)",
        ),
        ("data:\n  path: x\n", ["train.steps"], "--set train.steps: expected section.key=value"),
        (
            "data:\n  path: x\n",
            ["train.stepz=3"],
            "--set train.stepz=3: train.stepz: unknown key (did you mean train.steps?)",
        ),
        ("- a\n- b\n", [], "run.yaml: expected a mapping of sections (data, model, train, sample), got list"),
        ("data:\n  path: x\n  records: [line\n", [], "run.yaml:4:1: YAML syntax error"),
        ("train:\n  steps: 3\n", [], "run.yaml: data.path: expected the path of a training text, got nothing"),
        (
            "data:\n  path: x\nmodel:\n  init: xavier\n",
            [],
            "run.yaml: model.init: expected one of torch, uniform, orthogonal, identity, got 'xavier' (a string)",
        ),
        (
            "data:\n  path: x\n",
            ["train.lr_schedule=linear"],
            "train.lr_schedule: expected one of step, exponential, cosine, plateau, got 'linear'",
        ),
        ("data:\n  path: x\n", ["train.max_seconds=-5"], "train.max_seconds: expected a number >= 0, got -5"),
    ],
)
def test_mistakes_are_one_clear_line(tmp_path, text, overrides, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert cfg.data.path.endswith(".txt")
    assert cfg.train.out_dir.endswith(path.stem)  # runs/<config stem>
