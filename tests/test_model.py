"""Gradient checks of the stacked RNN in float64, and consistency of its forward paths."""

import numpy as np
import pytest

from charrnn.model import StackedRNN
from charrnn.vocab import BOS

V, H, T, B = 7, 5, 4, 3


def window(seed=0):
    """A (T, B) window with <s> inside it, so restarts are exercised mid-window and at t=0."""
    rng = np.random.default_rng(seed)
    inputs = rng.integers(1, V, (T, B))
    inputs[2, 1] = BOS
    inputs[0, 0] = BOS
    targets = rng.integers(1, V, (T, B))
    return inputs, targets


def numeric_grad(f, p, eps=1e-5):
    num = np.zeros_like(p)
    for i in np.ndindex(p.shape):
        old = p[i]
        p[i] = old + eps
        plus = f()
        p[i] = old - eps
        minus = f()
        p[i] = old
        num[i] = (plus - minus) / (2 * eps)
    return num


def rel_error(a, b):
    return np.abs(a - b).max() / max(np.abs(a).max() + np.abs(b).max(), 1e-12)


@pytest.mark.parametrize("L", [1, 2, 3])
def test_gradients_match_central_differences(L):
    model = StackedRNN(V, H, L, seed=L, dtype=np.float64)
    inputs, targets = window(L)
    h0 = np.random.default_rng(9).standard_normal((L, B, H)) * 0.5  # a carried, non-zero state
    loss, grads, _ = model.loss_and_grads(inputs, targets, h0)
    assert set(grads) == set(model.params)
    for name, p in model.params.items():
        assert grads[name].shape == p.shape
        num = numeric_grad(lambda: model.loss_and_grads(inputs, targets, h0)[0], p)
        assert rel_error(num, grads[name]) < 1e-6, name


def test_dropout_gradients_match_with_the_same_masks():
    model = StackedRNN(V, H, 2, seed=3, dtype=np.float64)
    inputs, targets = window(3)

    def loss_and_grads():
        return model.loss_and_grads(inputs, targets, None, dropout=0.3, rng=np.random.default_rng(5))

    _, grads, _ = loss_and_grads()
    for name, p in model.params.items():
        assert rel_error(numeric_grad(lambda: loss_and_grads()[0], p), grads[name]) < 1e-6, name


def test_params_follow_the_seed_orientation():
    model = StackedRNN(67, 16, 3)
    shapes = {k: v.shape for k, v in model.params.items()}
    assert shapes == {
        "W_xh": (16, 67),
        "W_hht.1": (16, 16),
        "b_h.1": (16,),
        "W_hht.2": (16, 16),
        "W_hhd.2": (16, 16),
        "b_h.2": (16,),
        "W_hht.3": (16, 16),
        "W_hhd.3": (16, 16),
        "b_h.3": (16,),
        "W_hy": (67, 16),
        "b_y": (67,),
    }
    assert all(v.dtype == np.float32 for v in model.params.values())


def test_start_token_restarts_the_state():
    """A window that begins with <s> gives the same loss whatever state came before it."""
    model = StackedRNN(V, H, 2, dtype=np.float64)
    inputs, targets = window()
    inputs[0, :] = BOS
    h0 = np.random.default_rng(1).standard_normal((2, B, H))
    loss_zero, _, h_zero = model.loss_and_grads(inputs, targets)
    loss_h0, grads, h_h0 = model.loss_and_grads(inputs, targets, h0)
    assert loss_zero == loss_h0
    np.testing.assert_array_equal(h_zero, h_h0)
