"""Cold compilation: every kernel is compiled once per array type, never per literal argument.

numba compiles a separate copy of a jitted function for each distinct literal argument its
callers pass (product_(..., True) and product_(..., False) were two copies; apply_range with
literal columns four; tiles_acc's constant arguments to tiles_gemm a third copy of that, ~2 s),
and one for each type of argument (the time loops took the hand-written product's operand 2-D
and the tiles' 1-D: two copies of each, ~1 s a time loop), each taking ~0.2-2 s at a cold start
and each cached and loaded apart. And numba links a callee's code into each caller, where LLVM
optimises and compiles it again: the tiles (tiles_gemm) are called through their C entry
(kernels.call_tiles), so that no other kernel holds their code.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.conftest import requires_jit

COLD_FIRST_CALLS = """
import numpy as np, numba
from minirnn import functional as F
from minirnn._jit import kernels

rng = np.random.default_rng(0)
for cell, gates in (("rnn", 1), ("lstm", 4), ("gru", 3)):
    X = rng.standard_normal((6, 2, 3))
    W_xh, W_hh = 0.3 * rng.standard_normal((gates * 4, 3)), 0.3 * rng.standard_normal((gates * 4, 4))
    hs, cache = getattr(F, cell + "_forward")(X, W_xh, W_hh)
    getattr(F, cell + "_backward")(np.ones_like(hs), cache, truncate=2, return_dh=True)
# the whole-sequence products on the tiles (functional.whole_tiles, at any size here) and the
# steps' tiled product (8 rows of 64 units), whose tiles_gemm is the same, through the time
# loops compiled above for the hand-written product
F.avx512, F.WHOLE_TILES_MIN_MACS, F.WHOLE_TILES_BLOCK_ROWS = (lambda: True), 0, 1
assert F._time_loop(8, 64, 64, np.float64).tiled and not F._time_loop(2, 4, 4, np.float64).tiled
X = rng.standard_normal((6, 8, 3))
W_xh, W_hh = 0.3 * rng.standard_normal((64, 3)), 0.1 * rng.standard_normal((64, 64))
hs, cache = F.rnn_forward(X, W_xh, W_hh)
F.rnn_backward(np.ones_like(hs), cache)
module = kernels()
module.tiles_acc(hs[0], module.pack_panels(W_hh.T), hs[1].copy())
for name in dir(module):
    fn = getattr(module, name)
    if isinstance(fn, numba.core.registry.CPUDispatcher):
        for sig in fn.signatures:
            tiles = "tile.k" in fn.inspect_llvm(sig)  # a tile's loop (its basic block's name)
            print(name, "|", sig, "|", tiles)
"""


@requires_jit
def test_kernels_compile_one_copy_per_array_type(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "MINIRNN_JIT": "1"}
    out = subprocess.run(
        [sys.executable, "-c", COLD_FIRST_CALLS], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    compiled = [line.split(" | ") for line in out]
    names = [name for name, _, _ in compiled]
    assert {"rnn_forward_scan", "lstm_backward_scan", "gru_forward_step", "matmul_acc"} <= set(names)
    literal = [f"{name} {sig}" for name, sig, _ in compiled if "Literal" in sig]
    assert not literal, "compiled for literal arguments:\n" + "\n".join(literal)
    # one dtype: one time loop for the hand-written and tiled products, one tiles_gemm for
    # reading A in place and packing it, the time loops and tiles_rows calling it
    assert {"tiles_gemm", "tiles_rows", "tiles_rows_packed"} <= set(names)
    repeated = {name for name in names if names.count(name) > 1}
    assert not repeated, f"compiled more than once: {sorted(repeated)}"
    holding_tiles = {name for name, _, tiles in compiled if tiles == "True"}
    assert holding_tiles == {"tiles_gemm"}, f"tiles compiled into {sorted(holding_tiles)}"


FIRST_CALL = """
import os, sys
import numpy as np
from minirnn import functional as F

