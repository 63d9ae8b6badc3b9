"""rnn_forward / rnn_backward: forward against scalar loops, BPTT against finite differences."""

import itertools

import numpy as np
import pytest

import minirnn as mr
from minirnn.gradcheck import relative_error
from tests import naive
from tests.conftest import requires_jit

ACTS = ["tanh", "relu", "sigmoid", "linear"]


def setup(rng, T=6, B=2, I=3, H=4, bias=True, h0=True):
    X = rng.standard_normal((T, B, I))
    W_xh = rng.standard_normal((H, I))
    W_hh = 0.9 * rng.standard_normal((H, H)) / np.sqrt(H)
    b_h = rng.standard_normal(H) if bias else None
    h_0 = rng.standard_normal((B, H)) if h0 else None
    return X, W_xh, W_hh, b_h, h_0


@pytest.mark.parametrize("activation", ACTS)
def test_forward_matches_scalar_loops(path, rng, activation):
    X, W_xh, W_hh, b_h, h0 = setup(rng)
    hs, cache = mr.rnn_forward(X, W_xh, W_hh, b_h, h0, activation)
    np.testing.assert_allclose(
        hs, naive.rnn_forward(X, W_xh, W_hh, b_h, h0, activation), rtol=1e-13, atol=1e-13
    )
    np.testing.assert_array_equal(cache.h_last, hs[-1])


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "linear", "relu"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("h0_given", [True, False])
def test_backward_matches_finite_differences(path, rng, activation, bias, h0_given):
    X, W_xh, W_hh, b_h, h0 = setup(rng, bias=bias, h0=h0_given)
    h0 = h0 if h0 is not None else np.zeros((X.shape[1], W_hh.shape[0]))
    G = rng.standard_normal((X.shape[0], X.shape[1], W_hh.shape[0]))

    def loss():
        return float(np.sum(mr.rnn_forward(X, W_xh, W_hh, b_h, h0, activation)[0] * G))

    _hs, cache = mr.rnn_forward(X, W_xh, W_hh, b_h, h0, activation)
    g = mr.rnn_backward(G, cache)
    expected_keys = {"W_xh", "W_hh", "X", "h0"} | ({"b_h"} if bias else set())
    assert set(g) == expected_keys
    arrays = {"W_xh": W_xh, "W_hh": W_hh, "X": X, "h0": h0, "b_h": b_h}
    for name in expected_keys:
        numeric = naive.loss_and_numeric_grad(loss, arrays[name], eps=1e-5)
        assert g[name].shape == arrays[name].shape
        assert relative_error(g[name], numeric) < 1e-7, name


def test_return_dh_is_total_gradient_wrt_each_state(path, rng):
    """dh[t] must equal dL/dh_t found by perturbing h_t's pre-activation path: check via h0 trick.

    Running the tail t..T from h_{t-1} = hs[t-1] as a new h0 gives dL/dh_{t-1} as its "h0" grad.
    """
    X, W_xh, W_hh, b_h, h0 = setup(rng, T=7)
    G = rng.standard_normal((7, 2, 4))
    hs, cache = mr.rnn_forward(X, W_xh, W_hh, b_h, h0)
    g = mr.rnn_backward(G, cache, return_dh=True)
    for t in range(1, 7):
        _, tail = mr.rnn_forward(X[t:], W_xh, W_hh, b_h, hs[t - 1])
        g_tail = mr.rnn_backward(G[t:], tail)
        np.testing.assert_allclose(g["dh"][t - 1], G[t - 1] + g_tail["h0"], rtol=1e-12, atol=1e-14)


