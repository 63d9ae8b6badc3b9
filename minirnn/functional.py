"""Arrays in, arrays out: forward and backward over a whole sequence.

Each public function validates at the boundary (shapes, dtypes, finiteness), then either

* the fast path: one GEMM for the input projection of all T steps, a numba kernel for the
  recurrence (kernels.py), and whole-sequence GEMMs for the weight gradients; or
* the reference path (``MINIRNN_JIT=0``): a plain loop over cells.py's step functions.

Both give the same numbers to rounding; the tests hold them to 1e-12.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import _blas, _buffers, _threads, loops
from . import _validate as v
from ._jit import avx512, jit_enabled, kernels, switched_on
from .cells import (
    ACTIVATION_CODES,
    GRUStepCache,
    LSTMStepCache,
    RNNStepCache,
    gru_step_backward,
    gru_step_forward,
    lstm_step_backward,
    lstm_step_forward,
    rnn_step_backward,
    rnn_step_forward,
)

# Which product a step's recurrence uses. From TILE_MIN_ROWS rows, the register-tiled product
# (kernels.call_tiles, R packed once per call), measured on AMD EPYC Zen 3 (AVX2) per step:
# 1.3-2x faster than the hand-written matmul_acc from 4 rows, and 1.2-2x faster than OpenBLAS's
# one-thread GEMM at B = 8-64 rows, K and N = 128-2048, which packs R anew on every call; whole
# forward + BPTT 5-44% faster at B = 8-128 (in blocks of rows, below). At 2-3 rows (tiles of two
# rows) it wins from TILE_SMALL_MIN_MACS multiply-adds per row (1.1-2x faster at K x N = 64 x 256
# and up), and is mixed below (0.8-1.7x at 32 x 32 to 64 x 64); one row keeps matmul_acc (a
# tile's three accumulators wait on each other: 1.1-1.9x slower). Steps of fewer than
# TILE_MIN_ROW_MACS multiply-adds a row run on the tiles in one loop, not in blocks of rows on
# threads (at 4-11 rows and G*H x H = 256-1024, H = 16-32, a whole forward + BPTT takes
# 0.9-1.15x the time matmul_acc's four-row blocks took: each tile's outputs loaded and stored
# for only 16-32 k; those blocks cost 1.3 s of a cell's compile, see matmul_acc); from 6,912
# multiply-adds a row the tiles were 7-18% faster than those blocks. Where numba compiles for
# AVX-512 its vectors are 512-bit (kernels.VECTOR_BYTES): on AMD EPYC Zen 5, forward + BPTT
# 15-31% faster than with NumPy's GEMM (Haswell kernels there, OPENBLAS_CORETYPE) at B = 32-128,
# H = 128-512, float32 and float64. ``MINIRNN_TILES=0`` turns them off.
TILE_MIN_ROWS = 4
TILE_MIN_ROW_MACS = 4_096
TILE_SMALL_MIN_MACS = 16_384
# The tiled product runs in blocks of at least TILE_MIN_ROWS rows on OpenBLAS's threads
# (_threads.py) wherever there are rows for two: with blocks started from C (_native.py), even
# the smallest tiled steps pay (4 rows of 4,096 multiply-adds a block): forward + BPTT at
# T = 100, B = 8-16 level to 22% faster in blocks than in one loop (LSTM (8, 16, 32) 10%,
# (8, 32, 64) 22%; vanilla (8, 32, 64) 2-4%), float32 and float64. As Python callbacks (the
# fallback, ~100 us more a call) blocks of a few thousand were up to 1.3-1.6x slower.

# Without tiles (MINIRNN_TILES=0, one row, narrow steps), measured on the benchmark
# machines:
# forward + BPTT at T = 20-100, B = 4..48 rows, H = 64..512 units, the two products interleaved
# in one process and compared by their best times (single-process sweeps were misleading: a slow
# spell of the 2-thread GEMM, see the README, flatters the one-core product). The hand-written
# product (matmul_acc: one core, no call, no synchronisation) against NumPy's threaded GEMM
# called from the compiled loop (~1 us a call, two threads meeting every step):
# * AMD EPYC Zen 3 (AVX2): hand-written faster up to 8 rows (1.1-2x at 4 rows), level at 12,
#   slower from 16 (float32: 1.0-1.5x at 16 rows, 1.3-2x at 32-48; float64: 1.1-1.4x at 16);
# * AMD EPYC Zen 4 (AVX-512, twice the lanes for the hand-written loop): float32 1.2-1.8x faster
#   up to 16 rows at every width, level at 24 rows (H <= 256), slower from there (1.2-1.5x at
#   48 rows); float64 as on Zen 3 (level at 8 rows, 1.2x slower at 12 rows for H = 256-512).
# Steps below BLAS_MIN_MACS multiply-adds never pay for a call.
# Since matmul_acc lost its four-row blocks (it runs a row at a time), re-measured on the Zen 3
# (tiles off, T = 50, I = 32, H = 64-512, rnn and LSTM, interleaved): hand-written faster at 4
# and 6 rows (0.78-1.03x BLAS's time), BLAS faster from 8 (1.0-2.2x; level only at H = 64).
HAND_MAX_ROWS = {4: 7, 8: 7}  # by itemsize; other float sizes as float64
HAND_MAX_ROWS_AVX512 = {4: 23, 8: 11}
# With the tiles on, narrow steps (under TILE_MIN_ROW_MACS a row) of up to these many rows run on
# the tiles in one loop, beyond them on the GEMM (the limits measured before matmul_acc lost its
# blocks; the tiles' narrow loop took over those rows from it and was measured against it).
NARROW_TILE_MAX_ROWS = {4: 11, 8: 11}
NARROW_TILE_MAX_ROWS_AVX512 = {4: 23, 8: 11}
BLAS_MIN_MACS = 16_384
# Without NumPy's BLAS pointer the GEMM costs a trip through Python per step (loops.py), worth
# it only from this much work per step.
PYTHON_LOOP_MIN_MACS = 262_144


def tiles_enabled() -> bool:
    """True where the register-tiled product is used (see TILE_MIN_ROWS): unless MINIRNN_TILES
    is 0/false/off."""
    return switched_on("MINIRNN_TILES")


def use_stepped(B: int, GH: int, H: int, itemsize: int = 8) -> bool:
    """Without tiles: True when a step of B rows, GH gate pre-activations and H units
    (``itemsize``-byte floats) wants a BLAS GEMM for its recurrent product (B * GH * H
    multiply-adds) rather than the hand-written one."""
    rows = HAND_MAX_ROWS_AVX512 if avx512() else HAND_MAX_ROWS
    return B > rows.get(itemsize, rows[8]) and B * GH * H >= BLAS_MIN_MACS


@dataclass(frozen=True)
class Recurrence:
    """How a time loop computes its per-step recurrent product (see _time_loop)."""

    python_loop: bool = False  # loops.py's Python loop around np.matmul
    gemm: object = None  # NumPy's cblas_?gemm for the compiled scans (kernels.product2_)
    tiles: int = 0  # kernels.tiles_entry's address (R packed for the tiles), or 0
    block_rows: int = 0  # in blocks of at least this many rows where there are threads; 0: never

    @property
    def tiled(self) -> bool:
        """True for the tiled product (kernels.call_tiles in the time loops)."""
        return self.tiles != 0

    def operand(self, R: np.ndarray) -> np.ndarray:
        """The right operand R (K, N) of the step's product as kernels.product_ takes it: packed
        for the tiles; R itself, C-contiguous and flattened, for the hand-written product (both
        1-D: one compiled time loop serves both); for NumPy's BLAS, R transposed (faster that
        way, see product2_), C-contiguous. The forward's R is W_hh^T, so with BLAS it is W_hh,
        not copied. A float32 gated backward's R = W_hh (G*H, H), already C-contiguous, goes to
        BLAS as it is: OpenBLAS ran that product 4-13% faster untransposed (one thread and two,
        Zen 3), and it saves the copy; product2_ tells the two apart by shape (K != N)."""
        if self.tiled:
            return kernels().pack_panels(R)
        gemm = self.gemm
        if gemm is None:
            return np.ascontiguousarray(R).reshape(-1)
        if R.dtype == np.float32 and R.shape[0] != R.shape[1] and R.flags.c_contiguous:
            return R
        return np.ascontiguousarray(R.T)

    def operand_copies(self, K: int, N: int, dtype: np.dtype) -> int:
        """The elements operand(R) allocates for a C-contiguous R (K, N) of ``dtype``: R's size
        where it packs or transposes R, 0 where it takes R itself."""
        if self.tiled:
            return K * N
        if self.gemm is None or (dtype == np.float32 and K != N):
            return 0
        return K * N

    def scan(self, scan: Any, B: int, *args: Any) -> None:
        """scan(gemm, tiles, *args, b0, b1), a compiled time loop, over all B rows: in blocks of
        rows on OpenBLAS's threads where block_rows allows (_threads.py), else in one."""
        if self.block_rows:
            _threads.by_rows(B, scan, (self.gemm, self.tiles, *args), self.block_rows)
        else:
            scan(self.gemm, self.tiles, *args, 0, B)


