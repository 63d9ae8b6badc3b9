"""Truncated BPTT, streaming state, resets, gradient accuracy and RTRL."""

import tracemalloc

import numpy as np
import pytest

import minirnn as mr
from minirnn import bptt, losses
from minirnn.gradcheck import relative_error
from tests.conftest import requires_jit

CELLS = ["rnn", "lstm", "gru"]


def make(cell, rng, T=13, B=3, I=2, H=4, P=2, layers=2, seed=0):
    model = mr.RNN(I, H, P, num_layers=layers, cell=cell, seed=seed)
    return model, rng.standard_normal((T, B, I)), rng.standard_normal((T, B, P))


def assert_grads_equal(a, b, tol=1e-12):
    assert a.keys() == b.keys()
    for k in a:
        assert relative_error(a[k], b[k]) < tol, k


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("k", [13, 20])
def test_k_at_least_T_is_full_bptt(path, rng, cell, k):
    model, X, Y = make(cell, rng)
    lf, gf = bptt.full_gradients(model, X, Y)
    lt, gt = bptt.tbptt_gradients(model, X, Y, k, k)
    assert lt == pytest.approx(lf, rel=1e-14)
    assert_grads_equal(gt, gf, 1e-13)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("k", [1, 3, 5])
def test_chunked_equals_chunk_and_detach(rng, cell, k):
    """k1 = k2 = k: the hand-written reference runs each chunk from the previous chunk's final
    state as a constant and sums the chunks' gradients of the whole-sequence mean loss."""
    model, X, Y = make(cell, rng)
    T = len(X)
    ref = {n: np.zeros_like(p) for n, p in model.params.items()}
    state = None
    for s in range(0, T, k):
        out, cache = model.forward(X[s : s + k], state)
        _, dY = losses.mse(out, Y[s : s + k])
        g = model.backward(dY * (len(out) / T), cache)
        for n in ref:
            ref[n] += g[n]
        state = cache.state
    _, gt = bptt.tbptt_gradients(model, X, Y, k)
    assert_grads_equal(gt, ref)
    # and the same as the functional truncate= of one backward over the whole sequence
    out, cache = model.forward(X)
    _, dY = losses.mse(out, Y)
    g = model.backward(dY, cache, truncate=k)
    assert_grads_equal(gt, {n: g[n] for n in model.params})


def brute_force_k1_k2(model, X, Y, k1, k2):
    """Williams & Peng's TBPTT(k1, k2) from a stored full history: after each block of k1
    steps, run forward again from the stored state k2 steps back and backpropagate the block's
    losses through those k2 steps (a last, shorter block gets the same k2 - k1 steps of
    history before it as a full one)."""
    T = len(X)
    _, full = model.forward(X)
    total = {n: np.zeros_like(p) for n, p in model.params.items()}
    for start in range(0, T, k1):
        end = min(start + k1, T)
        n_b = end - start
        w0 = max(0, start - (k2 - k1))
        state = None if w0 == 0 else bptt._state_at(full, w0 - 1)
        out, cache = model.forward(X[w0:end], state)
        dY = np.zeros_like(out)
        _, dY[-n_b:] = losses.mse(out[-n_b:], Y[end - n_b : end])
        g = model.backward(dY, cache)
        for n in total:
            total[n] += g[n] * n_b / T
    return total


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("k1", "k2"), [(1, 3), (2, 5), (3, 4), (4, 12), (5, 20)])
def test_k1_below_k2_equals_brute_force(rng, cell, k1, k2):
    model, X, Y = make(cell, rng)
    _, gt = bptt.tbptt_gradients(model, X, Y, k1, k2)
    assert_grads_equal(gt, brute_force_k1_k2(model, X, Y, k1, k2))


@pytest.mark.parametrize("cell", CELLS)
def test_streaming_chunks_equal_one_feed(rng, cell):
    model, X, Y = make(cell, rng, T=24)
    one = mr.TBPTT(model, 4, 7)
    one.feed(X, Y)
    many = mr.TBPTT(model, 4, 7)
    many.run((X[s : s + 8], Y[s : s + 8]) for s in range(0, 24, 8))
    assert_grads_equal(many.gradients(), one.gradients())
    assert many.mean_loss == pytest.approx(one.mean_loss, rel=1e-14)
    h_one = one.state[0] if cell == "lstm" else one.state
    h_many = many.state[0] if cell == "lstm" else many.state
    np.testing.assert_allclose(h_many, h_one, rtol=1e-14)
    # the carried state is the true state of the whole sequence
    _, cache = model.forward(X)
    np.testing.assert_allclose(h_one, cache.h_n, rtol=1e-13)


