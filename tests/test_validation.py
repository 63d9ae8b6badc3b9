"""Bad input is refused at the boundary, with a message naming the argument, what it got and
what was expected."""

import numpy as np
import pytest

import minirnn as mr


@pytest.fixture
def ok(rng):
    return dict(
        X=rng.standard_normal((4, 2, 3)),
        W_xh=rng.standard_normal((5, 3)),
        W_hh=rng.standard_normal((5, 5)),
        b_h=rng.standard_normal(5),
        h0=rng.standard_normal((2, 5)),
    )


def call(ok, **changes):
    args = {**ok, **changes}
    return mr.rnn_forward(**args)


@pytest.mark.parametrize(
    ("change", "exc", "pattern"),
    [
        (dict(X=np.zeros((4, 3))), ValueError, r"X must have 3 dimensions \(T, B, I\), got shape \(4, 3\)"),
        (dict(W_xh=np.zeros(15)), ValueError, r"W_xh must have 2 dimensions \(H, I\), got shape \(15,\)"),
        (dict(W_hh=np.zeros((5, 4))), ValueError, r"W_hh has shape \(5, 4\); expected \(H, H\), square"),
        (
            dict(W_xh=np.zeros((5, 4))),
            ValueError,
            r"W_xh has shape \(5, 4\); expected \(H, I\) .* = \(5, 3\)",
        ),
        (dict(W_xh=np.zeros((6, 3))), ValueError, r"W_xh has shape \(6, 3\); expected .* = \(5, 3\)"),
        (dict(b_h=np.zeros(4)), ValueError, r"b_h has shape \(4,\); expected \(H,\) = \(5,\)"),
        (dict(h0=np.zeros((3, 5))), ValueError, r"h0 has shape \(3, 5\); expected \(B, H\) .* = \(2, 5\)"),
        (dict(h0=np.zeros(5)), ValueError, r"h0 must have 2 dimensions"),
        (
            dict(X=np.zeros((4, 2, 3), dtype=np.int64)),
            TypeError,
            r"X has dtype int64; expected float32 or float64",
        ),
        (dict(W_hh=np.zeros((5, 5), dtype=np.float16)), TypeError, r"W_hh has dtype float16"),
        (dict(X=np.zeros((4, 2, 3), dtype=np.float32)), TypeError, r"mixed dtypes \(X float32, W_xh float64"),
        (
            dict(X=np.full((4, 2, 3), np.nan)),
            ValueError,
            r"X contains NaN or Inf \(first at index \(0, 0, 0\)",
        ),
        (dict(W_hh=np.full((5, 5), np.inf)), ValueError, r"W_hh contains NaN or Inf"),
        (
            dict(b_h=np.array([0, 0, np.nan, 0, 0.0])),
            ValueError,
            r"b_h contains NaN or Inf \(first at index \(2,\)",
        ),
        (dict(h0=np.full((2, 5), -np.inf)), ValueError, r"h0 contains NaN or Inf"),
        (
            dict(activation="gelu"),
            ValueError,
            r"unknown activation 'gelu'; expected one of tanh, relu, sigmoid, linear",
        ),
        (dict(X=np.zeros((0, 2, 3))), ValueError, r"X is empty \(shape \(0, 2, 3\)\)"),
        (dict(X=None), TypeError, r"X is None"),
    ],
)
def test_rnn_forward_refuses(ok, change, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        call(ok, **change)
    assert str(info.value).startswith("rnn_forward: ")


def test_check_finite_can_be_switched_off(ok):
    hs, _ = mr.rnn_forward(**{**ok, "X": np.full((4, 2, 3), np.nan)}, check_finite=False)
    assert np.isnan(hs).all()


def test_rnn_backward_refuses(ok, rng):
    hs, cache = mr.rnn_forward(**ok)
    with pytest.raises(ValueError, match=r"dhs has shape \(4, 2, 4\); expected \(T, B, H\)"):
        mr.rnn_backward(np.zeros((4, 2, 4)), cache)
    with pytest.raises(TypeError, match=r"mixed dtypes \(dhs float32"):
        mr.rnn_backward(np.zeros_like(hs, dtype=np.float32), cache)
    with pytest.raises(ValueError, match=r"dhs contains NaN"):
        mr.rnn_backward(np.full_like(hs, np.nan), cache)
    with pytest.raises(TypeError, match=r"cache must be the RNNCache returned by rnn_forward, got dict"):
        mr.rnn_backward(np.zeros_like(hs), {})
    for bad, exc in [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)]:
        with pytest.raises(exc, match=r"truncate must be a positive integer"):
            mr.rnn_backward(np.zeros_like(hs), cache, truncate=bad)


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        (dict(input_size=0, hidden_size=4), ValueError, r"input_size must be a positive integer, got 0"),
        (dict(input_size=3, hidden_size=-1), ValueError, r"hidden_size must be a positive integer, got -1"),
        (dict(input_size=3, hidden_size=4.0), TypeError, r"hidden_size must be a positive integer, got 4.0"),
        (
            dict(input_size=3, hidden_size=4, output_size=0),
            ValueError,
            r"output_size must be a positive integer",
        ),
        (
            dict(input_size=3, hidden_size=4, num_layers=0),
            ValueError,
            r"num_layers must be a positive integer",
        ),
        (dict(input_size=3, hidden_size=4, cell="transformer"), ValueError, r"unknown cell 'transformer'"),
        (dict(input_size=3, hidden_size=4, activation="elu"), ValueError, r"unknown activation 'elu'"),
        (dict(input_size=3, hidden_size=4, init="he"), ValueError, r"unknown init 'he'; expected one of"),
        (dict(input_size=3, hidden_size=4, dtype="int32"), TypeError, r"dtype int32 is not supported"),
        (dict(input_size=3, hidden_size=4, dtype="float16"), TypeError, r"expected float32 or float64"),
        (dict(input_size=3, hidden_size=4, bias=1), TypeError, r"bias must be True or False"),
        (dict(input_size=3, hidden_size=4, radius=-1.0), ValueError, r"radius must be a positive finite"),
    ],
)
def test_model_constructor_refuses(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        mr.RNN(**kwargs)


def test_model_forward_backward_refuse(rng):
    m = mr.RNN(3, 4, 2)
    with pytest.raises(ValueError, match=r"X has 5 features .* expected \(T, B, 3\)"):
        m.forward(rng.standard_normal((2, 1, 5)))
    with pytest.raises(ValueError, match=r"X must have 3 dimensions"):
        m.forward(rng.standard_normal((2, 3)))
    Y, cache = m.forward(rng.standard_normal((2, 1, 3)))
    with pytest.raises(
        ValueError, match=r"dY has shape \(2, 1, 4\); expected the shape of forward's Y = \(2, 1, 2\)"
    ):
        m.backward(np.zeros((2, 1, 4)), cache)
    with pytest.raises(TypeError, match=r"cache must come from RNN.forward"):
        m.backward(Y, None)
    with pytest.raises(ValueError, match=r"dY contains NaN or Inf \(first at index \(1, 0, 1\)"):
        m.backward(np.where(np.arange(4).reshape(2, 1, 2) == 3, np.nan, Y), cache)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_model_forward_refuses_non_finite_input_and_weights_once_scanned(monkeypatch, rng, cell):
    """NaN/Inf in X or in any layer-0 parameter is refused by name, X scanned once per forward
    (the first layer's forward does it; the model checks shape and dtype)."""
    from minirnn import _validate

    m = mr.RNN(3, 4, 2, cell=cell, num_layers=2)
    X = rng.standard_normal((2, 1, 3))
    bad = X.copy()
    bad[1, 0, 2] = np.inf
    with pytest.raises(ValueError, match=r"X contains NaN or Inf \(first at index \(1, 0, 2\)"):
        m.forward(bad)
    m.params["W_hh_l0"][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"W_hh contains NaN or Inf"):
        m.forward(X)
    scans = []
    real = _validate.np.isfinite
    monkeypatch.setattr(_validate.np, "isfinite", lambda a: scans.append(a.shape) or real(a))
    m.params["W_hh_l0"][0, 0] = 0.0
    m.forward(X)
    assert scans.count(X.shape) == 1, scans


@pytest.mark.parametrize(
    ("args", "exc", "pattern"),
    [
        ((0, 4), ValueError, r"count_params: input_size must be a positive integer, got 0"),
        ((3, 4, -1), ValueError, r"output_size must be a non-negative integer, got -1"),
        ((3, 4, 0, "lstmm"), ValueError, r"unknown cell 'lstmm'; expected one of rnn, lstm, gru"),
        (
            (3, 4, 0, "rnn", True, 1, "tf"),
            ValueError,
            r"unknown convention 'tf'; expected one of keras, pytorch",
        ),
        ((3, 4, 0, "rnn", True, 0), ValueError, r"num_layers must be a positive integer, got 0"),
    ],
)
def test_count_params_refuses(args, exc, pattern):
    with pytest.raises(exc, match=pattern):
        mr.count_params(*args)


def test_losses_refuse(rng):
    from minirnn import losses

    pred = rng.standard_normal((3, 2, 4))
    with pytest.raises(ValueError, match=r"target has shape \(2, 3\); expected the prediction's shape"):
        losses.mse(pred, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"target has 1 dimensions; expected 3 \(every step\) or 2"):
        losses.mse(pred, np.zeros(4))
    with pytest.raises(TypeError, match=r"expected integer class indices"):
        losses.cross_entropy(pred, np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"class indices outside \[0, 4\)"):
        losses.cross_entropy(pred, np.full((3, 2), 4))
