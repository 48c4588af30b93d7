"""Loss, gradients, last state and one sampling step against torch.nn.RNN / LSTM / GRU + nn.Linear with copied
weights, in float64."""

import numpy as np
import pytest

from charrnn.model import StackedRNN
from charrnn.vocab import BOS

torch = pytest.importorskip("torch")

V, H, T, B = 11, 8, 9, 4
TORCH_CELLS = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def torch_model(model):
    """The torch recurrent stack and output layer holding the model's weights."""
    p = model.params
    L = model.num_layers
    kind = TORCH_CELLS[model.cell]
    rnn = kind(V, H, L, dtype=torch.float64)
    out_layer = torch.nn.Linear(H, V, dtype=torch.float64)
    with torch.no_grad():
        for l in range(1, L + 1):
            W_in = p["W_xh"] if l == 1 else p[f"W_hhd.{l}"]
            getattr(rnn, f"weight_ih_l{l - 1}").copy_(torch.from_numpy(W_in))
            getattr(rnn, f"weight_hh_l{l - 1}").copy_(torch.from_numpy(p[f"W_hht.{l}"]))
            getattr(rnn, f"bias_ih_l{l - 1}").copy_(torch.from_numpy(p[f"b_h.{l}"]))  # b_ih + b_hh is our b_h
            b_hh = getattr(rnn, f"bias_hh_l{l - 1}")
            b_hh.zero_()
            if model.cell == "gru":  # b_hn sits inside r's product: torch's bias_hh is [0, 0, b_hn]
                b_hh[2 * H :].copy_(torch.from_numpy(p[f"b_hn.{l}"]))
        out_layer.weight.copy_(torch.from_numpy(p["W_hy"]))
        out_layer.bias.copy_(torch.from_numpy(p["b_y"]))
    return rnn, out_layer


def to_torch_state(state, cell):
    """Our (L, B, S) state as torch's: h, or (h, c) for the LSTM."""
    return (state[..., :H], state[..., H:]) if cell == "lstm" else state


def from_torch_state(state, cell):
    return torch.cat(state, -1) if cell == "lstm" else state


def torch_loss_and_grads(model, inputs, targets, h0):
    """The same network in torch; restarts at <s> done by running each segment from a zero state."""
    rnn, out_layer = torch_model(model)
    x = torch.nn.functional.one_hot(torch.from_numpy(inputs).long(), V).double()  # (T, B, V)
    h0_t = torch.tensor(h0, requires_grad=True)
    outs, h_last = [], []
    for b in range(B):
        h = h0_t[:, b : b + 1]
        starts = [0] + [t for t in range(1, T) if inputs[t, b] == BOS] + [T]
        for s, e in zip(starts, starts[1:]):
            if inputs[s, b] == BOS:
                h = torch.zeros_like(h)
            o, h = rnn(x[s:e, b : b + 1], to_torch_state(h, model.cell))
            h = from_torch_state(h, model.cell)
            outs.append(o)
        h_last.append(h)
    # outs are in (b, t) order; rebuild time-major (T, B, H)
    per_b = [torch.cat(outs_b, 0) for outs_b in _split(outs, inputs)]
    hidden = torch.cat(per_b, 1)  # (T, B, H)
    logits = out_layer(hidden).reshape(T * B, V)
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(targets).long().reshape(-1))
    loss.backward()
    grads = {"W_xh": rnn.weight_ih_l0.grad, "W_hy": out_layer.weight.grad, "b_y": out_layer.bias.grad}
    for l in range(1, model.num_layers + 1):
        grads[f"W_hht.{l}"] = getattr(rnn, f"weight_hh_l{l - 1}").grad
        b_ih, b_hh = getattr(rnn, f"bias_ih_l{l - 1}").grad, getattr(rnn, f"bias_hh_l{l - 1}").grad
        grads[f"b_h.{l}"] = b_ih
        if model.cell == "gru":
            grads[f"b_hn.{l}"] = b_hh[2 * H :]
            # b_hr, b_hz add to the input biases before the sigmoid: the same gradient as b_ir, b_iz
            np.testing.assert_allclose(b_hh[: 2 * H].numpy(), b_ih[: 2 * H].numpy(), rtol=1e-12)
        else:
            np.testing.assert_allclose(b_hh.numpy(), b_ih.numpy(), rtol=1e-12)
        if l > 1:
            grads[f"W_hhd.{l}"] = getattr(rnn, f"weight_ih_l{l - 1}").grad
    return loss.item(), {k: v.numpy() for k, v in grads.items()}, torch.cat(h_last, 1).detach().numpy()


def _split(outs, inputs):
    """Group the per-segment outputs back by track."""
    groups, i = [], 0
    for b in range(B):
        n = 1 + sum(1 for t in range(1, T) if inputs[t, b] == BOS)
        groups.append(outs[i : i + n])
        i += n
    return groups


def torch_step(model, ids, state):
    """One sampling step in torch: logits (B, V) and the new state (L, B, S); rows whose input is <s> start at 0."""
    rnn, out_layer = torch_model(model)
    state = torch.from_numpy(state * (ids != BOS)[None, :, None])
    x = torch.nn.functional.one_hot(torch.from_numpy(ids).long(), V).double()[None]  # (1, B, V)
    with torch.no_grad():
        o, new = rnn(x, to_torch_state(state, model.cell))
        return out_layer(o[0]).numpy(), from_torch_state(new, model.cell).numpy()


@pytest.mark.parametrize("cell", list(TORCH_CELLS))
@pytest.mark.parametrize("L", [1, 2, 3])
def test_matches_torch(cell, L):
    rng = np.random.default_rng(L)
    model = StackedRNN(V, H, L, seed=L, dtype=np.float64, cell=cell)
    for k in model.params:
        if k.startswith("b_"):
            model.params[k][:] = rng.standard_normal(model.params[k].shape) * 0.1
    inputs = rng.integers(1, V, (T, B))
    inputs[0, 1] = inputs[4, 0] = inputs[6, 3] = BOS
    targets = rng.integers(1, V, (T, B))
    h0 = model.zero_state(B) + rng.standard_normal(model.zero_state(B).shape) * 0.5  # (L, B, S)
    loss, grads, h_last = model.loss_and_grads(inputs, targets, h0)
    t_loss, t_grads, t_h_last = torch_loss_and_grads(model, inputs, targets, h0)
    assert abs(loss - t_loss) <= 1e-10 * abs(t_loss)
    np.testing.assert_allclose(h_last, t_h_last, rtol=1e-9, atol=1e-12)
    assert set(t_grads) == set(model.params)
    for name in model.params:
        np.testing.assert_allclose(grads[name], t_grads[name], rtol=1e-6, atol=1e-12, err_msg=name)
    for ids in (inputs[0], inputs[4]):  # <s> on track 1, then on track 0
        logits, state = model.step(ids, h0)
        t_logits, t_state = torch_step(model, ids, h0)
        np.testing.assert_allclose(logits, t_logits, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(state, t_state, rtol=1e-9, atol=1e-12)