def chunk_and_detach(X, W_xh, W_hh, b_h, h0, G, k):
    """The hand-written reference for truncated BPTT: run chunks of k steps, each from the
    previous chunk's last state treated as a constant, and sum the chunks' gradients."""
    total = None
    h = h0
    for s in range(0, X.shape[0], k):
        hs, cache = mr.rnn_forward(X[s : s + k], W_xh, W_hh, b_h, h)
        g = mr.rnn_backward(G[s : s + k], cache)
        if total is None:
            total = {key: val.copy() for key, val in g.items() if key not in ("X", "h0")}
            total["h0"] = g["h0"]
            total["X"] = [g["X"]]
        else:
            for key in ("W_xh", "W_hh", "b_h"):
                total[key] += g[key]
            total["X"].append(g["X"])
        h = hs[-1]
    total["X"] = np.concatenate(total["X"])
    return total


@pytest.mark.parametrize("k", [1, 2, 3, 5, 7, 50])
def test_truncate_equals_chunk_and_detach(path, rng, k):
    X, W_xh, W_hh, b_h, h0 = setup(rng, T=7)
    G = rng.standard_normal((7, 2, 4))
    _, cache = mr.rnn_forward(X, W_xh, W_hh, b_h, h0)
    g = mr.rnn_backward(G, cache, truncate=k)
    ref = chunk_and_detach(X, W_xh, W_hh, b_h, h0, G, k)
    for key in ref:
        np.testing.assert_allclose(g[key], ref[key], rtol=1e-12, atol=1e-14, err_msg=key)


def test_truncate_at_or_beyond_T_is_full_bptt(rng):
    X, W_xh, W_hh, b_h, h0 = setup(rng, T=5)
    G = rng.standard_normal((5, 2, 4))
    _, cache = mr.rnn_forward(X, W_xh, W_hh, b_h, h0)
    full, trunc = mr.rnn_backward(G, cache), mr.rnn_backward(G, cache, truncate=5)
    for key in full:
        np.testing.assert_array_equal(full[key], trunc[key])
    assert not np.allclose(mr.rnn_backward(G, cache, truncate=2)["W_hh"], full["W_hh"])


def test_float32_end_to_end_keeps_dtype(path, rng):
    X, W_xh, W_hh, b_h, h0 = (a.astype(np.float32) for a in setup(rng))
    hs, cache = mr.rnn_forward(X, W_xh, W_hh, b_h, h0)
    g = mr.rnn_backward(np.ones_like(hs), cache, return_dh=True)
    assert hs.dtype == np.float32
    assert {a.dtype for a in g.values()} == {np.dtype(np.float32)}
    hs64, c64 = mr.rnn_forward(*(a.astype(np.float64) for a in (X, W_xh, W_hh, b_h, h0)))
    np.testing.assert_allclose(hs, hs64, rtol=1e-5, atol=1e-6)
    g64 = mr.rnn_backward(np.ones_like(hs64), c64)
    for key in ("W_xh", "W_hh", "b_h", "X", "h0"):
        assert relative_error(g[key].astype(np.float64), g64[key]) < 1e-5


def test_single_step_and_single_unit(path):
    X = np.array([[[0.5]]])
    hs, cache = mr.rnn_forward(X, np.array([[2.0]]), np.array([[0.3]]), np.array([0.1]), activation="linear")
    assert hs[0, 0, 0] == pytest.approx(1.1)
    g = mr.rnn_backward(np.ones_like(hs), cache)
    assert (
        g["W_xh"][0, 0] == pytest.approx(0.5) and g["W_hh"][0, 0] == 0 and g["h0"][0, 0] == pytest.approx(0.3)
    )


