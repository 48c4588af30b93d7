"""The training loop: truncated BPTT over batch_size tracks, clipping, updates, validation, checkpoints.

It prints nothing: progress goes to a `report(event, info)` callback, checkpoints to a `save(state,
kinds)` callback, and it returns a summary. Everything that decides the next step lives in
`TrainState`, so a run saved at step k and resumed continues exactly as if it had never stopped.
With several workers (charrnn.parallel), worker 0 runs `train` and the others `follow` it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .config import Config
from .data import Corpus, make_tracks, window, windows_per_epoch
from .errors import CharrnnError
from .evaluation import mean_nll
from .model import StackedRNN
from .optim import Optimizer, clip_grad_norm, ema_update, learning_rate, make_optimizer, new_plateau, plateau_update
from .parallel import Plan, Workers

MAX_BAD_STEPS = 10  # consecutive non-finite steps before the run gives up
# train.steps: auto times its steps after these, which warm caches and BLAS...
AUTO_WARM_STEPS = 3
# ...for at least this many steps and this share of train.max_seconds, whichever is longer
AUTO_MEASURE_STEPS = 20
AUTO_MEASURE_SHARE = 0.05
# the count aims at all but this share of the time left: a run a little slower than its timed stretch still
# ends by its count, at the schedule's floor, rather than a few steps short of it at train.max_seconds
AUTO_SPARE = 0.01


class Diverged(CharrnnError):
    """Training produced non-finite numbers it cannot step past; nothing non-finite was saved."""


@dataclass
class TrainState:
    model: StackedRNN
    optimizer: Optimizer
    h: np.ndarray  # (L, B, S) each track's state, carried from one window to the next
    step: int = 0  # updates done
    window: int = 0  # next window of the epoch
    epoch: int = 0
    bad_in_a_row: int = 0  # consecutive skipped steps, saved so a resumed run gives up where this one would
    metrics: dict = field(
        default_factory=lambda: {
            "train_loss": None,
            "val_loss": None,
            "best_val_loss": None,
            "best_step": None,
            "evals_since_best": 0,
            "skipped_steps": 0,
            "chars_trained": 0,
        }
    )
    plateau: dict = field(default_factory=new_plateau)  # the plateau schedule's state (optim.plateau_update)
    steps: int | None = None  # the count train.steps: auto fixed; saved, so a resumed run keeps its schedule
    average: StackedRNN | None = None  # the weights' moving average under train.ema > 0 (optim.ema_update)


def new_state(cfg: Config, vocab_size: int) -> TrainState:
    m, t = cfg.model, cfg.train
    model = StackedRNN(
        vocab_size, m.hidden_size, m.num_layers, seed=t.seed, init=m.init, init_scale=m.init_scale, cell=m.cell
    )
    state = TrainState(model, make_optimizer(t, model.params), model.zero_state(t.batch_size))
    if t.ema > 0:
        state.average = copy.deepcopy(model)  # the average starts at the initial weights
    return state


def validated_model(state: TrainState) -> StackedRNN:
    """The weights validation scores: the average when the run keeps one, else the weights themselves."""
    return state.model if state.average is None else state.average


def dropout_rng(cfg: Config, step: int, rank: int) -> np.random.Generator | None:
    """The dropout masks of one step on one worker: drawn from (seed, step, worker), so a resumed run draws
    what the uninterrupted one did, with nothing to save; apart from the stream that drew the weights."""
    return np.random.default_rng([cfg.train.seed, 1, step, rank]) if cfg.model.dropout > 0 else None


def state_arrays(state: TrainState) -> dict[str, np.ndarray]:
    arrays = {f"param/{k}": v for k, v in state.model.params.items()}
    if state.average is not None:
        arrays.update({f"ema/{k}": v for k, v in state.average.params.items()})
    for slot, values in state.optimizer.slots.items():
        arrays.update({f"opt/{slot}/{k}": v for k, v in values.items()})
    arrays["h"] = state.h
    return arrays


def state_meta(state: TrainState) -> dict:
    return {
        "step": state.step,
        "window": state.window,
        "epoch": state.epoch,
        "bad_in_a_row": state.bad_in_a_row,
        "optimizer_t": state.optimizer.t,
        "metrics": dict(state.metrics),
        "plateau": dict(state.plateau),
        "steps": state.steps,
    }


def restore_state(state: TrainState, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Load a checkpoint into a fresh state of the same shapes; KeyError/ValueError if it does not fit.

    (A checkpoint of an earlier charrnn also holds an "rng" state for dropout; masks are now drawn per step.)
    """
    targets = state_arrays(state)
    if set(arrays) != set(targets):
        raise KeyError(f"arrays {sorted(set(arrays) ^ set(targets))} do not match this config")
    for name, dst in targets.items():
        if arrays[name].shape != dst.shape:
            raise ValueError(f"{name} has shape {arrays[name].shape}, this config needs {dst.shape}")
        dst[...] = arrays[name]
    state.step, state.window, state.epoch = int(meta["step"]), int(meta["window"]), int(meta["epoch"])
    state.bad_in_a_row = int(meta["bad_in_a_row"])
    state.optimizer.t = int(meta["optimizer_t"])
    state.metrics.update(meta["metrics"])
    plateau = meta["plateau"]
    state.plateau = {
        "scale": float(plateau["scale"]),
        "bad": int(plateau["bad"]),
        "best": None if plateau["best"] is None else float(plateau["best"]),
    }
    state.steps = None if meta.get("steps") is None else int(meta["steps"])  # absent before train.steps: auto


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def _all_finite(arrays) -> bool:
    # min and max carry NaN and show inf without allocating a mask the size of the weights
    return all(_finite(a.min(), a.max()) for a in arrays)


