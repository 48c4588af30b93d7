"""A training run on disk: its directory, lock, saved config, checkpoints, resume, and signals.

Everything that can be wrong with the config or the data is found before the run directory is
touched, so bad input never leaves a half-made run behind; a run that fails before its first
checkpoint removes the directory it created.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import checkpoint, parallel
from .cells import CELLS
from .config import Config, config_from_dict, config_to_dict, dump_config, load_config
from .data import Corpus, load_corpus, make_tracks
from .errors import CharrnnError, CheckpointError, ConfigError
from .parallel import mpi_size
from .training import TrainState, new_state, restore_state, state_arrays, state_meta, train
from .vocab import Vocab
from .workers import blas_threads, connect_mpi, follow_mpi, start_here

if TYPE_CHECKING:
    from .mpi import MpiWorkers

# keys a resumed run may change: they decide how long, how often and where, never what a step computes
# (a moved text is fine: the checkpoint's data_sha256 checks that it is the same text)
RESUMABLE_CHANGES = {
    "train.steps",
    "train.eval_every",
    "train.checkpoint_every",
    "train.log_every",
    "train.out_dir",
    "data.path",
    "train.max_seconds",
    "train.early_stop_patience",
    "train.workers",  # the sums' order changes, not what a step computes
    "train.threads",
}


def run_lock(out_dir: Path) -> AbstractContextManager[None]:
    """One writer per run directory, through `lock` in it."""
    busy = "another charrnn train{pid} is writing this run directory; wait for it to finish or stop it"
    return held(out_dir / "lock", busy, "the run directory")


@contextmanager
def held(path: Path, busy: str, what: str) -> Iterator[None]:
    """An exclusive flock on `path` while the block runs, which the kernel drops when its holder dies, so
    a crashed or killed process never leaves it stuck. The file names the holder's pid, and goes at the end.

    `busy` says, after the folder's name, who else holds it: `{pid}` becomes " (pid N)" when the file names one.
    """
    try:
        fd = _flock(path)
        if fd is None:
            pid = _read_pid(path)
            raise CharrnnError(f"{path.parent}: " + busy.format(pid=f" (pid {pid})" if pid else ""))
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError as err:
        raise CharrnnError(f"{path}: cannot lock {what}: {err.strerror}") from None
    try:
        yield
    finally:
        with suppress(OSError):
            path.unlink(missing_ok=True)
        os.close(fd)


def _flock(path: Path) -> int | None:
    """A descriptor holding an exclusive flock on `path`, or None when another process holds it."""
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # its holder removed the file between our open and our lock: lock the new one


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@contextmanager
def stop_on_signals() -> Iterator[list[int]]:
    """Collect SIGINT/SIGTERM so the loop can stop at a step boundary; a second one stops at once."""
    received: list[int] = []

    def handler(signum, frame):
        received.append(signum)
        if len(received) > 1:
            raise KeyboardInterrupt

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
        # how the run trains and which weights val_loss scores, on every line: a resumed run may train otherwise
        self.workers: dict[str, int | str] = {}

    def __call__(self, event: str, info: dict) -> None:
        if event == "start":
            self.steps = info["steps"]
            self.workers = {"workers": info["workers"], "threads": info["threads"], "scored": info["scored"]}
        elif event == "steps":  # train.steps: auto has fixed the count: its last step gets a line
            self.steps = info["steps"]
        elif event == "eval":
            self.val_loss = info["val_loss"]
        elif event == "step" and (
            info["step"] % self.log_every == 0 or self.val_loss is not None or info["step"] == self.steps
        ):
            line = {
                "step": info["step"],
                "epoch": info["epoch"],
                "train_loss": _number(info["loss"]),
                "val_loss": self.val_loss,
                "lr": info["lr"],
                "grad_norm": _number(info["grad_norm"]),
                "skipped_steps": info["skipped_steps"],
                "chars_per_sec": info["chars_per_sec"],
                **self.workers,
                "time": time.time(),
            }
            try:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(line) + "\n")
            except OSError as err:
                raise CharrnnError(f"{self.path}: cannot write: {err.strerror}") from None
            self.val_loss = None

    def keep_through(self, step: int) -> None:
        """Drop lines past `step`: a resumed run rewrites what its interrupted predecessor logged after it."""
        if self.path.exists():
            lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
            kept = [line for line in lines if _step_of(line) <= step]
            checkpoint.atomic_write(self.path, "".join(kept).encode())


def _number(x: float) -> float | None:
    return x if math.isfinite(x) else None  # a skipped step's NaN is null: metrics.jsonl stays strict JSON


def _step_of(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")  # a line cut short by a crash


def _differences(a: Config, b: Config) -> list[str]:
    flat_a, flat_b = config_to_dict(a), config_to_dict(b)
    return [
        f"{section}.{key}: {flat_b[section][key]!r} in the checkpoint, {value!r} now"
        for section, values in flat_a.items()
        for key, value in values.items()
        if value != flat_b[section][key] and f"{section}.{key}" not in RESUMABLE_CHANGES and section != "sample"
    ]


def _clear_run(out_dir: Path) -> None:
    for kind in checkpoint.KINDS:
        (out_dir / f"{kind}.json").unlink(missing_ok=True)
    for path in out_dir.glob("weights-*.npz"):
        path.unlink()
    (out_dir / "metrics.jsonl").unlink(missing_ok=True)


def _held(out_dir: Path) -> list[str]:
    """The checkpoint files in a run directory: what starting over would delete."""
    names = [f"{kind}.json" for kind in checkpoint.KINDS if (out_dir / f"{kind}.json").exists()]
    return names + sorted(p.name for p in out_dir.glob("weights-*.npz"))


def _intact_best(out_dir: Path) -> str:
    """A hint naming best.json when it loads cleanly: the way back when latest.json is gone or damaged."""
    best = out_dir / "best.json"
    if not best.exists():
        return ""
    try:
        meta, _ = checkpoint.load(best)
    except CheckpointError:
        return ""
    return f"best.json (step {meta.get('step')}) is intact: copy it over latest.json to resume from there, or "


def _checkpoint_to_resume(out_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    latest = out_dir / "latest.json"
    if not latest.exists():
        raise CheckpointError(
            f"{out_dir}: nothing to resume, there is no latest.json; {_intact_best(out_dir)}start over with --force"
        )
    try:
        return checkpoint.load(latest)
    except CheckpointError as err:
        raise CheckpointError(f"{err}; {_intact_best(out_dir)}start over with --force") from None


def _step_bytes(cfg: Config, vocab_size: int) -> int:
    """Rough peak memory of a training step in float32: weights (and their average, under train.ema),
    gradients, optimizer moments, activations."""
    V, H, L = vocab_size, cfg.model.hidden_size, cfg.model.num_layers
    G = CELLS[cfg.model.cell].GATES
    T, B = cfg.train.seq_length, cfg.train.batch_size
    weights = (G + 1) * V * H + V + G * L * (H * H + H) + G * (L - 1) * H * H
    copies = 6 if cfg.train.ema > 0 else 5
    return 4 * (copies * weights + (3 * G + 1) * L * T * B * H + 4 * T * B * V)


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(cfg: Config, vocab_size: int, source: str) -> None:
    need, have = _step_bytes(cfg, vocab_size), _memory_bytes()
    if have is not None and need > have:
        m, t = cfg.model, cfg.train
        raise ConfigError(
            f"{source}: model.hidden_size {m.hidden_size} x model.num_layers {m.num_layers}, train.batch_size "
            f"{t.batch_size} x train.seq_length {t.seq_length} over a vocabulary of {vocab_size} characters need "
            f"about {need / 2**30:.1f} GiB per step, this machine has {have / 2**30:.1f} GiB; lower them"
        )


def train_run(
    config_path: str,
    overrides: list[str],
    resume: bool = False,
    force: bool = False,
    report: Callable[[str, dict], None] = lambda e, i: None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> dict:
    """Train the run a config describes; returns train()'s summary plus the run directory and the workers.

    Under mpiexec every rank calls this; rank 0 trains and returns the summary, the others follow it and
    return {"rank": r}. stop_requested is asked before every step (Ctrl-C, SIGTERM, a sweep's pruner).
    """
    if resume and force:
        raise ConfigError("--resume and --force: choose one (continue the run, or start it over)")
    ranks = mpi_size()
    group = connect_mpi(ranks) if ranks > 1 else None
    cfg = load_config(config_path, overrides)
    # under mpiexec a rank that cannot read the data stops them all
    corpus = group.agree(lambda: load_corpus(cfg.data)) if group is not None else load_corpus(cfg.data)
    try:
        make_tracks(corpus.train, cfg.train.batch_size, cfg.train.seq_length)  # too short: fail before any write
        plan = parallel.plan(cfg, corpus.vocab.size, ranks)
    except ConfigError as err:
        raise ConfigError(f"{config_path}: {err}") from None
    _check_memory(cfg, corpus.vocab.size, config_path)
    data_sha256 = _sha256(corpus)
    if group is not None:
        group.plan = plan
        group.same_data(data_sha256, cfg.data.path)
        if group.rank > 0:
            follow_mpi(cfg, corpus, group)
            return {"rank": group.rank}
    try:
        return _lead(config_path, cfg, corpus, data_sha256, plan, group, resume, force, report, stop_requested)
    except BaseException as err:
        if group is not None and group.waiting:  # the other ranks still wait to be told to start
            group.abort(err.exit_code if isinstance(err, CharrnnError) else 1)
        raise


def _sha256(corpus: Corpus) -> str:
    digest = hashlib.sha256(corpus.train.data)
    digest.update(corpus.val.data)  # two updates, not a concatenation: no copy of a large stream
    return digest.hexdigest()


def _lead(
    config_path: str,
    cfg: Config,
    corpus: Corpus,
    data_sha256: str,
    plan: parallel.Plan,
    group: MpiWorkers | None,
    resume: bool,
    force: bool,
    report: Callable[[str, dict], None],
    stop_requested: Callable[[], bool],
) -> dict:
    """Worker 0's part: the run directory, resume or start, the other workers, training."""
    out_dir = Path(cfg.train.out_dir or "")  # never empty: load_config resolves its default
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{config_path}: train.out_dir: {out_dir} exists and is not a directory")
    try:
        state = new_state(cfg, corpus.vocab.size)
        created = next((p for p in (*reversed(out_dir.parents), out_dir) if not p.exists()), None)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CharrnnError(f"{out_dir}: cannot create the run directory: {err.strerror}") from None
        with run_lock(out_dir):
            try:
                summary = _train_in(out_dir, cfg, corpus, data_sha256, state, plan, group, resume, force, report,
                                    stop_requested)  # fmt: skip
            except BaseException:
                if created and not (out_dir / "latest.json").exists():
                    shutil.rmtree(created, ignore_errors=True)  # nothing worth keeping: leave no half-made run
                raise
    except MemoryError:
        raise CharrnnError(
            f"{config_path}: out of memory; lower model.hidden_size, train.batch_size or train.seq_length"
        ) from None
    return {"run_dir": str(out_dir), **summary}


def _train_in(
    out_dir: Path,
    cfg: Config,
    corpus: Corpus,
    data_sha256: str,
    state: TrainState,
    plan: parallel.Plan,
    group: MpiWorkers | None,
    resume: bool,
    force: bool,
    report: Callable[[str, dict], None],
    stop_requested: Callable[[], bool],
) -> dict:
    """What a run does while it holds the lock: resume or start over, save its config, train."""
    metrics_log = MetricsLog(out_dir / "metrics.jsonl", cfg.train.log_every)
    if resume and not _held(out_dir):
        # killed before its first checkpoint: resuming is starting, so a retry loop needs no special case
        report("note", {"text": f"{out_dir}: no checkpoint to resume yet; starting from step 0"})
        resume = False
    if resume:
        latest = out_dir / "latest.json"
        meta, arrays = _checkpoint_to_resume(out_dir)
        _check_resumable(latest, meta, cfg, corpus.vocab, data_sha256)
        try:
            restore_state(state, meta, arrays)
        except (KeyError, ValueError, TypeError) as err:
            raise CheckpointError(f"{latest}: does not fit this config: {err}") from None
        metrics_log.keep_through(state.step)
        report("resume", {"step": state.step, "path": latest})
    elif not force and (held := _held(out_dir)):
        raise CharrnnError(
            f"{out_dir}: already holds a run ({', '.join(held)}); continue it with --resume, or start over with --force"
        )
    else:
        _clear_run(out_dir)
    checkpoint.remove_temporary(out_dir)
    checkpoint.atomic_write(out_dir / "config.yaml", dump_config(cfg).encode())

    def save(s: TrainState, kinds: tuple[str, ...]) -> Path:
        meta = {
            "config": config_to_dict(cfg),
            "vocab": corpus.vocab.to_json(),
            "data_sha256": data_sha256,
            "workers": plan.workers,
            "threads": plan.threads,
            **state_meta(s),
        }
        return checkpoint.save(out_dir, state_arrays(s), meta, kinds)

    def tee(event: str, info: dict) -> None:
        metrics_log(event, info)
        report(event, info)

    with blas_threads(plan.threads):
        workers = group or start_here(plan, cfg, corpus, state)
        try:
            workers.share(state_meta(state), state_arrays(state))
            summary = train(cfg, corpus, state, save, tee, stop_requested, workers)
        except BaseException:
            workers.close(failed=True)
            raise
        workers.close()
    per_sum = 1000 * workers.sum_seconds / workers.sums if workers.sums else None
    return {**summary, "workers": plan.workers, "threads": plan.threads, "sum_ms_per_step": per_sum}


def _check_resumable(path: Path, meta: dict, cfg: Config, vocab: Vocab, data_sha256: str) -> None:
    try:
        saved = config_from_dict(meta.get("config"), str(path))
    except ConfigError as err:
        raise CheckpointError(str(err)) from None
    diffs = _differences(cfg, saved)
    if diffs:
        raise ConfigError(f"{path}: cannot resume, the config changed: " + "; ".join(diffs))
    if meta.get("vocab") != vocab.to_json():
        raise CheckpointError(f"{path}: cannot resume, the training text's characters changed since the checkpoint")
    if meta.get("data_sha256") != data_sha256:
        raise CheckpointError(f"{path}: cannot resume, {cfg.data.path} is not the text the checkpoint was trained on")
