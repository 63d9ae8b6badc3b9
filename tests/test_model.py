"""RNN model and count_params: the seeds' numbers, both conventions, stacking, dtypes."""

import numpy as np
import pytest

import minirnn as mr


@pytest.mark.parametrize(
    ("I", "H", "P", "bias", "expected"),
    [
        (1, 1, 0, True, 3),  # seed 000: one input, one unit: input weight, recurrent weight, bias
        (1, 2, 0, True, 8),  # seed 000: 4 recurrent + 2 input + 2 bias
        (3, 1, 0, True, 5),  # seed 000: 3 input weights, 1 recurrent, 1 bias
        (10, 20, 5, False, 700),  # seed 001: W_xh (20,10) + W_hh (20,20) + W_hy (5,20)
    ],
)
def test_count_params_reproduces_the_seeds(I, H, P, bias, expected):
    assert mr.count_params(I, H, P, bias=bias) == expected
    assert mr.RNN(I, H, P or None, bias=bias).num_params == expected


def test_seed_001_shapes_in_summary():
    model = mr.RNN(10, 20, 5, bias=False)
    assert model.params["W_xh_l0"].shape == (20, 10)
    assert model.params["W_hh_l0"].shape == (20, 20)
    assert model.params["W_hy"].shape == (5, 20)
    text = model.summary()
    for fragment in ["W_xh", "(20, 10)", "W_hh", "(20, 20)", "W_hy", "(5, 20)", "700"]:
        assert fragment in text
    assert text.splitlines()[-1].split()[-1] == "700"


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_count_params_conventions(L, bias):
    I, H, P = 7, 11, 3
    keras = sum(H * ((I if k == 0 else H) + H + (1 if bias else 0)) for k in range(L)) + P * (H + bias)
    torch = sum(H * ((I if k == 0 else H) + H + (2 if bias else 0)) for k in range(L)) + P * (H + bias)
    assert mr.count_params(I, H, P, bias=bias, num_layers=L) == keras
    assert mr.count_params(I, H, P, bias=bias, num_layers=L, convention="pytorch") == torch
    assert mr.RNN(I, H, P, num_layers=L, bias=bias).num_params == keras


def test_count_params_gated_formulas():
    I, H = 10, 20
    assert mr.count_params(I, H, cell="lstm") == 4 * H * (H + I + 1)
    assert mr.count_params(I, H, cell="lstm", convention="pytorch") == 4 * H * (H + I + 2)
    assert mr.count_params(I, H, cell="gru") == 3 * H * (H + I + 2)
    assert mr.count_params(I, H, cell="gru", convention="pytorch") == 3 * H * (H + I + 2)


def test_summary_mentions_pytorch_count_when_biased():
    s = mr.RNN(10, 20).summary()
    assert "total" in s and "640" in s and "620" in s


@pytest.mark.parametrize("init", ["pytorch", "xavier", "orthogonal", "identity", "normal"])
def test_inits_are_deterministic_and_distinct(init):
    a, b, c = (
        mr.RNN(3, 8, 2, init=init, seed=1),
        mr.RNN(3, 8, 2, init=init, seed=1),
        mr.RNN(3, 8, 2, init=init, seed=2),
    )
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert any(not np.array_equal(a.params[k], c.params[k]) for k in a.params if a.params[k].any())


def test_orthogonal_and_identity_recurrent_matrices():
    W = mr.RNN(3, 16, init="orthogonal").params["W_hh_l0"]
    np.testing.assert_allclose(W @ W.T, np.eye(16), atol=1e-12)
    np.testing.assert_array_equal(mr.RNN(3, 16, init="identity").params["W_hh_l0"], np.eye(16))


@pytest.mark.parametrize("radius", [0.5, 1.0, 1.7])
def test_radius_rescales_every_layer(radius):
    from minirnn.init import spectral_radius

    m = mr.RNN(3, 12, num_layers=2, init="normal", radius=radius)
    for k in range(2):
        assert spectral_radius(m.params[f"W_hh_l{k}"]) == pytest.approx(radius, rel=1e-10)


def test_stacked_forward_is_layer_by_layer(rng):
    m = mr.RNN(3, 5, 2, num_layers=2, seed=3)
    X = rng.standard_normal((4, 2, 3))
    p = m.params
    h1, _ = mr.rnn_forward(X, p["W_xh_l0"], p["W_hh_l0"], p["b_h_l0"])
    h2, _ = mr.rnn_forward(h1, p["W_xh_l1"], p["W_hh_l1"], p["b_h_l1"])
    Y, cache = m.forward(X)
    np.testing.assert_allclose(Y, h2 @ p["W_hy"].T + p["b_y"], rtol=1e-14)
    np.testing.assert_array_equal(cache.h_n, np.stack([h1[-1], h2[-1]]))


def test_backward_returns_every_parameter_and_inputs(rng):
    m = mr.RNN(3, 5, 2, num_layers=2)
    X = rng.standard_normal((4, 2, 3))
    Y, cache = m.forward(X)
    g = m.backward(np.ones_like(Y), cache)
    assert list(g) == [*m.params, "X", "h0"]
    for k, p in m.params.items():
        assert g[k].shape == p.shape
    assert g["X"].shape == X.shape and g["h0"].shape == (2, 2, 5)


def test_model_without_output_layer_returns_hidden_states(rng):
    m = mr.RNN(3, 5)
    Y, _ = m.forward(rng.standard_normal((4, 2, 3)))
    assert Y.shape == (4, 2, 5)


def test_float32_model(rng):
    m = mr.RNN(3, 5, 2, dtype="float32")
    assert {p.dtype for p in m.params.values()} == {np.dtype(np.float32)}
    X = rng.standard_normal((4, 2, 3)).astype(np.float32)
    Y, cache = m.forward(X)
    g = m.backward(np.ones_like(Y), cache)
    assert Y.dtype == np.float32 and all(a.dtype == np.float32 for a in g.values())
    with pytest.raises(TypeError, match="model is float32"):
        m.forward(X.astype(np.float64))
    m64 = m.astype("float64")
    np.testing.assert_allclose(m64.forward(X.astype(np.float64))[0], Y, rtol=1e-5, atol=1e-6)
    assert m.params["W_hy"].dtype == np.float32  # astype copies


def test_h0_shapes(rng):
    m1, m2 = mr.RNN(3, 5), mr.RNN(3, 5, num_layers=2)
    X = rng.standard_normal((4, 2, 3))
    h = rng.standard_normal((2, 5))
    np.testing.assert_array_equal(m1.forward(X, h)[0], m1.forward(X, h[None])[0])
    with pytest.raises(ValueError, match=r"expected \(num_layers, B, H\) = \(2, 2, 5\)"):
        m2.forward(X, h)
