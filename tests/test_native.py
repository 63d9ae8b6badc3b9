"""_native.py: a compiled kernel's blocks called from C on OpenBLAS's threads, with no Python."""

import os
import re

import numpy as np
import pytest

from minirnn import _native, _threads
from tests.test_threads import blocks_case, needs_threads

compiled = pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT") == "1",
    reason="needs the compiled kernels (NUMBA_DISABLE_JIT=1 runs them as Python); make cov runs it jitted",
)
pytestmark = [compiled, needs_threads]


def _kernels():
    numba = pytest.importorskip("numba")

    @numba.njit(nogil=True)
    def mark(out, src, gemm, value, flag, b0, b1):
        """out[b0:b1] = src[b0:b1] * value (+ 1 where flag): every kind of argument the
        kernels take (arrays of two ranks, a strided view, an integer, a flag, None)."""
        for b in range(b0, b1):
            for j in range(out.shape[1]):
                out[b, j] = src[b, j, 0] * value + (1.0 if flag else 0.0)

    @numba.njit(nogil=True)
    def scaled(out, factor, b0, b1):  # a float argument: not passed from C, Python blocks instead
        for b in range(b0, b1):
            out[b] *= factor

    return mark, scaled


def test_a_kernel_runs_from_c_once_compiled_with_every_kind_of_argument(monkeypatch):
    monkeypatch.setenv("MINIRNN_THREADS", "1")
    mark, _ = _kernels()
    src = np.arange(45 * 3 * 2, dtype=np.float32).reshape(45, 3, 2)[:, :, ::2]  # strided
    out = np.zeros((45, 3), dtype=np.float32)
    args = (out, src, None, 3, True)
    assert _native.entry(mark, args) is None  # not compiled for these types yet
    mark(*args, 0, 0)
    function, words = _native.entry(mark, args)
    assert function and words[0]  # the trampoline and the kernel's C entry
    _threads.by_rows(45, mark, args)
    np.testing.assert_array_equal(out, src[:, :, 0] * 3 + 1)
    assert np.all(out[:, 0] == src[:, 0, 0] * 3 + 1)  # the first block's rows as well as the last's


def test_python_blocks_where_an_argument_cannot_be_passed(monkeypatch):
    monkeypatch.setenv("MINIRNN_THREADS", "1")
    _, scaled = _kernels()
    out = np.ones(40)
    scaled(out, 2.0, 0, 0)
    assert _native.entry(scaled, (out, 2.0)) is None  # a float: left to the Python callbacks
    _threads.by_rows(40, scaled, (out, 2.0))
    np.testing.assert_array_equal(out, 2.0)
    assert _native.entry(lambda b0, b1: None, ()) is None  # not a compiled kernel


@pytest.mark.parametrize("loop", ["blas", "tiled"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_blocks_from_c_equal_blocks_as_python_callbacks(monkeypatch, rng, cell, loop):
    """The time loops' blocks from C give the same bits as the same blocks run as Python
    callbacks (forward, and BPTT truncated and in windows with dh), and the C path is taken."""
    monkeypatch.setenv("MINIRNN_THREADS", "1")
    run = blocks_case(monkeypatch, rng, cell, loop)
    entry, taken = _native.entry, []

    def counted(kernel, args):
        found = entry(kernel, args)
        taken.append(found is not None)
        return found

    want = run()  # Python blocks the first time (the kernels compile), C blocks after
    monkeypatch.setattr(_native, "entry", lambda kernel, args: None)
    want = run()
    monkeypatch.setattr(_native, "entry", counted)
    got = run()
    assert taken and all(taken), taken
    np.testing.assert_array_equal(got[0], want[0])
    assert set(got[1]) == set(want[1])
    for k, g in want[1].items():
        np.testing.assert_array_equal(got[1][k], g, err_msg=k)


def test_the_call_has_the_types_of_numbas_c_entry():
    """The trampoline calls numba's C entry with the LLVM types numba compiled it with: checked
    against the entry's declaration where its IR is at hand (a kernel compiled in this process,
    as in a new numba's first run; the cache keeps only object code)."""
    mark, _ = _kernels()
    args = (np.zeros((4, 3), np.float32), np.ones((4, 3, 2), np.float32)[:, :, ::2], None, 3, True)
    mark(*args, 0, 0)
    cres = next(iter(mark.overloads.values()))
    declared = cres.library.get_function(cres.fndesc.llvm_cfunc_wrapper_name).global_value_type

    def plain(t) -> str:  # typed pointers (llvmlite's IR) and opaque ones (LLVM's) alike
        return re.sub(r"[\w.]+\*+", "ptr", str(t)).replace(" ", "")

    assert plain(_native.c_entry_type(cres)) == plain(declared)


CACHED_KERNEL = """
import numba


@numba.njit(nogil=True, cache=True)
def mark(out, src, gemm, value, flag, b0, b1):
    for b in range(b0, b1):
        for j in range(out.shape[1]):
            out[b, j] = src[b, j, 0] * value + (1.0 if flag else 0.0)
"""

CACHED_RUN = """
import numpy as np
from cached_kernel import mark
from minirnn import _native, _threads

built = []
compile_ = _native._compile
_native._compile = lambda *a: built.append(a[1]) or compile_(*a)
src = np.arange(45 * 3 * 2, dtype=np.float32).reshape(45, 3, 2)[:, :, ::2]
out = np.zeros((45, 3), dtype=np.float32)
args = (out, src, None, 3, True)
mark(*args, 0, 0)
assert _native.entry(mark, args) is not None
_threads.by_rows(45, mark, args)
assert np.array_equal(out, src[:, :, 0] * 3 + 1)
print(len(built))
"""


def test_trampolines_are_cached_on_disk_beside_numbas_cache(tmp_path):
    """A new process loads a kernel's trampoline from the disk cache numba keeps the kernel in
    (no build); an unreadable cache file is built again and replaced; the blocks' results are
    right every time."""
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "cached_kernel.py").write_text(CACHED_KERNEL)
    repo = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(repo)]),
        "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
        "MINIRNN_THREADS": "1",
    }

    def builds() -> int:
        run = subprocess.run([sys.executable, "-c", CACHED_RUN], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return int(run.stdout.split()[-1])

    assert builds() == 1
    files = list((tmp_path / "cache").rglob("*" + _native.CACHE_SUFFIX))
    assert len(files) == 1
    assert builds() == 0
    files[0].write_bytes(b"not a pickle")
    assert builds() == 1
    assert builds() == 0


def test_kernels_of_one_signature_share_a_trampoline(monkeypatch):
    monkeypatch.setenv("MINIRNN_THREADS", "1")
    (mark, _), (again, _) = _kernels(), _kernels()  # two kernels, compiled apart, same types
    args = (np.zeros((4, 3)), np.ones((4, 3, 1)), None, 2, False)
    mark(*args, 0, 0)
    again(*args, 0, 0)
    (f1, w1), (f2, w2) = _native.entry(mark, args), _native.entry(again, args)
    assert f1 == f2 and w1[0] != w2[0]  # one trampoline, each kernel's own C entry