@pytest.mark.parametrize("cell", CELLS)
def test_full_reset_starts_a_fresh_sequence(rng, cell):
    model, X, Y = make(cell, rng, T=12)
    d = mr.TBPTT(model, 3, 5)
    d.feed(X[:6], Y[:6])
    d.zero_grad()
    d.reset()
    d.feed(X[6:], Y[6:])
    fresh = mr.TBPTT(model, 3, 5)
    fresh.feed(X[6:], Y[6:])
    assert_grads_equal(d.gradients(), fresh.gradients())


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("k1", "k2"), [(3, 3), (3, 5), (2, 7)])
def test_reset_selected_rows(rng, cell, k1, k2):
    """Row 1 starts a new sequence after 6 steps, row 0 goes on: the batch gradient is the mean
    of a continuing single-row stream and a reset single-row stream."""
    model, X, Y = make(cell, rng, T=12, B=2)
    d = mr.TBPTT(model, k1, k2)
    d.feed(X[:6], Y[:6])
    d.reset(rows=[1])
    d.feed(X[6:], Y[6:])

    row0 = mr.TBPTT(model, k1, k2)
    row0.feed(X[:6, :1], Y[:6, :1])
    row0.feed(X[6:, :1], Y[6:, :1])
    row1 = mr.TBPTT(model, k1, k2)
    row1.feed(X[:6, 1:], Y[:6, 1:])
    row1.reset()
    row1.feed(X[6:, 1:], Y[6:, 1:])
    g0, g1 = row0.gradients(), row1.gradients()
    assert_grads_equal(d.gradients(), {k: (g0[k] + g1[k]) / 2 for k in g0})
    h = d.state[0] if cell == "lstm" else d.state
    h1 = row1.state[0] if cell == "lstm" else row1.state
    np.testing.assert_allclose(h[:, 1], h1[:, 0], rtol=1e-13)


def test_training_mode_calls_update_with_clipped_gradients(rng):
    model, X, Y = make("rnn", rng, T=10)
    seen = []
    d = mr.TBPTT(model, 4, update=lambda g: seen.append(bptt.clipping.global_norm(g)), clip=1e-3)
    reports = d.feed(X, Y)
    assert [r["steps"] for r in reports] == [4, 4, 2]
    assert len(seen) == 3 and all(n == pytest.approx(1e-3, rel=1e-2) for n in seen)
    assert all(r["grad_norm"] > r["clipped_norm"] for r in reports)
    with pytest.raises(ValueError, match="no scored steps have been fed"):
        d.gradients()


def test_sgd_update_changes_parameters_and_lowers_loss(rng):
    model, X, Y = make("gru", rng, T=20, layers=1)

    def sgd(g):
        for k, p in model.params.items():
            p -= 0.5 * g[k]

    losses_seen = []
    for _ in range(30):
        d = mr.TBPTT(model, 5, update=sgd)
        losses_seen.append(np.mean([r["loss"] for r in d.feed(X, Y)]))
    assert losses_seen[-1] < 0.8 * losses_seen[0]


@requires_jit
def test_memory_is_window_sized_not_sequence_sized(rng):
    T, B, I, H, k = 20_000, 8, 4, 64, 20
    model = mr.RNN(I, H, 1, seed=0)
    X = rng.standard_normal((T, B, I))
    Y = rng.standard_normal((T, B, 1))
    bptt.tbptt_gradients(model, X[:40], Y[:40], k)  # compile and warm up outside the measurement

    def peak(fn):
        tracemalloc.start()
        try:
            fn()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    full = peak(lambda: bptt.full_gradients(model, X, Y))
    trunc = peak(lambda: bptt.tbptt_gradients(model, X, Y, k))
    assert full > 2 * T * B * H * 8  # the hidden states and their gradient at least
    assert trunc < full / 20, (trunc, full)


@pytest.mark.parametrize(
    ("args", "exc", "pattern"),
    [
        ((0,), ValueError, r"k1 must be a positive integer, got 0"),
        ((-2,), ValueError, r"k1 must be a positive integer, got -2"),
        ((2.5,), TypeError, r"k1 must be a positive integer, got 2.5"),
        ((3, 2), ValueError, r"k2 must be >= k1 .* got k1=3, k2=2"),
        ((3, 0), ValueError, r"k2 must be a positive integer, got 0"),
    ],
)
def test_bad_truncation_arguments(args, exc, pattern):
    with pytest.raises(exc, match=pattern):
        mr.TBPTT(mr.RNN(2, 3), *args)


