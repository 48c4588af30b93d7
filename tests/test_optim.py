"""Update rules against torch.optim, clipping, and the learning-rate schedule."""

import json

import numpy as np
import pytest

from charrnn.config import TrainConfig
from charrnn.optim import clip_grad_norm, learning_rate, make_optimizer, new_plateau, plateau_update


def test_clip_scales_all_gradients_together():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[0.0], [4.0]])}
    assert clip_grad_norm(grads, 1.0) == pytest.approx(5.0)
    total = np.sqrt(sum((g**2).sum() for g in grads.values()))
    assert total == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(grads["a"] / grads["b"][1], [0.75, 0.0])
    grads = {"a": np.array([3.0, 4.0])}
    clip_grad_norm(grads, 0)  # 0 turns clipping off
    np.testing.assert_array_equal(grads["a"], [3.0, 4.0])


def test_step_decay():
    cfg = TrainConfig(learning_rate=1.0, lr_decay=0.5, lr_decay_every=10)
    assert [learning_rate(cfg, s) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]


@pytest.mark.parametrize("name", ["adam", "sgd", "rmsprop", "adagrad"])
def test_matches_torch_optim(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    grads_seq = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(5)]
    lr = 0.01
    t_params = [torch.tensor(v.copy(), requires_grad=True) for v in params.values()]
    t_opt = {
        "adam": lambda p: torch.optim.Adam(p, lr=lr, eps=1e-8),
        "sgd": lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9),
        "rmsprop": lambda p: torch.optim.RMSprop(p, lr=lr, alpha=0.99, eps=1e-8),
        "adagrad": lambda p: torch.optim.Adagrad(p, lr=lr, eps=1e-8),
    }[name](t_params)
    opt = make_optimizer(TrainConfig(optimizer=name, learning_rate=lr), params)
    for grads in grads_seq:
        opt.step(params, grads, lr)
        for tp, g in zip(t_params, grads.values()):
            tp.grad = torch.tensor(g)
        t_opt.step()
    for p, tp in zip(params.values(), t_params):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_exponential_cosine_warmup_and_floor():
    exp = TrainConfig(learning_rate=1.0, lr_schedule="exponential", lr_decay=0.25, lr_decay_every=10)
    assert [learning_rate(exp, s) for s in (0, 5, 10, 20)] == pytest.approx([1.0, 0.5, 0.25, 0.0625])
    cos = TrainConfig(learning_rate=1.0, lr_schedule="cosine", steps=111, warmup_steps=10, lr_min=0.1)
    lrs = [learning_rate(cos, s) for s in range(111)]  # updates 0..110 of 111
    assert lrs[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])  # warm-up ramps to the full rate
    assert lrs[10] == 1.0 and lrs[60] == pytest.approx(0.55) and lrs[110] == 0.1  # the last update at the floor
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    floor = TrainConfig(learning_rate=1.0, lr_decay=0.5, lr_decay_every=1, lr_min=0.2)
    assert learning_rate(floor, 1) == 0.5 and learning_rate(floor, 5) == 0.2


def test_plateau_drops_after_patience_and_counts_again():
    cfg = TrainConfig(learning_rate=2.0, lr_schedule="plateau", lr_decay=0.5, lr_patience=2)
    p, scales = new_plateau(), []
    for loss in (3.0, 2.0, 2.5, 2.1, 2.2, 2.3, 1.9, 2.0, 2.0):
        p = plateau_update(p, loss, cfg)
        scales.append(p["scale"])
    assert scales == [1, 1, 1, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]
    assert learning_rate(cfg, 10**6, p["scale"]) == 0.25  # the step count plays no part
    assert p == json.loads(json.dumps(p))  # checkpoints carry it as JSON, exactly
