"""A training run on disk: its directory, lock, saved config, checkpoints, resume, and signals.

Everything that can be wrong with the config or the data is found before the run directory is
touched, so bad input never leaves a half-made run behind.
"""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import checkpoint
from .config import Config, config_from_dict, config_to_dict, dump_config, load_config
from .data import load_corpus, make_tracks
from .errors import CharrnnError, CheckpointError, ConfigError
from .model import StackedRNN
from .train import TrainState, new_state, restore_state, state_arrays, state_meta, train
from .vocab import Vocab

# keys a resumed run may change: they decide how long and how often, never what a step computes
RESUMABLE_CHANGES = {"train.steps", "train.eval_every", "train.checkpoint_every", "train.log_every",
                     "train.max_seconds", "train.early_stop_patience"}


@contextmanager
def run_lock(out_dir: Path) -> Iterator[None]:
    """One writer per run directory; a lock left by a process that no longer exists is taken over."""
    path = out_dir / "lock"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = _read_pid(path)
            if pid is not None and _alive(pid):
                raise CharrnnError(f"{out_dir}: another charrnn train (pid {pid}) is writing this run directory")
            path.unlink(missing_ok=True)  # stale: its writer died without cleaning up
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        break
    else:
        raise CharrnnError(f"{out_dir}: cannot take the lock file {path}")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def stop_on_signals() -> Iterator[list[int]]:
    """Collect SIGINT/SIGTERM so the loop can stop at a step boundary; a second one stops at once."""
    received: list[int] = []

    def handler(signum, frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class MetricsLog:
    """Appends a JSON line to metrics.jsonl at every log_every-th step, every validation and the last step."""

    def __init__(self, path: Path, log_every: int):
        self.path, self.log_every = path, log_every
        self.val_loss = None
        self.steps = 0

    def __call__(self, event: str, info: dict) -> None:
        if event == "start":
            self.steps = info["steps"]
        elif event == "eval":
            self.val_loss = info["val_loss"]
        elif event == "step" and (info["step"] % self.log_every == 0 or self.val_loss is not None
                                  or info["step"] == self.steps):
            line = {"step": info["step"], "epoch": info["epoch"], "train_loss": info["loss"],
                    "val_loss": self.val_loss, "lr": info["lr"], "grad_norm": info["grad_norm"],
                    "chars_per_sec": info["chars_per_sec"], "time": time.time()}
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
            self.val_loss = None

    def keep_through(self, step: int) -> None:
        """Drop lines past `step`: a resumed run rewrites what its interrupted predecessor logged after it."""
        if self.path.exists():
            lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
            kept = [line for line in lines if _step_of(line) <= step]
            checkpoint.atomic_write(self.path, "".join(kept).encode())


def _step_of(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")  # a line cut short by a crash


def _differences(a: Config, b: Config) -> list[str]:
    flat_a, flat_b = config_to_dict(a), config_to_dict(b)
    return [
        f"{section}.{key}: {flat_b[section][key]!r} in the checkpoint, {value!r} now"
        for section, values in flat_a.items() for key, value in values.items()
        if value != flat_b[section][key] and f"{section}.{key}" not in RESUMABLE_CHANGES and section != "sample"
    ]


def _clear_run(out_dir: Path) -> None:
    for kind in checkpoint.KINDS:
        (out_dir / f"{kind}.json").unlink(missing_ok=True)
    for path in out_dir.glob("weights-*.npz"):
        path.unlink()
    (out_dir / "metrics.jsonl").unlink(missing_ok=True)


def train_run(config_path: str, overrides: list[str], resume: bool = False, force: bool = False,
              report: Callable[[str, dict], None] = lambda e, i: None,
              signals: list[int] | None = None) -> dict:
    """Train the run a config describes; returns train()'s summary plus the run directory."""
    cfg = load_config(config_path, overrides)
    corpus = load_corpus(cfg.data)
    make_tracks(corpus.train, cfg.train.batch_size, cfg.train.seq_length)  # too short: fail before any write
    out_dir = Path(cfg.train.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"train.out_dir: {out_dir} exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CharrnnError(f"{out_dir}: cannot create the run directory: {err.strerror}") from None
    with run_lock(out_dir):
        latest = out_dir / "latest.json"
        state = new_state(cfg, corpus.vocab.size)
        metrics_log = MetricsLog(out_dir / "metrics.jsonl", cfg.train.log_every)
        if latest.exists() and resume:
            meta, arrays = checkpoint.load(latest)
            _check_resumable(latest, meta, cfg, corpus.vocab)
            try:
                restore_state(state, meta, arrays)
            except (KeyError, ValueError, TypeError) as err:
                raise CheckpointError(f"{latest}: does not fit this config: {err}") from None
            metrics_log.keep_through(state.step)
            report("resume", {"step": state.step, "path": latest})
        elif latest.exists() and not force:
            raise CharrnnError(
                f"{out_dir}: already holds a run; continue it with --resume, or start over with --force"
            )
        else:
            _clear_run(out_dir)
        checkpoint.atomic_write(out_dir / "config.yaml", dump_config(cfg).encode())

        def save(s: TrainState, kinds: tuple[str, ...]) -> Path:
            meta = {"config": config_to_dict(cfg), "vocab": corpus.vocab.to_json(), **state_meta(s)}
            return checkpoint.save(out_dir, state_arrays(s), meta, kinds)

        def tee(event: str, info: dict) -> None:
            metrics_log(event, info)
            report(event, info)

        stop = (lambda: bool(signals)) if signals is not None else (lambda: False)
        summary = train(cfg, corpus, state, save, tee, stop)
    return {"run_dir": str(out_dir), **summary}


def _check_resumable(path: Path, meta: dict, cfg: Config, vocab: Vocab) -> None:
    try:
        saved = config_from_dict(meta.get("config"), str(path))
    except ConfigError as err:
        raise CheckpointError(str(err)) from None
    diffs = _differences(cfg, saved)
    if diffs:
        raise ConfigError(f"{path}: cannot resume, the config changed: " + "; ".join(diffs))
    if meta.get("vocab") != vocab.to_json():
        raise CheckpointError(f"{path}: cannot resume, the training text's characters changed since the checkpoint")


def load_trained(path: str | Path | None, prefer: str = "best") -> tuple[Config, Vocab, StackedRNN, dict]:
    """Config, vocabulary, model and meta of a saved checkpoint (see checkpoint.resolve for `path`)."""
    json_path = checkpoint.resolve(path, prefer)
    meta, arrays = checkpoint.load(json_path)
    try:
        cfg = config_from_dict(meta.get("config"), str(json_path))
        vocab = Vocab.from_json(meta["vocab"])
    except (ConfigError, KeyError, ValueError, TypeError) as err:
        raise CheckpointError(f"{json_path}: damaged metadata: {err}") from None
    model = StackedRNN(vocab.size, cfg.model.hidden_size, cfg.model.num_layers, dtype=np.float32)
    for name, dst in model.params.items():
        src = arrays.get(f"param/{name}")
        if src is None or src.shape != dst.shape:
            raise CheckpointError(f"{json_path}: weights {name} missing or of the wrong shape for its config")
        dst[...] = src
    return cfg, vocab, model, meta