def test_bad_chunks(rng):
    model, X, Y = make("rnn", rng)
    d = mr.TBPTT(model, 3)
    d.feed(X[:4], Y[:4])
    with pytest.raises(ValueError, match=r"chunk has batch 2 .* expected batch 3 and 2 features"):
        d.feed(X[:4, :2], Y[:4, :2])
    with pytest.raises(ValueError, match=r"X must have 3 dimensions"):
        d.feed(X[:4, :, 0], Y[:4])
    with pytest.raises(
        ValueError, match=r"Y has shape \(3, 3, 2\); expected targets for every step, \(4, 3, ...\)"
    ):
        d.feed(X[:4], Y[:3])
    with pytest.raises(ValueError, match=r"rows \[5\] out of range for batch size 3"):
        d.reset(rows=[5])
    with pytest.raises(ValueError, match=r"unknown loss 'l1'"):
        mr.TBPTT(model, 3, loss="l1")
    with pytest.raises(ValueError, match=r"clip must be a positive finite number"):
        mr.TBPTT(model, 3, clip=-1.0)


def test_gradient_accuracy_measures(rng):
    model, X, Y = make("rnn", rng, T=30, layers=1)
    exact = mr.gradient_accuracy(model, X, Y, 30)
    assert exact["overall"]["cosine"] == pytest.approx(1.0, abs=1e-12)
    assert exact["overall"]["rel_error"] < 1e-12
    coarse = mr.gradient_accuracy(model, X, Y, 1)
    fine = mr.gradient_accuracy(model, X, Y, 10)
    assert coarse["overall"]["rel_error"] > fine["overall"]["rel_error"] > 0
    assert set(coarse["per_param"]) == set(model.params)
    assert -1 <= coarse["overall"]["cosine"] < 1


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("output", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_rtrl_equals_full_bptt(rng, activation, output, bias):
    T, B, I, H = 9, 2, 3, 5
    model = mr.RNN(I, H, 2 if output else None, activation=activation, bias=bias, seed=4)
    X = rng.standard_normal((T, B, I))
    Y = rng.standard_normal((T, B, 2 if output else H))
    _, full = bptt.full_gradients(model, X, Y)
    assert_grads_equal(mr.rtrl(model, X, Y), full, 1e-10)


def test_rtrl_is_exact_at_every_step(rng):
    T, B, I, H = 8, 2, 2, 4
    model = mr.RNN(I, H, 1, seed=1)
    X, Y = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, 1))
    for t, value, g in bptt.rtrl_steps(model, X, Y):
        lf, full = bptt.full_gradients(model, X[: t + 1], Y[: t + 1])
        scale = (t + 1) / T  # RTRL's losses are normalised by the whole length
        assert value == pytest.approx(lf * scale, rel=1e-12)
        assert_grads_equal(g, {k: v * scale for k, v in full.items()}, 1e-10)


def test_rtrl_cross_entropy_and_refusals(rng):
    model = mr.RNN(2, 3, 4, seed=0)
    X = rng.standard_normal((6, 2, 2))
    Y = rng.integers(0, 4, size=(6, 2))
    _, full = bptt.full_gradients(model, X, Y, "cross_entropy")
    assert_grads_equal(mr.rtrl(model, X, Y, "cross_entropy"), full, 1e-10)
    with pytest.raises(ValueError, match="one-layer vanilla RNN"):
        mr.rtrl(mr.RNN(2, 3, cell="gru"), X, Y)
    with pytest.raises(ValueError, match="one-layer vanilla RNN"):
        mr.rtrl(mr.RNN(2, 3, num_layers=2), X, Y)


