"""Run a sweep: Optuna picks each trial's values and prunes, Dask runs the trials, each through charrnn's own loop.

The one module that imports optuna and dask; `charrnn sweep` imports it when it runs, so train, sample
and --help never load them. How the parts talk (docs/sweep.md has the user's side):

- The study lives with this process, the driver, in an Optuna journal in out_dir (`study.journal`):
  the driver alone asks Optuna for values, reports validation losses, asks the pruner, and tells
  Optuna how each trial ended. Nothing else needs to reach the study.
- A trial is one Dask task, `run_trial`, on any worker: `run_dir.train_run` with the trial's values as
  --set overrides, `out_dir/trials/<name>` as its run directory, one worker process, its share of BLAS
  threads. The corpus is read on the worker from data.path, resolved to an absolute path here. With
  `repeats: N` the task trains N runs one after another, `<name>-r0` .. `<name>-r{N-1}`, seeds
  train.seed + 0 .. N-1; the trial's loss is their mean.
- After each validation a trial puts its loss on a Dask queue that the driver reads, and waits on its
  own queue for the pruner's answer; a Dask event asks every trial to stop (Ctrl-C, the time budget).
  With repeats only the last repeat posts, each step's mean over the repeats: the earlier ones have all
  reached that step by then, so the pruner decides on the mean.
  Only the scheduler links driver and workers, so pruning works on a cluster as on one machine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import dask
import optuna
from distributed import Client, Event, LocalCluster, Queue, get_worker
from distributed.scheduler import KilledWorker

from . import checkpoint, parallel
from .config import config_to_dict, dump_config, load_config
from .data import load_corpus, make_tracks
from .errors import CharrnnError, CheckpointError, ConfigError, DataError
from .loss_chart import read_metrics
from .run_dir import RESUMABLE_CHANGES, held, train_run
from .sweep_file import Dimension, Sweep, grid_params, grid_points, override, space_keys, values_of
from .sweep_progress import leaderboard_markdown, shown_path

PRUNE_AFTER = 5  # the pruners leave every trial alone for the first 1/PRUNE_AFTER of the shortest one's steps
CONNECT_SECONDS = 10  # an existing scheduler must answer, and show a worker, within this
ANSWER_SECONDS = 60  # a trial waits this long for the pruner's answer, then trains on
POLL_SECONDS = 0.25  # how often a trial looks at the stop event
PROGRESS_SECONDS = 1.0  # how often a trial sends its step for the table
LISTEN_SECONDS = 0.2  # how long the driver waits when no trial has sent anything
STUDY = "study.journal"  # what marks a folder as holding a sweep
SWEEP_FILES = (STUDY, "sweep.json", "best.yaml", "leaderboard.md", "sweep.log")
# how a trial can end; a stopped trial (Ctrl-C, the budget) stays unfinished and --resume continues it
FINISHED = ("complete", "pruned", "failed")
# errors a trial cannot be blamed for: every other trial would hit them too, so the sweep stops
SWEEP_ERRORS = (ConfigError, DataError, CheckpointError)


def run_sweep(
    sweep: Sweep,
    resume: bool = False,
    force: bool = False,
    scheduler: str | None = None,
    report: Callable[[str, dict], None] = lambda e, i: None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> dict:
    """Run (or continue) a sweep to its end, its budget or a stop request; returns its summary.

    report(event, info) gets ("start", ...), ("trial", row) whenever a trial's row changes, ("note", ...).
    Raises ConfigError or CharrnnError for bad input, before any trial starts where it can be known then.
    """
    if resume and force:
        raise ConfigError("--resume and --force: choose one (continue the sweep, or start it over)")
    out_dir = sweep.out_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{sweep.path}: out_dir: {out_dir} exists and is not a directory")
    if scheduler is None or Path(sweep.base.data.path).exists():
        _check_data(sweep)  # on a cluster the workers may see a path this machine does not
    created = next((p for p in (*reversed(out_dir.parents), out_dir) if not p.exists()), None)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CharrnnError(f"{out_dir}: cannot create the sweep's folder: {err.strerror}") from None
    with held(out_dir / "sweep.lock", "another charrnn sweep{pid} is running in this folder", "the sweep's folder"):
        fresh = force or not (out_dir / STUDY).exists()
        driver = None
        try:
            _prepare(sweep, resume, force, report)
            with _engine_logs(out_dir / "sweep.log"):
                driver = _Driver(sweep, _open_study(sweep), report, stop_requested)
                pending = len(driver.todo) + max(0, sweep.trials() - len(driver.rows))
                if not pending:  # no cluster to start
                    done = f"{shown_path(out_dir)}: its {len(driver.rows)} trials have finished; nothing to train"
                    report("note", {"text": done})
                    return driver.summary(0.0)
                with _dask(scheduler, sweep, out_dir / "sweep.log", pending) as (client, slots, threads, where):
                    return driver.run(client, slots, threads, where)
        except BaseException:
            if fresh and (driver is None or not driver.rows):  # no trial began: leave no half-made sweep
                for name in SWEEP_FILES:
                    (out_dir / name).unlink(missing_ok=True)
                if created is not None:
                    shutil.rmtree(created, ignore_errors=True)
            raise


# --- before anything starts -------------------------------------------------------------------------------


def _check_data(sweep: Sweep) -> None:
    """Read the text once here, so that a missing or too short one stops the sweep before its first trial."""
    corpus = load_corpus(sweep.base.data)
    shapes = {(sweep.base.train.batch_size, sweep.base.train.seq_length)}
    if sweep.search == "grid":
        for point in grid_points(sweep):
            t = load_config(sweep.config, [*sweep.overrides, *(override(k, v) for k, v in point.items())]).train
            shapes.add((t.batch_size, t.seq_length))
    for batch_size, seq_length in sorted(shapes):
        try:
            make_tracks(corpus.train, batch_size, seq_length)
        except ConfigError as err:
            raise ConfigError(f"{sweep.path}: {err}") from None


def _identity(sweep: Sweep) -> dict:
    """What a resumed sweep must share with the one it continues: the search, its space, the trials' config."""
    base = config_to_dict(sweep.base)
    for key in RESUMABLE_CHANGES:  # what a resumed run may change, a resumed sweep may too
        section, _, name = key.partition(".")
        base[section].pop(name, None)
    space = [dataclasses.asdict(d) for d in sweep.space]
    identity = {"search": sweep.search, "pruner": sweep.pruner, "seed": sweep.seed, "space": space, "config": base}
    if sweep.repeats > 1:  # absent at 1: a sweep begun before repeats existed still resumes
        identity["repeats"] = sweep.repeats
    return json.loads(json.dumps(identity))


