"""_blas.py: NumPy's GEMM as a pointer for the compiled loops, and its fallbacks."""

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


def _operands(rng, M, K, N, dtype):
    """A (M, K) and B (K, N) in every memory layout matmul_add meets or must refuse: contiguous,
    transposed views, row- and column-strided slices, reversed (negative strides), broadcast."""
    a = rng.standard_normal((M + 2, K + 3)).astype(dtype)
    b = rng.standard_normal((K + 2, N + 4)).astype(dtype)
    As = [a[:M, :K], np.ascontiguousarray(a[:M, :K]), np.asfortranarray(a[:M, :K]), a[:M, :K][::-1]]
    As.append(np.ascontiguousarray(a[:M, :K].T).T)  # a transposed view of a C array
    every_other_row = rng.standard_normal((2 * K, N)).astype(dtype)[::2]
    Bs = [b[:K, :N], np.asfortranarray(b[:K, :N]), b[:K, :N][:, ::-1], every_other_row]
    Bs.append(np.broadcast_to(b[:1, :N], (K, N)))
    return As, Bs


SHAPES = [(5, 7, 3), (1, 7, 3), (5, 1, 3), (5, 7, 1), (1, 1, 1), (0, 3, 2), (3, 0, 2)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("path", ["pointer", "temporary", "no pointer"])
def test_matmul_add_accumulates_in_every_layout(fresh, monkeypatch, rng, dtype, shape, path):
    """Through NumPy's GEMM pointer, through NumPy's matmul where the caller allows a temporary
    of C's size, and without the pointer."""
    if path == "no pointer":
        monkeypatch.setenv("MINIRNN_BLAS", "0")
    limit = 10**6 if path == "temporary" else 0
    M, K, N = shape
    As, Bs = _operands(rng, M, K, N, dtype)
    for A in As:
        for B in Bs:
            C = rng.standard_normal((M, N)).astype(dtype)
            expected = C.astype(np.float64) + A.astype(np.float64) @ B.astype(np.float64)
            _blas.matmul_add(A, B, C, limit)
            tol = 1e-5 if dtype == np.float32 else 1e-13
            np.testing.assert_allclose(C, expected, rtol=tol, atol=tol, err_msg=f"{A.strides} {B.strides}")


def test_matmul_add_takes_a_temporary_only_within_the_callers_limit(fresh, monkeypatch, rng):
    """A C of at most temp_limit elements never reaches the ctypes call; a larger one does."""
    calls = []
    real = _blas.gemm

    def counting(dtype):
        calls.append(dtype)
        return real(dtype)

    monkeypatch.setattr(_blas, "gemm", counting)
    A, B = rng.standard_normal((16, 8)), rng.standard_normal((8, 16))
    C = np.zeros((16, 16))
    _blas.matmul_add(A, B, C, temp_limit=256)
    assert not calls
    np.testing.assert_allclose(C, A @ B, rtol=1e-13)
    _blas.matmul_add(A, B, C, temp_limit=255)
    assert len(calls) == 1
    np.testing.assert_allclose(C, 2 * (A @ B), rtol=1e-13)


def test_matmul_add_takes_blas_layouts_and_refuses_others():
    x = np.zeros((4, 6))
    assert _blas._layout(x) == (_blas.NO_TRANS, 6)
    assert _blas._layout(x.T) == (_blas.TRANS, 6)
    assert _blas._layout(x[:, :3]) == (_blas.NO_TRANS, 6)  # a row-strided slice
    assert _blas._layout(x[::-1]) is None
    assert _blas._layout(x[:, ::2]) is None
    assert _blas._layout(np.broadcast_to(x[:1], (4, 6))) is None


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
        assert functional.window_steps(7, 2) == 2
        Y, cache = model.forward(X)
        out[jit] = model.backward(np.cos(Y), cache, truncate=3)
    for k, g in out["0"].items():
        np.testing.assert_allclose(out["1"][k], g, rtol=1e-12, atol=1e-14, err_msg=k)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_hand_written_product_equals_numpy_and_ignores_neighbour_rows(rng, dtype):
    """kernels.matmul_acc (blocks of four rows, a row alone for the rest) against NumPy, and
    each row's bits the same computed in a block or alone."""
    from minirnn._jit import kernels

    k = kernels()
    for B, K, N in ((1, 1, 1), (3, 5, 7), (4, 4, 4), (9, 13, 6), (16, 32, 40)):
        A = rng.standard_normal((B, K)).astype(dtype)
        M = rng.standard_normal((K, N)).astype(dtype)
        start = rng.standard_normal((B, N)).astype(dtype)
        out = start.copy()
        k.matmul_acc(A, M, out)
        tol = 1e-13 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(out, start + A @ M, rtol=tol, atol=tol * K)
        for b in range(B):
            alone = start[b : b + 1].copy()
            k.matmul_acc(A[b : b + 1], M, alone)
            np.testing.assert_array_equal(alone[0], out[b])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tiled_product_equals_numpy_and_ignores_neighbour_rows(rng, dtype):
    """kernels.tiles_acc on pack_panels(R): every kind of panel (three vectors, one vector, the
    last N % lanes columns), every kind of tile (four rows, two, one), K over several chunks
    (K_CHUNK), R given in any layout; and each row's bits the same computed in a block or alone
    (blocks of rows must give one loop's numbers)."""
    from minirnn._jit import kernels

    k = kernels()
    L = 32 // np.dtype(dtype).itemsize
    chunk = k.K_CHUNK32 if dtype == np.float32 else k.K_CHUNK64
    shapes = (
        (1, 1, 1),
        (2, 3, 8),
        (3, 5, 7),
        (4, 4, 3 * L),
        (9, 13, 4 * L + 3),
        (6, 2 * chunk + 5, 3 * L + 1),
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
        k.product_(None, A, P, out)
        tol = 1e-13 if dtype == np.float64 else 1e-5
        exact = start.astype(np.float64) + A.astype(np.float64) @ R.astype(np.float64)
        np.testing.assert_allclose(out, exact, rtol=tol, atol=tol * K, err_msg=str((B, K, N)))
        for b in range(B):
            alone = start[b : b + 1].copy()
            k.tiles_acc(A[b : b + 1], P, alone)
            np.testing.assert_array_equal(alone[0], out[b])


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
    """pack_panels: panels of 3 vectors, then of one, then the rest, each (K, width) at
    (first column) * K."""
    from minirnn._jit import kernels

    K, N = 3, 12 + 4 + 2  # float64: 4 lanes, panels of 12
    R = rng.standard_normal((K, N))
    P = kernels().pack_panels(R)
    np.testing.assert_array_equal(P[: 12 * K].reshape(K, 12), R[:, :12])
    np.testing.assert_array_equal(P[12 * K : 16 * K].reshape(K, 4), R[:, 12:16])
    np.testing.assert_array_equal(P[16 * K :].reshape(K, 2), R[:, 16:])


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
            kernels().product_(gemm, A, operand, out)
            tol = 1e-13 if dtype == np.float64 else 1e-5
            np.testing.assert_allclose(out, start + A @ R, rtol=tol, atol=tol * K)
    assert functional.Recurrence(gemm=gemm).operand(np.asfortranarray(R)).flags.c_contiguous