def _validates(cfg: Config, step: int, steps: int | None, val: np.ndarray) -> bool:
    """Whether the run validates after `step`: every eval_every steps and at its last of `steps` (None: not
    fixed yet), when it has validation text. Every worker asks, as each scores its share of the tracks."""
    return len(val) > 1 and (step % cfg.train.eval_every == 0 or step == steps)


def _validate(state: TrainState, corpus: Corpus, B: int, T: int, workers: Workers | None = None) -> tuple[float, bool]:
    """Validation loss of the current weights (their average, under train.ema) into the metrics, and whether it
    is a new best; with `workers`, each scores its share of the tracks."""
    val_loss, _ = mean_nll(validated_model(state), corpus.val, B, T, workers)
    if not _finite(val_loss):
        raise Diverged(
            f"the validation loss at step {state.step} is not finite: the weights have grown "
            "too large; lower train.learning_rate or set train.grad_clip"
        )
    metrics = state.metrics
    metrics["val_loss"] = val_loss
    improved = metrics["best_val_loss"] is None or val_loss < metrics["best_val_loss"]
    if improved:
        metrics["best_val_loss"], metrics["best_step"] = val_loss, state.step
    return val_loss, improved


def _advance(state: TrainState, cfg: Config, tracks: np.ndarray, per_epoch: int, lr: float, workers: Workers):
    """One update, the same on every worker: this worker's window of `tracks` (its own, (B_w, n)), the loss
    and gradients of the whole batch, clipping, the step. Returns the loss and the gradient norm."""
    t = cfg.train
    T, B = t.seq_length, t.batch_size
    params, metrics = state.model.params, state.metrics
    inputs, targets = window(tracks, state.window, T)
    rng = dropout_rng(cfg, state.step, workers.rank)
    loss, grads, h_last = workers.loss_and_grads(state.model, inputs, targets, state.h, cfg.model.dropout, rng)
    norm = clip_grad_norm(grads, t.grad_clip)
    if not _finite(loss, norm):
        # a non-finite step never reaches the weights: skip it and restart the tracks' states
        metrics["skipped_steps"] += 1
        state.bad_in_a_row += 1
        if state.bad_in_a_row >= MAX_BAD_STEPS:
            raise Diverged(
                f"loss or gradient was not finite for {MAX_BAD_STEPS} steps in a row at step {state.step + 1}; "
                "lower train.learning_rate or train.grad_clip"
            )
        state.h = np.zeros_like(state.h)
    else:
        state.bad_in_a_row = 0
        state.optimizer.step(params, grads, lr)
        if not _all_finite(params.values()):
            raise Diverged(
                f"the update of step {state.step + 1} (learning rate {lr:g}) made the weights "
                "non-finite; lower train.learning_rate or set train.grad_clip"
            )
        if state.average is not None:
            ema_update(state.average.params, params, t.ema, state.optimizer.t - 1)
        state.h = h_last
        metrics["train_loss"] = loss
    metrics["chars_trained"] += T * B
    state.step += 1
    state.window += 1
    if state.window == per_epoch:  # wrap around: a new epoch starts every track from zero
        state.window, state.epoch = 0, state.epoch + 1
        state.h = np.zeros_like(state.h)
    return loss, norm


