"""The one place that knows about numba.

numba is imported lazily (it costs 0.2-0.3 s), so ``import minirnn`` stays fast and the plain
NumPy reference path works even where numba cannot compile. Flags for every kernel live here:
``cache=True`` so a new process reuses compiled code, fastmath off because gradient checks
cover these kernels (design.md; even ``contract`` stays off: the polynomials of tanh and
sigmoid spell their fused multiply-adds out, kernels.fmadd, 25-30% faster per element here),
``error_model="numpy"`` so loops that divide can vectorise.

numba keys its on-disk cache on the kernel's own source file, not on these flags: after
changing them, delete minirnn/__pycache__/*.nbi (``make clean`` does) or old code is reused.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from types import ModuleType, SimpleNamespace
from typing import Any

KERNEL_FLAGS = {"cache": True, "fastmath": False, "error_model": "numpy", "nogil": True}


def switched_on(name: str) -> bool:
    """False when the environment variable ``name`` (a MINIRNN_* switch) is 0/false/no/off;
    True when it is unset or anything else."""
    return os.environ.get(name, "1").strip().lower() not in ("0", "false", "no", "off")


def jit_enabled() -> bool:
    """False when the environment variable MINIRNN_JIT is 0/false/off: run the NumPy reference."""
    return switched_on("MINIRNN_JIT")


_kernels: ModuleType | None = None


@functools.cache
def _numba() -> ModuleType:
    """``import numba``, without the import of coverage.py numba makes where coverage.py is
    installed (0.03 s of numba's ~0.19 s here) when nothing can use it: numba's coverage
    support reports compiled lines only with NUMBA_JIT_COVERAGE=1 (off by default), and a
    coverage run imports coverage.py before the code it measures. Otherwise numba's import is
    left as it is; a later ``import coverage`` of the user's is unaffected."""
    hide = "coverage" not in sys.modules and os.environ.get("NUMBA_JIT_COVERAGE", "0").strip() in ("", "0")
    if hide:
        sys.modules["coverage"] = None  # type: ignore[assignment]  # import coverage now raises ImportError
    try:
        import numba
    finally:
        if hide:
            del sys.modules["coverage"]
    return numba


def _import_numba_arraymath_without_scipy() -> None:
    """Spare the first kernel compile numba's import of scipy.linalg (~0.15 s).

    numba's first compile (and its usual cache load, not minirnn's: _load_cached) imports
    numba.np.arraymath, which imports scipy.linalg (most of the time goes to scipy's array-API
    layer importing numpy.f2py) only to set one flag (``_HAVE_BLAS``: may np.correlate use
    np.dot). minirnn never uses numba's BLAS (it calls NumPy's, _blas.py). So, when neither
    module is loaded yet, arraymath is imported with scipy hidden for that moment, and the flag
    is then set to what numba would have found; numba's own BLAS paths (np.dot, np.linalg in a
    user's kernel) import scipy themselves when typed. tests/test_blas.py runs a user kernel
    with np.dot and np.correlate after this.
    """
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return
    _numba()  # numba's own import, which may load scipy's top package

    hidden = sys.modules.get("scipy")
    sys.modules["scipy"] = None  # type: ignore[assignment]  # import scipy.x now raises ImportError
    try:
        import numba.np.arraymath as arraymath
    finally:
        if hidden is None:
            del sys.modules["scipy"]
        else:
            sys.modules["scipy"] = hidden
    arraymath._HAVE_BLAS = importlib.util.find_spec("scipy") is not None


def _load_cached(cache, sig, target_context):
    """numba's FunctionCache.load_overload for minirnn's kernels, without its refresh of the
    typing and lowering registries (~0.1 s of a ~0.45 s warm start, with the imports it makes:
    numba.np.arraymath, the typed containers, ...), which machine code loaded from the cache
    never consults; only the NRT, which pack_panels' allocation links against, is readied. On a
    miss numba compiles next, and its compiler refreshes the registries itself: arraymath is
    imported first without scipy (_import_numba_arraymath_without_scipy).
    tests/test_compile.py runs a warm and a cold first call in new processes."""
    from numba.core.runtime import rtsys

    rtsys.initialize(target_context)
    cres = None
    with cache._guard_against_spurious_io_errors():  # numba's: a racing writer's partial file
        cres = cache._load_overload(sig, target_context)
    if cres is None:
        _import_numba_arraymath_without_scipy()
    return cres


def _loads_without_refresh(dispatcher):
    """``dispatcher`` with _load_cached as its cache's loader, where numba's cache has the
    methods it calls (else numba's own loader stays)."""
    cache: Any = getattr(dispatcher, "_cache", None)
    if all(hasattr(cache, name) for name in ("_load_overload", "_guard_against_spurious_io_errors")):
        cache.load_overload = functools.partial(_load_cached, cache)
    return dispatcher


def kernels() -> ModuleType:
    """The compiled-kernel module, imported on first use."""
    global _kernels
    if _kernels is None:
        from . import kernels as k

        _kernels = k
    return _kernels


@functools.cache
def avx512() -> bool:
    """True when numba compiles the kernels for a CPU with AVX-512 (512-bit vectors): the host's,
    or the one NUMBA_CPU_NAME / NUMBA_CPU_FEATURES name (a portable cache, say). The hand-written
    product's speed, and so where the BLAS GEMM overtakes it, depends on it (functional.py)."""
    _numba()
    from llvmlite import binding
    from numba.core import config

    # set by numba.core.config at import from the environment, hence getattr for the type checker
    if getattr(config, "CPU_NAME", None) not in (None, "host"):
        return "+avx512f" in (getattr(config, "CPU_FEATURES", None) or "")
    return bool(binding.get_host_cpu_features().get("avx512f", False))


def njit(fn=None, **overrides):
    """numba.njit with the project's flags; usable bare (@njit) or with overrides."""
    numba = _numba()

    flags = {**KERNEL_FLAGS, **overrides}
    if fn is None:
        return lambda f: _loads_without_refresh(numba.njit(**flags)(f))
    return _loads_without_refresh(numba.njit(**flags)(fn))


def extending() -> SimpleNamespace:
    """numba's extension API and llvmlite's IR builder, for kernels.py's typed helpers
    (overloads that pick a float32 or float64 body, an intrinsic that builds 2^k)."""
    _numba()
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic, overload
    from numba.np.numpy_support import as_dtype

    return SimpleNamespace(ir=ir, types=types, intrinsic=intrinsic, overload=overload, as_dtype=as_dtype)


@functools.cache
def internals() -> SimpleNamespace:
    """numba's view of compiled code and llvmlite's IR builder, for _native.py's trampolines: the
    dispatcher's argument fingerprints, its types, codegen helpers, the compiler lock and the
    two libraries' versions (in the key of the trampolines' disk cache)."""
    import llvmlite

    numba = _numba()
    from llvmlite import ir
    from numba._dispatcher import compute_fingerprint
    from numba.core import cgutils, types
    from numba.core.compiler_lock import global_compiler_lock

    return SimpleNamespace(
        ir=ir,
        fingerprint=compute_fingerprint,
        cgutils=cgutils,
        types=types,
        compiler_lock=global_compiler_lock,
        versions=f"numba {numba.__version__}, llvmlite {llvmlite.__version__}",
    )
