"""Loss values against their definitions, gradients against finite differences."""

import numpy as np
import pytest

from minirnn import losses
from tests import naive


def test_mse_value_and_gradient(rng):
    pred, target = rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 4))
    value, grad = losses.mse(pred, target)
    assert value == pytest.approx(np.mean((pred - target) ** 2), rel=1e-15)
    numeric = naive.loss_and_numeric_grad(lambda: losses.mse(pred, target)[0], pred)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-10)


def test_mse_last_step_only(rng):
    pred, target = rng.standard_normal((3, 2, 4)), rng.standard_normal((2, 4))
    value, grad = losses.mse(pred, target)
    assert value == pytest.approx(np.mean((pred[-1] - target) ** 2))
    assert not grad[:-1].any() and grad[-1].any()


@pytest.mark.parametrize("last", [False, True])
def test_cross_entropy_value_and_gradient(rng, last):
    logits = rng.standard_normal((3, 2, 5)) * 3
    target = rng.integers(0, 5, size=(2,) if last else (3, 2))
    value, grad = losses.cross_entropy(logits, target)
    used = logits[-1] if last else logits
    p = np.exp(used) / np.exp(used).sum(-1, keepdims=True)
    expected = -np.mean(np.log(np.take_along_axis(p, target[..., None], -1)))
    assert value == pytest.approx(expected, rel=1e-12)
    numeric = naive.loss_and_numeric_grad(lambda: losses.cross_entropy(logits, target)[0], logits)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[[1000.0, 0.0, -1000.0]]])
    value, grad = losses.cross_entropy(logits, np.array([[0]]))
    assert value == 0.0 and np.isfinite(grad).all()
    value, _ = losses.cross_entropy(logits, np.array([[2]]))
    assert value == pytest.approx(2000.0)


def test_losses_keep_float32():
    pred = np.ones((2, 1, 3), np.float32)
    assert losses.mse(pred, np.zeros_like(pred))[1].dtype == np.float32
    assert losses.cross_entropy(pred, np.zeros((2, 1), int))[1].dtype == np.float32


def test_per_position_losses_average_to_the_loss():
    rng = np.random.default_rng(0)
    pred = rng.standard_normal((5, 3, 4))
    target = rng.standard_normal((5, 3, 4))
    assert losses.per_position("mse", pred, target).shape == (5, 3)
    assert losses.per_position("mse", pred, target).mean() == pytest.approx(
        losses.mse(pred, target)[0], rel=1e-14
    )
    classes = rng.integers(0, 4, (5, 3))
    ce = losses.per_position("cross_entropy", 50 * pred, classes)  # large logits: still finite
    assert np.isfinite(ce).all() and (ce >= 0).all()
    assert ce.mean() == pytest.approx(losses.cross_entropy(50 * pred, classes)[0], rel=1e-14)
