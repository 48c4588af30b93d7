"""Update rules, the weights' moving average, global gradient-norm clipping and the learning-rate schedule.

Parameters change only here, in place. Each optimizer keeps its per-parameter moments in `slots`
({slot: {param name: array}}) and its step count in `t`, which is all a checkpoint needs to resume it.
"""

from __future__ import annotations

import math

import numpy as np

from .config import TrainConfig


class Optimizer:
    """Every update runs on one flat vector of all parameters: a few passes in all, not a few per array."""

    slot_names: tuple[str, ...] = ()

    def __init__(self, params: dict):
        self.t = 0
        self._sizes = {k: p.size for k, p in params.items()}
        dtype = np.result_type(*params.values())
        self._flat = {s: np.zeros(sum(self._sizes.values()), dtype) for s in self.slot_names}
        # slots[s][name] are views into the flat vector, so a checkpoint reads and restores them in place
        self.slots = {s: self._unflatten(flat, params) for s, flat in self._flat.items()}
        self._g = np.empty(sum(self._sizes.values()), dtype)  # the flat gradient, then the step; reused
        self._g_views = self._unflatten(self._g, params)
        self._scratch = np.empty_like(self._g)  # for the updates' intermediate terms: no allocation per step

    def _unflatten(self, flat: np.ndarray, like: dict) -> dict:
        views, at = {}, 0
        for k, n in self._sizes.items():
            views[k] = flat[at : at + n].reshape(like[k].shape)
            at += n
        return views

    def step(self, params: dict, grads: dict, lr: float) -> None:
        self.t += 1
        np.concatenate([grads[k].reshape(-1) for k in self._sizes], out=self._g)
        self._delta(self._g, lr)
        for k, d in self._g_views.items():
            params[k] -= d

    def _delta(self, g: np.ndarray, lr: float) -> None:
        """Turn the flat gradient g, in place, into the step to subtract from the flat parameters."""
        raise NotImplementedError


class SGD(Optimizer):
    """Heavy-ball momentum, as torch.optim.SGD: v = mu v + g; p -= lr v."""

    slot_names = ("velocity",)

    def __init__(self, params: dict, momentum: float = 0.9):
        super().__init__(params)
        self.momentum = momentum

    def _delta(self, g, lr):
        v = self._flat["velocity"]
        v *= self.momentum
        v += g
        np.multiply(v, lr, out=g)


class Adagrad(Optimizer):
    """Per-weight step lr / sqrt(sum of squared gradients), as min-char-rnn."""

    slot_names = ("sum_sq",)
    eps = 1e-8

    def _delta(self, g, lr):
        s, sq = self._flat["sum_sq"], np.multiply(g, g, out=self._scratch)
        s += sq
        _scaled(g, lr, s, self.eps, scratch=sq, out=g)


class RMSprop(Optimizer):
    """Step scaled by a running RMS of the gradient (alpha 0.99, as torch.optim.RMSprop)."""

    slot_names = ("mean_sq",)
    alpha, eps = 0.99, 1e-8

    def _delta(self, g, lr):
        s, sq = self._flat["mean_sq"], np.multiply(g, g, out=self._scratch)
        s *= self.alpha
        sq *= 1 - self.alpha
        s += sq
        _scaled(g, lr, s, self.eps, scratch=sq, out=g)


class Adam(Optimizer):
    """Adam with bias correction (beta1 0.9, beta2 0.999, eps 1e-8, as torch.optim.Adam)."""

    slot_names = ("m", "v")
    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def _delta(self, g, lr):
        m, v = self._flat["m"], self._flat["v"]
        m *= self.beta1
        m += np.multiply(g, 1 - self.beta1, out=self._scratch)
        v *= self.beta2
        g *= g
        g *= 1 - self.beta2
        v += g
        # fold both bias corrections into the step size and eps: one pass less over every array;
        # Python floats, so float32 moments stay float32
        c1, c2 = 1 - self.beta1**self.t, 1 - self.beta2**self.t
        _scaled(m, lr * math.sqrt(c2) / c1, v, self.eps * math.sqrt(c2), scratch=g, out=g)


def _scaled(x: np.ndarray, lr: float, sq: np.ndarray, eps: float, scratch: np.ndarray, out: np.ndarray) -> None:
    """out = lr * x / (sqrt(sq) + eps), in torch's order (divide, then scale); scratch may be out."""
    np.sqrt(sq, out=scratch)
    scratch += eps
    np.divide(x, scratch, out=out)
    out *= lr


