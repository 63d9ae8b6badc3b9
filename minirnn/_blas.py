"""NumPy's own BLAS GEMM as a C function pointer, for the compiled time loops to call.

Large steps want a threaded BLAS for the recurrent product. Calling it from inside the compiled
loop (kernels.*_scan with a ``gemm`` argument) costs ~1 us per step, against several us for a
Python loop that calls ``np.matmul`` and then the compiled step (loops.py). Each backward
window's weight-gradient GEMMs are one compiled call through it too (kernels.window_grads):
a ctypes call from Python costs 10-20 us (its argument conversion and three ``ndarray.ctypes``
lookups), and a window makes 3-6 products, most of a short window's time. It must be NumPy's
own library: numba's ``np.dot`` goes to the OpenBLAS bundled with SciPy, a second library with
a second thread pool that fights NumPy's for the cores (2-3x slower large shapes, measured).

NumPy's wheels bundle OpenBLAS in ``numpy.libs`` with its CBLAS symbols renamed
(``scipy_cblas_dgemm64_``: ILP64, 64-bit integers). The pointer is passed to the kernels as an
argument (not a global), so numba's cache stays valid across processes. Where the library or
symbol is not found (NumPy built against MKL, Accelerate or a system BLAS), or a check product
disagrees with ``np.matmul``, or ``MINIRNN_BLAS=0``, ``gemm`` returns None and the Python loops
of loops.py and NumPy's own products run instead: same numbers, a few us more per step.
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
