"""cells.py: the reference maths of one step, checked against scalar loops and finite differences."""

import numpy as np
import pytest

from minirnn import cells
from tests import naive

ACTS = ["tanh", "relu", "sigmoid", "linear"]


@pytest.mark.parametrize("activation", ACTS)
def test_activation_matches_scalar_definition(activation, rng):
    a = rng.standard_normal(50) * 3
    expected = np.array([naive.act(x, activation) for x in a])
    np.testing.assert_allclose(cells.activate(a, activation), expected, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("activation", ACTS)
def test_derivative_from_output_matches_finite_difference(activation, rng):
    a = rng.standard_normal(200) * 3
    a = a[np.abs(a) > 1e-3]  # keep away from relu's kink
    h = cells.activate(a, activation)
    eps = 1e-6
    numeric = (cells.activate(a + eps, activation) - cells.activate(a - eps, activation)) / (2 * eps)
    np.testing.assert_allclose(cells.activation_derivative(h, activation), numeric, rtol=1e-8, atol=1e-9)


def test_sigmoid_is_stable_at_extremes():
    a = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    with np.errstate(over="raise"):
        s = cells.sigmoid(a)
    assert s[0] == 0.0 and s[-1] == 1.0 and s[2] == 0.5
    assert cells.sigmoid(np.float32(-100) * np.ones(2, np.float32)).dtype == np.float32


def test_gamma_is_the_supremum_of_the_derivative():
    a = np.linspace(-10, 10, 20001)
    for name, gamma in cells.ACTIVATION_GAMMA.items():
        d = cells.activation_derivative(cells.activate(a, name), name)
        assert d.max() == pytest.approx(gamma, rel=1e-6), name


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        cells.activate(np.zeros(2), "gelu")
    with pytest.raises(ValueError, match="unknown activation"):
        cells.activation_derivative(np.zeros(2), "softplus")


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("bias", [True, False])
def test_step_forward_matches_scalar_loops(activation, bias, rng):
    B, I, H = 3, 4, 5
    x, h_prev = rng.standard_normal((B, I)), rng.standard_normal((B, H))
    W_xh, W_hh = rng.standard_normal((H, I)), rng.standard_normal((H, H))
    b_h = rng.standard_normal(H) if bias else None
    h, _ = cells.rnn_step_forward(x, h_prev, W_xh, W_hh, b_h, activation)
    expected = naive.rnn_forward(x[None], W_xh, W_hh, b_h, h_prev, activation)[0]
    np.testing.assert_allclose(h, expected, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "linear"])
def test_step_backward_matches_finite_differences(activation, rng):
    B, I, H = 2, 3, 4
    x, h_prev = rng.standard_normal((B, I)), rng.standard_normal((B, H))
    W_xh, W_hh, b_h = rng.standard_normal((H, I)), rng.standard_normal((H, H)), rng.standard_normal(H)
    G = rng.standard_normal((B, H))

    def loss():
        return float(np.sum(cells.rnn_step_forward(x, h_prev, W_xh, W_hh, b_h, activation)[0] * G))

    _, cache = cells.rnn_step_forward(x, h_prev, W_xh, W_hh, b_h, activation)
    dh_prev, grads = cells.rnn_step_backward(G, cache)
    for name, arr, analytic in [
        ("x", x, grads["x"]),
        ("h_prev", h_prev, dh_prev),
        ("W_xh", W_xh, grads["W_xh"]),
        ("W_hh", W_hh, grads["W_hh"]),
        ("b_h", b_h, grads["b_h"]),
    ]:
        numeric = naive.loss_and_numeric_grad(loss, arr)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-8, err_msg=name)