def make_optimizer(cfg: TrainConfig, params: dict) -> Optimizer:
    if cfg.optimizer == "sgd":
        return SGD(params, cfg.momentum)
    return {"adam": Adam, "rmsprop": RMSprop, "adagrad": Adagrad}[cfg.optimizer](params)


def ema_update(average: dict, params: dict, ema: float, t: int) -> None:
    """Move the averaged weights toward the weights after update t (counted from 0), in place:
    average = d * average + (1 - d) * params with d = min(ema, (1 + t) / (10 + t)), the warm-up of
    TensorFlow's ExponentialMovingAverage(num_updates), so the first updates outweigh the initial weights.

    >>> a, p = {"w": np.zeros(1)}, {"w": np.ones(1)}
    >>> ema_update(a, p, 0.999, 0)
    >>> a["w"]  # d = 1/10
    array([0.9])
    """
    decay = min(ema, (1 + t) / (10 + t))
    for name, a in average.items():
        # as params + d * (average - params), in place: no temporary the size of the weights at every step
        a -= params[name]
        a *= decay
        a += params[name]


def clip_grad_norm(grads: dict, max_norm: float) -> float:
    """Scale all gradients together so their global L2 norm is at most max_norm; returns the norm before.

    max_norm 0 leaves them as they are. A non-finite norm is returned unchanged for the caller to handle.
    """
    norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))
    if max_norm > 0 and norm > max_norm and np.isfinite(norm):
        scale = max_norm / (norm + 1e-6)
        for g in grads.values():
            g *= g.dtype.type(scale)
    return norm


def learning_rate(cfg: TrainConfig, step: int, plateau_scale: float = 1.0) -> float:
    """The learning rate of update `step` (counted from 0) under train.lr_schedule, after warm-up.

    step: learning_rate * lr_decay ** (step // lr_decay_every); exponential: the same, decayed smoothly
    (step / lr_decay_every); cosine: from learning_rate down to lr_min at the last of train.steps; plateau:
    learning_rate * plateau_scale (see plateau_update). No schedule goes below lr_min. During the first
    warmup_steps updates the rate ramps up linearly, (step + 1) / warmup_steps of it. train.steps is the
    run's count: under `auto`, the one the run fixed, or "auto" before it has, when cosine holds at
    learning_rate (after warm-up) as a run of unknown length would.
    """
    lr, kind = cfg.learning_rate, cfg.lr_schedule
    if kind == "step":
        lr *= cfg.lr_decay ** (step // cfg.lr_decay_every)
    elif kind == "exponential":
        lr *= cfg.lr_decay ** (step / cfg.lr_decay_every)
    elif kind == "cosine":
        length = cfg.steps if isinstance(cfg.steps, int) else math.inf
        # the last update, step length - 1, runs at lr_min: the schedule ends at its floor, as the run does
        progress = min(1.0, max(0, step - cfg.warmup_steps) / max(1, length - 1 - cfg.warmup_steps))
        lr = cfg.lr_min + (lr - cfg.lr_min) * 0.5 * (1 + math.cos(math.pi * progress))
    else:
        lr *= plateau_scale
    lr = max(lr, cfg.lr_min)
    if step < cfg.warmup_steps:
        lr *= (step + 1) / cfg.warmup_steps
    return lr


def new_plateau() -> dict:
    """The plateau schedule's state before any validation: JSON-ready, so checkpoints carry it exactly."""
    return {"scale": 1.0, "best": None, "bad": 0}


def plateau_update(plateau: dict, val_loss: float, cfg: TrainConfig) -> dict:
    """The state after one validation: lr_patience validations in a row without a new best multiply the
    scale by lr_decay and start the count again, as torch's ReduceLROnPlateau (threshold 0) does.

    >>> cfg = TrainConfig(lr_schedule="plateau", lr_decay=0.5, lr_patience=2)
    >>> p = new_plateau()
    >>> for loss in (3.0, 2.0, 2.5, 2.1):
    ...     p = plateau_update(p, loss, cfg)
    >>> p
    {'scale': 0.5, 'best': 2.0, 'bad': 0}
    """
    if plateau["best"] is None or val_loss < plateau["best"]:
        return {**plateau, "best": val_loss, "bad": 0}
    if plateau["bad"] + 1 >= cfg.lr_patience:
        return {**plateau, "scale": plateau["scale"] * cfg.lr_decay, "bad": 0}
    return {**plateau, "bad": plateau["bad"] + 1}