def test_backward_windows_are_few_even_and_bounded_in_rows_and_memory():
    """functional._windows: contiguous, last first, the first the longest (buffers are sized by
    it); each under WINDOW_ROWS rows, and its buffer with the weights' copy under 1/WINDOW_SHARE
    of what the call holds anyway (the buffer alone under half that where the copy is large;
    one step at least); the fewest windows that allows, their lengths within one step."""
    from minirnn import functional

    W = functional._windows
    assert functional.WINDOW_ROWS == 1024 and functional.WINDOW_SHARE == 4
    assert W(100, 1, 32, 64, 1, 1) == [(50, 100), (0, 50)]  # one window held 1.43x
    assert W(100, 4, 32, 64, 1, 1) == [(66, 100), (33, 66), (0, 33)]
    assert W(100, 4, 32, 64, 1, 1, 64 * 64) == [(75, 100), (50, 75), (25, 50), (0, 25)]  # packed
    assert W(100, 32, 32, 128, 1, 1) == [(75, 100), (50, 75), (25, 50), (0, 25)]
    assert W(100, 32, 32, 128, 4, 7) == [(75, 100), (50, 75), (25, 50), (0, 25)]  # 32 rows a step
    assert W(1000, 1, 1, 32, 1, 1) == [(750, 1000), (500, 750), (250, 500), (0, 250)]
    assert functional.window_steps(200, 64, 128, 256, 1, 1) == 16  # 13 windows of 15-16 steps
    assert W(20, 1, 32, 64, 4, 7) == [(0, 20)]  # short: the weight gradients dominate
    assert W(20, 2, 32, 256, 4, 7, 4 * 256 * 256) == [(0, 20)]  # and their copy
    for T in range(1, 300, 7):
        for B in (1, 3, 32, 64, 128, 1000):
            for I, H, G, held, copied in (
                (1, 32, 1, 1, 0),
                (32, 64, 4, 7, 0),
                (128, 256, 3, 5, 3 * 256 * 256),
            ):
                # extra: the tiled weight gradients' packed rows of X and h_{t-1}, per row
                for extra in (0, I + H):
                    w = W(T, B, I, H, G, held, copied, extra)
                    kept = T * B * (held * H + I) + G * H * (I + H)
                    budget = max(kept // 4 - copied, kept // 8)
                    cap = max(1, min(1024 // B, budget // (B * (G * H + extra))))
                    lengths = [t1 - t0 for t0, t1 in w]
                    assert w[0][1] == T and w[-1][0] == 0
                    assert all(a[0] == b[1] for a, b in itertools.pairwise(w))
                    steps = functional.window_steps(T, B, I, H, G, held, copied, extra)
                    assert max(lengths) == lengths[0] == steps
                    assert max(lengths) - min(lengths) <= 1
                    assert lengths[0] <= cap and (lengths[0] == 1 or lengths[0] * B <= 1024)
                    assert lengths[0] == 1 or lengths[0] * B * (G * H + extra) <= budget
                    assert (len(w) - 1) * cap < T  # one window fewer would break a limit


# What each cell's backward needs from its forward besides h, per (step, row, unit), and the
# state gradients it returns per (row, unit), as benchmarks/bench_rnn.py counts them.
SAVED = {"rnn": 0, "lstm": 6, "gru": 4}
STATES = {"rnn": 1, "lstm": 2, "gru": 1}


@requires_jit
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("shape", [(100, 1, 32, 64), (100, 4, 32, 64), (300, 8, 16, 32)])
def test_forward_and_full_bptt_peak_under_1_3x_what_they_keep(monkeypatch, cell, shape):
    """Peak traced memory of the fast path's forward + backward against the states, the saved
    activations and every gradient returned: at most 1.3x (the backward windows' budget,
    functional._windows; one window of the whole sequence held 1.36-1.57x at the first two
    shapes). The reference path (cells.py's steps) keeps every step's gradients."""
    import tracemalloc

    monkeypatch.setenv("MINIRNN_JIT", "1")

    T, B, I, H = shape
    model = mr.RNN(I, H, cell=cell, seed=0)
    rng = np.random.default_rng(0)
    X, G = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, H))

    def run():
        _, cache = model.forward(X)
        model.backward(G, cache)

    run(), run()  # compiled, and the C entries of the blocks built
    tracemalloc.start()
    try:
        run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    keep = T * B * (H * (1 + SAVED[cell]) + I) + model.num_params + STATES[cell] * B * H
    assert peak <= 1.3 * 8 * keep, peak / (8 * keep)