def _time_loop(B: int, GH: int, H: int, dtype: np.dtype) -> Recurrence:
    """The recurrence of B rows, GH gate pre-activations and H units: the tiled product from
    TILE_MIN_ROWS rows (from 2 for wide steps; in blocks of rows where there are enough, in one
    loop for narrow steps); else small steps run the compiled scans with the hand-written
    product (one to three rows, or any where the tiles are off), large
    steps the compiled scans calling NumPy's BLAS through a pointer (_blas.py, in blocks of
    _threads.MIN_ROWS rows), or, where that pointer is unavailable, loops.py's Python loop
    around np.matmul. All give the same numbers to rounding (tests/test_kernels.py)."""
    itemsize = np.dtype(dtype).itemsize
    per_row = GH * H
    wide = (B >= TILE_MIN_ROWS and per_row >= TILE_MIN_ROW_MACS) or (
        B >= 2 and per_row >= TILE_SMALL_MIN_MACS
    )
    rows = NARROW_TILE_MAX_ROWS_AVX512 if avx512() else NARROW_TILE_MAX_ROWS
    few = B <= rows.get(itemsize, rows[8]) or B * per_row < BLAS_MIN_MACS  # else the GEMM's
    narrow = not wide and B >= TILE_MIN_ROWS and few  # on the tiles, in one loop
    # tiles_entry compiles tiles_gemm on first use: only asked for where the tiles would run
    tiles = kernels().tiles_entry(dtype) if (wide or narrow) and tiles_enabled() else 0
    if tiles:
        return Recurrence(tiles=tiles, block_rows=0 if narrow else TILE_MIN_ROWS)
    if not use_stepped(B, GH, H, itemsize):
        return Recurrence()
    gemm = _blas.gemm(dtype)
    if gemm is not None:
        return Recurrence(gemm=gemm, block_rows=_threads.MIN_ROWS)
    return Recurrence(python_loop=B * GH * H >= PYTHON_LOOP_MIN_MACS)


@dataclass
class RNNCache:
    """What :func:`rnn_backward` needs from :func:`rnn_forward`: references, not copies."""

    X: np.ndarray  # (T, B, I)
    hs: np.ndarray  # (T, B, H)
    h0: np.ndarray  # (B, H), zeros when the caller gave none
    W_xh: np.ndarray
    W_hh: np.ndarray
    b_h: np.ndarray | None
    activation: str

    @property
    def h_last(self) -> np.ndarray:
        """The final hidden state h_T (B, H): the state to carry into the next chunk."""
        return self.hs[-1]

    def step(self, t: int) -> RNNStepCache:
        """The cells.py step cache of step t, rebuilt from the sequence's arrays (views)."""
        h_prev = self.h0 if t == 0 else self.hs[t - 1]
        return RNNStepCache(
            self.X[t], h_prev, self.hs[t], self.W_xh, self.W_hh, self.b_h is not None, self.activation
        )


def _check_inputs(
    where: str,
    X: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
    gates: int,
    biases: dict[str, np.ndarray | None],
    states: dict[str, np.ndarray | None],
    check_finite: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray | None], dict[str, np.ndarray | None]]:
    """Validate a cell's inputs: X (T, B, I), W_xh (G*H, I), W_hh (G*H, H), biases (G*H,),
    states (B, H), all finite and of one float dtype. Returns them C-contiguous."""
    rows = "H" if gates == 1 else f"{gates}H"
    X = v.float_array(where, "X", X, 3, "(T, B, I)", check_finite=check_finite)
    W_xh = v.float_array(where, "W_xh", W_xh, 2, f"({rows}, I)", check_finite=check_finite)
    W_hh = v.float_array(where, "W_hh", W_hh, 2, f"({rows}, H)", check_finite=check_finite)
    _T, B, I = X.shape
    GH, H = W_hh.shape
    if GH != gates * H:
        raise ValueError(
            f"{where}: W_hh has shape {W_hh.shape}; expected ({rows}, H)"
            + (", square" if gates == 1 else f" with the {gates} gates stacked")
        )
    v.shape_is(where, "W_xh", W_xh, (GH, I), f"({rows}, I) with H from W_hh and I from X")
    out_b: dict[str, np.ndarray | None] = {}
    for name, b in biases.items():
        if b is not None:
            b = v.float_array(where, name, b, 1, f"({rows},)", check_finite=check_finite)
            v.shape_is(where, name, b, (GH,), f"({rows},)")
        out_b[name] = b
    out_s: dict[str, np.ndarray | None] = {}
    for name, st in states.items():
        if st is not None:
            st = v.float_array(where, name, st, 2, "(B, H)", check_finite=check_finite)
            v.shape_is(where, name, st, (B, H), "(B, H) with B from X and H from W_hh")
        out_s[name] = st
    v.same_dtype(where, {"X": X, "W_xh": W_xh, "W_hh": W_hh, **out_b, **out_s})
    return X, W_xh, W_hh, out_b, out_s


