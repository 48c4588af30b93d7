"""Bad input, case by case: one `Error:` line naming the file/key/value, exit 2 (usage/config) or 1 (runtime),
no traceback, and a run directory that is absent or byte-for-byte as it was."""

import errno
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import charrnn.run_dir
from charrnn import checkpoint
from charrnn.model import StackedRNN
from charrnn.run_dir import run_lock
from charrnn.vocab import Vocab

from .helpers import COMMAND, TEXT, assert_clean_run, assert_one_line_error, invoke, snapshot, write_config


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run (latest.json at step 12, best.json) to copy and damage."""
    folder = tmp_path_factory.mktemp("trained")
    path = write_config(folder, train={"out_dir": str(folder / "run")})
    result = invoke("train", path, "-q")
    assert result.exit_code == 0, result.stderr
    return folder


def copy_run(trained: Path, to: Path) -> Path:
    """The trained run's config, text and run directory under `to`; returns the config path."""
    shutil.copytree(trained / "run", to / "runs" / "run")
    shutil.copy(trained / "t.txt", to / "t.txt")
    return write_config(to, text=None)


def rewrite_meta(json_path: Path, **changes) -> None:
    meta = json.loads(json_path.read_text())
    meta.update(changes)
    json_path.write_text(json.dumps(meta))


