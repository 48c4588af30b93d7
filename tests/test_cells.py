"""Gradient checks of every cell in float64 (central differences), and its one-step path against its window."""

import numpy as np
import pytest

from charrnn.model import StackedRNN, backward, cross_entropy, forward
from charrnn.vocab import BOS

from .test_model import numeric_grad, rel_error, window

V, H, T, B = 7, 5, 4, 3
CELLS = ["rnn", "lstm", "gru"]


def carried_state(model, seed):
    return model.zero_state(B) + np.random.default_rng(seed).standard_normal(model.zero_state(B).shape) * 0.5


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("L", [1, 2])
def test_gradients_match_central_differences(cell, L):
    model = StackedRNN(V, H, L, seed=L, dtype=np.float64, cell=cell)
    for k, p in model.params.items():  # non-zero biases, so every bias path is exercised
        if k.startswith("b_"):
            p[:] = np.random.default_rng(7).standard_normal(p.shape) * 0.3
    inputs, targets = window(L)
    h0 = carried_state(model, 9)
    _, grads, _ = model.loss_and_grads(inputs, targets, h0)
    assert list(grads) != [] and set(grads) == set(model.params)
    for name, p in model.params.items():
        assert grads[name].shape == p.shape
        num = numeric_grad(lambda: model.loss_and_grads(inputs, targets, h0)[0], p)
        assert rel_error(num, grads[name]) < 1e-6, name


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_and_initial_state_gradients(cell):
    model = StackedRNN(V, H, 2, seed=3, dtype=np.float64, cell=cell)
    inputs, targets = window(3)
    inputs[0, 0] = 1  # track 0 carries its state into the window; track 1 restarts mid-window
    h0 = carried_state(model, 2)

    def loss_and_dh0():
        logits, cache = forward(model.params, inputs, h0, 0.3, np.random.default_rng(5))
        loss, dlogits = cross_entropy(logits, targets.reshape(-1))
        grads, dh0 = backward(model.params, dlogits, cache)
        return loss, grads, dh0

    _, grads, dh0 = loss_and_dh0()
    for name, p in model.params.items():
        assert rel_error(numeric_grad(lambda: loss_and_dh0()[0], p), grads[name]) < 1e-6, name
    assert rel_error(numeric_grad(lambda: loss_and_dh0()[0], h0), dh0) < 1e-6


@pytest.mark.parametrize("cell", CELLS)
def test_start_token_restarts_the_whole_state(cell):
    model = StackedRNN(V, H, 2, dtype=np.float64, cell=cell)
    inputs, targets = window()
    inputs[0, :] = BOS
    loss_zero, _, h_zero = model.loss_and_grads(inputs, targets)
    loss_h0, _, h_h0 = model.loss_and_grads(inputs, targets, carried_state(model, 1))
    assert loss_zero == loss_h0
    np.testing.assert_array_equal(h_zero, h_h0)


@pytest.mark.parametrize("cell", CELLS)
def test_step_agrees_with_the_window_forward(cell):
    model = StackedRNN(V, H, 3, seed=2, dtype=np.float64, cell=cell)
    inputs, targets = window()
    h0 = carried_state(model, 4)
    logp, h_last = model.log_probs(inputs, targets, h0)
    loss, _, h_last2 = model.loss_and_grads(inputs, targets, h0)
    assert np.isclose(-logp.mean(), loss)
    np.testing.assert_array_equal(h_last, h_last2)
    h = h0
    for t in range(T):
        gates: list = []
        logits, h = model.step(inputs[t], h, gates)
        assert len(gates) == 3 and all(g.shape == (B, H) for layer in gates for g in layer.values())
        z = logits - logits.max(axis=1, keepdims=True)
        step_logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        np.testing.assert_allclose(step_logp[np.arange(B), targets[t]], logp[t], rtol=1e-12)
    np.testing.assert_allclose(h, h_last, rtol=1e-12)


def test_gated_shapes_follow_torch_layout():
    lstm, gru = StackedRNN(11, 6, 2, cell="lstm"), StackedRNN(11, 6, 2, cell="gru")
    assert lstm.params["W_xh"].shape == (24, 11) and lstm.params["W_hht.2"].shape == (24, 6)
    assert lstm.zero_state(3).shape == (2, 3, 12)
    assert gru.params["W_hhd.2"].shape == (18, 6) and gru.params["b_hn.1"].shape == (6,)
    assert gru.zero_state(3).shape == (2, 3, 6)
    with pytest.raises(ValueError, match="unknown cell 'transformer'"):
        StackedRNN(11, 6, 2, cell="transformer")
