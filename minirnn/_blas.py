"""NumPy's own BLAS GEMM as a C function pointer, for the compiled time loops to call.

Large steps want a threaded BLAS for the recurrent product. Calling it from inside the compiled
loop (kernels.*_scan with a ``gemm`` argument) costs ~1 us per step, against several us for a
Python loop that calls ``np.matmul`` and then the compiled step (loops.py). It must be NumPy's
own library: numba's ``np.dot`` goes to the OpenBLAS bundled with SciPy, a second library with
a second thread pool that fights NumPy's for the cores (2-3x slower large shapes, measured).

NumPy's wheels bundle OpenBLAS in ``numpy.libs`` with its CBLAS symbols renamed
(``scipy_cblas_dgemm64_``: ILP64, 64-bit integers). The pointer is passed to the kernels as an
argument (not a global), so numba's cache stays valid across processes. Where the library or
symbol is not found (NumPy built against MKL, Accelerate or a system BLAS), or a check product
disagrees with ``np.matmul``, or ``MINIRNN_BLAS=0``, ``gemm`` returns None and the Python loops
of loops.py run instead: same numbers, a few us more per step.
"""

from __future__ import annotations

import ctypes
import glob
import os
from typing import Any

import numpy as np

from ._jit import switched_on

# (symbol pattern, integer type): {} is d or s
_SYMBOLS = (("scipy_cblas_{}gemm64_", ctypes.c_int64), ("cblas_{}gemm64_", ctypes.c_int64))
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # CBLAS enum values
_cache: dict[str, Any] = {}


def _numpy_blas_library() -> ctypes.CDLL | None:
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "*openblas*"))):
        try:
            return ctypes.CDLL(path)  # already loaded by NumPy: dlopen returns that same copy
        except OSError:
            continue
    return None


def _pointer(lib: ctypes.CDLL, dtype: np.dtype) -> Any:
    real = ctypes.c_double if dtype == np.float64 else ctypes.c_float
    letter = "d" if dtype == np.float64 else "s"
    for pattern, integer in _SYMBOLS:
        name = pattern.format(letter)
        if hasattr(lib, name):
            # cblas_?gemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
            proto = ctypes.CFUNCTYPE(
                None,
                *(ctypes.c_int,) * 3,
                *(integer,) * 3,
                real,
                ctypes.c_void_p,
                integer,
                ctypes.c_void_p,
                integer,
                real,
                ctypes.c_void_p,
                integer,
            )
            return proto((name, lib))
    return None


def _agrees(fn: Any, dtype: np.dtype) -> bool:
    """One product through the pointer against np.matmul, as the kernels call it
    (kernels.product_: transposed right operand, beta = 1 to accumulate)."""
    rng = np.random.default_rng(0)
    A, M = rng.standard_normal((5, 7)).astype(dtype), rng.standard_normal((3, 7)).astype(dtype)
    out = np.ones((5, 3), dtype=dtype)
    fn(
        ROW_MAJOR,
        NO_TRANS,
        TRANS,
        5,
        3,
        7,
        1.0,
        A.ctypes.data,
        7,
        M.ctypes.data,
        7,
        1.0,
        out.ctypes.data,
        3,
    )
    tol = 1e-12 if dtype == np.float64 else 1e-5
    return bool(np.allclose(out, A @ M.T + 1, rtol=tol, atol=tol))


def enabled() -> bool:
    """False when the environment variable MINIRNN_BLAS is 0/false/off."""
    return switched_on("MINIRNN_BLAS")


def gemm(dtype: np.dtype) -> Any:
    """NumPy's cblas_dgemm (float64) or cblas_sgemm (float32) as a ctypes function the numba
    kernels accept as an argument, or None where it is not available (see the module docstring)."""
    if not enabled():
        return None
    key = np.dtype(dtype).char  # cheaper than .name: this runs several times per call
    if key not in _cache:
        lib = _numpy_blas_library()
        fn = _pointer(lib, np.dtype(dtype)) if lib is not None else None
        _cache[key] = fn if fn is not None and _agrees(fn, np.dtype(dtype)) else None
    return _cache[key]


def _layout(X: np.ndarray) -> tuple[int, int] | None:
    """(transpose flag, leading dimension) of a 2-D array as a row-major CBLAS operand, or None
    when its memory is not one (unit stride along neither axis, negative or zero strides)."""
    item = X.itemsize
    rows, cols = X.shape
    s0, s1 = X.strides
    if s1 == item or cols == 1:  # row-major: (i, j) at i * ld + j
        ld = cols if rows == 1 else s0 // item
        if rows == 1 or (s0 % item == 0 and ld >= max(1, cols)):
            return NO_TRANS, max(1, ld)
    if s0 == item or rows == 1:  # a transposed row-major matrix: (i, j) at j * ld + i
        ld = rows if cols == 1 else s1 // item
        if cols == 1 or (s1 % item == 0 and ld >= max(1, rows)):
            return TRANS, max(1, ld)
    return None


def matmul_add(A: np.ndarray, B: np.ndarray, C: np.ndarray, temp_limit: int = 0) -> None:
    """C += A @ B without a temporary the size of C: NumPy's own GEMM with beta = 1 where the
    pointer is available and the operands are BLAS layouts (transposed views included), else
    ``C += A @ B``. The backward's weight gradients accumulate window by window through this.

    A C of at most ``temp_limit`` elements (a temporary the caller can afford) takes
    ``C += A @ B`` anyway: NumPy's call costs 2-5 us where this one's ctypes call costs 10-15,
    which shows at B = 1, where a backward window makes a handful of such products."""
    if C.size <= temp_limit:
        C += A @ B
        return
    fn = gemm(C.dtype)
    a = _layout(A) if fn is not None else None
    b = _layout(B) if fn is not None else None
    if a is None or b is None or not C.flags.c_contiguous or A.dtype != C.dtype or B.dtype != C.dtype:
        C += A @ B
        return
    M, K = A.shape
    N = B.shape[1]
    if M == 0 or N == 0 or K == 0:
        return
    fn(ROW_MAJOR, a[0], b[0], M, N, K, 1.0, A.ctypes.data, a[1], B.ctypes.data, b[1], 1.0, C.ctypes.data, N)
