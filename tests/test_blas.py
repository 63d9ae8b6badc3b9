"""_blas.py: NumPy's GEMM as a pointer for the compiled loops, and its fallbacks."""

import itertools

import numpy as np
import pytest

import minirnn as mr
from minirnn import _blas
from tests.conftest import requires_jit
from tests.time_loops import LOOPS, use_loop


@pytest.fixture
def fresh(monkeypatch):
    """An empty pointer cache, restored after the test."""
    monkeypatch.setattr(_blas, "_cache", {})


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pointer_computes_a_gemm_with_beta(fresh, dtype):
    gemm = _blas.gemm(dtype)
    if gemm is None:
        pytest.skip("NumPy does not bundle OpenBLAS here")
    rng = np.random.default_rng(0)
    A, M = rng.standard_normal((6, 9)).astype(dtype), rng.standard_normal((9, 4)).astype(dtype)
    out = np.full((6, 4), 2.0, dtype=dtype)
    gemm(101, 111, 111, 6, 4, 9, 1.0, A.ctypes.data, 9, M.ctypes.data, 4, 0.5, out.ctypes.data, 4)
    np.testing.assert_allclose(out, A @ M + 1.0, rtol=1e-5 if dtype == np.float32 else 1e-13)


def test_fallbacks_give_none(fresh, monkeypatch):
    monkeypatch.setenv("MINIRNN_BLAS", "0")
    assert _blas.gemm(np.float64) is None
    monkeypatch.setenv("MINIRNN_BLAS", "1")
    monkeypatch.setattr(_blas, "_numpy_blas_library", lambda: None)  # NumPy on another BLAS
    assert _blas.gemm(np.float64) is None


