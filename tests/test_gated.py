"""LSTM and GRU: kernels vs reference, BPTT vs finite differences, truncation, model, errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minirnn as mr
from minirnn import cells
from minirnn.gradcheck import relative_error
from tests import naive
from tests.time_loops import LOOPS, use_loop

GATES = {"lstm": 4, "gru": 3}


def draw(rng, cell, T, B, I, H, bias=True, h0=True, dtype=np.float64):
    G = GATES[cell]
    X = rng.standard_normal((T, B, I)).astype(dtype)
    W_xh = rng.standard_normal((G * H, I)).astype(dtype)
    W_hh = (rng.standard_normal((G * H, H)) / np.sqrt(H)).astype(dtype)
    b = [rng.standard_normal(G * H).astype(dtype) if bias else None for _ in range(2)]
    s = [rng.standard_normal((B, H)).astype(dtype) if h0 else None for _ in range(2)]
    return X, W_xh, W_hh, b, s


def run(cell, X, W_xh, W_hh, b, s, dhs=None, truncate=None, return_dh=False):
    if cell == "lstm":
        state = (s[0], s[1]) if s[0] is not None else None
        hs, cache = mr.lstm_forward(X, W_xh, W_hh, b[0], state)
        back = mr.lstm_backward
    else:
        hs, cache = mr.gru_forward(X, W_xh, W_hh, b[0], b[1], s[0])
        back = mr.gru_backward
    if dhs is None:
        return hs, cache
    return hs, back(dhs, cache, truncate, return_dh=return_dh)


@given(
    cell=st.sampled_from(["lstm", "gru"]),
    T=st.integers(1, 8),
    B=st.integers(1, 4),
    I=st.integers(1, 5),
    H=st.integers(1, 6),
    bias=st.booleans(),
    h0=st.booleans(),
    loop=st.sampled_from(LOOPS),
    truncate=st.sampled_from([None, 1, 2, 3]),
    seed=st.integers(0, 2**16),
)
def test_kernel_equals_reference(monkeypatch, cell, T, B, I, H, bias, h0, loop, truncate, seed):
    use_loop(monkeypatch, loop)
    args = draw(np.random.default_rng(seed), cell, T, B, I, H, bias, h0)
    dhs = np.random.default_rng(seed + 1).standard_normal((T, B, H))
    out = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("MINIRNN_JIT", flag)
        out[flag] = run(cell, *args, dhs=dhs, truncate=truncate, return_dh=True)
    (hs_j, g_j), (hs_r, g_r) = out["1"], out["0"]
    np.testing.assert_allclose(hs_j, hs_r, rtol=1e-12, atol=1e-13)
    assert g_j.keys() == g_r.keys()
    for k in g_r:
        assert relative_error(g_j[k], g_r[k]) < 1e-12, k


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_float32_kernels_keep_dtype_and_agree(monkeypatch, rng, cell):
    args = draw(rng, cell, 10, 3, 4, 5, dtype=np.float32)
    dhs = rng.standard_normal((10, 3, 5)).astype(np.float32)
    hs, g = run(cell, *args, dhs=dhs)
    assert hs.dtype == np.float32 and all(a.dtype == np.float32 for a in g.values())
    monkeypatch.setenv("MINIRNN_JIT", "0")
    hs_r, g_r = run(cell, *args, dhs=dhs)
    np.testing.assert_allclose(hs, hs_r, rtol=1e-5, atol=1e-6)
    for k in g_r:
        assert relative_error(g[k], g_r[k]) < 1e-5, k


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_step_backward_matches_finite_differences(rng, cell):
    B, I, H = 2, 3, 4
    x, h = rng.standard_normal((B, I)), rng.standard_normal((B, H))
    c = rng.standard_normal((B, H))
    G = GATES[cell]
    W_xh, W_hh = rng.standard_normal((G * H, I)), rng.standard_normal((G * H, H))
    b1, b2 = rng.standard_normal(G * H), rng.standard_normal(G * H)
    Gh, Gc = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    if cell == "lstm":

        def loss():
            h1, c1, _ = cells.lstm_step_forward(x, h, c, W_xh, W_hh, b1)
            return float(np.sum(h1 * Gh) + np.sum(c1 * Gc))

        _, _, cache = cells.lstm_step_forward(x, h, c, W_xh, W_hh, b1)
        dh, dc, grads = cells.lstm_step_backward(Gh, Gc, cache)
        pairs = [("h", h, dh), ("c", c, dc), ("b_h", b1, grads["b_h"])]
    else:

        def loss():
            return float(np.sum(cells.gru_step_forward(x, h, W_xh, W_hh, b1, b2)[0] * Gh))

        _, cache = cells.gru_step_forward(x, h, W_xh, W_hh, b1, b2)
        dh, grads = cells.gru_step_backward(Gh, cache)
        pairs = [("h", h, dh), ("b_h", b1, grads["b_h"]), ("b_hh", b2, grads["b_hh"])]
    pairs += [("x", x, grads["x"]), ("W_xh", W_xh, grads["W_xh"]), ("W_hh", W_hh, grads["W_hh"])]
    for name, arr, analytic in pairs:
        assert relative_error(analytic, naive.loss_and_numeric_grad(loss, arr, eps=1e-5)) < 1e-8, name


@given(
    cell=st.sampled_from(["lstm", "gru"]),
    bias=st.booleans(),
    h0_given=st.booleans(),
    B=st.sampled_from([1, 3]),
    layers=st.integers(1, 2),
    output=st.booleans(),
    T=st.integers(1, 5),
    I=st.integers(1, 3),
    H=st.integers(1, 4),
    seed=st.integers(0, 10_000),
)
def test_gradcheck_gated_models(cell, bias, h0_given, B, layers, output, T, I, H, seed):
    rng = np.random.default_rng(seed)
    P = 2 if output else None
    model = mr.RNN(I, H, P, num_layers=layers, cell=cell, bias=bias, seed=seed)
    X = rng.standard_normal((T, B, I))
    Y = rng.standard_normal((T, B, P or H))
    h0 = None
    if h0_given:
        h0 = rng.standard_normal((layers, B, H))
        if cell == "lstm":
            h0 = (h0, rng.standard_normal((layers, B, H)))
    report = mr.gradcheck(model, X, Y, h0=h0)
    expected = {*model.params, "X", "h0"} | ({"c0"} if cell == "lstm" else set())
    assert set(report) == expected
    assert report.ok(1e-7), str(report)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("k", [1, 2, 4, 9])
def test_truncate_equals_chunk_and_detach(path, rng, cell, k):
    X, W_xh, W_hh, b, s = draw(rng, cell, 9, 2, 3, 4)
    dhs = rng.standard_normal((9, 2, 4))
    _, g = run(cell, X, W_xh, W_hh, b, s, dhs=dhs, truncate=k)
    total = {key: 0 for key in ("W_xh", "W_hh", "b_h", "b_hh") if key in g}
    dX, first = [], None
    state = s
    for start in range(0, 9, k):
        _hs, cache = run(cell, X[start : start + k], W_xh, W_hh, b, state)
        back = mr.lstm_backward if cell == "lstm" else mr.gru_backward
        gc = back(dhs[start : start + k], cache)
        first = first or gc
        for key in total:
            total[key] = total[key] + gc[key]
        dX.append(gc["X"])
        state = [cache.hs[-1], cache.cs[-1] if cell == "lstm" else None]
    for key in total:
        np.testing.assert_allclose(g[key], total[key], rtol=1e-12, atol=1e-14, err_msg=key)
    np.testing.assert_allclose(g["X"], np.concatenate(dX), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g["h0"], first["h0"], rtol=1e-12, atol=1e-14)


def test_lstm_state_last_and_model_state(rng):
    m = mr.RNN(3, 4, cell="lstm", num_layers=2)
    X = rng.standard_normal((5, 2, 3))
    Y, cache = m.forward(X)
    h_n, c_n = cache.state
    assert h_n.shape == c_n.shape == (2, 2, 4)
    np.testing.assert_array_equal(cache.layers[1].state_last[1], c_n[1])
    # carrying the state into a second chunk equals running the whole sequence
    Y1, c1 = m.forward(X[:3])
    Y2, _ = m.forward(X[3:], c1.state)
    np.testing.assert_allclose(np.concatenate([Y1, Y2]), Y, rtol=1e-14)


def test_gru_two_biases_and_counts():
    m = mr.RNN(10, 20, cell="gru")
    assert m.params["b_h_l0"].shape == m.params["b_hh_l0"].shape == (60,)
    assert m.num_params == mr.count_params(10, 20, cell="gru") == 3 * 20 * (20 + 10 + 2)
    lstm = mr.RNN(10, 20, cell="lstm", num_layers=2)
    assert lstm.num_params == mr.count_params(10, 20, cell="lstm", num_layers=2)


def test_forget_bias(rng):
    m = mr.RNN(3, 5, cell="lstm", forget_bias=1.0, init="orthogonal")
    b = m.params["b_h_l0"]
    assert (b[5:10] == 1.0).all() and not b[:5].any() and not b[10:].any()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("init", ["xavier", "orthogonal", "normal"])
def test_gated_inits_and_radius(cell, init):
    from minirnn.init import spectral_radius

    m = mr.RNN(3, 6, cell=cell, init=init, radius=0.9)
    W = m.params["W_hh_l0"]
    for g in range(GATES[cell]):
        assert spectral_radius(W[g * 6 : (g + 1) * 6]) == pytest.approx(0.9, rel=1e-10)


def test_gated_bad_input(rng):
    X, W_xh, W_hh, b, s = draw(rng, "lstm", 4, 2, 3, 5)
    with pytest.raises(TypeError, match=r"lstm_forward: h0 must be a pair \(h0, c0\) .* got ndarray"):
        mr.lstm_forward(X, W_xh, W_hh, b[0], s[0])
    with pytest.raises(TypeError, match=r"missing c0; give both or neither"):
        mr.lstm_forward(X, W_xh, W_hh, b[0], (s[0], None))
    with pytest.raises(TypeError, match=r"got a sequence of 3"):
        mr.lstm_forward(X, W_xh, W_hh, b[0], (s[0], s[1], s[1]))
    with pytest.raises(ValueError, match=r"c0 has shape \(2, 4\); expected \(B, H\) .* = \(2, 5\)"):
        mr.lstm_forward(X, W_xh, W_hh, b[0], (s[0], s[1][:, :4]))
    with pytest.raises(ValueError, match=r"W_hh has shape \(15, 5\); expected \(4H, H\) with the 4 gates"):
        mr.lstm_forward(X, W_xh, W_hh[:15], b[0])
    with pytest.raises(ValueError, match=r"b_h has shape \(5,\); expected \(4H,\) = \(20,\)"):
        mr.lstm_forward(X, W_xh, W_hh, b[0][:5])
    X, W_xh, W_hh, b, s = draw(rng, "gru", 4, 2, 3, 5)
    with pytest.raises(ValueError, match=r"W_xh has shape \(15, 2\); expected \(3H, I\)"):
        mr.gru_forward(X, W_xh[:, :2], W_hh)
    with pytest.raises(ValueError, match=r"b_hh has shape \(14,\)"):
        mr.gru_forward(X, W_xh, W_hh, b[0], b[1][:14])
    hs, _cache = mr.gru_forward(X, W_xh, W_hh)
    with pytest.raises(TypeError, match=r"cache must be the GRUCache returned by gru_forward, got LSTMCache"):
        mr.gru_backward(hs, mr.lstm_forward(X, rng.standard_normal((20, 3)), rng.standard_normal((20, 5)))[1])


def test_model_gated_refusals(rng):
    with pytest.raises(ValueError, match=r"activation 'relu' applies to the vanilla cell only"):
        mr.RNN(3, 4, cell="lstm", activation="relu")
    with pytest.raises(ValueError, match=r"init 'identity' \(IRNN\) is for the vanilla cell"):
        mr.RNN(3, 4, cell="gru", init="identity")
    with pytest.raises(ValueError, match=r"forget_bias applies to the LSTM only"):
        mr.RNN(3, 4, cell="gru", forget_bias=1.0)
    m = mr.RNN(3, 4, cell="lstm")
    X = rng.standard_normal((2, 1, 3))
    with pytest.raises(TypeError, match=r"the LSTM's h0 must be a pair \(h0, c0\)"):
        m.forward(X, np.zeros((1, 1, 4)))
    with pytest.raises(ValueError, match=r"c0 has shape \(1, 2, 4\)"):
        m.forward(X, (np.zeros((1, 1, 4)), np.zeros((1, 2, 4))))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_wide_rows_equal_reference(monkeypatch, rng, cell):
    """The kernels' per-equation loops over wide rows (vectorised, with remainders) against
    cells.py, with the total dL/dh kept."""
    T, B, I, H = 3, 2, 3, 131
    args = draw(rng, cell, T, B, I, H, True, True)
    dhs = rng.standard_normal((T, B, H))
    out = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("MINIRNN_JIT", flag)
        out[flag] = run(cell, *args, dhs=dhs, truncate=2, return_dh=True)
    (hs_j, g_j), (hs_r, g_r) = out["1"], out["0"]
    np.testing.assert_allclose(hs_j, hs_r, rtol=1e-12, atol=1e-13)
    for k in g_r:
        assert relative_error(g_j[k], g_r[k]) < 1e-12, k
