"""The time loops on OpenBLAS's own threads: one block of batch rows per thread.

The rows of a batch never meet in a recurrence (row b of h_t depends only on row b of h_{t-1}),
so the time loop of a block of rows runs on its own, start to end, with no synchronisation.
On two cores, two blocks each walking the whole sequence with a one-thread GEMM per step beat
one loop of two-thread GEMMs (whose threads meet twice per step and whose fused elementwise
part runs on one core while the other waits): forwards 5-40% faster, gated backwards 2-20%, at
B = 32-128, float32 and float64 (AMD EPYC Zen 3, 2 cores). With BLAS's GEMMs the vanilla
backward, with little elementwise work per step, stays one loop (2-11% slower in blocks as
Python callbacks, level to 5% faster from C: see functional.rnn_backward); with the tiled
product (kernels.call_tiles, no BLAS inside the loop) every scan runs in blocks (of at least
functional.TILE_MIN_ROWS rows).

The blocks run on OpenBLAS's own thread pool (``gotoblas_pthread``), not on threads of ours:
OpenBLAS's idle workers spin for ~0.1 s after each call, and a spinning worker on a core
halves a thread of ours there (measured: 10 ms instead of 5.5). Meanwhile OpenBLAS is set to
one thread, so that the GEMMs inside the blocks stay on their own thread (a worker must not
wait for itself), and set back afterwards. That is process-wide state: other threads calling
BLAS during a scan get one thread for that time; our own calls take a lock around it.

A compiled kernel's blocks run from C, with no Python and no GIL (_native.py). Run as Python
callbacks instead (the fallback, and any other function), each block takes the GIL at its start
and end: the blocks' starts queue behind each other (100-270 us a call), and beside another
Python thread that holds the GIL for long stretches every such handoff can wait for the
interpreter's switch interval (5 ms: a small forward + backward ran 3.5x slower in blocks than
in one loop). MINIRNN_THREADS=0 is the switch for such programs there.

Used only where it is safe and known: NumPy's OpenBLAS (the library _blas.py finds) built
with pthreads, a pool of at least as many threads as blocks, and the thread count not limited
to 1 (OPENBLAS_NUM_THREADS=1, threadpoolctl: respected). MINIRNN_THREADS=0 turns it off.
Results equal the one-loop ones up to rounding (a GEMM of fewer rows may sum in another order;
the tiles compute each row alike whatever rows are beside it: bit-identical).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

from . import _blas, _native
from ._jit import switched_on

# Each block at least this many rows by default (the BLAS path, where a block's step is a
# one-thread GEMM: with blocks started from C, blocks of 8 rows against one loop of two-thread
# GEMMs at B = 16-24, H = 128-256, tiles off: level to 21% faster in 14 of 18 cases, 2-4%
# slower in one (Zen 3; with Python-callback blocks 16 rows had been the break-even). The tiled
# path asks for its own (functional.TILE_MIN_ROWS).
MIN_ROWS = 8
_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_lock = threading.Lock()
_api: list[Any] = []  # [None] or [(get, set, run, pool_size)], loaded once


def enabled() -> bool:
    """False when the environment variable MINIRNN_THREADS is 0/false/off."""
    return switched_on("MINIRNN_THREADS")


def _load() -> Any:
    if _api:
        return _api[0]
    found = None
    lib = _blas._numpy_blas_library()
    names = ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_")
    if lib is not None and all(hasattr(lib, n) for n in (*names, "gotoblas_pthread")):
        parallel = getattr(lib, "scipy_openblas_get_parallel64_", None)
        try:
            pool = ctypes.c_int.in_dll(lib, "blas_num_threads")
        except ValueError:
            pool = None
        if parallel is not None and parallel() == 1 and pool is not None:  # 1: pthreads
            # get and set keep the GIL (PyDLL): see by_rows
            held = ctypes.PyDLL(lib._name)
            get, set_ = getattr(held, names[0]), getattr(held, names[1])
            set_.argtypes, set_.restype = [ctypes.c_int], None
            run = lib.gotoblas_pthread
            run.argtypes = [ctypes.c_int, _CALLBACK, ctypes.c_void_p, ctypes.c_int]
            found = (get, set_, run, pool)
    _api.append(found)
    return found


def set_num_threads(n: int) -> bool:
    """Set NumPy's OpenBLAS in this process to n threads (with the GIL held, as by_rows does);
    False, doing nothing, where that OpenBLAS is not found."""
    api = _load()
    if api is None:
        return False
    api[1](n)
    return True


def blocks(B: int, min_rows: int | None = None) -> int:
    """How many blocks of at least ``min_rows`` (default MIN_ROWS) rows a batch of B rows is
    walked in (1: one loop, no threads)."""
    min_rows = MIN_ROWS if min_rows is None else min_rows
    if B < 2 * min_rows or not enabled():
        return 1
    api = _load()
    if api is None:
        return 1
    get, _set, _run, pool = api
    return max(1, min(int(get()), int(pool.value), B // min_rows))


def by_rows(B: int, kernel: Callable[..., None], args: tuple, min_rows: int | None = None) -> None:
    """kernel(*args, b0, b1) over blocks of rows b0:b1 covering 0..B, each on its own OpenBLAS
    thread (one block, on the calling thread, where blocks(B) is 1). A compiled kernel runs from
    C (_native.entry); anything else as a Python callback, which must release the GIL (the
    kernels are nogil) for the blocks to run at the same time."""
    n = blocks(B, min_rows)
    if n == 1:
        kernel(*args, 0, B)
        return
    get, set_, run, _pool = _load()
    bounds = [B * i // n for i in range(n + 1)]
    errors: list[BaseException] = []
    native = _native.entry(kernel, args)
    if native is not None:
        function, words = native
        width = len(words) + 2  # each block's words end with its b0, b1
        records = (ctypes.c_int64 * (n * width))()
        for i in range(n):
            records[i * width : (i + 1) * width] = [*words, bounds[i], bounds[i + 1]]
        callback, data, stride = ctypes.cast(function, _CALLBACK), records, width * 8
    else:

        def block(address: int) -> None:
            i = ctypes.c_int64.from_address(address).value
            try:
                kernel(*args, bounds[i], bounds[i + 1])
            except BaseException as e:  # a ctypes callback would print and drop it
                errors.append(e)

        callback, data, stride = _CALLBACK(block), (ctypes.c_int64 * n)(*range(n)), 8
    # A Python block needs the GIL on the worker. A thread that holds the GIL inside a threaded
    # OpenBLAS call (NumPy keeps it for products of under 500 elements) would wait for that busy
    # worker while the worker waits for the GIL. Setting one thread with the GIL held rules it
    # out: such a call either ended before, or starts after and reads one thread. (Either kind
    # of block needs the one thread anyway: its GEMMs must not wait for the busy workers.)
    with _lock:
        before = int(get())
        set_(1)
        try:
            run(n, callback, ctypes.addressof(data), stride)
        finally:
            set_(before)
    if errors:
        raise errors[0]
