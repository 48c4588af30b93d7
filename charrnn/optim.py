"""Update rules, global gradient-norm clipping and the learning-rate schedule.

Parameters change only here, in place. Each optimizer keeps its per-parameter moments in `slots`
({slot: {param name: array}}) and its step count in `t`, which is all a checkpoint needs to resume it.
"""

from __future__ import annotations

import numpy as np

from .config import TrainConfig


class Optimizer:
    slot_names: tuple[str, ...] = ()

    def __init__(self, params: dict):
        self.t = 0
        self.slots = {s: {k: np.zeros_like(p) for k, p in params.items()} for s in self.slot_names}

    def step(self, params: dict, grads: dict, lr: float) -> None:
        self.t += 1
        for name, p in params.items():
            self._update(name, p, grads[name], lr)

    def _update(self, name: str, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Heavy-ball momentum, as torch.optim.SGD: v = mu v + g; p -= lr v."""

    slot_names = ("velocity",)

    def __init__(self, params: dict, momentum: float = 0.9):
        super().__init__(params)
        self.momentum = momentum

    def _update(self, name, p, g, lr):
        v = self.slots["velocity"][name]
        v *= self.momentum
        v += g
        p -= lr * v


class Adagrad(Optimizer):
    """Per-weight step lr / sqrt(sum of squared gradients), as min-char-rnn."""

    slot_names = ("sum_sq",)
    eps = 1e-8

    def _update(self, name, p, g, lr):
        s = self.slots["sum_sq"][name]
        s += g * g
        p -= lr * g / (np.sqrt(s) + self.eps)


class RMSprop(Optimizer):
    """Step scaled by a running RMS of the gradient (alpha 0.99, as torch.optim.RMSprop)."""

    slot_names = ("mean_sq",)
    alpha, eps = 0.99, 1e-8

    def _update(self, name, p, g, lr):
        s = self.slots["mean_sq"][name]
        s *= self.alpha
        s += (1 - self.alpha) * g * g
        p -= lr * g / (np.sqrt(s) + self.eps)


class Adam(Optimizer):
    """Adam with bias correction (beta1 0.9, beta2 0.999, eps 1e-8, as torch.optim.Adam)."""

    slot_names = ("m", "v")
    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def step(self, params, grads, lr):
        self.t += 1
        # fold both bias corrections into the step size and eps: one pass less over every array
        c1, c2 = 1 - self.beta1 ** self.t, 1 - self.beta2 ** self.t
        self._lr_t, self._eps_t = lr * np.sqrt(c2) / c1, self.eps * np.sqrt(c2)
        for name, p in params.items():
            self._update(name, p, grads[name], lr)

    def _update(self, name, p, g, lr):
        m, v = self.slots["m"][name], self.slots["v"][name]
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        p -= self._lr_t * m / (np.sqrt(v) + self._eps_t)


def make_optimizer(cfg: TrainConfig, params: dict) -> Optimizer:
    if cfg.optimizer == "sgd":
        return SGD(params, cfg.momentum)
    return {"adam": Adam, "rmsprop": RMSprop, "adagrad": Adagrad}[cfg.optimizer](params)


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


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Step decay: learning_rate * lr_decay ** (step // lr_decay_every), step counted from 0."""
    return cfg.learning_rate * cfg.lr_decay ** (step // cfg.lr_decay_every)
