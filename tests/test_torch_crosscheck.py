"""Loss, gradients and last state against torch.nn.RNN + nn.Linear with copied weights, in float64."""

import numpy as np
import pytest

from charrnn.model import StackedRNN
from charrnn.vocab import BOS

torch = pytest.importorskip("torch")


def torch_loss_and_grads(model, inputs, targets, h0):
    """The same network in torch; restarts at <s> done by running each segment from a zero state."""
    p = model.params
    L, H = model.num_layers, model.hidden_size
    V = p["W_xh"].shape[1]
    rnn = torch.nn.RNN(V, H, L, nonlinearity="tanh", dtype=torch.float64)
    out_layer = torch.nn.Linear(H, V, dtype=torch.float64)
    with torch.no_grad():
        for l in range(1, L + 1):
            W_in = p["W_xh"] if l == 1 else p[f"W_hhd.{l}"]
            getattr(rnn, f"weight_ih_l{l - 1}").copy_(torch.from_numpy(W_in))
            getattr(rnn, f"weight_hh_l{l - 1}").copy_(torch.from_numpy(p[f"W_hht.{l}"]))
            getattr(rnn, f"bias_ih_l{l - 1}").copy_(torch.from_numpy(p[f"b_h.{l}"]))  # b_ih + b_hh is our b_h
            getattr(rnn, f"bias_hh_l{l - 1}").zero_()
        out_layer.weight.copy_(torch.from_numpy(p["W_hy"]))
        out_layer.bias.copy_(torch.from_numpy(p["b_y"]))
    T, B = inputs.shape
    x = torch.nn.functional.one_hot(torch.from_numpy(inputs).long(), V).double()  # (T, B, V)
    h0_t = torch.tensor(h0, requires_grad=True)
    outs, h_last = [], []
    for b in range(B):
        h = h0_t[:, b : b + 1]
        starts = [0] + [t for t in range(1, T) if inputs[t, b] == BOS] + [T]
        for s, e in zip(starts, starts[1:]):
            if inputs[s, b] == BOS:
                h = torch.zeros_like(h)
            o, h = rnn(x[s:e, b : b + 1], h)
            outs.append(o)
        h_last.append(h)
    # outs are in (b, t) order; rebuild time-major (T, B, H)
    per_b = [torch.cat(outs_b, 0) for outs_b in _split(outs, inputs)]
    hidden = torch.cat(per_b, 1)  # (T, B, H)
    logits = out_layer(hidden).reshape(T * B, V)
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(targets).long().reshape(-1))
    loss.backward()
    grads = {"W_xh": rnn.weight_ih_l0.grad, "W_hy": out_layer.weight.grad, "b_y": out_layer.bias.grad}
    for l in range(1, L + 1):
        grads[f"W_hht.{l}"] = getattr(rnn, f"weight_hh_l{l - 1}").grad
        grads[f"b_h.{l}"] = getattr(rnn, f"bias_ih_l{l - 1}").grad
        if l > 1:
            grads[f"W_hhd.{l}"] = getattr(rnn, f"weight_ih_l{l - 1}").grad
    return loss.item(), {k: v.numpy() for k, v in grads.items()}, torch.cat(h_last, 1).detach().numpy()


def _split(outs, inputs):
    """Group the per-segment outputs back by track."""
    T, B = inputs.shape
    groups, i = [], 0
    for b in range(B):
        n = 1 + sum(1 for t in range(1, T) if inputs[t, b] == BOS)
        groups.append(outs[i : i + n])
        i += n
    return groups


@pytest.mark.parametrize("L", [1, 2, 3])
def test_matches_torch_rnn(L):
    V, H, T, B = 11, 8, 9, 4
    rng = np.random.default_rng(L)
    model = StackedRNN(V, H, L, seed=L, dtype=np.float64)
    for k in model.params:
        if k.startswith("b_"):
            model.params[k][:] = rng.standard_normal(model.params[k].shape) * 0.1
    inputs = rng.integers(1, V, (T, B))
    inputs[0, 1] = inputs[4, 0] = inputs[6, 3] = BOS
    targets = rng.integers(1, V, (T, B))
    h0 = rng.standard_normal((L, B, H)) * 0.5
    loss, grads, h_last = model.loss_and_grads(inputs, targets, h0)
    t_loss, t_grads, t_h_last = torch_loss_and_grads(model, inputs, targets, h0)
    assert abs(loss - t_loss) <= 1e-10 * abs(t_loss)
    np.testing.assert_allclose(h_last, t_h_last, rtol=1e-9, atol=1e-12)
    for name in model.params:
        np.testing.assert_allclose(grads[name], t_grads[name], rtol=1e-6, atol=1e-12, err_msg=name)