@pytest.mark.parametrize("cell", CELLS)
def test_backward_dstate_chains_segments(rng, cell):
    """Backward of segment 2 hands dL/d(state) to segment 1 via dstate: equals one backward."""
    model, X, Y = make(cell, rng, T=10)
    out, cache = model.forward(X)
    _, dY = losses.mse(out, Y)
    whole = model.backward(dY, cache)
    _, c1 = model.forward(X[:4])
    _, c2 = model.forward(X[4:], c1.state)
    g2 = model.backward(dY[4:], c2)
    d = (g2["h0"], g2["c0"]) if cell == "lstm" else g2["h0"]
    g1 = model.backward(dY[:4], c1, dstate=d)
    assert_grads_equal({k: g1[k] + g2[k] for k in model.params}, {k: whole[k] for k in model.params})
    np.testing.assert_allclose(np.concatenate([g1["X"], g2["X"]]), whole["X"], rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match=r"dh_n has shape \(2, 3, 3\); expected \(L, B, H\)"):
        bad = np.zeros((2, 3, 3))
        model.backward(dY[:4], c1, dstate=(bad, bad) if cell == "lstm" else bad)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_whole_blocks_equal_block_by_block(rng, cell, loss):
    """Accumulate mode with k1 = k2 runs many blocks per forward/backward (the kernels cut the
    recurrence); it must give the block-by-block driver's reports, state and gradients, across
    chunks of lengths not divisible by k, a mask, and a reset of some rows between chunks."""
    model, X, _ = make(cell, rng, T=23, B=3, P=4)
    Y = rng.integers(0, 4, (23, 3)) if loss == "cross_entropy" else rng.standard_normal((23, 3, 4))
    mask = rng.random((23, 3)) < 0.7
    mask[4:8] = False  # a block with nothing scored: weight 0, loss reported as 0
    drivers = [bptt.TBPTT(model, 4, loss=loss), bptt.TBPTT(model, 4, loss=loss, group_rows=0)]
    reports = []
    for d in drivers:
        r = d.feed(X[:11], Y[:11], mask[:11])
        d.reset([1])
        r += d.feed(X[11:], Y[11:], mask[11:])
        reports.append(r)
    assert len(reports[0]) == len(reports[1]) == 6
    assert reports[0][1] == {"steps": 4.0, "weight": 0.0, "loss": 0.0}
    for a, b in zip(*reports, strict=True):
        assert a.keys() == b.keys() and a["steps"] == b["steps"] and a["weight"] == b["weight"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-13)
    assert drivers[0].mean_loss == pytest.approx(drivers[1].mean_loss, rel=1e-13)
    assert_grads_equal(drivers[0].gradients(), drivers[1].gradients(), 1e-12)
    for s0, s1 in zip(np.atleast_1d(drivers[0].state), np.atleast_1d(drivers[1].state), strict=True):
        np.testing.assert_allclose(s0, s1, rtol=1e-13)


def test_whole_blocks_group_long_chunks(rng):
    """Long chunks go through in groups of whole blocks (bounded memory), same numbers."""
    model, X, Y = make("rnn", rng, T=50, B=2)
    _, grouped = bptt.tbptt_gradients(model, X, Y, 4, group_rows=16)  # two blocks of 4 per group
    _, whole = bptt.tbptt_gradients(model, X, Y, 4, group_rows=10**9)
    assert_grads_equal(grouped, whole, 1e-13)
    assert bptt.group_steps(4, 2, 16) == 8 and bptt.group_steps(20, 64, 16) == 20
    with pytest.raises(ValueError, match="group_rows must be an integer >= 0"):
        bptt.TBPTT(model, 4, group_rows=-1)


def test_whole_blocks_refuse_a_mask_that_is_not_0_1(rng):
    model, X, Y = make("rnn", rng, T=8, B=2)
    mask = np.ones((8, 2))
    mask[3, 1] = 2
    with pytest.raises(ValueError, match="mask must hold only 0 and 1"):
        bptt.tbptt_gradients(model, X, Y, 4, mask=mask)


@requires_jit
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_block_by_block_tbptt_holds_about_one_blocks_full_bptt(cell):
    """TBPTT block by block (group_rows=0) peaks near full BPTT over one block: the block's
    outputs go before its backward (they were held through it: 1.34x for a vanilla cell with a
    read-out as wide as its state)."""
    from minirnn import calculator as C

    T, B, I, H, P, k = 100, 32, 16, 64, 64, 10
    model = mr.RNN(I, H, P, cell=cell, seed=0)
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, P))

    def blocks():
        driver = bptt.TBPTT(model, k, k, "mse", group_rows=0)
        driver.feed(X, Y)
        return driver.gradients()

    def one_block():
        return bptt.full_gradients(model, X[:k], Y[:k])

    blocks(), one_block()
    assert C.peak_bytes(blocks) < 1.2 * C.peak_bytes(one_block)