def whole_tiles(M: int, K: int, N: int, itemsize: int = 8) -> bool:
    """True where a whole-sequence product of M x K by K x N (``itemsize``-byte floats: the
    input projection, a window's dX or weight gradient) runs on the tiles (kernels.tiles_rows,
    in blocks of rows on OpenBLAS's threads) rather than NumPy's GEMM: with the tiles on, where
    numba compiles for AVX-512, from WHOLE_TILES_MIN_MACS multiply-adds (float32 from four
    times as many). On AMD EPYC Zen 5, whose OpenBLAS kernels here are the environment's
    Haswell ones (256-bit), the 512-bit tiles ran these products 1.4-2.3x faster (float32
    320-470 GFLOP/s against 205-245, float64 140-240 against 100-120, M = 1024-12,800, K and
    N = 128-2048, packing included); a whole forward + BPTT at (100, 32, 32, 128) was 6-18%
    faster in float64 with them, but 10% slower in float32 (the products' fixed costs against
    a float32 GEMM's few microseconds), level to 4% faster from 16M multiply-adds. With
    256-bit vectors OpenBLAS's kernels are as wide as the tiles, and NumPy's GEMM stays: the
    tiles compiled for AVX2 (NUMBA_CPU_NAME=haswell, same Zen 5 host) made a forward + BPTT
    at (200, 64, 128, 256) 1-8% slower than OpenBLAS's Haswell kernels (all three cells, float32
    and float64, interleaved A/B). Never without the tiles' C entry (kernels.tiles_entry)."""
    large = M >= 2 * WHOLE_TILES_BLOCK_ROWS and M * K * N >= WHOLE_TILES_MIN_MACS * (
        4 if itemsize == 4 else 1
    )
    float_type = np.float32 if itemsize == 4 else np.float64
    return large and tiles_enabled() and avx512() and kernels().tiles_entry(float_type) != 0


WHOLE_TILES_MIN_MACS = 1 << 22  # float64; float32 four times as many
WHOLE_TILES_BLOCK_ROWS = 64  # at least this many rows a thread's block


def _tiled_product(A: np.ndarray, R: np.ndarray, out: np.ndarray, c: int = 0) -> None:
    """out (flat, from element c, rows of N) = A (M, K) @ R (K, N) on the tiles, A C-contiguous
    (any dimensions, read as M rows of K), R packed (pack_panels), in blocks of rows."""
    K = A.shape[-1]
    M, N = A.size // K, R.size // K
    tiles = kernels().tiles_entry(A.dtype)
    # 2-D, as tiles_acc passes them: one compiled tiles_rows
    args = (tiles, A.reshape(M, K), 0, K, 1, R, 0, out.reshape(-1, N), c, N, N, K, False)
    _threads.by_rows(M, kernels().tiles_rows, args, WHOLE_TILES_BLOCK_ROWS)


def _tiled_gradient(da: np.ndarray, parts: tuple[np.ndarray, ...], buf: np.ndarray, out: np.ndarray) -> None:
    """out (G*H, N) += DA^T R on the tiles, DA = da (n, B, G*H) as (n B, G*H) rows (read across
    its rows: packed block by block) and R (n B, N) the rows of ``parts`` one after the other,
    packed into ``buf``; in blocks of out's rows."""
    GH, N = out.shape
    K = sum(part.shape[0] for part in parts)
    k0 = 0
    for part in parts:
        P = kernels().pack_panels(part, buf, K, k0)
        k0 += part.shape[0]
    args = (kernels().tiles_entry(da.dtype), da, 0, 1, GH, P, 0, out, 0, N, N, K, True)
    _threads.by_rows(GH, kernels().tiles_rows_packed, args, WHOLE_TILES_BLOCK_ROWS)


def _input_projection(X: np.ndarray, W_xh: np.ndarray) -> np.ndarray:
    """X W_xh^T for all T steps in one GEMM: (T, B, G*H), C-contiguous. The time loops add the
    input-side bias step by step, where they read this anyway (kernels.add_bias): filling the
    array with the bias for a GEMM to add to (beta = 1) was a pass more over it, 2-8 ms at
    (200, 64, 128, 256). On the tiles where whole_tiles says so, else through NumPy's GEMM
    pointer (no temporaries), else ``np.matmul``."""
    T, B, I = X.shape
    GH = W_xh.shape[0]
    if whole_tiles(T * B, I, GH, X.itemsize):
        xa = _buffers.empty((T, B, GH), X.dtype)
        _tiled_product(X, kernels().pack_panels(W_xh.T), xa)
        return xa
    gemm = _blas.gemm(X.dtype)
    if gemm is None:
        return np.matmul(X.reshape(T * B, I), W_xh.T).reshape(T, B, GH)
    xa = _buffers.empty((T, B, GH), X.dtype)
    # all three C-contiguous (_check_inputs): xa (T B, G H) = X (T B, I) @ W_xh^T
    x, w, out = X.ctypes.data, W_xh.ctypes.data, xa.ctypes.data
    gemm(_blas.ROW_MAJOR, _blas.NO_TRANS, _blas.TRANS, T * B, GH, I, 1.0, x, I, w, I, 0.0, out, GH)
    return xa


def _bias(b: np.ndarray | None, n: int, dtype: np.dtype) -> np.ndarray:
    """A bias as the time loops take it: b, or where there is none an empty array (n = 0) or
    n zeros."""
    return b if b is not None else np.zeros(n, dtype=dtype)


# The backward pass walks the sequence in windows (_windows): the pre-activation gradients of one
# window are all it holds besides its outputs, so the memory stays near what the call holds
# anyway, while each window's weight-gradient GEMMs (rows x G*H by rows x I) stay large enough to
# run at BLAS speed. A window has at most WINDOW_ROWS (time x batch) rows, and its buffer, with
# the recurrent weights' copy for the product, takes at most 1/WINDOW_SHARE of the arrays the
# call holds anyway (at least 1/(2 WINDOW_SHARE) for the buffer where the copy is large).
WINDOW_ROWS = 1024
WINDOW_SHARE = 4


def window_steps(T: int, B: int, I: int, H: int, G: int, held: int, copied: int = 0, extra: int = 0) -> int:
    """Steps in the longest backward window (functional._windows), which sizes its buffers."""
    t0, t1 = _windows(T, B, I, H, G, held, copied, extra)[0]
    return t1 - t0


