"""The fast paths: windows without <s>, one track, reused scratch arrays, flat optimizer state, and
the byte-at-a-time encoder, each against a plain reference."""

import numpy as np
import pytest

import charrnn.data
import charrnn.vocab
from charrnn.config import TrainConfig
from charrnn.data import encode_records
from charrnn.model import StackedRNN, cross_entropy
from charrnn.optim import make_optimizer
from charrnn.vocab import BOS, EOS, Vocab

from .test_model import numeric_grad, rel_error

V, H = 7, 5


@pytest.mark.parametrize("T, B, L", [(4, 3, 2), (5, 1, 1), (3, 1, 3)])
def test_gradients_without_start_tokens(T, B, L):
    """No <s> in the window: the path that skips the keep mask entirely."""
    rng = np.random.default_rng(T * 10 + B)
    model = StackedRNN(V, H, L, seed=B, dtype=np.float64)
    inputs, targets = rng.integers(1, V, (T, B)), rng.integers(0, V, (T, B))
    h0 = rng.standard_normal((L, B, H)) * 0.5
    _, grads, _ = model.loss_and_grads(inputs, targets, h0)
    for name, p in model.params.items():
        num = numeric_grad(lambda: model.loss_and_grads(inputs, targets, h0)[0], p)
        assert rel_error(num, grads[name]) < 1e-6, name


def test_reused_scratch_never_leaks_between_calls():
    """Windows after windows of the same and of other shapes, with and without <s>, match a fresh model,
    and what an earlier call returned stays as it was."""
    rng = np.random.default_rng(0)
    model = StackedRNN(V, H, 2, seed=1, dtype=np.float64)
    first = rng.integers(1, V, (6, 4)), rng.integers(0, V, (6, 4))
    second = rng.integers(1, V, (6, 4)), rng.integers(0, V, (6, 4))
    second[0][2, 1] = BOS
    other = rng.integers(1, V, (3, 2)), rng.integers(0, V, (3, 2))
    kept = model.loss_and_grads(*first)
    copies = {k: v.copy() for k, v in kept[1].items()}
    for inputs, targets in (second, other, second, first):
        loss, grads, h_last = model.loss_and_grads(inputs, targets)
        fresh = StackedRNN(V, H, 2, seed=1, dtype=np.float64).loss_and_grads(inputs, targets)
        assert loss == fresh[0]
        np.testing.assert_array_equal(h_last, fresh[2])
        for name in grads:
            np.testing.assert_array_equal(grads[name], fresh[1][name], err_msg=name)
    for name in copies:
        np.testing.assert_array_equal(kept[1][name], copies[name])


def test_out_of_range_ids_are_refused():
    model = StackedRNN(V, H, 1)
    with pytest.raises(IndexError):
        model.loss_and_grads(np.array([[V]]), np.array([[0]]))
    with pytest.raises(IndexError):
        model.loss_and_grads(np.array([[-1]]), np.array([[0]]))


def test_cross_entropy_in_place_matches():
    rng = np.random.default_rng(2)
    logits, targets = rng.standard_normal((6, V)), rng.integers(0, V, 6)
    loss, dlogits = cross_entropy(logits, targets)
    ref = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.log(ref[np.arange(6), targets]).mean(), rel=1e-12)
    ref[np.arange(6), targets] -= 1
    np.testing.assert_allclose(dlogits, ref / 6, rtol=1e-12, atol=1e-15)
    loss2, dlogits2 = cross_entropy(logits, targets, out=logits)
    assert loss2 == loss and dlogits2 is logits
    np.testing.assert_array_equal(dlogits2, dlogits)


@pytest.mark.parametrize("name", ["adam", "sgd", "rmsprop", "adagrad"])
def test_optimizer_resumes_from_slots_restored_in_place(name):
    """Slots are views into one flat vector: writing them in place, as a checkpoint restore does, is
    all a fresh optimizer needs to continue exactly."""
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    grads = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(4)]
    cfg = TrainConfig(optimizer=name)
    opt = make_optimizer(cfg, params)
    for g in grads[:3]:
        opt.step(params, g, 0.01)
    resumed_params = {k: v.copy() for k, v in params.items()}
    resumed = make_optimizer(cfg, resumed_params)
    for slot, values in opt.slots.items():
        for k, v in values.items():
            resumed.slots[slot][k][...] = v
    resumed.t = opt.t
    opt.step(params, grads[3], 0.01)
    resumed.step(resumed_params, grads[3], 0.01)
    for k in params:
        np.testing.assert_array_equal(params[k], resumed_params[k])


def naive_encode(records, vocab):
    out = []
    for r in records:
        out += [BOS] + [vocab.chars.index(c) + 2 for c in r] + [EOS]
    return out


@pytest.mark.parametrize("alphabet", ["ab\nc", "aé\u00ff", "a\u4e00b", "".join(map(chr, range(0x4E00, 0x4E00 + 300)))])
def test_encoding_in_pieces_and_groups_matches_a_plain_loop(monkeypatch, alphabet):
    """Tiny piece and group sizes, so records span pieces, share groups and sit alone in them."""
    monkeypatch.setattr(charrnn.vocab, "_CHUNK", 5)
    monkeypatch.setattr(charrnn.data, "_GROUP", 7)
    rng = np.random.default_rng(len(alphabet))
    for _ in range(30):
        records = ["".join(rng.choice(list(alphabet), rng.choice([0, 1, 4, 9, 23]))) for _ in range(rng.integers(1, 9))]
        vocab = Vocab.from_texts(records)
        assert vocab.chars == sorted(set("".join(records)))
        ids = encode_records(records, vocab)
        assert ids.dtype == vocab.id_dtype
        assert ids.tolist() == naive_encode(records, vocab)


@pytest.mark.parametrize("text", ["abc", "ab\u00e9", "ab\u4e00"])
def test_unknown_characters_are_named_on_every_path(text):
    vocab = Vocab.from_texts([text[:2]])
    with pytest.raises(KeyError, match=repr(text[2])):
        vocab.encode(text)
    out = np.empty(2, vocab.id_dtype)
    assert vocab.encode(text[:2], out=out) is out
    assert out.tolist() == [2, 3]
