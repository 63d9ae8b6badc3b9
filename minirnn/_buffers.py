"""Large arrays recycled from call to call, instead of fresh memory from the system each time.

A forward + BPTT allocates arrays of (T, B, G*H) and (T, B, H) elements: 39-105 MB for the
gates at (200, 64, 128, 256). glibc serves allocations over 32 MB with a fresh mmap, and the
kernel zeroes each page as it is first touched: filling 52 MB fresh took 8.1 ms, reused 3.2
(AMD EPYC Zen 3). A training loop or a benchmark drops the previous call's arrays just before
it asks for the same sizes again, so their memory is kept here and handed out again: forward
+ BPTT on the benchmark's two largest shapes 1-4% faster (GRU float64 (50, 128, 512, 512)
up to 9%, where the fresh arrays' times also varied most), never slower (medians of 7,
interleaved in one process, all three cells, float32 and float64).

A block is handed out again only when nothing outside this module refers to it: every array
made from it (and every view of those, NumPy collapses a view's base to the array that owns
the memory) holds a reference to the block, so the block's reference count says whether any
is alive. The blocks tracked, in use or idle, stay under MAX_BYTES; beyond it arrays are
plain allocations, and idle blocks are let go, least recently used first, to make room.
Each array starts on a 64-byte boundary (a cache line, as the tiles' vector loads like it).

MINIRNN_REUSE=0 turns it off (every array fresh). ``release()`` lets the idle blocks go;
``fresh()`` does that and turns reuse off for a while (tracemalloc's peaks measure what a
call allocates, calculator.peak_bytes)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ._jit import switched_on

MIN_BYTES = 1 << 20  # below this, malloc's own free lists serve as well
MAX_BYTES = 1 << 30  # the blocks tracked, in use and idle together
ALIGN = 64
SLACK = 2  # a block serves a request of at least 1/SLACK of its size

_lock = threading.Lock()
_blocks: list[np.ndarray] = []  # uint8, least recently handed out first
_paused = 0  # fresh() contexts open


def _refs(blocks: list[np.ndarray], i: int) -> int:
    return sys.getrefcount(blocks[i])


# The count of a block referred to by the list alone, as _refs sees it (2 on CPython: the list's
# reference and getrefcount's argument), measured rather than assumed.
_IDLE = _refs([np.empty(1, np.uint8)], 0)


def enabled() -> bool:
    """True unless MINIRNN_REUSE is 0/false/off or a fresh() context is open."""
    return _paused == 0 and switched_on("MINIRNN_REUSE")


def empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """np.empty(shape, dtype), C-contiguous, from an idle block where there is one that fits."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < MIN_BYTES or not enabled():
        return np.empty(shape, dtype=dtype)
    with _lock:
        block = _idle_block(nbytes)
        if block is None:
            block = _new_block(nbytes)
        start = -block.ctypes.data % ALIGN
        return block[start : start + nbytes].view(dtype).reshape(shape)


def empty_like(a: np.ndarray) -> np.ndarray:
    """empty(a.shape, a.dtype)."""
    return empty(a.shape, a.dtype)


def _idle_block(nbytes: int) -> np.ndarray | None:
    """The smallest idle block that holds nbytes (aligned) without wasting more than SLACK
    times it, moved to the end of the list (most recently used); None if none."""
    best = -1
    for i in range(len(_blocks)):
        size = _blocks[i].size - ALIGN
        if nbytes <= size <= SLACK * nbytes + ALIGN and _refs(_blocks, i) == _IDLE:
            if best < 0 or size < _blocks[best].size - ALIGN:
                best = i
    if best < 0:
        return None
    block = _blocks.pop(best)
    _blocks.append(block)
    return block


def _new_block(nbytes: int) -> np.ndarray:
    """A new block for nbytes, tracked if it fits under MAX_BYTES once idle blocks (least
    recently used first) are let go."""
    total = sum(b.size for b in _blocks)
    i = 0
    while total + nbytes + ALIGN > MAX_BYTES and i < len(_blocks):
        if _refs(_blocks, i) == _IDLE:
            total -= _blocks.pop(i).size
        else:
            i += 1
    block = np.empty(nbytes + ALIGN, dtype=np.uint8)
    if total + block.size <= MAX_BYTES:
        _blocks.append(block)
    return block


def release() -> int:
    """Let every idle block go (its memory back to the system); returns the bytes let go."""
    with _lock:
        idle = [i for i in range(len(_blocks)) if _refs(_blocks, i) == _IDLE]
        freed = sum(_blocks[i].size for i in idle)
        for i in reversed(idle):
            del _blocks[i]
    return freed


def held() -> tuple[int, int]:
    """(bytes in blocks in use, bytes in idle blocks)."""
    with _lock:
        idle = sum(_blocks[i].size for i in range(len(_blocks)) if _refs(_blocks, i) == _IDLE)
        return sum(b.size for b in _blocks) - idle, idle


@contextmanager
def fresh() -> Iterator[None]:
    """Within it, every array is a fresh allocation (idle blocks let go first): for
    measurements of what a call allocates."""
    global _paused
    with _lock:
        _paused += 1
    try:
        release()
        yield
    finally:
        with _lock:
            _paused -= 1