rng = np.random.default_rng(0)
# 8 rows of 64 units: the tiled product, in blocks of rows (kernels.tiles_acc, _native)
X, W_xh = rng.standard_normal((5, 8, 3)), rng.standard_normal((64, 3))
W_hh = 0.1 * rng.standard_normal((64, 64))
hs, cache = F.rnn_forward(X, W_xh, W_hh)
grads = F.rnn_backward(np.ones_like(hs), cache)
os.environ["MINIRNN_JIT"] = "0"
hs_ref, cache_ref = F.rnn_forward(X, W_xh, W_hh)
ref = F.rnn_backward(np.ones_like(hs), cache_ref)
same = [np.allclose(a, b, rtol=0, atol=1e-12) for a, b in [(hs, hs_ref), *((grads[k], ref[k]) for k in ref)]]
print(all(same))
print(*(name in sys.modules for name in ("numba.np.arraymath", "numba.np.arrayobj", "scipy.linalg")))
"""


@requires_jit
def test_a_warm_first_call_loads_kernels_without_numbas_registry_refresh(tmp_path):
    """With the cache warm, kernels load without numba's refresh of its registries (_jit's
    _load_cached), which would import numba.np.arraymath among much else, and without importing
    numba.np.arrayobj (which a kernel's use of numba's reshape or np.empty makes its cached code
    do); cold, numba compiles (refreshing them itself, arraymath imported without scipy). Both
    give the reference's numbers."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "MINIRNN_JIT": "1"}

    def first_call() -> list[str]:
        return subprocess.run(
            [sys.executable, "-c", FIRST_CALL], env=env, capture_output=True, text=True, check=True
        ).stdout.split()

    assert first_call() == ["True", "True", "True", "False"]  # cold: compiled
    assert first_call() == ["True", "False", "False", "False"]  # warm: loaded, no refresh


AVX2_TILES = """
import numpy as np
from minirnn._jit import avx512, kernels

k = kernels()
print(avx512(), k.VECTOR_BYTES)
rng = np.random.default_rng(0)
for dtype in (np.float64, np.float32):
    for B, K, N in ((9, 300, 61), (4, 7, 24)):  # every kind of panel and tile, K in chunks
        A, R = rng.standard_normal((B, K)).astype(dtype), rng.standard_normal((K, N)).astype(dtype)
        out = np.ones((B, N), dtype)
        k.tiles_acc(A, k.pack_panels(R), out)
        exact = 1 + A.astype(np.float64) @ R.astype(np.float64)
        tol = 1e-12 if dtype == np.float64 else 1e-4
        assert np.allclose(out, exact, rtol=tol, atol=tol * K), (dtype, B, K, N)
print("ok")
"""


@requires_jit
def test_tiles_take_the_vector_width_of_the_cpu_numba_compiles_for(tmp_path):
    """The tiles' vectors are 512-bit where numba compiles for AVX-512, else 256-bit: compiled for
    an AVX2 CPU (Haswell) they must give NumPy's numbers, whatever CPU runs the tests (numba's
    cache is kept apart by CPU, and the lanes are fixed when the kernels module is imported)."""
    env = {
        **os.environ,
        "NUMBA_CACHE_DIR": str(tmp_path),
        "MINIRNN_JIT": "1",
        "NUMBA_CPU_NAME": "haswell",
        "NUMBA_CPU_FEATURES": "+64bit,+avx,+avx2,+fma,+sse4.2,+popcnt,+cx16,+f16c,+bmi,+bmi2,+lzcnt,+movbe",
    }
    out = subprocess.run(
        [sys.executable, "-c", AVX2_TILES], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "32", "ok"]


NUMBA_WITHOUT_COVERAGE = """
import sys
from minirnn._jit import kernels

kernels()  # numba's first import
from numba.misc import coverage_support

print("coverage" in sys.modules, coverage_support.coverage_available)
import coverage  # the user's own import works as ever

print(coverage.Coverage is not None)
"""


@pytest.mark.skipif(importlib.util.find_spec("coverage") is None, reason="coverage.py is not installed")
def test_numba_is_imported_without_coverage_unless_numba_reports_to_it():
    """_jit._numba: numba's import of coverage.py (0.03 s of every start where it is installed)
    is left out when numba's coverage support is off (NUMBA_JIT_COVERAGE unset: its default);
    with NUMBA_JIT_COVERAGE=1 numba imports it as it would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE", "COVERAGE"))}
    env.pop("NUMBA_JIT_COVERAGE", None)

    def run(extra: dict) -> list[str]:
        return subprocess.run(
            [sys.executable, "-c", NUMBA_WITHOUT_COVERAGE],
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()

    assert run({}) == ["False", "False", "True"]
    assert run({"NUMBA_JIT_COVERAGE": "1"}) == ["True", "True", "True"]