def _windows(
    T: int, B: int, I: int, H: int, G: int, held: int, copied: int = 0, extra: int = 0
) -> list[tuple[int, int]]:
    """(t0, t1) windows covering 0..T, last first (the order BPTT walks them), the first the
    longest, for a cell of G gates (pre-activation gradients G*H per row and step) whose BPTT
    holds anyway ``held`` arrays of (T, B, H) (h, and what its forward saved: LSTM gates, c,
    tanh c: 7; GRU gates, u_n: 5; vanilla 1), dX (T, B, I) and the weight gradients
    G*H x (I + H); ``copied`` elements are the weights' copies (packed or transposed) for the
    products, if any, and ``extra`` the elements a window holds per row beside its G*H
    pre-activation gradients (the tiled weight gradients' packed rows of X and h_{t-1}: I + H).

    As few windows as keep each under WINDOW_ROWS rows and its buffers (n, B, G*H + extra) with the copy
    under 1/WINDOW_SHARE of those arrays (the buffer under 1/(2 WINDOW_SHARE) where the copy
    leaves less), the steps split evenly (lengths differ by one at most: a small last window's
    GEMMs and calls cost nearly what a full one's do). Peak memory then stays under 1.3x of what
    the call returns and keeps (benchmarks/bench_rnn.py), where one window of the whole sequence
    held 1.36-1.57x at T = 100, B = 1-4; not where the weights' copy alone is most of that (few
    steps and rows, many units: 1.8-1.9x at (20, 2, 32, 256)). A window more costs its fixed
    calls, 10-25 us (its weight-gradient GEMMs: OpenBLAS's cost per call; the scan's ~2 us): at
    (100, 1-4, 32, 64), two to four windows instead of one or two cost 1-16% more time (Zen 3,
    against the rule before: a quarter of the sequence, not under 256 rows), at
    (100, 8, 32, 128) level to 7%; (1000, 1, 1, 32) level or faster with even windows. Short
    sequences keep one window: the weight gradients dominate what they hold."""
    kept = T * B * (held * H + I) + G * H * (I + H)
    budget = max(kept // WINDOW_SHARE - copied, kept // (2 * WINDOW_SHARE))
    C = max(1, min(WINDOW_ROWS // B, budget // (B * (G * H + extra))))
    n = -(-T // C)
    bounds = [T * i // n for i in range(n + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(n - 1, -1, -1)]


# The arrays a cell's BPTT holds anyway besides dX and the weight gradients, in (T, B, H) units:
# h, and what its forward saved (LSTM: four gates, c, tanh c; GRU: three gates, u_n).
HELD = {"rnn": 1, "lstm": 7, "gru": 5}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # pre-activation blocks of H a cell has


@dataclass(frozen=True)
class WindowProducts:
    """How a backward's windows compute their products (_accumulate)."""

    gemm: Any  # NumPy's cblas_?gemm pointer (_blas.gemm), or None: NumPy's products
    W_xh: np.ndarray | None = None  # W_xh packed for dX on the tiles (whole_tiles), or None
    X_rows: np.ndarray | None = None  # room for a window's rows of X packed (tiled dW_xh)
    H_rows: np.ndarray | None = None  # and of h_{t-1} (tiled dW_hh)


def _plan(
    cell: str, T: int, B: int, I: int, H: int, itemsize: int, copied: int
) -> tuple[list[tuple[int, int]], bool, bool, int]:
    """_window_plan's choices without its arrays: the windows, whether the longest window's dW_xh
    / dX and dW_hh run on the tiles (whole_tiles), and the elements the weights' copies take in
    all (``copied``, the scans' operand, then W_xh packed and the tiles' work for da)."""
    G = GATES[cell]
    GH = G * H
    windows = _windows(T, B, I, H, G, HELD[cell], copied)
    n = windows[0][1] - windows[0][0]
    tiled_x, tiled_h = whole_tiles(n * B, GH, I, itemsize), whole_tiles(GH, n * B, H, itemsize)
    if tiled_x or tiled_h:  # W_xh packed, and the tiles' work for da packed (kernels.tiles_rows_packed)
        k = kernels()
        chunk = k.K_CHUNK32 if itemsize == 4 else k.K_CHUNK64
        work = _threads.blocks(GH, WHOLE_TILES_BLOCK_ROWS) * min(k.TILE_BLOCK_ROWS, GH) * chunk
        copied += (GH * I if tiled_x else 0) + work
        windows = _windows(T, B, I, H, G, HELD[cell], copied, I * tiled_x + H * tiled_h)
    return windows, tiled_x, tiled_h, copied


def window_elements(cell: str, T: int, B: int, I: int, H: int, dtype: Any) -> int:
    """The elements a backward of ``cell`` over (T, B, I) inputs and H units holds for its
    windows beside what it keeps and returns: the longest window's pre-activation gradients and
    the tiles' packed rows of X and h_{t-1} where they run, and the weights' copies (the scans'
    W_hh operand, W_xh packed, the tiles' work). What calculator.activation_bytes counts."""
    dtype = np.dtype(dtype)
    GH = GATES[cell] * H
    copied = _time_loop(B, GH, H, dtype).operand_copies(GH, H, dtype)
    windows, tiled_x, tiled_h, copied = _plan(cell, T, B, I, H, dtype.itemsize, copied)
    n = windows[0][1] - windows[0][0]
    return n * B * (GH + I * tiled_x + H * tiled_h) + copied


def _window_plan(
    cell: str, X: np.ndarray, W_xh: np.ndarray, W_hh: np.ndarray, Wr: np.ndarray
) -> tuple[list[tuple[int, int]], np.ndarray, WindowProducts]:
    """A backward's windows (_windows), the pre-activation buffer of the longest (n, B, G*H)
    and how their products run: NumPy's BLAS pointer for the weight-gradient GEMMs (None:
    NumPy), and where the longest window's products run on the tiles (whole_tiles), W_xh
    packed and room for a window's rows of X and h_{t-1} packed, counted in the windows'
    memory budget (which then makes them shorter). ``Wr`` is the recurrent operand the scans
    take: a copy of W_hh unless it is W_hh itself or a view of it."""
    T, B, I = X.shape
    GH, H = W_hh.shape
    copied = 0 if np.may_share_memory(Wr, W_hh) else Wr.size
    windows, tiled_x, tiled_h, _ = _plan(cell, T, B, I, H, X.itemsize, copied)
    n = windows[0][1] - windows[0][0]
    dtype = X.dtype
    products = WindowProducts(
        _blas.gemm(dtype),
        kernels().pack_panels(W_xh) if tiled_x else None,
        _buffers.empty((n * B * I,), dtype) if tiled_x else None,
        _buffers.empty((n * B * H,), dtype) if tiled_h else None,
    )
    return windows, _buffers.empty((n, B, GH), dtype), products


def _new_grads(
    X: np.ndarray, W_xh: np.ndarray, W_hh: np.ndarray, biases: dict[str, bool]
) -> dict[str, np.ndarray]:
    grads = {"W_xh": np.zeros_like(W_xh), "W_hh": np.zeros_like(W_hh), "X": _buffers.empty_like(X)}
    for name, present in biases.items():
        if present:
            grads[name] = np.zeros(W_hh.shape[0], dtype=W_hh.dtype)
    return grads


def _accumulate(
    grads: dict[str, np.ndarray],
    t0: int,
    t1: int,
    da: np.ndarray,
    X: np.ndarray,
    h0: np.ndarray,
    hs: np.ndarray,
    W_xh: np.ndarray,
    gates: np.ndarray | None = None,
    products: WindowProducts | None = None,
) -> None:
    """Add one window's weight gradients and write its dX, as GEMMs over the window's steps::

        dW_xh += sum_t da_t^T x_t    dW_hh += sum_t ua_t^T h_{t-1}    dX_t = da_t W_xh
        db_h += sum da               db_hh += sum ua

    da (n, B, G*H) are the input-side pre-activation gradients; h0 is the state before the
    sequence. The hidden-side ones ua are da, except for the GRU (``gates``: its forward's
    (T, B, 3H) r, z, n): there ua's n part is da_n r (cells.gru_step_backward), made in da's
    place (which the caller's next window overwrites anyway) once dW_xh, dX and db_h are done.

    ``products`` (_window_plan, once for all the windows) says how. Where it holds W_xh packed
    and whole_tiles says so, dX and the weight gradients are tiled products (in blocks of rows,
    a window's rows of X and h_{t-1} packed for them; A = da read across its rows, packed block
    by block: kernels.pack_rows_); with NumPy's BLAS pointer the rest is one compiled call,
    kernels.window_grads, accumulating in place with no temporaries: the h_{t-1} of a window
    after the first are the contiguous hs[t0 - 1 : t1 - 1], one GEMM; both bias sums share one
    compiled pass over da (kernels.column_sums_); without it (None), NumPy's products.
    """
    n, B, I = t1 - t0, X.shape[1], X.shape[2]
    H = hs.shape[2]
    GH = da.shape[2]
    rows = n * B
    gemm = products.gemm if products is not None else None
    W_xh_packed, X_rows, H_rows = (
        (products.W_xh, products.X_rows, products.H_rows) if products is not None else (None, None, None)
    )
    tiled_x = W_xh_packed is not None and X_rows is not None and whole_tiles(rows, GH, I, da.itemsize)
    tiled_h = H_rows is not None and whole_tiles(GH, rows, H, da.itemsize)
    if tiled_x:  # before window_grads, which turns the GRU's da_n into the hidden side's
        assert W_xh_packed is not None and X_rows is not None  # for the type checker
        _tiled_product(da, W_xh_packed, grads["X"], t0 * B * I)
        _tiled_gradient(da, (X[t0:t1].reshape(rows, I),), X_rows, grads["W_xh"])

    def h_prev() -> tuple[np.ndarray, ...]:  # the window's h_{t-1}, (rows, H) in all
        if t0 > 0:
            return (hs[t0 - 1 : t1 - 1].reshape(rows, H),)
        return (h0, hs[: t1 - 1].reshape((n - 1) * B, H))

    if gemm is not None:
        empty = np.empty(0, dtype=da.dtype)
        kernels().window_grads(
            gemm,
            t0,
            da,
            gates[t0:t1] if gates is not None else empty.reshape(0, 0, 0),
            X,
            h0,
            hs,
            W_xh,
            np.empty(GH, dtype=da.dtype),
            empty.reshape(0, 0) if tiled_x else grads["W_xh"],
            empty.reshape(0, 0) if tiled_h else grads["W_hh"],
            empty.reshape(0, 0, 0) if tiled_x else grads["X"],
            grads.get("b_h", empty),
            grads.get("b_hh", empty),
        )
        if tiled_h:  # after window_grads: the hidden side's da
            assert H_rows is not None
            _tiled_gradient(da, h_prev(), H_rows, grads["W_hh"])
        return
    DA = da.reshape(rows, -1)
    if not tiled_x:
        grads["W_xh"] += DA.T @ X[t0:t1].reshape(rows, I)
        np.matmul(DA, W_xh, out=grads["X"][t0:t1].reshape(rows, I))
    if "b_h" in grads:
        grads["b_h"] += DA.sum(axis=0)
    if gates is not None:
        DA[:, GH - H :] *= gates[t0:t1].reshape(rows, GH)[:, :H]
    if tiled_h:
        assert H_rows is not None
        _tiled_gradient(da, h_prev(), H_rows, grads["W_hh"])
    elif t0 > 0:
        grads["W_hh"] += DA.T @ hs[t0 - 1 : t1 - 1].reshape(rows, H)
    else:
        grads["W_hh"] += DA[:B].T @ h0 + DA[B:].T @ hs[: t1 - 1].reshape((n - 1) * B, H)
    if "b_hh" in grads:
        grads["b_hh"] += DA.sum(axis=0)


def _check_backward(
    where: str, dhs: np.ndarray, hs: np.ndarray, truncate: int | None, check_finite: bool
) -> tuple[np.ndarray, int]:
    dhs = v.float_array(where, "dhs", dhs, 3, "(T, B, H)", check_finite=check_finite)
    v.shape_is(where, "dhs", dhs, hs.shape, "(T, B, H), the shape of the forward's hs")
    v.same_dtype(where, {"dhs": dhs, "hs (from the forward)": hs})
    k = 0 if truncate is None else v.positive_int(where, "truncate", truncate)
    return dhs, k


def rnn_forward(
    X: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
    b_h: np.ndarray | None = None,
    h0: np.ndarray | None = None,
    activation: str = "tanh",
    *,
    check_finite: bool = True,
) -> tuple[np.ndarray, RNNCache]:
    """Run the vanilla RNN over a sequence: h_t = f(x_t W_xh^T + h_{t-1} W_hh^T + b_h).

    Parameters
    ----------
    X : ndarray, shape (T, B, I)
        Inputs, time-major. float32 or float64; every array must share X's dtype.
    W_xh : ndarray, shape (H, I)
    W_hh : ndarray, shape (H, H)
    b_h : ndarray, shape (H,), optional
    h0 : ndarray, shape (B, H), optional
        Initial state; zeros when omitted.
    activation : {"tanh", "relu", "sigmoid", "linear"}
    check_finite : bool
        Refuse NaN/Inf in the inputs (one pass over each array; switch off in hot loops
        whose inputs you already trust).

    Returns
    -------
    hs : ndarray, shape (T, B, H)
        Hidden state after every step; ``hs[-1]`` is the final state.
    cache : RNNCache
        Pass to :func:`rnn_backward`.

    Examples
    --------
    >>> import numpy as np, minirnn as mr
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((5, 2, 3))
    >>> W_xh, W_hh = rng.standard_normal((4, 3)), 0.5 * rng.standard_normal((4, 4))
    >>> hs, cache = mr.rnn_forward(X, W_xh, W_hh)
    >>> hs.shape
    (5, 2, 4)
    """
    v.choice("rnn_forward", "activation", activation, v.ACTIVATIONS)
    X, W_xh, W_hh, bs, st = _check_inputs(
        "rnn_forward", X, W_xh, W_hh, 1, {"b_h": b_h}, {"h0": h0}, check_finite
    )
    b_h, h0 = bs["b_h"], st["h0"]
    T, B, _I = X.shape
    H = W_hh.shape[0]
    if h0 is None:
        h0 = np.zeros((B, H), dtype=X.dtype)
    if jit_enabled():
        hs = _input_projection(X, W_xh)
        code = ACTIVATION_CODES[activation]
        b = _bias(b_h, 0, X.dtype)
        rec = _time_loop(B, H, H, X.dtype)
        if rec.python_loop:
            loops.rnn_forward(hs, W_hh.T, h0, b, code)
        else:
            rec.scan(kernels().rnn_forward_scan, B, hs, rec.operand(W_hh.T), h0, b, code)
    else:
        hs = np.empty((T, B, H), dtype=X.dtype)
        h = h0
        for t in range(T):
            h, _ = rnn_step_forward(X[t], h, W_xh, W_hh, b_h, activation)
            hs[t] = h
    return hs, RNNCache(X, hs, h0, W_xh, W_hh, b_h, activation)


def rnn_backward(
    dhs: np.ndarray,
    cache: RNNCache,
    truncate: int | None = None,
    *,
    return_dh: bool = False,
    check_finite: bool = True,
) -> dict[str, np.ndarray]:
    """Backpropagation through time for :func:`rnn_forward`.

    Parameters
    ----------
    dhs : ndarray, shape (T, B, H)
        dL/dh_t for every step: the *direct* part only (from the loss or the layer above).
        The recurrent part, dL/dh_{t+1} * dh_{t+1}/dh_t, is added here.
    cache : RNNCache
        From :func:`rnn_forward`.
    truncate : int, optional
        Cut the recurrent gradient every ``truncate`` steps (blocks [0, k), [k, 2k), ...):
        the accumulated gradient of chunked truncated BPTT, identical to detaching h every
        k steps. None (default) is full BPTT.
    return_dh : bool
        Also return ``"dh"``: the total dL/dh_t (direct + recurrent) for every step, shape
        (T, B, H), for studying how the gradient travels back.

    Returns
    -------
    dict
        ``W_xh`` (H, I), ``W_hh`` (H, H), ``b_h`` (H,) when the forward had a bias,
        ``X`` (T, B, I), ``h0`` (B, H) and, on request, ``dh`` (T, B, H).
    """
    where = "rnn_backward"
    if not isinstance(cache, RNNCache):
        raise TypeError(
            f"{where}: cache must be the RNNCache returned by rnn_forward, got {type(cache).__name__}"
        )
    dhs, k = _check_backward(where, dhs, cache.hs, truncate, check_finite)
    X, hs, h0, W_xh, W_hh = cache.X, cache.hs, cache.h0, cache.W_xh, cache.W_hh
    T, B, _I = X.shape
    H = W_hh.shape[0]

    if jit_enabled():
        grads = _new_grads(X, W_xh, W_hh, {"b_h": cache.b_h is not None})
        dh_all = _buffers.empty_like(hs) if return_dh else None
        carry = np.zeros((B, H), dtype=hs.dtype)
        code = ACTIVATION_CODES[cache.activation]
        rec = _time_loop(B, H, H, hs.dtype)
        Wr = W_hh if rec.python_loop else rec.operand(W_hh)
        # With BLAS, one loop: its elementwise part is two multiply-adds per unit, too little
        # for blocks of rows to gain what their one-thread GEMMs lose (2-11% slower at
        # B = 32-64 as Python callbacks; from C level to 5% faster at B = 32-128, tiles off on
        # Zen 3: not worth a change unmeasured where this path runs, AVX-512). The tiles gain
        # from blocks (3-14% at B = 64-128).
        walk = rec if rec.tiled or not rec.block_rows else replace(rec, block_rows=0)
        windows, buf, products = _window_plan("rnn", X, W_xh, W_hh, Wr)
        for t0, t1 in windows:
            da = buf[: t1 - t0]
            total = dh_all[t0:t1] if dh_all is not None else None
            if rec.python_loop:
                loops.rnn_backward(dhs[t0:t1], hs[t0:t1], Wr, code, k, t0, da, total, carry)
            else:
                kept = total if total is not None else da[:1]
                w = (dhs[t0:t1], hs[t0:t1], Wr, code, k, t0, da, kept, return_dh, carry)
                walk.scan(kernels().rnn_backward_scan, B, *w)
            _accumulate(grads, t0, t1, da, X, h0, hs, W_xh, products=products)
        grads["h0"] = carry
        if dh_all is not None:
            grads["dh"] = dh_all
        return grads

    # reference path: the step pair from cells.py, walked backwards
    grads = {"W_xh": np.zeros_like(W_xh), "W_hh": np.zeros_like(W_hh), "X": np.empty_like(X)}
    if cache.b_h is not None:
        grads["b_h"] = np.zeros_like(cache.b_h)
    dh_all = np.empty_like(hs) if return_dh else None
    carry = np.zeros((B, H), dtype=hs.dtype)
    for t in range(T - 1, -1, -1):
        step = cache.step(t)
        dh = dhs[t] + carry
        if dh_all is not None:
            dh_all[t] = dh
        carry, g = rnn_step_backward(dh, step)
        for name in ("W_xh", "W_hh", "b_h"):
            if name in grads:
                grads[name] += g[name]
        grads["X"][t] = g["x"]
        if k and t > 0 and t % k == 0:
            carry = np.zeros_like(carry)
    grads["h0"] = carry
    if dh_all is not None:
        grads["dh"] = dh_all
    return grads


# ---------------------------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------------------------


@dataclass
class LSTMCache:
    """What :func:`lstm_backward` needs: states, gates (i, f, g, o after activation), tanh(c)."""

    X: np.ndarray  # (T, B, I)
    hs: np.ndarray  # (T, B, H)
    cs: np.ndarray  # (T, B, H)
    tanh_cs: np.ndarray  # (T, B, H)
    gates: np.ndarray  # (T, B, 4H)
    h0: np.ndarray
    c0: np.ndarray
    W_xh: np.ndarray
    W_hh: np.ndarray
    b_h: np.ndarray | None

    @property
    def h_last(self) -> np.ndarray:
        return self.hs[-1]

    @property
    def state_last(self) -> tuple[np.ndarray, np.ndarray]:
        """(h_T, c_T): the state to carry into the next chunk."""
        return self.hs[-1], self.cs[-1]

    def step(self, t: int) -> LSTMStepCache:
        """The cells.py step cache of step t, rebuilt from the sequence's arrays (views)."""
        h_prev = self.h0 if t == 0 else self.hs[t - 1]
        c_prev = self.c0 if t == 0 else self.cs[t - 1]
        return LSTMStepCache(
            self.X[t],
            h_prev,
            c_prev,
            self.gates[t],
            self.cs[t],
            self.tanh_cs[t],
            self.W_xh,
            self.W_hh,
            self.b_h is not None,
        )


def _split_lstm_state(where: str, h0: object) -> tuple[np.ndarray | None, np.ndarray | None]:
    if h0 is None:
        return None, None
    if not isinstance(h0, tuple | list) or len(h0) != 2:
        got = type(h0).__name__ if not isinstance(h0, tuple | list) else f"a sequence of {len(h0)}"
        raise TypeError(f"{where}: h0 must be a pair (h0, c0) of (B, H) arrays for the LSTM, got {got}")
    h, c = h0
    if h is None or c is None:
        missing = "h0" if h is None else "c0"
        raise TypeError(f"{where}: the state pair (h0, c0) is missing {missing}; give both or neither")
    return h, c


def lstm_forward(
    X: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
    b_h: np.ndarray | None = None,
    h0: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    check_finite: bool = True,
) -> tuple[np.ndarray, LSTMCache]:
    """Run an LSTM over a sequence (gates i, f, g, o stacked as in PyTorch).

    Parameters
    ----------
    X : ndarray, shape (T, B, I)
    W_xh : ndarray, shape (4H, I)
    W_hh : ndarray, shape (4H, H)
    b_h : ndarray, shape (4H,), optional
        One bias (PyTorch's bias_ih + bias_hh).
    h0 : pair of ndarrays (h0, c0), each (B, H), optional
        Initial hidden and cell state; zeros when omitted.

    Returns
    -------
    hs : ndarray, shape (T, B, H)
    cache : LSTMCache
        ``cache.state_last`` is (h_T, c_T).
    """
    where = "lstm_forward"
    h_init, c_init = _split_lstm_state(where, h0)
    X, W_xh, W_hh, bs, st = _check_inputs(
        where, X, W_xh, W_hh, 4, {"b_h": b_h}, {"h0": h_init, "c0": c_init}, check_finite
    )
    b_h = bs["b_h"]
    T, B, _ = X.shape
    H = W_hh.shape[1]
    zeros = np.zeros((B, H), dtype=X.dtype)
    h_0 = st["h0"] if st["h0"] is not None else zeros
    c_0 = st["c0"] if st["c0"] is not None else zeros
    hs = _buffers.empty((T, B, H), X.dtype)
    cs, tanh_cs = _buffers.empty_like(hs), _buffers.empty_like(hs)
    if jit_enabled():
        gates = _input_projection(X, W_xh)
        args = (_bias(b_h, 0, X.dtype), h_0, c_0, hs, cs, tanh_cs)
        rec = _time_loop(B, 4 * H, H, X.dtype)
        if rec.python_loop:
            loops.lstm_forward(gates, W_hh.T, *args)
        else:
            rec.scan(kernels().lstm_forward_scan, B, gates, rec.operand(W_hh.T), *args)
    else:
        gates = np.empty((T, B, 4 * H), dtype=X.dtype)
        h, c = h_0, c_0
        for t in range(T):
            h, c, step = lstm_step_forward(X[t], h, c, W_xh, W_hh, b_h)
            hs[t], cs[t], tanh_cs[t], gates[t] = h, c, step.tanh_c, step.gates
    return hs, LSTMCache(X, hs, cs, tanh_cs, gates, h_0, c_0, W_xh, W_hh, b_h)


def lstm_backward(
    dhs: np.ndarray,
    cache: LSTMCache,
    truncate: int | None = None,
    *,
    return_dh: bool = False,
    dc_last: np.ndarray | None = None,
    check_finite: bool = True,
) -> dict[str, np.ndarray]:
    """BPTT for :func:`lstm_forward`; ``dhs`` (T, B, H) is the direct dL/dh_t.

    ``dc_last`` (B, H), optional, is dL/dc_T from beyond the sequence (the cell state's share of
    the gradient of the final state; dL/dh_T's share goes into ``dhs[-1]``).

    Returns ``W_xh`` (4H, I), ``W_hh`` (4H, H), ``b_h`` (when present), ``X``, ``h0``, ``c0`` and,
    on request, ``dh`` (T, B, H): the total dL/dh_t. ``truncate`` as in :func:`rnn_backward`.
    """
    where = "lstm_backward"
    if not isinstance(cache, LSTMCache):
        raise TypeError(
            f"{where}: cache must be the LSTMCache returned by lstm_forward, got {type(cache).__name__}"
        )
    dhs, k = _check_backward(where, dhs, cache.hs, truncate, check_finite)
    X, hs, W_xh, W_hh = cache.X, cache.hs, cache.W_xh, cache.W_hh
    T, B, H = hs.shape
    dc_init = np.zeros((B, H), dtype=hs.dtype)
    if dc_last is not None:
        dc_last = v.float_array(where, "dc_last", dc_last, 2, "(B, H)", check_finite=check_finite)
        v.shape_is(where, "dc_last", dc_last, (B, H), "(B, H), the shape of one state")
        v.same_dtype(where, {"dc_last": dc_last, "hs (from the forward)": hs})
        dc_init[...] = dc_last
    dh_all = _buffers.empty_like(hs) if return_dh else None
    grads = _new_grads(X, W_xh, W_hh, {"b_h": cache.b_h is not None})
    dh0, dc0 = np.zeros((B, H), dtype=hs.dtype), dc_init
    if jit_enabled():
        rec = _time_loop(B, 4 * H, H, hs.dtype)
        Wr = W_hh if rec.python_loop else rec.operand(W_hh)
        windows, buf, products = _window_plan("lstm", X, W_xh, W_hh, Wr)
        for t0, t1 in windows:
            da = buf[: t1 - t0]
            total = dh_all[t0:t1] if dh_all is not None else None
            c_init = cache.c0 if t0 == 0 else cache.cs[t0 - 1]
            w = (
                dhs[t0:t1],
                cache.gates[t0:t1],
                cache.cs[t0:t1],
                cache.tanh_cs[t0:t1],
                c_init,
                Wr,
                k,
                t0,
                da,
            )
            if rec.python_loop:
                loops.lstm_backward(*w, total, dh0, dc0)
            else:
                kept = total if total is not None else da[:1]
                rec.scan(kernels().lstm_backward_scan, B, *w, kept, return_dh, dh0, dc0)
            _accumulate(grads, t0, t1, da, X, cache.h0, hs, W_xh, products=products)
    else:
        da = np.empty_like(cache.gates)
        for t in range(T - 1, -1, -1):
            step = cache.step(t)
            dh = dhs[t] + dh0
            if dh_all is not None:
                dh_all[t] = dh
            dh0, dc0, g = lstm_step_backward(dh, dc0, step)
            da[t] = g["a"]
            if k and t > 0 and t % k == 0:
                dh0, dc0 = np.zeros_like(dh0), np.zeros_like(dc0)
        _accumulate(grads, 0, T, da, X, cache.h0, hs, W_xh)
    grads["h0"], grads["c0"] = dh0, dc0
    if dh_all is not None:
        grads["dh"] = dh_all
    return grads


# ---------------------------------------------------------------------------------------------
# GRU
# ---------------------------------------------------------------------------------------------


@dataclass
class GRUCache:
    """What :func:`gru_backward` needs: states, gates (r, z, n) and u_n = h W_hn^T + b_hn."""

    X: np.ndarray
    hs: np.ndarray
    gates: np.ndarray  # (T, B, 3H)
    hn: np.ndarray  # (T, B, H)
    h0: np.ndarray
    W_xh: np.ndarray
    W_hh: np.ndarray
    b_h: np.ndarray | None
    b_hh: np.ndarray | None

    @property
    def h_last(self) -> np.ndarray:
        return self.hs[-1]

    def step(self, t: int) -> GRUStepCache:
        """The cells.py step cache of step t, rebuilt from the sequence's arrays (views)."""
        h_prev = self.h0 if t == 0 else self.hs[t - 1]
        return GRUStepCache(
            self.X[t], h_prev, self.gates[t], self.hn[t], self.W_xh, self.W_hh, self.b_h is not None
        )


def gru_forward(
    X: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
    b_h: np.ndarray | None = None,
    b_hh: np.ndarray | None = None,
    h0: np.ndarray | None = None,
    *,
    check_finite: bool = True,
) -> tuple[np.ndarray, GRUCache]:
    """Run a GRU over a sequence, PyTorch's formula (gates r, z, n stacked as in PyTorch).

    Parameters
    ----------
    X : ndarray, shape (T, B, I)
    W_xh : ndarray, shape (3H, I)
    W_hh : ndarray, shape (3H, H)
    b_h : ndarray, shape (3H,), optional
        Input-side bias (PyTorch's bias_ih).
    b_hh : ndarray, shape (3H,), optional
        Hidden-side bias (PyTorch's bias_hh); its n part sits inside the reset gate.
    h0 : ndarray, shape (B, H), optional

    Returns
    -------
    hs : ndarray, shape (T, B, H)
    cache : GRUCache
    """
    where = "gru_forward"
    X, W_xh, W_hh, bs, st = _check_inputs(
        where, X, W_xh, W_hh, 3, {"b_h": b_h, "b_hh": b_hh}, {"h0": h0}, check_finite
    )
    b_h, b_hh = bs["b_h"], bs["b_hh"]
    T, B, _ = X.shape
    H = W_hh.shape[1]
    h_0 = st["h0"] if st["h0"] is not None else np.zeros((B, H), dtype=X.dtype)
    hs = _buffers.empty((T, B, H), X.dtype)
    hn = _buffers.empty_like(hs)
    if jit_enabled():
        gates = _input_projection(X, W_xh)  # the steps overwrite it with r, z, n in place
        b = (_bias(b_h, 3 * H, X.dtype), _bias(b_hh, 3 * H, X.dtype))
        u = np.empty((B, 3 * H), dtype=X.dtype)
        rec = _time_loop(B, 3 * H, H, X.dtype)
        if rec.python_loop:
            loops.gru_forward(gates, W_hh.T, *b, h_0, hs, hn, u)
        else:
            rec.scan(kernels().gru_forward_scan, B, gates, rec.operand(W_hh.T), *b, h_0, hs, hn, u)
    else:
        gates = np.empty((T, B, 3 * H), dtype=X.dtype)
        h = h_0
        for t in range(T):
            h, step = gru_step_forward(X[t], h, W_xh, W_hh, b_h, b_hh)
            hs[t], gates[t], hn[t] = h, step.gates, step.hn
    return hs, GRUCache(X, hs, gates, hn, h_0, W_xh, W_hh, b_h, b_hh)


def gru_backward(
    dhs: np.ndarray,
    cache: GRUCache,
    truncate: int | None = None,
    *,
    return_dh: bool = False,
    check_finite: bool = True,
) -> dict[str, np.ndarray]:
    """BPTT for :func:`gru_forward`; ``dhs`` (T, B, H) is the direct dL/dh_t.

    Returns ``W_xh``, ``W_hh``, ``b_h`` and ``b_hh`` (each when present), ``X``, ``h0`` and, on
    request, ``dh``. ``truncate`` as in :func:`rnn_backward`.
    """
    where = "gru_backward"
    if not isinstance(cache, GRUCache):
        raise TypeError(
            f"{where}: cache must be the GRUCache returned by gru_forward, got {type(cache).__name__}"
        )
    dhs, k = _check_backward(where, dhs, cache.hs, truncate, check_finite)
    X, hs, W_xh, W_hh = cache.X, cache.hs, cache.W_xh, cache.W_hh
    T, B, H = hs.shape
    dh_all = _buffers.empty_like(hs) if return_dh else None
    grads = _new_grads(X, W_xh, W_hh, {"b_h": cache.b_h is not None, "b_hh": cache.b_hh is not None})
    dh0 = np.zeros((B, H), dtype=hs.dtype)
    if jit_enabled():
        rec = _time_loop(B, 3 * H, H, hs.dtype)
        Wr = W_hh if rec.python_loop else rec.operand(W_hh)
        windows, xbuf, products = _window_plan("gru", X, W_xh, W_hh, Wr)
        ua = np.empty((B, 3 * H), dtype=hs.dtype)  # one step's hidden-side gradients
        for t0, t1 in windows:
            dxa = xbuf[: t1 - t0]
            total = dh_all[t0:t1] if dh_all is not None else None
            h_init = cache.h0 if t0 == 0 else hs[t0 - 1]
            w = (dhs[t0:t1], hs[t0:t1], h_init, cache.gates[t0:t1], cache.hn[t0:t1], Wr, k, t0, dxa)
            if rec.python_loop:
                loops.gru_backward(*w, total, dh0, ua)
            else:
                kept = total if total is not None else dh0[None]  # not written: keep_dh is False
                rec.scan(kernels().gru_backward_scan, B, *w, kept, return_dh, dh0, ua)
            _accumulate(grads, t0, t1, dxa, X, cache.h0, hs, W_xh, cache.gates, products)
    else:
        dxa = np.empty_like(cache.gates)
        for t in range(T - 1, -1, -1):
            step = cache.step(t)
            dh = dhs[t] + dh0
            if dh_all is not None:
                dh_all[t] = dh
            dh0, g = gru_step_backward(dh, step)
            dxa[t] = g["a"]
            if k and t > 0 and t % k == 0:
                dh0 = np.zeros_like(dh0)
        _accumulate(grads, 0, T, dxa, X, cache.h0, hs, W_xh, cache.gates)
    grads["h0"] = dh0
    if dh_all is not None:
        grads["dh"] = dh_all
    return grads
