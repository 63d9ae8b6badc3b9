"""Gradient clipping: the rule, the norms, overflow, non-finite gradients, bad arguments."""

import math

import numpy as np
import pytest

import minirnn as mr
from minirnn.clip import global_norm


def test_clip_scales_to_max_norm_and_returns_norm_before(rng):
    g = {"W": rng.standard_normal((5, 5)) * 10, "b": rng.standard_normal(5)}
    before = math.sqrt(sum(float((a**2).sum()) for a in g.values()))
    direction = {k: a / before for k, a in g.items()}
    total = mr.clip_grad_norm(g, 1.0)
    assert total == pytest.approx(before, rel=1e-14)
    assert global_norm(g) == pytest.approx(1.0, rel=1e-5)
    for k in g:  # direction kept
        np.testing.assert_allclose(g[k] / global_norm(g), direction[k], rtol=1e-12)


def test_below_threshold_is_untouched(rng):
    g = {"W": rng.standard_normal((3, 3)) * 1e-3}
    copy = g["W"].copy()
    mr.clip_grad_norm(g, 1.0)
    np.testing.assert_array_equal(g["W"], copy)


def test_input_and_state_gradients_are_not_parameters(rng):
    model = mr.RNN(2, 3, 1)
    Y, cache = model.forward(rng.standard_normal((4, 2, 2)))
    g = model.backward(np.ones_like(Y) * 100, cache)
    X_before, h0_before = g["X"].copy(), g["h0"].copy()
    params_only = global_norm([g[k] for k in model.params])
    assert global_norm(g) == params_only
    assert mr.clip_grad_norm(g, 1e-3) == params_only
    np.testing.assert_array_equal(g["X"], X_before)
    np.testing.assert_array_equal(g["h0"], h0_before)
    assert global_norm(g) == pytest.approx(1e-3, rel=1e-3)


def test_float32_norm_does_not_overflow():
    g = [np.full(10, 1e20, dtype=np.float32), np.full(3, -1e20, dtype=np.float32)]
    total = mr.clip_grad_norm(g, 1.0)
    assert total == pytest.approx(1e20 * math.sqrt(13), rel=1e-6)
    assert all(a.dtype == np.float32 and np.isfinite(a).all() for a in g)
    assert global_norm(g) == pytest.approx(1.0, rel=1e-5)
    huge = [np.full(4, 1e200)]
    assert global_norm(huge) == pytest.approx(2e200, rel=1e-14)
    assert global_norm(huge, float("inf")) == 1e200


def test_two_norm_fast_path_agrees_with_the_scaled_sums_and_leaves_their_range_to_them(rng):
    """global_norm's float64 dot products (the 2-norm's fast path) equal the scaled sums it
    falls back to, and tiny, huge, zero and NaN gradients take the fallback."""
    arrays = [rng.standard_normal((64, 32)), rng.standard_normal(64).astype(np.float32), np.zeros(0)]
    scaled = global_norm(arrays, 2.0000000000000004)  # a p that is not 2: the scaled path
    assert global_norm(arrays) == pytest.approx(scaled, rel=1e-10)
    exact = math.sqrt(sum(float((a.astype(np.float64) ** 2).sum()) for a in arrays))
    assert global_norm(arrays) == pytest.approx(exact, rel=1e-13)
    assert global_norm([np.full(4, 1e-160)]) == pytest.approx(2e-160, rel=1e-14, abs=0)  # subnormal squares
    assert global_norm([np.full(4, 1e160), np.ones(3)]) == pytest.approx(2e160, rel=1e-14)  # overflow
    assert global_norm([np.zeros(5)]) == 0.0
    assert math.isnan(global_norm([np.array([1.0, np.nan])]))


def test_other_norm_types(rng):
    a = rng.standard_normal(20)
    assert global_norm([a], 1.0) == pytest.approx(np.abs(a).sum(), rel=1e-13)
    assert global_norm([a], 3.0) == pytest.approx((np.abs(a) ** 3).sum() ** (1 / 3), rel=1e-13)
    assert global_norm([a], float("inf")) == np.abs(a).max()
    assert global_norm([np.zeros(3)]) == 0.0
    with pytest.raises(ValueError, match="norm_type must be > 0"):
        global_norm([a], 0)


def test_non_finite_gradients():
    g = {"W": np.array([1.0, np.nan]), "b": np.array([2.0])}
    with pytest.raises(
        ValueError, match=r"total norm of order 2.0 of the gradients is nan; expected a finite"
    ):
        mr.clip_grad_norm(g, 1.0, error_if_nonfinite=True)
    assert g["b"][0] == 2.0  # untouched on error
    assert math.isnan(mr.clip_grad_norm(g, 1.0))  # PyTorch's behaviour: NaN propagates
    assert np.isnan(g["b"]).all()
    inf = {"W": np.array([np.inf, 1.0])}
    assert mr.clip_grad_norm(inf, 1.0) == math.inf
    assert inf["W"][1] == 0.0 and np.isnan(inf["W"][0])


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_bad_thresholds(bad):
    with pytest.raises(ValueError, match=r"max_norm must be a positive finite number"):
        mr.clip_grad_norm([np.ones(2)], bad)
    with pytest.raises(ValueError, match=r"clip_value must be a positive finite number"):
        mr.clip_grad_value([np.ones(2)], bad)
    with pytest.raises(TypeError, match=r"max_norm must be a positive number, got 'x'"):
        mr.clip_grad_norm([np.ones(2)], "x")


def test_clip_value(rng):
    g = {"W": rng.standard_normal((4, 4)) * 10, "X": np.full(3, 100.0)}
    mr.clip_grad_value(g, 5)
    assert np.abs(g["W"]).max() <= 5 and (np.abs(g["W"]) == 5).any()
    assert (g["X"] == 100).all()
    with pytest.raises(TypeError, match="gradients must be float arrays"):
        mr.clip_grad_value([np.ones(3, dtype=int)], 1)