class _Fit:
    """train.steps: auto: times a stretch of steps after warm-up, then fixes the count at which the schedule
    ends with train.max_seconds, leaving time for the validations and checkpoints still to come."""

    def __init__(self, cfg: Config, started: float, first_step: int, val_chars: int):
        self.cfg, self.started, self.val_chars = cfg, started, val_chars
        self.warm_until = first_step + AUTO_WARM_STEPS
        self.since: tuple[int, float, float] | None = None  # (step, time, paused) where the timed stretch began
        self.paused = 0.0  # seconds spent validating and saving, which a step's time leaves out
        self.eval_seconds: float | None = None  # the first validation's
        self.save_seconds: float | None = None  # the last checkpoint's

    def pause(self, seconds: float, kind: str) -> None:
        """`seconds` spent on a validation or a checkpoint: out of the steps' time, into the estimates."""
        self.paused += seconds
        if kind == "eval" and self.eval_seconds is None:
            self.eval_seconds = seconds
        elif kind == "save":
            self.save_seconds = seconds

    def ready(self, step: int) -> bool:
        """Whether the stretch is long enough to fix the count before `step`; starts it after warm-up."""
        now = time.perf_counter()
        if self.since is None:
            if step >= self.warm_until:
                self.since = (step, now, self.paused)
            return False
        timed, seconds = step - self.since[0], now - self.since[1]
        return timed >= AUTO_MEASURE_STEPS and seconds >= AUTO_MEASURE_SHARE * self.cfg.train.max_seconds

    def count(self, step: int) -> dict:
        """The fixed count, `steps`, and what it came from: steps/s over the stretch, the seconds a validation
        and a checkpoint take (a validation: the first one timed, else a third of a step per window, the
        forward alone)."""
        assert self.since is not None and self.save_seconds is not None
        t = self.cfg.train
        now = time.perf_counter()
        per_sec = (step - self.since[0]) / max(now - self.since[1] - (self.paused - self.since[2]), 1e-9)
        eval_s = self.eval_seconds
        if eval_s is None:
            eval_s = self.val_chars / (t.seq_length * t.batch_size) / per_sec / 3 if self.val_chars > 1 else 0.0
        save_s = self.save_seconds
        # every validation may bring a new best and its checkpoint; the last step validates and saves
        per_eval = eval_s + save_s if self.val_chars > 1 else 0.0
        left = (1 - AUTO_SPARE) * (t.max_seconds - (now - self.started)) - per_eval - save_s
        per_step = 1 / per_sec + per_eval / t.eval_every + save_s / t.checkpoint_every
        return {
            "steps": step + max(1, math.floor(left / per_step)),
            "fixed_at_step": step,
            "steps_per_sec": per_sec,
            "eval_seconds": eval_s,
            "save_seconds": save_s,
            "budget_seconds": t.max_seconds,
        }