def _prepare(sweep: Sweep, resume: bool, force: bool, report: Callable[[str, dict], None]) -> None:
    """Start over, continue, or refuse: --resume compares the sweep with the one it continues."""
    out_dir = sweep.out_dir
    held = (out_dir / STUDY).exists()
    if held and not (resume or force):
        raise CharrnnError(
            f"{shown_path(out_dir)}: already holds a sweep ({STUDY}, trials/); continue it with --resume, "
            "or start over with --force"
        )
    if resume and not held:
        report("note", {"text": f"{out_dir}: no sweep to resume yet; starting one"})
        resume = False
    if force:
        for name in SWEEP_FILES:
            (out_dir / name).unlink(missing_ok=True)
        shutil.rmtree(out_dir / "trials", ignore_errors=True)
    identity = _identity(sweep)
    if resume:
        saved_path = out_dir / "sweep.json"
        try:
            saved = json.loads(saved_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CheckpointError(f"{saved_path}: cannot read it ({err}); start over with --force") from None
        keys = [*identity, *(key for key in saved if key not in identity)]  # repeats is there only when > 1
        changed = [key for key in keys if saved.get(key) != identity.get(key)]
        if changed:
            raise ConfigError(
                f"{saved_path}: cannot resume, the sweep changed ({', '.join(changed)}); "
                "resume with the same sweep file and --set options, or start over with --force"
            )
    else:
        checkpoint.atomic_write(out_dir / "sweep.json", (json.dumps(identity, indent=1) + "\n").encode())


@contextmanager
def _engine_logs(path: Path) -> Iterator[None]:
    """Dask's and Optuna's logging, and Python warnings, into `path` while the sweep runs; never the terminal."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    names = ("distributed", "dask", "optuna", "tornado", "asyncio", "bokeh", "py.warnings")
    loggers = [logging.getLogger(name) for name in names]
    saved = [(logger.handlers, logger.propagate) for logger in loggers]
    optuna_level = optuna.logging.get_verbosity()
    for logger in loggers:
        logger.handlers, logger.propagate = [handler], False
    optuna.logging.set_verbosity(optuna.logging.INFO)
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            yield
    finally:
        logging.captureWarnings(False)
        optuna.logging.set_verbosity(optuna_level)
        for logger, (handlers, propagate) in zip(loggers, saved):
            logger.handlers, logger.propagate = handlers, propagate
        handler.close()


def _open_study(sweep: Sweep) -> optuna.Study:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(sweep.out_dir / STUDY)))
    seed = sweep.seed
    with suppress(KeyError):  # a resumed random search must not draw its first values again
        seed += len(optuna.load_study(study_name="charrnn", storage=storage).trials)
    samplers = {"tpe": optuna.samplers.TPESampler(seed=seed)}
    every = sweep.base.train.eval_every
    steps = max(_bounds(sweep, max))
    # no trial is pruned before a fifth of the shortest trial's steps: pruned at its first validation (1/15),
    # bench/sweep_targets.py's random search lost its best trial, whose rate started slow, by 0.06 nats
    grace = every * math.ceil(min(_bounds(sweep, min)) / (PRUNE_AFTER * every))
    pruners = {
        "none": optuna.pruners.NopPruner(),
        "asha": optuna.pruners.SuccessiveHalvingPruner(min_resource=grace, reduction_factor=3),
        "hyperband": optuna.pruners.HyperbandPruner(min_resource=grace, max_resource=steps, reduction_factor=3),
        "median": optuna.pruners.MedianPruner(n_warmup_steps=grace),
    }
    return optuna.create_study(
        study_name="charrnn",
        storage=storage,
        # a grid is enqueued point by point (GridSampler's study.stop() fails under ask-and-tell, optuna#5141)
        sampler=samplers.get(sweep.search, optuna.samplers.RandomSampler(seed=seed)),
        pruner=pruners[sweep.pruner],
        direction="minimize",
        load_if_exists=True,
    )


def _bounds(sweep: Sweep, pick: Callable) -> list[int]:
    """The trials' train.steps at one end (pick: min or max): the space's, else the base config's."""
    ends = [int(pick(d.ends("train.steps"))) for d in sweep.space if "train.steps" in d.keys]
    return ends or [int(sweep.base.train.steps)]  # a number: load_sweep refuses auto


# --- the cluster ----------------------------------------------------------------------------------------------


@contextmanager
def _dask(scheduler: str | None, sweep: Sweep, log: Path, pending: int) -> Iterator[tuple[Client, int, int, str]]:
    """A client of a new LocalCluster on 127.0.0.1, or of the scheduler at `scheduler`; closed on the way out.

    Yields the client, the trials to run at once (never more than the `pending` ones), each trial's BLAS
    threads, and where they run.
    """
    asked = sweep.base.train.threads
    with ExitStack() as stack:
        if scheduler is None:
            cores = parallel.cores()
            # a trial's threads never depend on how many trials are left: a continued one computes as before
            if asked == "auto":
                slots = sweep.concurrent or cores
                threads = max(1, cores // slots)
            else:
                threads = int(asked)
                slots = sweep.concurrent or max(1, cores // threads)
            slots = min(slots, pending)
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="charrnn-sweep-"))
            cluster = local_cluster(slots, log, scratch)
            stack.callback(cluster.close, timeout=CONNECT_SECONDS)
            client = Client(cluster, set_as_default=False)
            stack.callback(client.close, timeout=CONNECT_SECONDS)
            where = f"a local Dask cluster of {slots} worker process{'es' * (slots > 1)} on 127.0.0.1"
        else:
            client = _connect(scheduler)
            stack.callback(client.close, timeout=CONNECT_SECONDS)
            workers = client.nthreads()
            threads = 1 if asked == "auto" else int(asked)
            slots = min(sweep.concurrent or max(1, sum(workers.values())), pending)
            where = f"{len(workers)} Dask worker{'s' * (len(workers) > 1)} of {scheduler}"
        yield client, slots, threads, where


def local_cluster(workers: int, log: Path, scratch: str) -> LocalCluster:
    """Worker processes that inherit, while they start, an ignored SIGINT and the log as stdout and stderr.

    Ctrl-C in a terminal reaches the whole process group; only the driver should hear it, to stop every
    trial at a step boundary with a checkpoint. And whatever a worker prints, from its first line, goes to
    the log: never to the user's terminal, nor into stdout, which --json keeps for its lines.
    """
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    with suppress(AttributeError, ValueError):  # a test runner's stand-in streams
        sys.stdout.flush()
        sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        # every Dask server's scratch space (the scheduler's too) in `scratch`, which the caller removes; and
        # not the glibc trim threshold Dask gives its workers: it makes every large array a fresh mmap, and a
        # 2 x 512 trial with dropout trained 20 % slower
        environ = dask.config.get("distributed.nanny.pre-spawn-environ")
        environ = {k: v for k, v in environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
        with dask.config.set({"temporary-directory": scratch, "distributed.nanny.pre-spawn-environ": environ}):
            return LocalCluster(
                n_workers=workers,
                threads_per_worker=1,  # one trial per process: each sets its own BLAS threads
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=False,  # the log has them all
                local_directory=scratch,
            )
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)
        if main:
            signal.signal(signal.SIGINT, old)


def _connect(scheduler: str) -> Client:
    try:
        client = Client(scheduler, timeout=CONNECT_SECONDS, set_as_default=False)
    except ValueError as err:  # an address Dask cannot read
        raise ConfigError(f"--scheduler {scheduler}: {str(err).splitlines()[0]}") from None
    except (OSError, asyncio.TimeoutError):
        raise CharrnnError(
            f"--scheduler {scheduler}: no Dask scheduler answered within {CONNECT_SECONDS} s; "
            "start one with `dask scheduler`, or leave --scheduler out for a local cluster"
        ) from None
    try:
        client.wait_for_workers(1, timeout=CONNECT_SECONDS)
    except (OSError, asyncio.TimeoutError):
        client.close()
        raise CharrnnError(
            f"--scheduler {scheduler}: the scheduler has no worker (none joined within {CONNECT_SECONDS} s); "
            f"start some with `dask worker {scheduler} --nthreads 1`"
        ) from None
    return client


# --- on a worker: one trial -------------------------------------------------------------------------------


class _TrialLink:
    """A trial's side of the conversation with the driver: progress and validations out, pruning and stop in."""

    def __init__(self, job: dict):
        token, self.name = job["token"], job["name"]
        self.reports = Queue(f"charrnn-sweep-{token}")
        self.answers = Queue(f"charrnn-sweep-{token}-{self.name}") if job["prune"] else None
        self.stop = Event(f"charrnn-sweep-{token}-stop")
        self.pruned = self.stopped = False
        self.next_poll = self.next_progress = 0.0
        self.repeats = len(job["repeats"])
        self.begin(0, [])

    def begin(self, offset: int, earlier: list[dict[int, float]]) -> None:
        """Before each repeat: the steps its predecessors trained, and their validation losses by step."""
        self.offset, self.earlier = offset, earlier
        self.step = 0
        self.best_val_loss: float | None = None
        self.best_step: int | None = None

    def report(self, event: str, info: dict) -> None:
        # the trial's progress counts every repeat's steps: offset is what the earlier ones trained
        if event == "start":
            self.step = info["step"]
            self._send("start", step=self.offset + info["step"], steps=info["steps"] * self.repeats)
        elif event == "step":
            self.step = info["step"]
            if time.monotonic() >= self.next_progress:
                self.next_progress = time.monotonic() + PROGRESS_SECONDS
                self._send("step", step=self.offset + info["step"])
        elif event == "eval":
            step, val_loss = info["step"], info["val_loss"]
            if self.best_val_loss is None or val_loss < self.best_val_loss:
                self.best_val_loss, self.best_step = val_loss, step
            before = [losses[step] for losses in self.earlier if step in losses]
            if len(before) < self.repeats - 1:
                return  # not every repeat has reached this step yet: no mean to post
            mean = math.fsum([*before, val_loss]) / self.repeats
            self._send("eval", step=self.offset + step, at=step, val_loss=mean)
            if self.answers is not None:
                # no answer in time: the driver is gone or stuck; train on, its stop event still stops us
                with suppress(asyncio.TimeoutError):
                    self.pruned = bool(self.answers.get(timeout=ANSWER_SECONDS)["prune"])

    def stop_requested(self) -> bool:
        if not (self.pruned or self.stopped) and time.monotonic() >= self.next_poll:
            self.next_poll = time.monotonic() + POLL_SECONDS
            self.stopped = self.stop.is_set()
        return self.pruned or self.stopped

    def _send(self, kind: str, **info) -> None:
        self.reports.put({"trial": self.name, "kind": kind, **info})


def repeat_dirs(out_dir: Path, name: str, repeats: int) -> list[Path]:
    """A trial's run directories: trials/t003 alone, or trials/t003-r0, t003-r1, ... side by side, so that
    `charrnn runs out_dir/trials` lists every repeat."""
    if repeats == 1:
        return [out_dir / "trials" / name]
    return [out_dir / "trials" / f"{name}-r{r}" for r in range(repeats)]


def run_trial(job: dict) -> dict:
    """On a Dask worker: train one trial through charrnn's own loop, each repeat in turn, continuing
    checkpoints where they exist (a finished repeat resumes to its own end at once: nothing to train).

    Returns the trial's row (its state: complete, pruned, stopped or failed), or its error when the sweep
    itself cannot go on (bad config or data). Writes trial.json into each repeat's run directory.
    """
    link = _TrialLink(job)
    rows: list[dict] = []
    for r in range(len(job["repeats"])):
        earlier = [dict(read_metrics(Path(row["run_dir"]) / "metrics.jsonl")[1]) for row in rows]
        link.begin(sum(row["step"] for row in rows), earlier)
        row = _run_repeat(job, link, r)
        if row["state"] == "error":
            return row
        rows.append(row)
        if row["state"] != "complete":
            break
    if len(job["repeats"]) == 1:
        return rows[0]
    return _trial_row(job, rows)


def _trial_row(job: dict, rows: list[dict]) -> dict:
    """A trial of several repeats as one row: the mean of their best losses, their min..max, each one's result."""
    bests = [row["best_val_loss"] for row in rows if row["best_val_loss"] is not None]
    complete = len(rows) == len(job["repeats"]) and all(row["state"] == "complete" for row in rows)
    fields = ("run_dir", "seed", "state", "step", "steps", "best_val_loss", "best_step", "error")
    last = {k: v for k, v in rows[-1].items() if k not in ("repeat", "seed")}
    return {
        **last,  # how the last repeat that ran ended is how the trial did (pruned, stopped, failed)
        "state": "complete" if complete else rows[-1]["state"],
        "step": sum(row["step"] for row in rows),
        "steps": rows[-1]["steps"] * len(job["repeats"]),
        # the mean of the repeats that validated so far: of all of them once the trial is complete
        "best_val_loss": math.fsum(bests) / len(bests) if bests else None,
        "best_step": max((row["best_step"] for row in rows if row["best_step"] is not None), default=None),
        "spread": [min(bests), max(bests)] if bests else None,
        "run_dir": job["run_dir"],
        "repeats": [{k: row[k] for k in fields} for row in rows],
    }


def _run_repeat(job: dict, link: _TrialLink, r: int) -> dict:
    """Train one repeat of a trial; its row, as run_trial returns for a trial of one repeat."""
    repeat = job["repeats"][r]
    row = {
        "trial": job["name"],
        "number": job["number"],
        "values": job["values"],
        "state": "failed",
        "step": 0,
        "steps": job["steps"],
        "best_val_loss": None,
        "best_step": None,
        "run_dir": repeat["run_dir"],
        "error": None,
        "worker": _worker_address(),
    }
    try:
        summary = train_run(job["config"], repeat["overrides"], True, False, link.report, link.stop_requested)
    except SWEEP_ERRORS as err:
        return {
            **row,
            "state": "error",
            "error": str(err),
            "exit_code": err.exit_code,
            "data": isinstance(err, DataError),
        }
    except CharrnnError as err:  # diverged, out of memory, a full disk: this trial failed, the sweep goes on
        row.update(error=str(err), step=link.step, best_val_loss=link.best_val_loss, best_step=link.best_step)
    else:
        stopped_early = summary["interrupted"]
        row.update(
            state=("pruned" if link.pruned else "stopped") if stopped_early else "complete",
            step=summary["step"],
            steps=summary["steps"],
            best_val_loss=summary["best_val_loss"],
            best_step=summary["best_step"],
        )
    if len(job["repeats"]) > 1:
        row.update(repeat=r, seed=repeat["seed"])
    run_dir = Path(repeat["run_dir"])
    if run_dir.is_dir():  # how a trial (or one repeat of it) ended, beside its checkpoints: `pruned` is marked here
        fields = ("trial", "repeat", "seed", "state", "values", "step", "steps", "best_val_loss", "best_step", "error")
        record = {k: row[k] for k in fields if k in row}
        checkpoint.atomic_write(run_dir / "trial.json", (json.dumps(record) + "\n").encode())
    return row


def _worker_address() -> str | None:
    try:
        return get_worker().address
    except ValueError:
        return None


# --- the driver -------------------------------------------------------------------------------------------


def trial_name(number: int) -> str:
    return f"t{number:03d}"


class _Driver:
    """Keeps `slots` trials running, answers their validations with the pruner, and records how each ended."""

    def __init__(self, sweep: Sweep, study: optuna.Study, report, stop_requested):
        self.sweep, self.study = sweep, study
        self.report, self.stop_requested = report, stop_requested
        self.token = uuid.uuid4().hex[:12]  # names this invocation's queues and stop event on the scheduler
        self.answers: dict[str, Queue] = {}
        self.trials: dict[str, optuna.Trial] = {}  # the running ones, by name
        self.running: dict[Any, dict] = {}  # future -> row
        self.rows: dict[int, dict] = {}  # every trial's row, by number
        # unfinished trials of an earlier invocation: continued from their checkpoints, first
        self.todo: list[optuna.trial.FrozenTrial] = []
        for frozen in study.get_trials(deepcopy=False):
            self.rows[frozen.number] = _row_of(frozen, sweep)
            if frozen.state == optuna.trial.TrialState.RUNNING:
                self.todo.append(frozen)
        self.stop_reason: str | None = None
        self.fatal: dict | None = None

    def run(self, client: Client, slots: int, threads: int, where: str) -> dict:
        sweep, todo = self.sweep, self.todo
        self.client, self.slots, self.threads = client, slots, threads
        self.reports = Queue(f"charrnn-sweep-{self.token}", client=client)
        self.stop = Event(f"charrnn-sweep-{self.token}-stop", client=client)
        done = sum(row["state"] in FINISHED for row in self.rows.values())
        planned = max(sweep.trials(), len(self.rows))
        self.report(
            "start",
            {
                "out_dir": str(sweep.out_dir),
                "trials": planned,
                "finished": done,
                "concurrent": slots,
                "threads": threads,
                "where": where,
                "keys": space_keys(sweep),
                "rows": list(self.rows.values()),
            },
        )
        started = time.monotonic()
        while True:
            if self.stop_reason is None:
                if self.stop_requested():
                    self._stop("interrupted", "stopping: every running trial saves a checkpoint and stops")
                elif sweep.max_seconds and time.monotonic() - started >= sweep.max_seconds:
                    self._stop(
                        "max_seconds",
                        f"max_seconds {sweep.max_seconds:g} reached: stopping the running trials at their checkpoints",
                    )
            while self.stop_reason is None and len(self.running) < self.slots:
                if todo:
                    frozen = todo.pop(0)
                    self._submit(optuna.Trial(self.study, frozen._trial_id))
                elif len(self.rows) < sweep.trials():
                    self._submit(self._ask())
                else:
                    break
            if not self.running:
                break
            self._listen()
            self._collect()
        if self.fatal is not None:
            fatal = self.fatal
            where = f" on the worker at {fatal['worker']}" if fatal["worker"] else ""
            hint = (
                "; data.path must name the text at the same path on every worker (docs/sweep.md)"
                if fatal["data"]
                else ""
            )
            err = CharrnnError(f"trial {fatal['trial']}{where}: {fatal['error']}{hint}")
            err.exit_code = fatal["exit_code"]
            raise err
        return self.summary(time.monotonic() - started)

    def _stop(self, reason: str, text: str) -> None:
        self.stop_reason = reason
        self.stop.set()
        if self.running:
            self.report("note", {"text": text})

    def _ask(self) -> optuna.Trial:
        sweep = self.sweep
        if sweep.search == "grid":
            taken = [row["values"] for row in self.rows.values()]
            self.study.enqueue_trial(next(p for p in grid_params(sweep) if values_of(sweep.space, p) not in taken))
        trial = self.study.ask()
        for d in sweep.space:
            _suggest(trial, d)
        return trial

    def _submit(self, trial: optuna.Trial) -> None:
        sweep = self.sweep
        name = trial_name(trial.number)
        values = values_of(sweep.space, trial.params)
        run_dirs = repeat_dirs(sweep.out_dir, name, sweep.repeats)
        seed = int(values.get("train.seed", sweep.base.train.seed))
        repeats = [
            {
                "run_dir": str(run_dir),
                "seed": seed + r,
                "overrides": [
                    *sweep.overrides,
                    f"data.path={sweep.base.data.path}",  # absolute: a worker's current directory is its own
                    *(override(k, v) for k, v in values.items()),
                    f"train.out_dir={run_dir}",
                    "train.workers=1",
                    f"train.threads={self.threads}",
                    *([f"train.seed={seed + r}"] if sweep.repeats > 1 else []),
                ],
            }
            for r, run_dir in enumerate(run_dirs)
        ]
        prune, steps = sweep.pruner != "none", self._steps(values) * sweep.repeats
        run_dir = run_dirs[0]
        job = {
            "token": self.token,
            "name": name,
            "number": trial.number,
            "values": values,
            "prune": prune,
            "config": str(sweep.config),
            "repeats": repeats,
            "run_dir": str(run_dir),
            "steps": steps,
        }
        trial.set_user_attr("name", name)
        if prune:
            self.answers[name] = Queue(f"charrnn-sweep-{self.token}-{name}", client=self.client)
        self.trials[name] = trial
        future = self.client.submit(run_trial, job, key=f"charrnn-{name}-{self.token}", pure=False)
        previous = self.rows.get(trial.number, {})
        row = {
            **_blank_row(trial.number, values, run_dir, steps),
            "step": previous.get("step", 0),
            "best_val_loss": previous.get("best_val_loss"),
            "best_step": previous.get("best_step"),
            "state": "running",
        }
        self.rows[trial.number] = self.running[future] = row
        self.report("trial", row)

    def _steps(self, values: dict) -> int:
        return int(values.get("train.steps", self.sweep.base.train.steps))

    def _listen(self) -> None:
        """Read all that the trials sent, or wait a fraction of a second when they sent nothing.

        Never a `get` with a timeout: on the scheduler each one that expires logs a traceback, five a second.
        """
        messages = self.reports.get(batch=True)
        if not messages:
            time.sleep(LISTEN_SECONDS)
        for message in messages:
            row = next((r for r in self.running.values() if r["trial"] == message["trial"]), None)
            if row is None:
                continue  # from a trial that has ended since
            row["step"] = message["step"]
            if message["kind"] == "start":
                row["steps"] = message["steps"]
            elif message["kind"] == "eval":
                self._validated(row, message["at"], message["val_loss"])
            self.report("trial", row)

    def _validated(self, row: dict, step: int, val_loss: float) -> None:
        row["val_loss"] = val_loss
        if row["best_val_loss"] is None or val_loss < row["best_val_loss"]:
            row["best_val_loss"], row["best_step"] = val_loss, step
        trial = self.trials[row["trial"]]
        trial.report(val_loss, step)
        if row["trial"] in self.answers:
            prune = self.stop_reason is None and trial.should_prune()
            self.answers[row["trial"]].put({"prune": prune})

    def _collect(self) -> None:
        for future in [f for f in self.running if f.done()]:
            row = self.running.pop(future)
            try:
                result = future.result()
            except KilledWorker:
                result = {
                    **row,
                    "state": "failed",
                    "error": "its worker process died, every time Dask tried it (out of memory?); see sweep.log",
                }
            trial = self.trials.pop(row["trial"])
            self.answers.pop(row["trial"], None)
            if result["state"] == "error":
                if self.fatal is None:
                    self.fatal = result
                    self._stop("error", f"trial {row['trial']} cannot run, so no trial can: stopping the others")
                result = {**row, "state": "stopped", "step": row["step"]}
            for key in ("worker", "exit_code", "data"):
                result.pop(key, None)
            result.setdefault("val_loss", row.get("val_loss"))
            self.rows[row["number"]] = result
            self._record(trial, result)
            self.report("trial", result)

    def _record(self, trial: optuna.Trial, row: dict) -> None:
        """Keep the trial's row in the study, and tell Optuna how it ended (an unfinished trial stays running)."""
        from optuna.trial import TrialState

        trial.set_user_attr("row", {k: v for k, v in row.items() if k != "val_loss"})
        state = row["state"]
        if state == "complete" and row["best_val_loss"] is not None:
            self.study.tell(trial, row["best_val_loss"])
        elif state == "pruned":
            self.study.tell(trial, state=TrialState.PRUNED)
        elif state in FINISHED:
            self.study.tell(trial, state=TrialState.FAIL)

    def summary(self, seconds: float) -> dict:
        sweep = self.sweep
        rows = [self.rows[n] for n in sorted(self.rows)]
        complete = [r for r in rows if r["state"] == "complete" and r["best_val_loss"] is not None]
        best = min(complete, key=lambda r: r["best_val_loss"]) if complete else None
        best_yaml = None
        if best is not None:
            best_yaml = sweep.out_dir / "best.yaml"
            checkpoint.atomic_write(best_yaml, _best_config(sweep, best).encode())
        keys = space_keys(sweep)
        board = leaderboard_markdown(rows, keys, sweep.repeats)
        checkpoint.atomic_write(sweep.out_dir / "leaderboard.md", board.encode())
        counts = {state: sum(r["state"] == state for r in rows) for state in FINISHED}
        return {
            "out_dir": str(sweep.out_dir),
            "rows": rows,
            "keys": keys,
            "repeats": sweep.repeats,
            "trials": len(rows),
            **counts,
            "unfinished": len(rows) - sum(counts.values()),
            "steps_trained": sum(r["step"] or 0 for r in rows),
            "best": best,
            "best_yaml": str(best_yaml) if best_yaml else None,
            "interrupted": self.stop_reason == "interrupted",
            "stop_reason": self.stop_reason or "done",
            "wall_seconds": seconds,
        }


def _suggest(trial: optuna.Trial, d: Dimension) -> Any:
    if d.kind in ("list", "choice", "tied"):
        return trial.suggest_categorical(d.key, d.choices())
    if d.kind == "int":
        return trial.suggest_int(d.key, int(d.low), int(d.high), step=d.step or 1)
    return trial.suggest_float(d.key, d.low, d.high, log=d.kind == "loguniform")


def _blank_row(number: int, values: dict, run_dir: Path, steps: int | str) -> dict:
    return {
        "trial": trial_name(number),
        "number": number,
        "values": values,
        "state": "waiting",
        "step": 0,
        "steps": steps,
        "best_val_loss": None,
        "best_step": None,
        "run_dir": str(run_dir),
        "error": None,
        "val_loss": None,
    }


def _row_of(frozen: optuna.trial.FrozenTrial, sweep: Sweep) -> dict:
    """A trial of an earlier invocation as the table shows it: its saved row, else what Optuna knows."""
    from optuna.trial import TrialState

    values = values_of(sweep.space, frozen.params)
    run_dir = repeat_dirs(sweep.out_dir, trial_name(frozen.number), sweep.repeats)[0]
    steps = sweep.base.train.steps * sweep.repeats  # a number: load_sweep refuses auto
    row = {**_blank_row(frozen.number, values, run_dir, steps), **frozen.user_attrs.get("row", {})}
    row.pop("worker", None)
    if frozen.state == TrialState.RUNNING:
        row["state"] = "stopped"  # unfinished: this invocation continues it
    elif row["state"] not in FINISHED:
        row["state"] = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(frozen.state, "failed")
    return row


def _best_config(sweep: Sweep, best: dict) -> str:
    """The best trial's complete run config, ready for `charrnn train`: its values over the base config, with
    the base config's own workers, threads and run directory rather than the ones the sweep gave the trial."""
    overrides = [
        *sweep.overrides,
        f"data.path={sweep.base.data.path}",
        *(override(k, v) for k, v in best["values"].items()),
    ]
    cfg = load_config(sweep.config, overrides)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, out_dir=None))
    loss = best["best_val_loss"]
    if sweep.repeats == 1:
        score, where = f"best validation loss {loss:.4f}", f"# Its run directory: {best['run_dir']}\n"
    else:
        low, high = best["spread"]
        score = f"mean best validation loss {loss:.4f} over {sweep.repeats} seeds, {low:.4f}..{high:.4f}"
        where = f"# Its run directories: {', '.join(r['run_dir'] for r in best['repeats'])}\n"
    header = (
        f"# The best trial of the sweep {sweep.path} ({best['trial']}: {score} at step "
        f"{best['best_step']}), as a run config:\n#   charrnn train {sweep.out_dir / 'best.yaml'}\n{where}"
    )
    return header + dump_config(cfg)