def test_a_pointer_that_disagrees_is_not_used(fresh, monkeypatch):
    monkeypatch.setattr(_blas, "_agrees", lambda fn, dtype: False)
    assert _blas.gemm(np.float32) is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "case",
    [
        # (T, B, I, H, gates, GRU, t0, n, biases)
        (10, 3, 5, 4, 1, False, 4, 3, "b_h b_hh"),  # a window after the first: h_{t-1} from hs
        (10, 3, 5, 4, 4, False, 0, 3, "b_h b_hh"),  # the first window: h0 for its first step
        (10, 3, 5, 4, 3, True, 2, 5, "b_h b_hh"),  # GRU: W_hh's n rows take da_n r
        (10, 3, 5, 4, 3, True, 0, 1, "b_h b_hh"),  # a one-step first window
        (6, 2, 3, 4, 1, False, 0, 6, ""),  # the whole sequence, no biases
        (7, 1, 1, 2, 3, True, 3, 4, ""),
        (8, 2, 3, 4, 3, True, 2, 3, "b_hh"),  # one bias of the two: the sums they share
        (8, 2, 3, 4, 3, True, 2, 3, "b_h"),
        (8, 2, 3, 4, 4, False, 2, 3, "b_hh"),
    ],
)
def test_window_grads_equal_numpy(fresh, rng, dtype, case):
    """kernels.window_grads (a backward window's dW_xh, dW_hh, dX and bias sums in one compiled
    call through NumPy's GEMM pointer) against NumPy in float64, every operand at its offset in
    the arrays it lives in."""
    from minirnn._jit import kernels

    gemm = _blas.gemm(dtype)
    if gemm is None:
        pytest.skip("NumPy does not bundle OpenBLAS here")
    T, B, I, H, G, gru, t0, n, biases = case
    GH = G * H

    def arr(*shape):
        return rng.standard_normal(shape).astype(dtype)

    X, hs, h0, W = arr(T, B, I), arr(T, B, H), arr(B, H), arr(GH, I)
    da = arr(n, B, GH)
    gates = arr(n, B, GH) if gru else np.empty((0, 0, 0), dtype)  # r is a GRU's first H
    dW_xh, dW_hh, dX = arr(GH, I), arr(GH, H), arr(T, B, I)
    db_h, db_hh = (arr(GH) if name in biases.split() else np.empty(0, dtype) for name in ("b_h", "b_hh"))
    f64 = {
        k: v.astype(np.float64)
        for k, v in dict(dW_xh=dW_xh, dW_hh=dW_hh, dX=dX, db_h=db_h, db_hh=db_hh).items()
    }
    DA = da.reshape(n * B, GH).astype(np.float64)
    UA = DA.copy()
    if gru:
        UA[:, GH - H :] *= gates.reshape(n * B, GH)[:, :H]
    h_prev = np.concatenate([h0[None], hs])[t0 : t0 + n].reshape(n * B, H).astype(np.float64)
    f64["dW_xh"] += DA.T @ X[t0 : t0 + n].reshape(n * B, I)
    f64["dX"][t0 : t0 + n] = (DA @ W).reshape(n, B, I)
    f64["dW_hh"] += UA.T @ h_prev
    if db_h.size:
        f64["db_h"] += DA.sum(axis=0)
    if db_hh.size:
        f64["db_hh"] += UA.sum(axis=0)
    total = np.full(GH, np.nan, dtype)  # work space: its old contents never reach a sum
    kernels().window_grads(gemm, t0, da, gates, X, h0, hs, W, total, dW_xh, dW_hh, dX, db_h, db_hh)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    got = dict(dW_xh=dW_xh, dW_hh=dW_hh, dX=dX, db_h=db_h, db_hh=db_hh)
    for name, value in got.items():
        np.testing.assert_allclose(value, f64[name], rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_operand_copies_counts_what_operand_allocates(rng, dtype):
    """Recurrence.operand_copies (what calculator.activation_bytes counts, through
    functional.window_elements) against what operand(R) allocates, for every kind of recurrence."""
    from minirnn import functional
    from minirnn._jit import kernels

    kinds = [functional.Recurrence(), functional.Recurrence(python_loop=True)]
    if _blas.gemm(dtype) is not None:
        kinds.append(functional.Recurrence(gemm=_blas.gemm(dtype)))
    if kernels().tiles_entry(dtype):
        kinds.append(functional.Recurrence(tiles=kernels().tiles_entry(dtype)))
    for rec in kinds:
        for K, N in ((12, 3), (4, 6), (6, 6)):
            R = rng.standard_normal((K, N)).astype(dtype)
            op = R if rec.python_loop else rec.operand(R)
            allocated = 0 if np.may_share_memory(op, R) else op.size
            assert rec.operand_copies(K, N, np.dtype(dtype)) == allocated, (rec, K, N)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_all_time_loops_agree_at_a_blas_sized_shape(monkeypatch, rng, cell):
    model = mr.RNN(8, 48, cell=cell, seed=0)
    X = rng.standard_normal((7, 16, 8))
    out = {}
    for loop in LOOPS:
        use_loop(monkeypatch, loop)
        Y, cache = model.forward(X)
        out[loop] = (Y, model.backward(np.ones_like(Y), cache, truncate=3))
    for loop in LOOPS[1:]:
        np.testing.assert_allclose(out[loop][0], out["compiled"][0], rtol=1e-12, atol=1e-14)
        for k, g in out["compiled"][1].items():
            np.testing.assert_allclose(out[loop][1][k], g, rtol=1e-11, atol=1e-13, err_msg=f"{loop} {k}")


USER_KERNEL_AFTER_FIRST_CALL = """
import importlib.util, sys
import numpy as np
import minirnn as mr
hs, cache = mr.rnn_forward(np.ones((3, 2, 2)), np.ones((4, 2)), 0.5 * np.eye(4))
mr.rnn_backward(np.ones_like(hs), cache)
print("scipy.linalg" in sys.modules)
import numba
import numba.np.arraymath as arraymath
print(arraymath._HAVE_BLAS == (importlib.util.find_spec("scipy") is not None))

@numba.njit
def user_kernel(a, b):
    return np.dot(a, b), np.correlate(a, b)

d, c = user_kernel(np.arange(3.0), np.arange(3.0) + 1)
print(d == 8.0 and np.allclose(c, np.correlate(np.arange(3.0), np.arange(3.0) + 1)))
"""


def test_first_call_skips_scipy_and_user_kernels_still_get_blas():
    """_jit spares the first kernel call numba's import of scipy.linalg; a user's own numba
    kernel with np.dot and np.correlate must work afterwards as if nothing happened."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", USER_KERNEL_AFTER_FIRST_CALL], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "True", "True"], out


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("loop", LOOPS)
def test_backward_in_many_windows_equals_reference(monkeypatch, rng, cell, loop):
    """The backward walks the sequence in windows (functional._windows), carrying the state
    gradient from one to the next: tiny windows (2 steps) must give the reference's numbers."""
    from minirnn import functional

    model = mr.RNN(3, 5, cell=cell, seed=1)
    X = rng.standard_normal((7, 2, 3))
    out = {}
    for jit in ("0", "1"):
        monkeypatch.setenv("MINIRNN_JIT", jit)
        use_loop(monkeypatch, loop)
        monkeypatch.setattr(functional, "WINDOW_ROWS", 4)
        assert functional.window_steps(7, 2, 3, 5, 1, 1) == 2
        Y, cache = model.forward(X)
        out[jit] = model.backward(np.cos(Y), cache, truncate=3)
    for k, g in out["0"].items():
        np.testing.assert_allclose(out["1"][k], g, rtol=1e-12, atol=1e-14, err_msg=k)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_hand_written_product_equals_numpy_and_ignores_neighbour_rows(rng, dtype):
    """kernels.matmul_acc (a row at a time, R flattened) against NumPy, and each row's bits
    the same computed beside other rows or alone; product_ runs it on the
    operand Recurrence.operand gives without BLAS and tiles (R in any layout, flattened)."""
    from minirnn import functional
    from minirnn._jit import kernels

    k = kernels()
    for B, K, N in ((1, 1, 1), (3, 5, 7), (4, 4, 4), (9, 13, 6), (16, 32, 40)):
        A = rng.standard_normal((B, K)).astype(dtype)
        M = rng.standard_normal((K, N)).astype(dtype)
        start = rng.standard_normal((B, N)).astype(dtype)
        out = start.copy()
        k.matmul_acc(A, M.reshape(-1), out)
        tol = 1e-13 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(out, start + A @ M, rtol=tol, atol=tol * K)
        for b in range(B):
            alone = start[b : b + 1].copy()
            k.matmul_acc(A[b : b + 1], M.reshape(-1), alone)
            np.testing.assert_array_equal(alone[0], out[b])
        operand = functional.Recurrence().operand(np.asfortranarray(M))
        assert operand.shape == (K * N,)
        again = start.copy()
        k.product_(None, False, A, operand, again)
        np.testing.assert_array_equal(again, out)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tiled_product_equals_numpy_and_ignores_neighbour_rows(rng, dtype):
    """kernels.tiles_acc on pack_panels(R): every kind of panel (TILE_VECTORS vectors, two, one,
    the last N % lanes columns), every kind of tile (four rows, two, one), K over several chunks
    (K_CHUNK), R given in any layout; and each row's bits the same computed in a block or alone
    (blocks of rows must give one loop's numbers)."""
    from minirnn._jit import kernels

    k = kernels()
    L = k.VECTOR_BYTES // np.dtype(dtype).itemsize
    chunk = k.K_CHUNK32 if dtype == np.float32 else k.K_CHUNK64
    V = k.TILE_VECTORS
    shapes = (
        (1, 1, 1),
        (2, 3, 8),
        (3, 5, 7),
        (4, 4, V * L),
        (9, 13, (V + 1) * L + 3),
        (7, 11, (V + 2) * L + 3),  # the two-vector panel, its rows' rest in one-vector tiles
        (8, 9, (2 * V + 3) * L),  # on AVX-512 (V = 4): two vectors, then one
        (6, 2 * chunk + 5, V * L + 1),
        (7, 32, 40),
        (17, 32, 40),
    )
    for B, K, N in shapes:
        A = rng.standard_normal((B, K)).astype(dtype)
        R = rng.standard_normal((N, K)).astype(dtype).T  # (K, N), not C-contiguous
        start = rng.standard_normal((B, N)).astype(dtype)
        P = k.pack_panels(R)
        assert P.shape == (K * N,) and P.dtype == dtype
        out = start.copy()
        k.product_(None, k.tiles_entry(dtype), A, P, out)
        tol = 1e-13 if dtype == np.float64 else 1e-5
        exact = start.astype(np.float64) + A.astype(np.float64) @ R.astype(np.float64)
        np.testing.assert_allclose(out, exact, rtol=tol, atol=tol * K, err_msg=str((B, K, N)))
        for b in range(B):
            alone = start[b : b + 1].copy()
            k.tiles_acc(A[b : b + 1], P, alone)
            np.testing.assert_array_equal(alone[0], out[b])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tiled_gemm_takes_any_strides_and_overwrites(rng, dtype):
    """kernels.tiles_gemm: A read through any strides (A^T of a C-contiguous array), R packed or
    read in place, C at an offset with its own row stride, and with load false the old C never
    reaching a sum (NaN there, as uninitialised memory may hold); rows in blocks of
    TILE_BLOCK_ROWS and K in chunks, A read in place or packed block by block first (every
    kind of row group); tiles_rows gives the same bits block by block."""
    from minirnn._jit import kernels

    k = kernels()
    tol = 1e-13 if dtype == np.float64 else 1e-5
    L = k.VECTOR_BYTES // np.dtype(dtype).itemsize
    for M, K, N in ((1, 1, 1), (7, 5, 3 * L + L + 3), (k.TILE_BLOCK_ROWS + 5, k.K_CHUNK32 + 3, 2 * L + 1)):
        At = rng.standard_normal((K, M)).astype(dtype)  # A = At^T: A[m, k] = At[k, m]
        R = rng.standard_normal((K, N)).astype(dtype)
        exact = At.T.astype(np.float64) @ R.astype(np.float64)
        chunk = k.K_CHUNK32 if dtype == np.float32 else k.K_CHUNK64
        packs = (np.empty(0, dtype), np.empty(k.TILE_BLOCK_ROWS * chunk, dtype))  # empty: none
        for (P, ldp), work in itertools.product(((k.pack_panels(R), 0), (R, N)), packs):
            C = np.full((M + 1, N + 2), np.nan, dtype)  # the product in C[1:, 2:], row stride N + 2
            A, Pf = At.reshape(-1), P.reshape(-1)  # tiles_gemm takes its arrays flat
            k.tiles_gemm(A, 0, 1, M, Pf, ldp, C.reshape(-1), N + 4, N + 2, M, N, K, False, work)
            assert np.isnan(C[0]).all() and np.isnan(C[:, :2]).all()
            np.testing.assert_allclose(C[1:, 2:], exact, rtol=tol, atol=tol * K, err_msg=str((M, K, N, ldp)))
            again = C.copy()
            k.tiles_gemm(A, 0, 1, M, Pf, ldp, again.reshape(-1), N + 4, N + 2, M, N, K, True, work)  # adds
            np.testing.assert_allclose(again[1:, 2:], 2 * exact, rtol=tol, atol=2 * tol * K)
            rows = C.copy()
            kernel = k.tiles_rows if work.size == 0 else k.tiles_rows_packed  # through the C entry
            for b0, b1 in ((0, M // 2), (M // 2, M)):
                kernel(k.tiles_entry(dtype), At, 0, 1, M, P, ldp, rows, N + 4, N + 2, N, K, False, b0, b1)
            np.testing.assert_array_equal(rows, C)
            if work.size > 0:  # A as it is stored (rows along k) packed too
                direct = np.empty((M, N), dtype)
                rows_along_k = np.ascontiguousarray(At.T).reshape(-1)
                k.tiles_gemm(rows_along_k, 0, K, 1, Pf, ldp, direct.reshape(-1), 0, N, M, N, K, False, work)
                np.testing.assert_allclose(direct, exact, rtol=tol, atol=tol * K)


@requires_jit
def test_tiles_refuse_mixed_dtypes():
    """The tiles' IR reads every operand as one float type: a mismatch must not compile."""
    import numba

    from minirnn._jit import kernels

    k = kernels()
    A, out = np.ones((4, 5), np.float32), np.zeros((4, 24), np.float32)
    with pytest.raises(numba.core.errors.TypingError):
        k.tiles_acc(A, k.pack_panels(np.ones((5, 24))), out)


def test_packed_panels_hold_r_panel_by_panel(rng):
    """pack_panels: panels of TILE_VECTORS vectors, then one of two where two or more are left,
    then of one, then the rest, each (K, width) at (first column) * K."""
    from minirnn._jit import kernels

    k = kernels()
    L = k.VECTOR_BYTES // 8  # float64 lanes: 4 (256-bit vectors) or 8 (512-bit)
    W = k.TILE_VECTORS * L
    K, N = 3, W + L + 2
    R = rng.standard_normal((K, N))
    P = k.pack_panels(R)
    np.testing.assert_array_equal(P[: W * K].reshape(K, W), R[:, :W])
    np.testing.assert_array_equal(P[W * K : (W + L) * K].reshape(K, L), R[:, W : W + L])
    np.testing.assert_array_equal(P[(W + L) * K :].reshape(K, 2), R[:, W + L :])
    if k.TILE_VECTORS > 3:  # three vectors left: two, then one
        N = W + 3 * L + 1
        R = rng.standard_normal((K, N))
        P = k.pack_panels(R)
        np.testing.assert_array_equal(P[W * K : (W + 2 * L) * K].reshape(K, 2 * L), R[:, W : W + 2 * L])
        np.testing.assert_array_equal(
            P[(W + 2 * L) * K : (W + 3 * L) * K].reshape(K, L), R[:, W + 2 * L : -1]
        )
    N = 2 * W + 2 * L + 1  # two vectors left: one panel of two
    R = rng.standard_normal((K, N))
    P = k.pack_panels(R)
    np.testing.assert_array_equal(
        P[: 2 * W * K].reshape(2, K, W), R[:, : 2 * W].reshape(K, 2, W).transpose(1, 0, 2)
    )
    np.testing.assert_array_equal(P[2 * W * K : (2 * W + 2 * L) * K].reshape(K, 2 * L), R[:, 2 * W : -1])
    np.testing.assert_array_equal(P[-K:], R[:, -1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_blas_product_takes_its_operand_either_way_as_operand_gives_it(rng, dtype):
    """kernels.product_ with NumPy's GEMM: the right operand R transposed (N, K), or R itself
    (K, N) where K != N, as functional.Recurrence.operand hands them over (R itself for a C-contiguous
    non-square float32 R, the gated backward's W_hh; R transposed otherwise)."""
    from minirnn import functional
    from minirnn._jit import kernels

    gemm = _blas.gemm(dtype)
    if gemm is None:
        pytest.skip("NumPy's BLAS pointer is not available here")
    for B, K, N in ((5, 12, 3), (5, 3, 12), (4, 6, 6)):
        A = rng.standard_normal((B, K)).astype(dtype)
        R = rng.standard_normal((K, N)).astype(dtype)
        start = rng.standard_normal((B, N)).astype(dtype)
        M = functional.Recurrence(gemm=gemm).operand(R)
        untransposed = dtype == np.float32 and K != N
        assert (M is R) == untransposed and M.shape == ((K, N) if untransposed else (N, K))
        assert M.flags.c_contiguous
        for operand in (M, np.ascontiguousarray(R.T)):  # both ways for every dtype
            out = start.copy()
            kernels().product_(gemm, False, A, operand, out)
            tol = 1e-13 if dtype == np.float64 else 1e-5
            np.testing.assert_allclose(out, start + A @ R, rtol=tol, atol=tol * K)
    assert functional.Recurrence(gemm=gemm).operand(np.asfortranarray(R)).flags.c_contiguous


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_whole_sequence_tiles_without_numpys_blas_pointer(monkeypatch, rng, cell):
    """The tiled projection, dX and weight gradients beside NumPy's own products for the rest
    (no BLAS pointer: functional._accumulate's NumPy branch), over several windows: the
    reference's numbers."""
    from minirnn import functional

    model = mr.RNN(5, 12, cell=cell, seed=2)
    X = rng.standard_normal((9, 6, 5))
    out = {}
    for jit in ("0", "1"):
        monkeypatch.setenv("MINIRNN_JIT", jit)
        use_loop(monkeypatch, "whole")
        monkeypatch.setenv("MINIRNN_BLAS", "0")
        monkeypatch.setattr(functional, "WINDOW_ROWS", 18)
        Y, cache = model.forward(X)
        out[jit] = (Y, model.backward(np.sin(Y), cache, truncate=4))
    np.testing.assert_allclose(out["1"][0], out["0"][0], rtol=1e-12, atol=1e-14)
    for k, g in out["0"][1].items():
        np.testing.assert_allclose(out["1"][1][k], g, rtol=1e-12, atol=1e-13, err_msg=k)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_without_the_tiles_c_entry_the_other_products_run(monkeypatch, rng, cell):
    """Where numba offers no C entry for the tiles (kernels.tiles_entry 0), the steps take the
    hand-written or BLAS product and the whole-sequence products NumPy's, with the reference's
    numbers: at shapes that take the tiles otherwise (tiled steps, whole-sequence tiles)."""
    from minirnn import functional
    from minirnn._jit import kernels

    model = mr.RNN(5, 64, cell=cell, seed=2)
    X = rng.standard_normal((9, 8, 5))
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    use_loop(monkeypatch, "whole")
    assert functional._time_loop(8, G * 64, 64, np.float64).tiled and functional.whole_tiles(128, 64, 64)
    out = {}
    for jit in ("0", "1"):
        monkeypatch.setenv("MINIRNN_JIT", jit)
        monkeypatch.setattr(kernels(), "tiles_entry", lambda dtype: 0)
        assert not functional._time_loop(8, G * 64, 64, np.float64).tiled
        assert not functional.whole_tiles(128, 64, 64)
        Y, cache = model.forward(X)
        out[jit] = (Y, model.backward(np.sin(Y), cache))
    np.testing.assert_allclose(out["1"][0], out["0"][0], rtol=1e-12, atol=1e-14)
    for k, g in out["0"][1].items():
        np.testing.assert_allclose(out["1"][1][k], g, rtol=1e-12, atol=1e-13, err_msg=k)