def resave_arrays(json_path: Path, change) -> None:
    """Rewrite the weights a checkpoint names after `change(arrays)`, with a matching checksum."""
    meta, arrays = checkpoint.load(json_path)
    change(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (json_path.parent / meta["weights"]).write_bytes(buf.getvalue())
    rewrite_meta(json_path, weights_sha256=checkpoint.hashlib.sha256(buf.getvalue()).hexdigest())


# (id, what to write and which arguments to pass, exit code, fragments the one line must hold)
def _cfg(**sections):
    return lambda d: [write_config(d, **sections)]


def _yaml(text: str | bytes):
    def setup(d):
        (d / "t.txt").write_text(TEXT)
        (d / "bad.yaml").write_bytes(text if isinstance(text, bytes) else text.encode())
        return [d / "bad.yaml"]

    return setup


def _data(raw: bytes, *extra):
    def setup(d):
        path = write_config(d)
        (d / "t.txt").write_bytes(raw)
        return [path, *extra]

    return setup


def _unreadable(d, monkeypatch):
    path = write_config(d)
    real = Path.read_text

    def denied(self, *a, **k):
        if self.name == "run.yaml":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", denied)
    return [path]


TRAIN_CASES = [
    ("config-missing", lambda d: [d / "nope.yaml"], 2, ["nope.yaml: no such config file"]),
    ("config-unreadable", _unreadable, 2, ["run.yaml: cannot read: Permission denied"]),
    ("config-directory", lambda d: [d], 2, ["is a directory, expected a YAML config file"]),
    ("config-not-utf8", _yaml(b"data:\n  path: t.txt\n# caf\xe9\n"), 2, ["bad.yaml: not UTF-8 text (byte 25)"]),
    ("yaml-syntax", _yaml("data:\n  path: t.txt\n model: 3\n"), 2, ["bad.yaml:3:", "YAML syntax error"]),
    ("yaml-unclosed", _yaml("data: {path: t.txt\n"), 2, ["bad.yaml:2:", "YAML syntax error"]),
    ("top-level-list", _yaml("- data\n"), 2, ["bad.yaml: expected a mapping of sections", "got list"]),
    ("section-not-mapping", _yaml("data: t.txt\n"), 2, ["bad.yaml: data: expected a mapping of keys"]),
    (
        "unknown-section",
        _yaml("data:\n  path: t.txt\ntrian:\n  steps: 3\n"),
        2,
        ["bad.yaml: trian: unknown section (did you mean train?)"],
    ),
    (
        "unknown-key",
        _yaml("data:\n  path: t.txt\ntrain:\n  setps: 3\n"),
        2,
        ["bad.yaml: train.setps: unknown key (did you mean train.steps?)"],
    ),
    (
        "wrong-type",
        _cfg(train={"steps": "ten"}),
        2,
        ["run.yaml: train.steps: expected a positive integer or auto, got 'ten'"],
    ),
    ("yaml-boolean", _cfg(data={"records": False}), 2, ["data.records", "a boolean"]),
    (
        "exponent-without-dot",
        _yaml("data:\n  path: t.txt\ntrain:\n  learning_rate: 1e-3\n"),
        2,
        ["train.learning_rate", "write 1.0e-3"],
    ),
    (
        "exponent-without-sign",
        _yaml("data:\n  path: t.txt\ntrain:\n  learning_rate: 1.0e3\n"),
        2,
        ["train.learning_rate", "write 1.0e+3"],
    ),
    (
        "hidden-size-0",
        _cfg(model={"hidden_size": 0}),
        2,
        ["run.yaml: model.hidden_size: expected a positive integer, got 0"],
    ),
    (
        "negative-lr",
        _cfg(train={"learning_rate": -0.1}),
        2,
        ["train.learning_rate: expected a positive number, got -0.1"],
    ),
    (
        "val-fraction-1",
        _cfg(data={"val_fraction": 1.0}),
        2,
        ["data.val_fraction: expected a number in [0, 1), got 1.0"],
    ),
    ("seq-length-0", _cfg(train={"seq_length": 0}), 2, ["train.seq_length: expected a positive integer, got 0"]),
    ("nan-dropout", _cfg(model={"dropout": float("nan")}), 2, ["model.dropout", "nan"]),
    ("unknown-cell", _cfg(model={"cell": "transformer"}), 2, ["run.yaml: model.cell: expected one of rnn, lstm, gru"]),
    (
        "set-unknown-cell",
        lambda d: [write_config(d), "--set", "model.cell=transformer"],
        2,
        ["--set model.cell=transformer: model.cell: expected one of rnn, lstm, gru, got 'transformer'"],
    ),
    ("batch-too-large", _cfg(train={"batch_size": 500}), 2, ["run.yaml: train.batch_size: 500 tracks", "lower"]),
    ("no-data-path", _yaml("train:\n  steps: 3\n"), 2, ["bad.yaml: data.path: expected the path of a training text"]),
    (
        "set-no-equals",
        lambda d: [write_config(d), "--set", "train.steps"],
        2,
        ["--set train.steps: expected section.key=value"],
    ),
    ("set-unknown-section", lambda d: [write_config(d), "--set", "trian.steps=3"], 2, ["did you mean train?"]),
    ("set-unknown-key", lambda d: [write_config(d), "--set", "train.stepz=3"], 2, ["did you mean train.steps?"]),
    ("set-unparsable", lambda d: [write_config(d), "--set", "train.steps=[1"], 2, ["--set train.steps=[1", "'[1'"]),
    ("set-mapping", lambda d: [write_config(d), "--set", "train.steps={a: 1}"], 2, ["expected a single value"]),
    ("data-missing", lambda d: [write_config(d, data={"path": "gone.txt"})], 1, ["gone.txt: data file not found"]),
    ("data-directory", lambda d: [write_config(d, data={"path": "."})], 1, ["is a directory, expected a text file"]),
    ("data-empty", _data(b""), 1, ["t.txt: no text to train on"]),
    ("data-blank-lines", _data(b"\n\r\n  \n", "--set", "data.records=paragraph"), 1, ["no text to train on"]),
    (
        "data-shorter-than-window",
        _data(b"hello world\n", "--set", "data.val_fraction=0"),
        2,
        ["train.batch_size: 4 tracks of seq_length + 1 = 9 ids need 36 training ids, the text gives 14"],
    ),
    ("data-no-validation-left", _data(b"hello world\n"), 2, ["data.val_fraction: 0.1 of 14 ids leaves no validation"]),
    (
        "data-invalid-utf8",
        _data(TEXT.encode()[:100] + b"\xff\xfe" + TEXT.encode()),
        1,
        ["t.txt: byte 100 (0xff) is not valid utf-8", "data.encoding", "data.errors: replace"],
    ),
    (
        "data-unknown-encoding",
        lambda d: [write_config(d, data={"encoding": "klingon"})],
        2,
        ["data.encoding: unknown encoding 'klingon'"],
    ),
    (
        "data-lone-surrogate",
        _data(TEXT.encode() + b"\\ud800", "--set", "data.encoding=unicode_escape"),
        1,
        ["lone surrogate U+D800", "data.encoding"],
    ),
    (
        "out-dir-is-a-file",
        lambda d: [write_config(d, train={"out_dir": "t.txt"})],
        2,
        ["run.yaml: train.out_dir:", "t.txt exists and is not a directory"],
    ),
    (
        "model-too-large",
        _cfg(model={"hidden_size": 10**7}),
        2,
        ["run.yaml: model.hidden_size 10000000", "GiB per step", "lower them"],
    ),
    ("resume-and-force", lambda d: [write_config(d), "--resume", "--force"], 2, ["--resume and --force: choose one"]),
    (
        "option-bad-value",
        lambda d: [write_config(d), "--resume=maybe"],
        2,
        ["Option '--resume' does not take a value", "--help')"],
    ),
    # typer's own click says "No such option: --steps", click 8.5 "No such option '--steps'."
    ("unknown-option", lambda d: [write_config(d), "--steps", "3"], 2, ["No such option", "--steps"]),
]


@pytest.mark.parametrize("setup, code, fragments", [c[1:] for c in TRAIN_CASES], ids=[c[0] for c in TRAIN_CASES])
def test_bad_train_input_is_one_line_and_leaves_no_run(in_tmp, monkeypatch, setup, code, fragments):
    args = setup(in_tmp, monkeypatch) if setup is _unreadable else setup(in_tmp)
    before = snapshot(in_tmp)
    result = invoke("train", *args, "-q")
    assert_one_line_error(result.exit_code, result.stdout, result.stderr, code, *fragments)
    assert not (in_tmp / "runs").exists()
    assert snapshot(in_tmp) == before


def _corrupt_latest(d):
    (d / "runs/run/latest.json").write_text('{"format": "charrnn-checkpoint", "ver')


def _version_99(d):
    rewrite_meta(d / "runs/run/latest.json", version=99)


def _not_a_checkpoint(d):
    (d / "runs/run/latest.json").write_text("[1, 2, 3]\n")


def _weights_truncated(d):
    weights = d / "runs/run" / json.loads((d / "runs/run/latest.json").read_text())["weights"]
    weights.write_bytes(weights.read_bytes()[:200])


def _weights_flipped(d):
    weights = d / "runs/run" / json.loads((d / "runs/run/latest.json").read_text())["weights"]
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x10
    weights.write_bytes(bytes(data))


def _weights_missing(d):
    (d / "runs/run" / json.loads((d / "runs/run/latest.json").read_text())["weights"]).unlink()


def _weights_path_escape(d):
    rewrite_meta(d / "runs/run/latest.json", weights="../../t.txt")


def _wrong_shape(d):
    resave_arrays(d / "runs/run/latest.json", lambda a: a.update({"param/b_y": np.zeros(3, np.float32)}))


def _latest_gone(d):
    (d / "runs/run/latest.json").unlink()


def _text_changed(d):
    (d / "t.txt").write_text(TEXT.replace("dog", "cat"))


RESUME_CASES = [
    (
        "latest-corrupted",
        _corrupt_latest,
        [],
        1,
        [
            "runs/run/latest.json: not a charrnn checkpoint",
            "best.json (step 12) is intact: copy it over latest.json",
            "--force",
        ],
    ),
    (
        "latest-gone-best-intact",
        _latest_gone,
        [],
        1,
        ["nothing to resume, there is no latest.json; best.json (step 12) is intact"],
    ),
    ("format-version", _version_99, [], 1, ["checkpoint format version 99, this charrnn reads version 1"]),
    ("not-a-checkpoint", _not_a_checkpoint, [], 1, ["latest.json: not a charrnn checkpoint"]),
    ("weights-truncated", _weights_truncated, [], 1, ["damaged (checksum does not match latest.json)"]),
    ("weights-bit-flipped", _weights_flipped, [], 1, ["damaged (checksum does not match latest.json)"]),
    ("weights-missing", _weights_missing, [], 1, ["is missing"]),
    ("weights-path-escapes", _weights_path_escape, [], 1, ["not a charrnn checkpoint", "../../t.txt"]),
    ("shape-mismatch", _wrong_shape, [], 1, ["latest.json: does not fit this config", "param/b_y"]),
    (
        "config-changed",
        lambda d: None,
        ["--set", "model.hidden_size=16"],
        2,
        ["cannot resume, the config changed: model.hidden_size: 8 in the checkpoint, 16 now"],
    ),
    ("text-changed", _text_changed, [], 1, ["cannot resume, the training text's characters changed"]),
    (
        "cell-changed",
        lambda d: None,
        ["--set", "model.cell=lstm"],
        2,
        ["cannot resume, the config changed: model.cell: 'rnn' in the checkpoint, 'lstm' now"],
    ),
]


@pytest.mark.parametrize(
    "damage, extra, code, fragments", [c[1:] for c in RESUME_CASES], ids=[c[0] for c in RESUME_CASES]
)
def test_resume_refuses_a_bad_checkpoint_and_touches_nothing(in_tmp, trained, damage, extra, code, fragments):
    path = copy_run(trained, in_tmp)
    damage(in_tmp)
    before = snapshot(in_tmp / "runs")
    result = invoke("train", path, "-q", "--resume", "--set", "train.steps=20", *extra)
    assert_one_line_error(result.exit_code, result.stdout, result.stderr, code, *fragments)
    assert snapshot(in_tmp / "runs") == before


def test_a_run_directory_is_never_silently_overwritten(in_tmp, trained):
    path = copy_run(trained, in_tmp)
    (in_tmp / "runs/run/latest.json").unlink()  # best.json alone is still a run worth keeping
    before = snapshot(in_tmp / "runs")
    result = invoke("train", path, "-q")
    assert_one_line_error(
        result.exit_code,
        result.stdout,
        result.stderr,
        1,
        "already holds a run (best.json, weights-",
        "--resume",
        "--force",
    )
    assert snapshot(in_tmp / "runs") == before
    assert invoke("train", path, "-q", "--force").exit_code == 0
    assert_clean_run(in_tmp / "runs/run")


def _sample_setup(trained, d, damage=None):
    copy_run(trained, d)
    if damage:
        damage(d)
    return d / "runs/run"


SAMPLE_CASES = [
    (
        "prime-outside-vocab",
        ["--prime", "the ZOO\t"],
        2,
        ["--prime: characters not in the model's vocabulary: '\\t', 'O', 'Z'"],
    ),
    ("negative-length", ["--length", "-1"], 2, ["--length: expected an integer >= 0, got -1"]),
    ("negative-temperature", ["--temperature", "-0.5"], 2, ["--temperature: expected a finite number >= 0, got -0.5"]),
    ("infinite-temperature", ["--temperature", "inf"], 2, ["--temperature: expected a finite number >= 0, got inf"]),
    ("top-k-0", ["--top-k", "0"], 2, ["--top-k: expected an integer >= 1, got 0"]),
    ("length-not-a-number", ["--length", "ten"], 2, ["'--length'", "(see 'charrnn sample --help')"]),
    ("checkpoint-missing", ["--checkpoint", "nowhere"], 1, ["nowhere: no such checkpoint"]),
    ("checkpoint-not-json", ["--checkpoint", "t.txt"], 1, ["t.txt: expected a run directory or its latest.json"]),
    ("checkpoint-empty-dir", ["--checkpoint", "runs/run/.."], 1, ["no checkpoint in this directory"]),
]


@pytest.mark.parametrize("args, code, fragments", [c[1:] for c in SAMPLE_CASES], ids=[c[0] for c in SAMPLE_CASES])
def test_bad_sample_input_is_one_line(in_tmp, trained, args, code, fragments):
    _sample_setup(trained, in_tmp)
    result = invoke("sample", "--checkpoint", "runs/run", *args)
    assert_one_line_error(result.exit_code, result.stdout, result.stderr, code, *fragments)


def test_sample_without_a_run_says_how_to_train_one(in_tmp):
    result = invoke("sample")
    assert_one_line_error(
        result.exit_code, result.stdout, result.stderr, 1, "no checkpoint under ./runs: train one first (charrnn train"
    )


def test_sample_from_a_damaged_checkpoint_names_the_intact_one(in_tmp, trained):
    run_dir = _sample_setup(trained, in_tmp, lambda d: (d / "runs/run/best.json").write_text("{"))
    result = invoke("sample", "--checkpoint", run_dir)
    assert_one_line_error(
        result.exit_code,
        result.stdout,
        result.stderr,
        1,
        "best.json: not a charrnn checkpoint",
        f"try --checkpoint {run_dir / 'latest.json'}",
    )
    assert invoke("sample", "--checkpoint", run_dir / "latest.json", "-n", "5").exit_code == 0


def _set_cell(json_path: Path, cell: str | None) -> None:
    """Rewrite the model.cell of a checkpoint's config (None: drop the key, as a checkpoint made before cells)."""
    meta = json.loads(json_path.read_text())
    if cell is None:
        del meta["config"]["model"]["cell"]
    else:
        meta["config"]["model"]["cell"] = cell
    json_path.write_text(json.dumps(meta))  # the checksum covers the weights, not the JSON


@pytest.mark.parametrize("verb", [["sample", "-c"], ["eval", "-c"], ["info"]])
def test_a_checkpoint_whose_weights_do_not_fit_its_cell_is_one_line(in_tmp, trained, verb):
    run_dir = _sample_setup(trained, in_tmp, lambda d: _set_cell(d / "runs/run/best.json", "lstm"))
    before = snapshot(run_dir)
    result = invoke(*verb, run_dir / "best.json")
    assert_one_line_error(
        result.exit_code, result.stdout, result.stderr, 1, f"{run_dir / 'best.json'}: weights W_xh", "model.cell lstm"
    )
    assert snapshot(run_dir) == before


def test_a_checkpoint_made_before_cells_loads_as_rnn(in_tmp, trained):
    run_dir = _sample_setup(trained, in_tmp)
    for kind in checkpoint.KINDS:
        _set_cell(run_dir / f"{kind}.json", None)
    assert "cell" not in json.loads((run_dir / "latest.json").read_text())["config"]["model"]
    info = invoke("info", run_dir)
    assert info.exit_code == 0 and "model        rnn, 2 x 8" in info.stdout.splitlines()
    assert json.loads(invoke("info", run_dir, "--json").stdout)["cell"] == "rnn"
    sampled = invoke("sample", "-c", run_dir, "--prime", "the", "-n", "20", "--seed", "1")
    assert sampled.exit_code == 0 and sampled.stdout.startswith("the"), sampled.stderr
    resumed = invoke("train", in_tmp / "run.yaml", "-q", "--resume", "--set", "train.steps=14")
    assert resumed.exit_code == 0, resumed.stderr


def test_sample_tiny_temperature_is_greedy_not_nan(in_tmp, trained):
    run_dir = _sample_setup(trained, in_tmp)
    greedy = invoke("sample", "-c", run_dir, "--prime", "the", "-n", "30", "-t", "0")
    tiny = invoke("sample", "-c", run_dir, "--prime", "the", "-n", "30", "-t", "5e-324", "--seed", "1")
    assert (tiny.exit_code, tiny.stderr, tiny.stdout) == (0, "", greedy.stdout)


def test_second_writer_refused_and_a_dead_writers_lock_is_taken_over(in_tmp, trained):
    path = copy_run(trained, in_tmp)
    run_dir = in_tmp / "runs/run"
    with run_lock(run_dir):  # this process holds the directory, as a running `charrnn train` would
        before = snapshot(run_dir)
        result = invoke("train", path, "-q", "--resume", "--set", "train.steps=14")
        assert_one_line_error(
            result.exit_code,
            result.stdout,
            result.stderr,
            1,
            f"another charrnn train (pid {os.getpid()}) is writing this run directory",
        )
        assert snapshot(run_dir) == before
    # a lock file whose writer is gone, even one naming a live pid (pids get reused), does not block
    (run_dir / "lock").write_text("1\n")
    result = invoke("train", path, "-q", "--resume", "--set", "train.steps=14")
    assert result.exit_code == 0, result.stderr
    assert_clean_run(run_dir)


@pytest.mark.parametrize(
    "code, strerror", [(errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system")]
)
@pytest.mark.parametrize("target", ["weights-00000010", "latest.json", "metrics.jsonl"])
def test_disk_full_or_read_only_mid_run(in_tmp, monkeypatch, code, strerror, target):
    """The writes of step 10 (its weights, latest.json, or its metrics line) fail: one line, exit 1, step 5 intact."""
    path = write_config(in_tmp, train={"steps": 20, "eval_every": 100, "log_every": 5})
    latest = in_tmp / "runs/run/latest.json"
    real_open = open

    def failing(file, mode="r", *args, **kwargs):
        if ("w" in mode or "a" in mode) and target in Path(file).name and latest.exists():
            raise OSError(code, strerror, str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "open", failing, raising=False)
    monkeypatch.setattr(charrnn.run_dir, "open", failing, raising=False)
    result = invoke("train", path, "-q")
    assert_one_line_error(result.exit_code, result.stdout, result.stderr, 1, f"cannot write: {strerror}")
    assert target.split("-")[0] in result.stderr
    run_dir = in_tmp / "runs/run"
    assert_clean_run(run_dir)
    assert checkpoint.load(latest)[0]["step"] == 5
    monkeypatch.undo()
    monkeypatch.chdir(in_tmp)
    resumed = invoke("train", path, "-q", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert checkpoint.load(run_dir / "latest.json")[0]["step"] == 20


def test_read_only_run_directory_at_start(in_tmp, trained, monkeypatch):
    path = copy_run(trained, in_tmp)
    before = snapshot(in_tmp / "runs")
    real = os.open

    def read_only(file, flags, *args, **kwargs):
        if str(file).startswith(str(in_tmp / "runs")) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    result = invoke("train", path, "-q", "--resume", "--set", "train.steps=20")
    monkeypatch.undo()
    assert_one_line_error(
        result.exit_code,
        result.stdout,
        result.stderr,
        1,
        "runs/run/lock: cannot lock the run directory: Read-only file system",
    )
    assert snapshot(in_tmp / "runs") == before


def patch_steps(monkeypatch, change) -> None:
    """Pass each training step's loss and gradients through change(n, loss, grads) -> loss; n counts from 1."""
    real, calls = StackedRNN.loss_and_grads, []

    def patched(self, *args, **kwargs):
        loss, grads, h = real(self, *args, **kwargs)
        calls.append(1)
        return change(len(calls), loss, grads), grads, h

    monkeypatch.setattr(StackedRNN, "loss_and_grads", patched)


def test_non_finite_steps_are_skipped_counted_and_never_saved(in_tmp, monkeypatch):
    """Two bad steps (a NaN loss, an inf gradient) are skipped and counted; the run finishes, all finite."""

    def flaky(n, loss, grads):
        if n == 7:
            grads["W_hy"][0, 0] = np.inf
        return float("nan") if n == 3 else loss

    patch_steps(monkeypatch, flaky)
    result = invoke("train", write_config(in_tmp, train={"log_every": 1}), "-q", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["skipped_steps"] == 2
    run_dir = in_tmp / "runs/run"
    assert_clean_run(run_dir)
    assert checkpoint.load(run_dir / "latest.json")[0]["metrics"]["skipped_steps"] == 2
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["skipped_steps"] for m in logged] == [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]
    assert logged[2]["train_loss"] is None and logged[6]["grad_norm"] is None


def test_a_run_that_keeps_failing_stops_with_the_last_finite_checkpoint(in_tmp, monkeypatch):
    patch_steps(monkeypatch, lambda n, loss, grads: loss if n < 7 else float("nan"))
    result = invoke("train", write_config(in_tmp, train={"steps": 40}), "-q")
    assert_one_line_error(
        result.exit_code,
        result.stdout,
        result.stderr,
        1,
        "loss or gradient was not finite for 10 steps in a row at step 16",
        "lower train.learning_rate",
    )
    run_dir = in_tmp / "runs/run"
    assert_clean_run(run_dir)
    meta = checkpoint.load(run_dir / "latest.json")[0]
    assert (meta["step"], meta["metrics"]["skipped_steps"]) == (15, 9)  # skipped steps leave the weights alone


def test_an_update_that_overflows_the_weights_stops_at_once(in_tmp):
    path = write_config(in_tmp, train={"optimizer": "sgd", "learning_rate": 1.0e300, "grad_clip": 0})
    result = invoke("train", path, "-q")
    assert_one_line_error(
        result.exit_code,
        result.stdout,
        result.stderr,
        1,
        "the update of step 1 (learning rate 1e+300) made the weights non-finite",
    )
    assert not (in_tmp / "runs").exists()  # it failed before its first checkpoint: nothing half-made remains


def test_a_non_finite_validation_loss_stops_the_run(in_tmp, monkeypatch):
    from charrnn import training

    monkeypatch.setattr(training, "mean_nll", lambda *a: (float("inf"), 1))
    result = invoke("train", write_config(in_tmp), "-q")
    assert_one_line_error(
        result.exit_code, result.stdout, result.stderr, 1, "the validation loss at step 4 is not finite"
    )


def test_checkpoint_save_refuses_non_finite_arrays(tmp_path):
    arrays = {"param/W": np.array([1.0, np.nan], np.float32)}
    with pytest.raises(checkpoint.CheckpointError, match="param/W not finite"):
        checkpoint.save(tmp_path, arrays, {"step": 3}, ("latest",))
    with pytest.raises(checkpoint.CheckpointError, match="metrics are not finite"):
        checkpoint.save(tmp_path, {"param/W": np.ones(2)}, {"step": 3, "loss": float("inf")}, ("latest",))
    assert list(tmp_path.iterdir()) == []


def test_a_very_large_vocabulary_trains_and_samples(in_tmp):
    """70,000 distinct characters (ids need uint32): it works, within the memory check."""
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 20_000)] + [chr(c) for c in range(0x20000, 0x20000 + 50_000)]
    text = "".join(np.random.default_rng(0).permutation(chars))
    assert Vocab.from_texts([text]).id_dtype == np.uint32
    path = write_config(
        in_tmp,
        text=text,
        data={"val_fraction": 0},
        model={"hidden_size": 4, "num_layers": 1},
        train={"steps": 2, "batch_size": 2},
    )
    assert invoke("train", path, "-q").exit_code == 0
    result = invoke("sample", "--prime", text[:3], "-n", "4", "--seed", "0")
    assert result.exit_code == 0 and result.stdout.startswith(text[:3])


def test_the_installed_command_gives_one_line_errors(in_tmp, trained):
    """A representative slice of the battery through the real console script, processes run side by side."""
    copy_run(trained, in_tmp)
    shutil.copytree(in_tmp / "runs/run", in_tmp / "runs/again")  # its own directory: two trains at once lock
    write_config(in_tmp, name="again.yaml", text=None)
    (in_tmp / "runs/run/latest.json").write_text("{")
    (in_tmp / "bad.yaml").write_text("data:\n  path: t.txt\n model: 3\n")
    write_config(in_tmp, name="big.yaml", text=None, train={"batch_size": 500})
    cases = [
        (["train", "nope.yaml"], 2, "nope.yaml: no such config file"),
        (["train", "bad.yaml"], 2, "bad.yaml:3:"),
        (["train", "big.yaml"], 2, "big.yaml: train.batch_size: 500 tracks"),
        (["train", "run.yaml", "--resume"], 1, "latest.json: not a charrnn checkpoint"),
        (["train", "again.yaml"], 1, "already holds a run"),
        (["sample", "-c", "runs/run", "--prime", "Q"], 2, "not in the model's vocabulary: 'Q'"),
        (["sample", "-c", "runs/run", "-k", "zero"], 2, "'--top-k'"),
    ]
    before = snapshot(in_tmp / "runs")
    procs = [
        subprocess.Popen(COMMAND + args, cwd=in_tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for args, _, _ in cases
    ]
    for (_args, code, fragment), proc in zip(cases, procs):
        stdout, stderr = proc.communicate(timeout=120)
        assert_one_line_error(proc.returncode, stdout, stderr, code, fragment)
    assert snapshot(in_tmp / "runs") == before
    empty = subprocess.run(COMMAND + ["sample"], cwd=in_tmp / "runs", capture_output=True, text=True, timeout=120)
    assert_one_line_error(empty.returncode, empty.stdout, empty.stderr, 1, "no checkpoint under ./runs")
    with open("/dev/full", "w") as full:  # stdout on a full disk
        done = subprocess.run(
            COMMAND + ["sample", "-c", "runs/run", "-n", "5"],
            cwd=in_tmp,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert_one_line_error(done.returncode, "", done.stderr, 1, "cannot write to stdout: No space left on device")
