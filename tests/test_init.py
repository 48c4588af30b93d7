"""Initialisation schemes: their bounds and gains, and that only W_hht differs between them."""

import numpy as np
import pytest

from charrnn.init import init_params

V, H, L = 11, 16, 2


def params(scheme, scale=None):
    return init_params(V, H, L, np.random.default_rng(0), np.float64, scheme, scale)


@pytest.mark.parametrize("scheme, bound", [("torch", 1 / np.sqrt(H)), ("uniform", 0.08)])
def test_uniform_schemes_stay_in_their_bound(scheme, bound):
    p = params(scheme)
    for name, w in p.items():
        if name.startswith("b_"):
            assert not w.any(), name
        else:
            assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound, name
    assert np.abs(params(scheme, 0.5)["W_xh"]).max() > 0.45  # init_scale is the bound


@pytest.mark.parametrize("scale", [None, 0.9])
def test_orthogonal_and_identity_set_the_gain_of_W_hht(scale):
    gain = 1.0 if scale is None else scale
    for l in range(1, L + 1):
        W = params("orthogonal", scale)[f"W_hht.{l}"]
        np.testing.assert_allclose(W @ W.T, gain**2 * np.eye(H), atol=1e-12)
        np.testing.assert_array_equal(params("identity", scale)[f"W_hht.{l}"], gain * np.eye(H))
    a, b = params("orthogonal", scale), params("torch")
    for name in a:
        if not name.startswith("W_hht"):
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)  # same draws: only W_hht differs
    assert not np.allclose(params("orthogonal")["W_hht.1"], params("orthogonal")["W_hht.2"])
