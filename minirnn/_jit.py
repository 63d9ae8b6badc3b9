"""The one place that knows about numba.

numba is imported lazily (it costs ~0.5 s), so ``import minirnn`` stays fast and the plain
NumPy reference path works even where numba cannot compile. Flags for every kernel live here:
``cache=True`` so a new process reuses compiled code, fastmath off because gradient checks
cover these kernels (design.md; even ``contract``, fused multiply-adds, ~15% on the
polynomials, stays off), ``error_model="numpy"`` so loops that divide can vectorise.

numba keys its on-disk cache on the kernel's own source file, not on these flags: after
changing them, delete minirnn/__pycache__/*.nbi (``make clean`` does) or old code is reused.
"""

from __future__ import annotations

import os
from types import ModuleType, SimpleNamespace

KERNEL_FLAGS = {"cache": True, "fastmath": False, "error_model": "numpy", "nogil": True}


def jit_enabled() -> bool:
    """False when the environment variable MINIRNN_JIT is 0/false/off: run the NumPy reference."""
    return os.environ.get("MINIRNN_JIT", "1").strip().lower() not in ("0", "false", "no", "off")


_kernels: ModuleType | None = None


def kernels() -> ModuleType:
    """The compiled-kernel module, imported on first use."""
    global _kernels
    if _kernels is None:
        from . import kernels as k

        _kernels = k
    return _kernels


def njit(fn=None, **overrides):
    """numba.njit with the project's flags; usable bare (@njit) or with overrides."""
    import numba

    flags = {**KERNEL_FLAGS, **overrides}
    if fn is None:
        return lambda f: numba.njit(**flags)(f)
    return numba.njit(**flags)(fn)


def extending() -> SimpleNamespace:
    """numba's extension API and llvmlite's IR builder, for kernels.py's typed helpers
    (overloads that pick a float32 or float64 body, an intrinsic that builds 2^k)."""
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic, overload
    from numba.np.numpy_support import as_dtype

    return SimpleNamespace(ir=ir, types=types, intrinsic=intrinsic, overload=overload, as_dtype=as_dtype)
