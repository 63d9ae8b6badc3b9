"""The model's BPTT against finite differences, over hypothesis-drawn configurations."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minirnn as mr
from minirnn import functional
from minirnn.gradcheck import relative_error

TOL = 1e-7


@given(
    activation=st.sampled_from(["tanh", "relu", "sigmoid", "linear"]),
    bias=st.booleans(),
    h0_given=st.booleans(),
    B=st.sampled_from([1, 3]),
    layers=st.integers(1, 3),
    output=st.booleans(),
    T=st.integers(1, 6),
    I=st.integers(1, 4),
    H=st.integers(1, 5),
    seed=st.integers(0, 10_000),
)
def test_gradcheck_over_configurations(activation, bias, h0_given, B, layers, output, T, I, H, seed):
    rng = np.random.default_rng(seed)
    P = 2 if output else None
    model = mr.RNN(I, H, P, num_layers=layers, activation=activation, bias=bias, seed=seed)
    X = rng.standard_normal((T, B, I))
    Y = rng.standard_normal((T, B, P or H))
    h0 = rng.standard_normal((layers, B, H)) if h0_given else None
    report = mr.gradcheck(model, X, Y, h0=h0)
    assert set(report) == {*model.params, "X", "h0"}
    assert sum(report.checked.values()) > 0
    assert report.ok(TOL), str(report)


@pytest.mark.parametrize("jit", ["1", "0"])
def test_gradcheck_cross_entropy_last_step(monkeypatch, jit, rng):
    monkeypatch.setenv("MINIRNN_JIT", jit)
    model = mr.RNN(3, 6, 4, num_layers=2, seed=5)
    X = rng.standard_normal((7, 3, 3))
    report = mr.gradcheck(model, X, rng.integers(0, 4, size=3), loss="cross_entropy")
    assert report.ok(TOL), str(report)


def test_gradcheck_catches_a_wrong_gradient(monkeypatch, rng):
    """A check that cannot fail is a defect: break BPTT slightly and watch it fail."""
    model = mr.RNN(2, 4, 1, seed=0)
    X, Y = rng.standard_normal((5, 2, 2)), rng.standard_normal((5, 2, 1))
    assert mr.gradcheck(model, X, Y).ok(TOL)
    real = functional.rnn_backward

    def drop_recurrent_part_of_one_step(dhs, cache, truncate=None, **kw):
        return real(dhs, cache, truncate=4, **kw)  # silently cuts one link of the chain

    monkeypatch.setitem(mr.model.BACKWARD, "rnn", drop_recurrent_part_of_one_step)
    report = mr.gradcheck(model, X, Y)
    assert not report.ok(TOL)
    assert report["W_hh_l0"] > 1e-4


def test_gradcheck_catches_a_scaled_gradient(monkeypatch, rng):
    model = mr.RNN(2, 3, seed=0)
    X, Y = rng.standard_normal((4, 1, 2)), rng.standard_normal((4, 1, 3))
    real = model.backward

    def scaled(dY, cache, truncate=None):
        g = real(dY, cache, truncate)
        g["b_h_l0"] = g["b_h_l0"] * (1 + 1e-6)
        return g

    monkeypatch.setattr(model, "backward", scaled)
    report = mr.gradcheck(model, X, Y)
    assert report["b_h_l0"] > 1e-7 and report["W_hh_l0"] < TOL


def test_relu_kinks_are_skipped_not_reported(rng):
    model = mr.RNN(1, 1, activation="relu", bias=False, seed=0)
    model.params["W_xh_l0"][:] = 1.0
    model.params["W_hh_l0"][:] = 0.5
    X = np.array([[[0.0]], [[1.0]]])  # a_0 = 0 exactly: the kink
    report = mr.gradcheck(model, X, np.ones((2, 1, 1)))
    assert report.skipped["X"] >= 1
    assert report.ok(TOL)


def test_max_checks_samples_entries(rng):
    model = mr.RNN(4, 8, seed=0)
    report = mr.gradcheck(model, rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 8)), max_checks=5)
    assert report.checked["W_hh_l0"] == 5 and report.checked["b_h_l0"] == 5
    assert "W_hh_l0" in str(report)


def test_gradcheck_refuses_float32_and_bad_arguments(rng):
    X, Y = rng.standard_normal((3, 1, 2)), rng.standard_normal((3, 1, 4))
    with pytest.raises(TypeError, match="float64"):
        mr.gradcheck(mr.RNN(2, 4, dtype="float32"), X, Y)
    with pytest.raises(ValueError, match="eps must be a positive number"):
        mr.gradcheck(mr.RNN(2, 4), X, Y, eps=0)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        mr.gradcheck(mr.RNN(2, 4), X, Y, loss="hinge")
    with pytest.raises(TypeError, match=r"must be a minirnn\.RNN"):
        mr.gradcheck("model", X, Y)


def test_relative_error_is_normwise():
    assert relative_error(np.array([1.0, 1e-9]), np.array([1.0, 2e-9])) < 1e-8
    assert relative_error(np.array([1.0, 0.0]), np.array([1.1, 0.0])) == pytest.approx(0.1 / 1.1)
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