@np.errstate(over="ignore", invalid="ignore", divide="ignore")  # non-finite numbers are caught by name
def train(
    cfg: Config,
    corpus: Corpus,
    state: TrainState,
    save: Callable[[TrainState, tuple[str, ...]], object],
    report: Callable[[str, dict], None] = lambda event, info: None,
    stop_requested: Callable[[], bool] = lambda: False,
    workers: Workers | None = None,
) -> dict:
    """Run from state.step to train.steps, or until stop_requested, train.max_seconds or early stop.

    As worker 0 of `workers` (default: alone): it leads every step, and alone validates, saves and reports.
    Under train.steps: auto it keeps the count a checkpoint fixed, or fixes one after a timed stretch (_Fit)
    and reports it as a "steps" event. Returns a summary whose stop_reason says which: steps, max_seconds,
    early_stop or interrupted.
    """
    t = cfg.train
    T, B = t.seq_length, t.batch_size
    if t.steps != "auto":
        state.steps = None
    steps = state.steps if t.steps == "auto" else int(t.steps)  # None: auto, not fixed yet
    if steps is not None:
        t = dataclasses.replace(t, steps=steps)
    workers = workers or Workers(Plan(1, 1, "alone"))
    tracks = make_tracks(corpus.train, B, T)  # (B, n)
    mine = tracks[workers.tracks(B)]  # (B_w, n)
    per_epoch = windows_per_epoch(tracks, T)
    metrics = state.metrics
    scored = "raw" if state.average is None else "ema"  # which weights validation scores
    report(
        "start",
        {
            "step": state.step,
            "steps": t.steps,
            "auto_steps": cfg.train.steps == "auto",
            "max_seconds": t.max_seconds,
            "chars_per_step": T * B,
            "log_every": t.log_every,
            "workers": workers.plan.workers,
            "threads": workers.plan.threads,
            "plan": workers.plan.describe(),
            "scored": scored,
        },
    )
    started, interrupted = time.perf_counter(), False
    first_step, stop_reason = state.step, "steps"
    fit = _Fit(cfg, started, state.step, len(corpus.val)) if steps is None else None
    fitted: dict | None = None

    def timed_save(s: TrainState, kinds: tuple[str, ...]) -> object:
        begun = time.perf_counter()
        path = save(s, kinds)
        if fit is not None:
            fit.pause(time.perf_counter() - begun, "save")
        return path

    while steps is None or state.step < steps:
        if stop_requested():
            interrupted = True
            break
        if t.max_seconds and time.perf_counter() - started >= t.max_seconds:
            stop_reason = "max_seconds"
            break
        if fit is not None and fit.ready(state.step):
            if fit.save_seconds is None:  # time one checkpoint: the rest of the run writes more
                report("checkpoint", {"step": state.step, "path": timed_save(state, ("latest",))})
            fitted, fit = fit.count(state.step), None
            steps = state.steps = fitted["steps"]
            t = dataclasses.replace(t, steps=steps)
            report("steps", fitted)
        lr = learning_rate(t, state.step, state.plateau["scale"])
        workers.lead(True, lr, steps or 0)
        loss, norm = _advance(state, cfg, mine, per_epoch, lr, workers)
        kinds: tuple[str, ...] = ()
        early_stop = False
        if _validates(cfg, state.step, steps, corpus.val):
            begun = time.perf_counter()
            val_loss, improved = _validate(state, corpus, B, T, workers if workers.size > 1 else None)
            if fit is not None:
                fit.pause(time.perf_counter() - begun, "eval")
            if state.step % t.eval_every == 0:
                # only the regular validations drive the schedule: a run extended past its last
                # step then continues exactly as one that was given more steps from the start
                state.plateau = plateau_update(state.plateau, val_loss, t)
                metrics["evals_since_best"] = 0 if improved else metrics["evals_since_best"] + 1
                early_stop = 0 < t.early_stop_patience <= metrics["evals_since_best"]
            if improved:
                kinds = ("latest", "best")
            report("eval", {"step": state.step, "val_loss": val_loss, "best": improved})
        if not kinds and (state.step % t.checkpoint_every == 0 or state.step == steps or early_stop):
            kinds = ("latest",)
        elapsed = time.perf_counter() - started
        # logged before the checkpoint: a crash in between makes the resumed run rewrite this line, never skip it
        report(
            "step",
            {
                "step": state.step,
                "loss": loss,
                "lr": lr,
                "grad_norm": norm,
                "epoch": state.epoch,
                "skipped_steps": metrics["skipped_steps"],
                "chars_per_sec": (state.step - first_step) * T * B / max(elapsed, 1e-9),
            },
        )
        if kinds:
            report("checkpoint", {"step": state.step, "path": timed_save(state, kinds)})
        if early_stop:
            stop_reason = "early_stop"
            break
    if interrupted:
        report("checkpoint", {"step": state.step, "path": save(state, ("latest",))})
    if stop_reason == "max_seconds":
        # out of time between validations: measure where it stopped, so best.json can be this step
        kinds = ("latest",)
        if len(corpus.val) > 1 and state.step % t.eval_every:
            val_loss, improved = _validate(state, corpus, B, T)
            kinds = ("latest", "best") if improved else kinds
            report("eval", {"step": state.step, "val_loss": val_loss, "best": improved})
        report("checkpoint", {"step": state.step, "path": save(state, kinds)})
    wall = time.perf_counter() - started
    # train.steps: auto: how this run fixed its count, or that it kept a checkpoint's; None: no auto count
    kept = {"steps": steps, "from_checkpoint": True} if cfg.train.steps == "auto" and steps else None
    return {
        "step": state.step,
        "steps": t.steps,
        "auto_steps": fitted or kept,
        "interrupted": interrupted,
        "stop_reason": "interrupted" if interrupted else stop_reason,
        "wall_seconds": wall,
        "scored": scored,
        "chars_per_sec": (state.step - first_step) * T * B / max(wall, 1e-9),
        **metrics,
    }


@np.errstate(over="ignore", invalid="ignore", divide="ignore")
def follow(cfg: Config, train_ids: np.ndarray, val_ids: np.ndarray, state: TrainState, workers: Workers) -> None:
    """A worker other than 0: the same updates as worker 0 on its own tracks, for as long as worker 0 leads,
    and its share of each validation. `state` starts as worker 0's (workers.share); it never saves or reports.
    """
    t = cfg.train
    tracks = make_tracks(train_ids, t.batch_size, t.seq_length)
    mine = tracks[workers.tracks(t.batch_size)]
    per_epoch = windows_per_epoch(tracks, t.seq_length)
    while True:
        go, lr, steps = workers.lead()  # steps: the run's count, 0 while train.steps: auto has not fixed it
        if not go:
            return
        try:
            _advance(state, cfg, mine, per_epoch, lr, workers)
        except Diverged:
            continue  # worker 0 has the same numbers, stops for the same reason and tells everyone
        if _validates(cfg, state.step, steps or None, val_ids):
            mean_nll(validated_model(state), val_ids, t.batch_size, t.seq_length, workers)
