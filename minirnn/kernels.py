"""numba code that runs once per time step: fused elementwise steps and whole time loops.

Each function takes only arrays and scalars (validation and allocation happen in
functional.py) and computes exactly what cells.py computes, in place, with no allocation.
The input projection and the weight gradients are whole-sequence GEMMs (the weight gradients
window by window, each window's one compiled call into NumPy's BLAS: ``window_grads``); the
rest is the recurrent product h_{t-1} W_hh^T and the fused elementwise work.

The time loops (``*_scan``) are compiled whole and share the step functions (``*_forward_step``,
``*_backward_step``, one fused pass over a (B, H) step). Their recurrent product is

* the register-tiled ``tiles_gemm`` from four rows, or two for wide steps (the operand packed
  by ``pack_panels``): LLVM IR with explicit vectors (512-bit with AVX-512, else 256-bit)
  that keeps a tile of outputs in registers, compiled once per float type and called through
  its C entry (``tiles``, an address: ``call_tiles``);
* the hand-written ``matmul_acc`` for one row and narrow steps of two or three, where any call
  out would cost more than the product (``tiles`` 0; the same compiled time loop), and where
  the tiles are switched off;
* NumPy's own threaded BLAS for large steps where the tiles are switched off
  (MINIRNN_TILES=0), called through a C pointer (``gemm``, from _blas.py) without leaving
  compiled code.

loops.py walks the same steps from Python around ``np.matmul``: the fallback for large steps
where that pointer is unavailable.

numba's tanh and exp are scalar libm calls (~15-20 ns each) that stop LLVM from vectorising a
loop, so this module computes them itself (``expm1_pos_``, ``transcend_``): straight-line
arithmetic that vectorises (0.5-3 ns per element in float64, 0.25-1.2 ns in float32, by CPU)
and agrees with NumPy to a few units in the last place (tested over wide grids). float32
arrays are computed in float32 throughout (``transcend32_``, and ``unit`` for the constant 1),
which is 3-4x faster than promoting to float64 and rounding back.

Activation codes (cells.ACTIVATION_CODES): 0 tanh, 1 relu, 2 sigmoid, 3 linear.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._blas import NO_TRANS, ROW_MAJOR, TRANS
from ._jit import KERNEL_FLAGS, avx512, extending, njit

# ---------------------------------------------------------------------------------------------
# vectorisable elementary functions
# ---------------------------------------------------------------------------------------------

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two (Cody & Waite): k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10

# Taylor coefficients of (e^r - 1 - r) / r^2: 1/2!, 1/3!, ..., 1/13! (a tuple: numba folds the
# constant indexing into literals)
_P = tuple(1.0 / float(np.prod(np.arange(1, n + 1, dtype=np.float64))) for n in range(2, 14))

# float32 twins: float32 constants keep the arithmetic in float32 (a float64 constant would
# promote every operation and halve the vector width), with float32-sized approximations.
_f = np.float32
_ONE32, _TWO32, _HALF32 = _f(1.0), _f(2.0), _f(0.5)
_LOG2E32 = _f(_LOG2E)
_LN2_HI32, _LN2_LO32 = _f(0.693359375), _f(-2.12194440e-4)  # Cephes expf's split of ln 2
# Cephes expf: e^r = 1 + r + r^2 E(r) on |r| <= ln2/2
_E0, _E1, _E2 = _f(1.9875691500e-4), _f(1.3981999507e-3), _f(8.3334519073e-3)
_E3, _E4, _E5 = _f(4.1665795894e-2), _f(1.6666665459e-1), _f(5.0000001201e-1)
_CAP_TANH32, _CAP_EXP32 = _f(9.0), _f(88.0)  # tanhf(9) rounds to 1; e^88 < float32 max


def pow2i(k):
    """2^k as a float64, for integral k in [-1022, 1023]: compiled, the bits of the double
    built directly (exponent field k + 1023; no call, vectorises); see _typed_overloads."""
    return np.ldexp(1.0, int(k))


def pow2i32(k):
    """2^k as a float32, for integral k in [-126, 127] (exponent field k + 127)."""
    return np.ldexp(np.float32(1.0), int(k))


def fmadd(a, b, c):
    """a * b + c, compiled as one fused multiply-add where the CPU has one (``llvm.fmuladd``: a
    single rounding, as libm's polynomials are written; a multiply and an add elsewhere) and
    vectorised with the loop around it. An explicit operation in the source, not a fastmath
    licence: nothing else is reassociated or contracted (see _jit.KERNEL_FLAGS)."""
    return a * b + c


@njit(inline="always")
def expm1_pos_(y):
    """e^y - 1 for float64 0 <= y <= 709, without calls and without cancellation near 0:
    y = k ln2 + r with |r| <= ln2/2, e^r - 1 = r + r^2 P(r) with P the Taylor polynomial to
    degree 13 (truncation < 1e-17), then e^y - 1 = 2^k (e^r - 1) + (2^k - 1): exactly the
    polynomial where k = 0 (y < ln2/2), and for k >= 1 a sum whose first term is at most 30%
    of the second and of opposite sign (tested to 5e-16 relative over [0, 709]).

    P is evaluated by Estrin's scheme (pairs, then powers r^2, r^4, r^8): 7 dependent
    operations instead of Horner's 24, so the vectorised loop is no longer waiting on latency
    (1.1-1.5x faster per element on AVX2, same accuracy: the terms fall by 1/n!, |r| < 0.35)."""
    k = np.floor(y * _LOG2E + 0.5)
    r = fmadd(-k, _LN2_LO, fmadd(-k, _LN2_HI, y))
    r2 = r * r
    r4 = r2 * r2
    low = fmadd(fmadd(_P[3], r, _P[2]), r2, fmadd(_P[1], r, _P[0]))  # 1/2! + r/3! + ... + r^3/5!
    mid = fmadd(fmadd(_P[7], r, _P[6]), r2, fmadd(_P[5], r, _P[4]))
    high = fmadd(fmadd(_P[11], r, _P[10]), r2, fmadd(_P[9], r, _P[8]))
    p = fmadd(high, r4 * r4, fmadd(mid, r4, low))
    s = pow2i(k)
    return fmadd(s, fmadd(p, r2, r), s - 1.0)


@njit(inline="always")
def expm1_pos32_(y):
    """expm1_pos_ for float32 0 <= y <= 88, with Cephes expf's degree-7 polynomial."""
    k = np.floor(y * _LOG2E32 + _HALF32)
    r = fmadd(-k, _LN2_LO32, fmadd(-k, _LN2_HI32, y))
    r2 = r * r
    p = fmadd(fmadd(_E0, r, _E1), r2 * r2, fmadd(fmadd(_E2, r, _E3), r2, fmadd(_E4, r, _E5)))  # Estrin
    s = pow2i32(k)
    return fmadd(s, fmadd(p, r2, r), s - _ONE32)


@njit
def transcend64_(row, code):
    """row <- tanh(row) (code 0) or sigmoid(row) (code 2) in place, row 1-D contiguous float64.

    One loop body serves both, so the polynomial is expanded in one place (compile time), and
    it is straight-line arithmetic, selects and a single division, so it vectorises. With
    e = e^y - 1 (no cancellation for small y) and q = 1 / (e + 2):
      tanh:    y = 2|x|: tanh|x| = e q, the sign of x put back;
      sigmoid: y = |x|: 1 - q for x >= 0 and q below (the stable split of cells.sigmoid:
               no overflow, no cancellation).
    """
    is_tanh = code == 0
    for j in range(row.size):
        x = row[j]
        ax = abs(x)
        cap = 19.5 if is_tanh else 708.0  # tanh is +-1 beyond 19.5
        y = ax if ax < cap else cap  # a NaN x gives the cap: finite k and no poison in pow2i
        e = expm1_pos_(2.0 * y if is_tanh else y)
        q = 1.0 / (e + 2.0)
        th = e * q
        th = th if x >= 0 else -th
        sg = 1.0 - q if x >= 0 else q  # (e + 1) / (e + 2), and exactly 1 once q < ulp/2
        out = th if is_tanh else sg
        row[j] = out if x == x else x + x  # NaN in, NaN out (x + x, not x: no masked store)


@njit
def transcend32_(row, code):
    """transcend64_ for float32 rows, in float32 throughout (about 4x faster than computing in
    float64 and rounding): within 3 units in the last place of the exact values, tested."""
    is_tanh = code == 0
    for j in range(row.size):
        x = row[j]
        ax = abs(x)
        cap = _CAP_TANH32 if is_tanh else _CAP_EXP32
        y = ax if ax < cap else cap
        e = expm1_pos32_(_TWO32 * y if is_tanh else y)
        q = _ONE32 / (e + _TWO32)
        th = e * q
        th = th if x >= 0 else -th
        sg = _ONE32 - q if x >= 0 else q
        out = th if is_tanh else sg
        row[j] = out if x == x else x + x


def transcend_(row, code):
    """tanh (code 0) or sigmoid (code 2) in place on a 1-D contiguous row, in the row's own
    precision: transcend32_ for float32, transcend64_ for float64 (chosen when numba types the
    call, see _typed_overloads; this body runs only with NUMBA_DISABLE_JIT=1)."""
    (transcend32_ if row.dtype == np.float32 else transcend64_)(row, code)


def unit(a):
    """1 in a's dtype, so that ``unit - x`` stays float32 for float32 arrays (an integer or
    float64 literal would promote the arithmetic to float64)."""
    return a.dtype.type(1)


_OVERLOAD_FLAGS: Any = {k: v for k, v in KERNEL_FLAGS.items() if k != "cache"}  # no cache option


def _fmuladd(ir: Any, builder: Any, ty: Any) -> Any:
    """LLVM's ``llvm.fmuladd`` for values of type ``ty`` (a float or a vector of floats),
    declared once in the module being built: a fused multiply-add where the CPU has one."""
    kind = f"v{ty.count}{ty.element.intrinsic_name}" if isinstance(ty, ir.VectorType) else ty.intrinsic_name
    name = f"llvm.fmuladd.{kind}"
    return builder.module.globals.get(name) or ir.Function(
        builder.module, ir.FunctionType(ty, [ty] * 3), name
    )


def _typed_overloads() -> None:
    """The compiled versions of transcend_, unit, fmadd, pow2i and pow2i32 (their Python bodies
    above are what NUMBA_DISABLE_JIT=1 runs)."""
    ext = extending()
    ir, types, intrinsic, overload, as_dtype = ext.ir, ext.types, ext.intrinsic, ext.overload, ext.as_dtype

    @overload(transcend_, jit_options=_OVERLOAD_FLAGS)
    def _transcend(row, code):
        if row.dtype == types.float32:
            return lambda row, code: transcend32_(row, code)
        return lambda row, code: transcend64_(row, code)

    @overload(unit, inline="always", jit_options=_OVERLOAD_FLAGS)
    def _unit(a):
        scalar = as_dtype(a.dtype).type
        return lambda a: scalar(1)

    def exponent_bits(result, float_type, bits, mantissa, bias):
        """2^k from an integral float k: (int(k) + bias) << mantissa, read as a float. k
        goes through a 32-bit integer (|k| < 1100), widened after: AVX2 converts vectors of
        doubles to 32-bit integers but not to 64-bit ones, which LLVM did one lane at a time
        (float64 tanh/sigmoid 1.3x slower)."""

        @intrinsic
        def build(typingctx, k):
            def codegen(context, builder, signature, args):
                n = builder.fptosi(args[0], ir.IntType(32))  # k is finite: callers cap y
                if bits != 32:
                    n = builder.sext(n, ir.IntType(bits))
                n = builder.add(n, ir.Constant(ir.IntType(bits), bias))
                return builder.bitcast(builder.shl(n, ir.Constant(ir.IntType(bits), mantissa)), float_type)

            return result(k), codegen

        return build

    bits64 = exponent_bits(types.float64, ir.DoubleType(), 64, 52, 1023)
    bits32 = exponent_bits(types.float32, ir.FloatType(), 32, 23, 127)

    @intrinsic
    def fused(typingctx, a, b, c):
        float_type = max(a, b, c, key=lambda t: t.bitwidth)  # float32 only when all three are

        def codegen(context, builder, signature, args):
            fmuladd = _fmuladd(ir, builder, context.get_value_type(float_type))
            return builder.call(fmuladd, list(args))

        return float_type(float_type, float_type, float_type), codegen

    @overload(fmadd, inline="always", jit_options=_OVERLOAD_FLAGS)
    def _fmadd(a, b, c):
        if all(isinstance(t, types.Float) for t in (a, b, c)):
            return lambda a, b, c: fused(a, b, c)
        return None

    @overload(pow2i, inline="always", jit_options=_OVERLOAD_FLAGS)
    def _pow2i(k):
        return lambda k: bits64(k)

    @overload(pow2i32, inline="always", jit_options=_OVERLOAD_FLAGS)
    def _pow2i32(k):
        return lambda k: bits32(k)


_typed_overloads()


# The elementwise kernels walk their (B, N) arrays row by row rather than through a flat view:
# numba's reshape is compiled code of numba.np.arrayobj's, which a kernel loaded from the cache
# then imports (with numba's string support, ~25 ms of a ~0.3 s warm start).


@njit
def activate_inplace(a, code):
    """a <- f(a) elementwise, a (B, N) C-contiguous (the rows of one time step)."""
    if code == 0 or code == 2:
        for r in range(a.shape[0]):
            transcend_(a[r], code)
    elif code == 1:
        zero = unit(a) - unit(a)
        for r in range(a.shape[0]):
            for i in range(a.shape[1]):
                # +0 below, in a's dtype; "+ zero" (not folded away: -0 + 0 is +0) makes it a
                # new value, so LLVM stores it instead of masking the store: 2-3x faster
                v = a[r, i]
                a[r, i] = (v if v > 0 else v - v) + zero


@njit
def backprop_activation(g, h, code, out):
    """out <- g * f'(a), with f'(a) written through h = f(a) (cells.activation_derivative)."""
    u1 = unit(g)
    B, n = g.shape
    for r in range(B):
        gf, hf, of = g[r], h[r], out[r]
        if code == 0:
            for i in range(n):
                of[i] = gf[i] * (u1 - hf[i] * hf[i])
        elif code == 1:
            for i in range(n):
                g_i = gf[i]  # read whatever the sign, so the loop needs no masked loads
                of[i] = g_i if hf[i] > 0 else u1 - u1
        elif code == 2:
            for i in range(n):
                of[i] = gf[i] * (hf[i] * (u1 - hf[i]))
        else:
            for i in range(n):
                of[i] = gf[i]


@njit
def matmul_acc(A, M, out):
    """out (B, N) += A (B, K) @ R as axpy loops, M = R (K, N) C-contiguous and flattened (K * N,):
    rows of R scaled into rows of out, a row at a time, four rows of R per pass over it. The
    inner loop runs over contiguous memory with no reduction, so LLVM vectorises it. R comes
    flat, as the tiles' packed operand does, so that a time loop compiles once for both
    products (product_); a reshape inside would make the cached code import numba's array
    module.

    For one to three rows (the tiles take four and more, see functional._time_loop), and for
    the small steps of any number of rows where the tiles are switched off. It had a
    path for blocks of four rows of A (each load of R serving four rows of out): the narrow
    steps of 4-11 rows it ran take 0.9-1.15x its time on the tiles (forward + BPTT, H = 16-32),
    and its vectorised loops, re-optimised in every time loop that inlines them, were 1.3 s of
    a cell's 9.6 s compile at a cold start (AMD EPYC Zen 3).
    """
    B, K = A.shape
    N = out.shape[1]
    K4 = K - K % 4
    for b in range(B):
        row = out[b]
        a = A[b]
        for k in range(0, K4, 4):
            s0, s1, s2, s3 = a[k], a[k + 1], a[k + 2], a[k + 3]
            m0, m1, m2, m3 = k * N, (k + 1) * N, (k + 2) * N, (k + 3) * N
            for n in range(N):
                row[n] += (s0 * M[m0 + n] + s1 * M[m1 + n]) + (s2 * M[m2 + n] + s3 * M[m3 + n])
        for k in range(K4, K):
            s = a[k]
            mk = k * N
            for n in range(N):
                row[n] += s * M[mk + n]


# A register-tiled product for the recurrence: out (B, N) += A (B, K) @ R with R packed once per
# call (pack_panels) into panels of TILE_VECTORS * lanes columns, each stored (K, width) so that
# a tile walks it front to back. A tile keeps TILE_ROWS x TILE_VECTORS output vectors in
# registers over its whole run of k (4 x 3: 12 of AVX2's 16; tiles of two rows and of one take the
# rows left over), reads one broadcast of A per row and one
# vector of R per column vector per k, and writes its outputs once. OpenBLAS packs R anew on
# every call, which is most of a small product's time: this ran 1.2-2x faster than its one-thread
# GEMM at the per-step shapes (B = 8-64 rows, K and N = 128-2048) and 1.3-2x faster than
# matmul_acc's axpy loops (Zen 3). Vectors are 512-bit where numba compiles for AVX-512, else
# 256-bit: lanes = VECTOR_BYTES / itemsize. On AMD EPYC Zen 5 the 512-bit tiles ran at 100-120
# GFLOP/s a core in float64 and 220-240 in float32, 1.8-2x the 256-bit ones and 2-4x OpenBLAS's
# one-thread GEMM with its Haswell kernels (the environment's OPENBLAS_CORETYPE). There tiles
# of 4 x 4 vectors (16 of AVX-512's 32 registers) and of 4 x 3, 6 x 4 and 8 x 3 ran within 5% of
# each other on one product (B = 16-128, K = 128-512, N = 256-2048), but 4 x 4's panels of 64
# floats / 32 doubles divide the widths of power-of-two layers (4 x 3's 48 / 24 leave a
# remainder to one-vector panels, whose 4 accumulators wait on each other: a quarter of the
# work at N = 128): forward + BPTT 6-17% faster at (200, 64, 128, 256), (50, 128, 512, 512)
# and (100, 32, 32, 128). Two vectors left over (N = 256 in float32 with 256-bit vectors: 10
# panels of 3 and 2) go to one panel of two, whose 4 x 2 tiles keep 8 accumulators: that
# product of 32 rows, K = 256, ran 4-8% faster (one core, interleaved A/B, Zen 3; the 16 last
# columns had taken twice their share of the time), forward + BPTT at (200, 64, 128, 256) in
# float32 1-3% (it compiles in 0.4-0.9 s more: one kind of tile and its block more).
TILE_ROWS, TILE_VECTORS = 4, (4 if avx512() else 3)
VECTOR_BYTES = 64 if avx512() else 32
# Each tile runs over at most this many k, so that a panel's slice stays in L1 (24 KB f32 and
# 12 KB f64 with 256-bit vectors, twice that with 512-bit ones, beside the rows of A) while the
# tiles of one panel pass over it; the output is accumulated across chunks. (Zen 5, 48 KB L1:
# chunks of 512 and 256 were within 5%.)
K_CHUNK32, K_CHUNK64 = 256, 128
# tiles_gemm's rows a block: A's rows over a chunk of k (256 x 256 x 4 bytes in float32) stay in
# L2 while every panel passes over them.
TILE_BLOCK_ROWS = 256
PACK_ROWS = 16  # pack_rows_'s rows at a time


@njit(inline="always")
def k_chunk(a):
    """The k a tile runs over at most for a's float type (K_CHUNK32 / K_CHUNK64)."""
    return K_CHUNK32 if a.itemsize == 4 else K_CHUNK64


@njit(inline="always")
def lanes(a):
    """The number of a's elements in a vector of VECTOR_BYTES (256-bit: 8 float32, 4 float64;
    512-bit: 16 and 8)."""
    return VECTOR_BYTES // a.itemsize


def tile_(rows, vectors, C, c, ldc, A, a, sa, ka, P, p, ldp, K, load):
    """One tile: C[c + r ldc + n] = C[c + r ldc + n] (0 where ``load`` is false) + sum_k
    A[a + r sa + k ka] P[p + k ldp + n] for r < rows, n < w, k < K, with C, A, P addressed flat
    (C C-contiguous) and w = vectors * lanes. This Python body is what NUMBA_DISABLE_JIT=1
    runs; compiled, rows and vectors are literal and pick the LLVM IR tile built for them (see
    _tile_overloads). A vector at a time, as a product one vector wide, so that NumPy sums each
    element alike whatever the width of the tile computing it (as the compiled tiles do)."""
    C, A, P = C.reshape(-1), A.reshape(-1), P.reshape(-1)
    L = lanes(C)
    k = np.arange(K)
    for v in range(vectors):
        panel = P[p + v * L + k[:, None] * ldp + np.arange(L)]
        for r in range(rows):
            row = C[c + r * ldc + v * L : c + r * ldc + (v + 1) * L]
            row[...] = (row if load else 0) + A[a + r * sa + k * ka] @ panel


def pack_panels(R, P=None, K=None, k0=0):
    """R (K, N), any layout, packed for tiles_acc: a flat (K * N,) array holding, left to right,
    panels of TILE_VECTORS * lanes columns, then (where two vectors or more are left) one of
    2 lanes columns, then of lanes columns, then the last N % lanes columns, each panel stored
    (K, width) at offset (first column) * K.

    With P (a flat array of at least K * N elements) and K given, R's rows are written into P
    as rows k0 .. k0 + len(R) of such a packing of K rows (a matrix packed in parts, in a
    buffer kept across calls)."""
    rows, N = R.shape
    K = rows if K is None else K
    L = VECTOR_BYTES // R.itemsize  # lanes(R), without a compiled call from Python
    W = TILE_VECTORS * L
    P = np.empty(K * N, dtype=R.dtype) if P is None else P[: K * N]
    N3, N1 = N - N % W, N - N % L
    N2 = N3 + 2 * L if N1 - N3 >= 2 * L else N3
    at = slice(k0, k0 + rows)
    P[: N3 * K].reshape(N3 // W, K, W)[:, at] = R[:, :N3].reshape(rows, N3 // W, W).transpose(1, 0, 2)
    P[N3 * K : N2 * K].reshape(K, N2 - N3)[at] = R[:, N3:N2]
    V = (N1 - N2) // L
    P[N2 * K : N1 * K].reshape(V, K, L)[:, at] = R[:, N2:N1].reshape(rows, V, L).transpose(1, 0, 2)
    P[N1 * K :].reshape(K, N - N1)[at] = R[:, N1:]
    return P


@njit(inline="always")
def pack_rows_(A, a, sa, ka, kc, M, work):
    """A's M rows over kc k (A[m, k] = A[a + m sa + k ka]) into work, for tiles that read it
    in order: rows in groups of TILE_ROWS, a group's k after k and each k's TILE_ROWS values
    side by side (group g at g TILE_ROWS kc), then the last M % TILE_ROWS rows likewise.

    Where A's rows are side by side (sa = 1: A is a transposed array) it walks a cache line's
    worth of rows (PACK_ROWS) down all k at a time: one line read per k, TILE_ROWS-value
    stores in order into PACK_ROWS / TILE_ROWS groups (k outer over all rows: 1.6-2 ns an
    element, the stores TILE_ROWS kc apart, a page apart, at every k)."""
    M4 = M - M % TILE_ROWS
    rest = M - M4
    if sa == 1:
        for g0 in range(0, M4, PACK_ROWS):
            g1 = min(g0 + PACK_ROWS, M4)
            for k in range(kc):
                src = a + k * ka
                for g in range(g0, g1, TILE_ROWS):
                    dst = g * kc + k * TILE_ROWS
                    for r in range(TILE_ROWS):
                        work[dst + r] = element(A, src + g + r)
    else:
        for g in range(0, M4, TILE_ROWS):
            for k in range(kc):
                src, dst = a + k * ka, g * kc + k * TILE_ROWS
                for r in range(TILE_ROWS):
                    work[dst + r] = element(A, src + (g + r) * sa)
    for k in range(kc):
        for r in range(rest):
            work[M4 * kc + k * rest + r] = element(A, a + k * ka + (M4 + r) * sa)


@njit(inline="always")
def block_(vectors, narrow, C, c, ldc, A, a, sa, ka, P, p, ldp, kc, M, load, work, packed):
    """Rows 0..M of one panel (``vectors`` vectors wide) over kc k, reading A where it is, or
    (``packed``) from work as pack_rows_ left it: in tiles of TILE_ROWS rows, then the rest (a
    tile of two rows, one of one, or both; tile_'s arguments, each tile's rows further on), in
    tiles ``narrow`` vectors wide side by side (the two-vector panel's: no kinds of tile of two
    rows or one row that wide to compile).
    Where A comes from is chosen as it runs (A and work are both flat arrays in tiles_gemm), so
    that each kind of tile is inlined once: LLVM's time goes mostly to the tiles (compiled
    apart for the two sources, tiles_gemm took 1.6 s at a cold start)."""
    M4 = M - M % TILE_ROWS
    rest = M - M4
    if packed:  # a group of rows at m kc, its rows side by side; the rest at M4 kc, k rest apart
        src, a0, step, s, k_, r0, rs, rk = work, 0, kc, 1, TILE_ROWS, M4 * kc, 1, rest
    else:
        src, a0, step, s, k_, r0, rs, rk = A, a, sa, sa, ka, a + M4 * sa, sa, ka
    for m in range(0, M4, TILE_ROWS):
        tile_(TILE_ROWS, vectors, C, c + m * ldc, ldc, src, a0 + m * step, s, k_, P, p, ldp, kc, load)
    L = lanes(C)
    for v in range(0, vectors, narrow):
        o = v * L
        if rest >= 2:
            tile_(2, narrow, C, c + M4 * ldc + o, ldc, src, r0, rs, rk, P, p + o, ldp, kc, load)
        if rest % 2 == 1:
            r1 = r0 + (rest - 1) * rs
            tile_(1, narrow, C, c + (M - 1) * ldc + o, ldc, src, r1, rs, rk, P, p + o, ldp, kc, load)


@njit
def tiles_gemm(A, a, sa, ka, P, ldp, C, c, ldc, M, N, K, load, work):
    """C[m, n] = C[m, n] (0 where ``load`` is false) + sum_k A[m, k] R[k, n] for m < M, n < N,
    with A[m, k] = A[a + m sa + k ka] (any strides: A or A^T of a C-contiguous array), C[m, n] =
    C[c + m ldc + n] and R (K, N) either packed (pack_panels, ldp = 0) or a C-contiguous
    R[k, n] = P[k ldp + n], all addressed flat. A ``work`` array of min(M, TILE_BLOCK_ROWS) x
    min(K, K_CHUNK) elements (empty: none) asks for each block of A to be copied there first
    (pack_rows_): for A read across its rows (A^T), whose elements a tile would otherwise take
    from a new cache line at every k.

    Compiled once per float type, for flat arrays: every other kernel calls it through its C
    entry (call_tiles), so that its tiles are compiled once, not again inside each caller (numba
    links a callee's code into every caller and LLVM optimises and compiles it there anew).

    In blocks of TILE_BLOCK_ROWS rows, so that a block's rows of A over a chunk of k stay in L2
    while every panel passes over them; then by chunks of k (a panel's slice stays in L1), then
    panel by panel. Every output element is one chain of fused multiply-adds over k in order,
    whatever tile computes it: a row's result does not depend on the rows beside it (blocks of
    rows give the numbers one loop gives)."""
    L = lanes(C)
    W = TILE_VECTORS * L
    N3, N1 = N - N % W, N - N % L
    N2 = N3 + 2 * L if N1 - N3 >= 2 * L else N3  # one panel of two vectors (see pack_panels)
    step = k_chunk(C)
    packed = work.size > 0
    for m0 in range(0, M, TILE_BLOCK_ROWS):
        mb = min(TILE_BLOCK_ROWS, M - m0)
        cm, am = c + m0 * ldc, a + m0 * sa
        for k0 in range(0, K, step):
            kc = min(step, K - k0)
            more = load or k0 > 0
            ak = am + k0 * ka
            if packed:
                pack_rows_(A, ak, sa, ka, kc, mb, work)
            for j in range(0, N3, W):  # packed: panel j at j K, (K, W) row-major
                p, ld = (j * K + k0 * W, W) if ldp == 0 else (j + k0 * ldp, ldp)
                block_(
                    TILE_VECTORS,
                    TILE_VECTORS,
                    C,
                    cm + j,
                    ldc,
                    A,
                    ak,
                    sa,
                    ka,
                    P,
                    p,
                    ld,
                    kc,
                    mb,
                    more,
                    work,
                    packed,
                )
            for j in range(N3, N2, 2 * L):  # two vectors: 8 accumulators a tile, not 4 twice
                p, ld = (j * K + k0 * 2 * L, 2 * L) if ldp == 0 else (j + k0 * ldp, ldp)
                block_(2, 1, C, cm + j, ldc, A, ak, sa, ka, P, p, ld, kc, mb, more, work, packed)
            for j in range(N2, N1, L):
                p, ld = (j * K + k0 * L, L) if ldp == 0 else (j + k0 * ldp, ldp)
                block_(1, 1, C, cm + j, ldc, A, ak, sa, ka, P, p, ld, kc, mb, more, work, packed)
            w = N - N1  # the last N % lanes columns: a sum per element (an in-order reduction,
            p, ld = (N1 * K, w) if ldp == 0 else (N1, ldp)  # which LLVM leaves scalar: a
            for m in range(mb):  # quarter second less to compile)
                for n in range(w):
                    o = cm + m * ldc + N1 + n
                    s = element(C, o) if more else unit(C) - unit(C)
                    for k in range(k0, k0 + kc):
                        s += element(A, am + m * sa + k * ka) * element(P, p + k * ld + n)
                    set_element(C, o, s)


_TILES_ENTRIES: dict[str, int] = {}


def _tiles_signature(types: Any, float_type: Any) -> tuple:
    """tiles_gemm's argument types as its C entry is compiled and called (tiles_entry, call_tiles):
    flat C-contiguous arrays of ``float_type``, 64-bit integers, ``load`` a boolean."""
    flat, i64 = types.Array(float_type, 1, "C"), types.int64
    return (flat, i64, i64, i64, flat, i64, flat, i64, i64, i64, i64, i64, types.boolean, flat)


def tiles_entry(dtype: Any) -> int:
    """The address of tiles_gemm's C entry compiled for flat arrays of ``dtype`` (compiled, or
    loaded from numba's cache, on first use), for call_tiles; 1 where numba's JIT is off (the
    Python call_tiles ignores it); 0 where numba offers no such entry (the callers then take
    another product: functional._time_loop, whole_tiles)."""
    key = np.dtype(dtype).char
    found = _TILES_ENTRIES.get(key)
    if found is None:
        if not hasattr(tiles_gemm, "overloads"):  # NUMBA_DISABLE_JIT=1: plain Python
            return 1
        types = extending().types
        sig = _tiles_signature(types, types.float32 if key == "f" else types.float64)
        tiles_gemm.compile(sig)
        try:  # numba's C entry of a compiled function, as _native.py finds it
            cres = tiles_gemm.overloads[sig]
            found = int(cres.library.get_pointer_to_function(cres.fndesc.llvm_cfunc_wrapper_name) or 0)
        except Exception:
            found = 0
        _TILES_ENTRIES[key] = found
    return found


def call_tiles(tiles, A, a, sa, ka, P, ldp, C, c, ldc, M, N, K, load, work):
    """tiles_gemm(A, a, sa, ka, P, ldp, C, c, ldc, M, N, K, load, work) through the C entry at
    address ``tiles`` (tiles_entry of their float type), A, P, C and work (None: none) passed
    as flat views of their memory (A, P and C C-contiguous, any dimensions). Compiled, it is
    one indirect call (an intrinsic, _tile_overloads), with none of tiles_gemm's code in the
    caller; here, a Python call."""
    work = np.empty(0, dtype=C.dtype) if work is None else work
    tiles_gemm(A.reshape(-1), a, sa, ka, P.reshape(-1), ldp, C.reshape(-1), c, ldc, M, N, K, load, work)


@njit
def tiles_rows(tiles, A, a, sa, ka, P, ldp, C, c, ldc, N, K, load, b0, b1):
    """tiles_gemm (at address ``tiles``) on rows b0..b1 of A and C (A read where it is): a block
    of rows for _threads.by_rows."""
    call_tiles(tiles, A, a + b0 * sa, sa, ka, P, ldp, C, c + b0 * ldc, ldc, b1 - b0, N, K, load, None)


@njit
def tiles_rows_packed(tiles, A, a, sa, ka, P, ldp, C, c, ldc, N, K, load, b0, b1):
    """tiles_rows with A packed block by block into a work array of its own (tiles_gemm's
    work): for A read across its rows."""
    M = b1 - b0
    work = np.empty(min(TILE_BLOCK_ROWS, M) * min(k_chunk(C), K), dtype=C.dtype)
    call_tiles(tiles, A, a + b0 * sa, sa, ka, P, ldp, C, c + b0 * ldc, ldc, M, N, K, load, work)


def tiles_acc(A, P, out):
    """out (B, N) += A (B, K) @ R, A and out C-contiguous, P = pack_panels(R): the time loops'
    tiled product (product_), called from Python."""
    B, K = A.shape
    N = out.shape[1]
    tiles_rows(tiles_entry(out.dtype), A, 0, K, 1, P, 0, out, 0, N, N, K, True, 0, B)


def product_(gemm, tiles, A, M, out):
    """out (B, N) += A (B, K) @ R, A and out C-contiguous. M 1-D: R packed for the tiles
    (pack_panels) where ``tiles`` (tiles_entry's address) is not 0, else R (K, N) flattened for
    the hand-written matmul_acc, a choice made as it runs, so that a time loop compiles once
    for both (~1 s a time loop at a cold start). M 2-D: NumPy's BLAS (product2_), chosen when
    numba types the call (see _tile_overloads)."""
    if M.ndim == 2:
        product2_(gemm, A, M, out)
    else:
        product1_(tiles, A, M, out)


@njit(inline="always")
def product1_(tiles, A, M, out):
    """product_ with M 1-D: the tiles (at address ``tiles``) on R packed, or with tiles 0 the
    hand-written product on R flattened."""
    if tiles != 0:
        B, K = A.shape
        N = out.shape[1]
        call_tiles(tiles, A, 0, K, 1, M, 0, out, 0, N, B, N, K, True, None)
    else:
        matmul_acc(A, M, out)


@njit
def product2_(gemm, A, M, out):
    """out (B, N) += A (B, K) @ R, all C-contiguous, with NumPy's cblas_?gemm (a ctypes pointer
    from _blas.py) and M holding R as it wants it: R transposed (N, K), passed as a transposed
    operand (OpenBLAS ran these per-step shapes 10-30% faster that way in float64, B = 16-128,
    in the scan, same run, and level in float32); or, where K != N and M is (K, N), R itself,
    untransposed (the float32 gated backward, functional.Recurrence.operand). It always
    accumulates (callers that overwrite zero ``out`` first, a B x N pass beside a B x N x K
    product): a literal True/False flag would make numba compile a second copy of it and of the
    time loops (~1 s each at a cold start, and a second entry to load from the cache)."""
    B, K = A.shape
    N = out.shape[1]
    a, m, o = A.ctypes.data, M.ctypes.data, out.ctypes.data
    if K != N and M.shape[0] == K:  # R itself (K, N): see functional.Recurrence.operand
        gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, B, N, K, 1.0, a, K, m, N, 1.0, o, N)
    else:
        gemm(ROW_MAJOR, NO_TRANS, TRANS, B, N, K, 1.0, a, K, m, K, 1.0, o, N)


def _tile_overloads() -> None:
    """The compiled tiles (LLVM IR with explicit VECTOR_BYTES-wide vectors: LLVM's vectorisers
    did not keep a tile's accumulators in registers from numba loops, 5 GFLOP/s), call_tiles'
    indirect call of tiles_gemm's C entry, and product_'s dispatch. A tile is straight-line IR
    around one loop over k: load the outputs, then per k one vector load of the panel per column
    vector and one broadcast of A per row, each pair met by ``llvm.fmuladd`` (a fused
    multiply-add where the CPU has one, as OpenBLAS computes; a multiply and an add elsewhere),
    then store the outputs."""
    ext = extending()
    ir, types, intrinsic, overload = ext.ir, ext.types, ext.intrinsic, ext.overload
    i64 = ir.IntType(64)

    def build(rows, vectors):
        @intrinsic
        def tile(typingctx, C, c, ldc, A, a, sa, ka, P, p, ldp, K, load):
            if not (C.dtype == A.dtype == P.dtype and C.dtype in (types.float32, types.float64)):
                return None  # a typing error: the IR reads all three as one float type

            def codegen(context, builder, signature, args):
                fty = context.get_value_type(signature.args[0].dtype)
                itemsize = 4 if signature.args[0].dtype == types.float32 else 8
                L = VECTOR_BYTES // itemsize
                vty = ir.VectorType(fty, L)
                align = itemsize
                fmuladd = _fmuladd(ir, builder, vty)

                def base(i):
                    return context.make_array(signature.args[i])(context, builder, args[i]).data

                def integer(i):
                    return context.cast(builder, args[i], signature.args[i], types.int64)

                cp = builder.gep(base(0), [integer(1)])
                ap = builder.gep(base(3), [integer(4)])
                pp = builder.gep(base(7), [integer(8)])
                ldc_, sa_, ka_, ldp_, K_ = integer(2), integer(5), integer(6), integer(9), integer(10)
                load = builder.icmp_unsigned("!=", args[11], ir.Constant(args[11].type, 0))

                def at(ptr, offset):
                    return builder.bitcast(builder.gep(ptr, [offset]), vty.as_pointer())

                def out_at(r, v):
                    return at(
                        cp, builder.add(builder.mul(ldc_, ir.Constant(i64, r)), ir.Constant(i64, v * L))
                    )

                zeros = ir.Constant(vty, [0.0] * L)
                first = [  # beta = 0: the old outputs (uninitialised memory, say) never reach a sum
                    builder.select(load, builder.load(out_at(r, v), align=align), zeros)
                    for r in range(rows)
                    for v in range(vectors)
                ]
                entry = builder.block
                loop = builder.append_basic_block("tile.k")
                done = builder.append_basic_block("tile.done")
                builder.cbranch(builder.icmp_signed(">", K_, ir.Constant(i64, 0)), loop, done)

                builder.position_at_end(loop)
                k = builder.phi(i64)
                k.add_incoming(ir.Constant(i64, 0), entry)
                acc = []
                for value in first:
                    phi = builder.phi(vty)
                    phi.add_incoming(value, entry)
                    acc.append(phi)
                row = builder.mul(k, ldp_)
                panel = [
                    builder.load(at(pp, builder.add(row, ir.Constant(i64, v * L))), align=align)
                    for v in range(vectors)
                ]
                undef = ir.Constant(vty, ir.Undefined)
                splat = ir.Constant(ir.VectorType(ir.IntType(32), L), [0] * L)
                new = []
                for r in range(rows):
                    offset = builder.add(builder.mul(sa_, ir.Constant(i64, r)), builder.mul(k, ka_))
                    s = builder.load(builder.gep(ap, [offset]))
                    s = builder.shuffle_vector(
                        builder.insert_element(undef, s, ir.Constant(ir.IntType(32), 0)), undef, splat
                    )
                    new += [
                        builder.call(fmuladd, [s, panel[v], acc[r * vectors + v]]) for v in range(vectors)
                    ]
                k_next = builder.add(k, ir.Constant(i64, 1))
                k.add_incoming(k_next, loop)
                for phi, value in zip(acc, new, strict=True):
                    phi.add_incoming(value, loop)
                builder.cbranch(builder.icmp_signed("<", k_next, K_), loop, done)

                builder.position_at_end(done)
                last = []
                for value0, value in zip(first, new, strict=True):
                    last.append(builder.phi(vty))
                    last[-1].add_incoming(value0, entry)
                    last[-1].add_incoming(value, loop)
                for i, value in enumerate(last):
                    builder.store(value, out_at(i // vectors, i % vectors), align=align)
                return context.get_dummy_value()

            return types.void(C, c, ldc, A, a, sa, ka, P, p, ldp, K, load), codegen

        return tile

    tiles = {(r, v): build(r, v) for r in (TILE_ROWS, 2, 1) for v in (TILE_VECTORS, 1)}
    tiles[TILE_ROWS, 2] = build(TILE_ROWS, 2)  # the two-vector panel's (block_'s ``narrow``)

    @overload(tile_, prefer_literal=True, inline="always", jit_options=_OVERLOAD_FLAGS)
    def _tile(rows, vectors, C, c, ldc, A, a, sa, ka, P, p, ldp, K, load):
        literal = types.IntegerLiteral
        if not (isinstance(rows, literal) and isinstance(vectors, literal)):
            return None  # rows and vectors must be constants where a tile is called
        compiled = tiles[rows.literal_value, vectors.literal_value]
        return lambda rows, vectors, C, c, ldc, A, a, sa, ka, P, p, ldp, K, load: compiled(
            C, c, ldc, A, a, sa, ka, P, p, ldp, K, load
        )

    @intrinsic
    def tiles_call(typingctx, tiles, A, a, sa, ka, P, ldp, C, c, ldc, M, N, K, load, work):
        arrays = (A, P, C) if isinstance(work, types.NoneType) else (A, P, C, work)
        if not all(isinstance(t, types.Array) and t.dtype == C.dtype for t in arrays):
            return None
        if C.dtype not in (types.float32, types.float64):
            return None
        callee = _tiles_signature(types, C.dtype)
        flat = callee[0]

        def codegen(context, builder, signature, args):
            itemsize = context.get_constant(types.intp, 4 if C.dtype == types.float32 else 8)

            def view(ty, value):  # a flat view of value's memory, with no owner to count
                out = context.make_array(flat)(context, builder)
                if isinstance(ty, types.NoneType):
                    data = ir.Constant(out.data.type, None)
                    n = context.get_constant(types.intp, 0)
                else:
                    array = context.make_array(ty)(context, builder, value)
                    data, n = array.data, array.nitems
                out.meminfo = ir.Constant(out.meminfo.type, None)
                out.parent = ir.Constant(out.parent.type, None)
                out.nitems, out.itemsize, out.data = n, itemsize, data
                out.shape = context.make_tuple(builder, types.UniTuple(types.intp, 1), [n])
                out.strides = context.make_tuple(builder, types.UniTuple(types.intp, 1), [itemsize])
                return out._getvalue()

            values = [
                view(ty, value) if isinstance(to, types.Array) else context.cast(builder, value, ty, to)
                for ty, to, value in zip(signature.args[1:], callee, args[1:], strict=True)
            ]
            fnty = ir.FunctionType(
                context.get_value_type(types.none), [context.get_value_type(t) for t in callee]
            )
            where = context.cast(builder, args[0], signature.args[0], types.int64)
            builder.call(builder.inttoptr(where, fnty.as_pointer()), values)
            return context.get_dummy_value()

        return types.void(tiles, A, a, sa, ka, P, ldp, C, c, ldc, M, N, K, load, work), codegen

    @overload(call_tiles, inline="always", jit_options=_OVERLOAD_FLAGS)
    def _call_tiles(tiles, A, a, sa, ka, P, ldp, C, c, ldc, M, N, K, load, work):
        return lambda tiles, A, a, sa, ka, P, ldp, C, c, ldc, M, N, K, load, work: tiles_call(
            tiles, A, a, sa, ka, P, ldp, C, c, ldc, M, N, K, load, work
        )

    @overload(product_, jit_options=_OVERLOAD_FLAGS)
    def _product(gemm, tiles, A, M, out):
        if M.ndim == 2:
            return lambda gemm, tiles, A, M, out: product2_(gemm, A, M, out)

        return lambda gemm, tiles, A, M, out: product1_(tiles, A, M, out)


_tile_overloads()


@njit
def zero(a):
    """a (B, N) <- 0."""
    for r in range(a.shape[0]):
        for i in range(a.shape[1]):
            a[r, i] = 0


@njit
def add_bias(a, b):
    """a (B, N) += b (N,) on every row; b empty: no bias, nothing to do. The forward scans add
    the input-side bias step by step, to a step's pre-activations while they are in cache: the
    projection's GEMM then writes its output (beta = 0) instead of adding to an array first
    filled with the bias, a pass over the (T, B, G*H) gates fewer (2-8 ms at (200, 64, 128,
    256)). Before the product, this pass was the step's first read of them from memory, and
    cost what the fill saved."""
    if b.size > 0:
        for r in range(a.shape[0]):
            for j in range(b.size):
                a[r, j] += b[j]


# ---------------------------------------------------------------------------------------------
# vanilla cell
# ---------------------------------------------------------------------------------------------


@njit
def rnn_backward_step(dhs_t, carry, h_t, code, da_t, dh_total_t, keep_dh):
    """g = dhs_t + carry (kept in dh_total_t if asked), da_t = g f'(a_t), in one pass."""
    B, H = carry.shape
    if keep_dh:
        for r in range(B):
            for i in range(H):
                dh_total_t[r, i] = dhs_t[r, i] + carry[r, i]
        backprop_activation(dh_total_t, h_t, code, da_t)
    else:
        for r in range(B):  # the carry buffer holds g_t until the product overwrites it
            for i in range(H):
                carry[r, i] += dhs_t[r, i]
        backprop_activation(carry, h_t, code, da_t)


@njit
def rnn_forward_scan(gemm, tiles, hs, Wr, h0, b, code, b0, b1):
    """In place over the time loop: hs[t] <- f(hs[t] + b + h_{t-1} W_hh^T), h_{-1} = h0.

    On entry hs holds the input projection X W_xh^T for every step (T, B, H), b the bias b_h
    (empty: none); on exit hs holds the hidden states. Wr is W_hh^T as product_ takes it
    (W_hh^T without BLAS, W_hh with it), C-contiguous. Only batch rows b0:b1 are walked (every
    scan takes such a block: the rows' recurrences are independent, see _threads.py); (0, B) is
    all of them.
    """
    for t in range(hs.shape[0]):
        h_t = hs[t, b0:b1]
        product_(gemm, tiles, h0[b0:b1] if t == 0 else hs[t - 1, b0:b1], Wr, h_t)
        add_bias(h_t, b)  # after the product, whose loads of h_t from memory hide behind its work
        activate_inplace(h_t, code)


@njit
def rnn_backward_scan(gemm, tiles, dhs, hs, Wr, code, truncate, offset, da, dh_total, keep_dh, carry, b0, b1):
    """Walk t = T-1 .. 0 carrying dL/dh back through the recurrence::

        g_t  = dhs[t] + carry            (direct part + recurrent part)
        da_t = g_t * f'(a_t)             -> da[t]
        carry = da_t W_hh                (dL/dh_{t-1} from the recurrence)

    carry enters holding dL/dh from after the window (zeros at the sequence's end) and leaves
    holding dL/dh just before it, so a long sequence can be walked in windows. ``offset`` is
    the window's first step in the sequence: with truncate = k > 0 the carry is cut where the
    sequence step s = t + offset has s % k == 0, s > 0 (blocks [0, k), [k, 2k), ..., exactly
    as if h were detached every k steps). If keep_dh, dh_total[t] = g_t. Wr is W_hh as product_
    takes it (W_hh without BLAS, W_hh^T with it), C-contiguous. Rows b0:b1 only.
    """
    c = carry[b0:b1]
    for t in range(dhs.shape[0] - 1, -1, -1):
        da_t = da[t, b0:b1]
        kept = dh_total[t if keep_dh else 0, b0:b1]
        rnn_backward_step(dhs[t, b0:b1], c, hs[t, b0:b1], code, da_t, kept, keep_dh)
        s = t + offset
        zero(c)  # its g_t is spent (da[t] holds what follows from it)
        if not (truncate > 0 and s > 0 and s % truncate == 0):
            product_(gemm, tiles, da_t, Wr, c)


# ---------------------------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------------------------


@njit(inline="always")
def apply_range(a, start, stop, code):
    """tanh (code 0) or sigmoid (code 2) in place on columns [start, stop) of every row of a.

    Inlined where it is called: its callers pass literal columns and codes, for which numba
    would otherwise compile (and cache, and load) a separate copy per call site."""
    for b in range(a.shape[0]):
        transcend_(a[b, start:stop], code)


@njit
def lstm_forward_step(a, c_prev, c_t, tc_t, h_t):
    """Gates a (B, 4H) = i, f, g, o pre-activations -> activations (in place);
    c_t = f c_prev + i g, tc_t = tanh(c_t), h_t = o tc_t. In passes that each vectorise."""
    B, H = c_t.shape
    apply_range(a, 0, 2 * H, 2)  # i, f
    apply_range(a, 2 * H, 3 * H, 0)  # g
    apply_range(a, 3 * H, 4 * H, 2)  # o
    for b in range(B):
        for j in range(H):
            c = a[b, H + j] * c_prev[b, j] + a[b, j] * a[b, 2 * H + j]
            c_t[b, j] = c
            tc_t[b, j] = c
    apply_range(tc_t, 0, H, 0)
    for b in range(B):
        for j in range(H):
            h_t[b, j] = a[b, 3 * H + j] * tc_t[b, j]


@njit
def lstm_backward_step(dhs_t, dh, dc, G, tc_t, c_prev, A, dh_total_t, keep_dh):
    """The elementwise part of one LSTM backward step::

    g_h = dhs_t + dh;  d_c = dc + g_h o (1 - tanh(c)^2)
    A = [d_c g i(1-i), d_c c_prev f(1-f), d_c i (1-g^2), g_h tanh(c) o(1-o)];  dc <- d_c f

    Row by row, one short loop per equation: each touches few arrays, so LLVM checks them for
    overlap at run time and vectorises (one fused loop over all of them stayed scalar: 1.5x
    slower at 128 units; slicing the rows into segments compiled 2.5x slower). g_h is built in
    dh, whose contents are spent: the caller overwrites it with A W_hh next.
    """
    B, H = dh.shape
    u1 = unit(G)
    for b in range(B):
        for j in range(H):
            dh[b, j] += dhs_t[b, j]  # g_h
        if keep_dh:
            for j in range(H):
                dh_total_t[b, j] = dh[b, j]
        for j in range(H):
            dc[b, j] += dh[b, j] * G[b, 3 * H + j] * (u1 - tc_t[b, j] * tc_t[b, j])  # d_c
        for j in range(H):
            o = G[b, 3 * H + j]
            A[b, 3 * H + j] = dh[b, j] * tc_t[b, j] * o * (u1 - o)
        for j in range(H):
            i = G[b, j]
            A[b, j] = dc[b, j] * G[b, 2 * H + j] * i * (u1 - i)
        for j in range(H):
            f = G[b, H + j]
            A[b, H + j] = dc[b, j] * c_prev[b, j] * f * (u1 - f)
        for j in range(H):
            g = G[b, 2 * H + j]
            A[b, 2 * H + j] = dc[b, j] * G[b, j] * (u1 - g * g)
        for j in range(H):
            dc[b, j] *= G[b, H + j]


@njit
def lstm_forward_scan(gemm, tiles, gates, Wr, b, h0, c0, hs, cs, tcs, b0, b1):
    """LSTM time loop (cells.lstm_step_forward), in place.

    gates (T, B, 4H) holds the input projection X W_xh^T on entry (b, the bias, is added step by
    step; empty: none) and i, f, g, o on exit;
    hs, cs, tcs (T, B, H) receive h_t, c_t and tanh(c_t). Wr is W_hh^T as product_ takes it.
    Rows b0:b1 only.
    """
    for t in range(gates.shape[0]):
        h_prev = h0[b0:b1] if t == 0 else hs[t - 1, b0:b1]
        c_prev = c0[b0:b1] if t == 0 else cs[t - 1, b0:b1]
        a = gates[t, b0:b1]
        product_(gemm, tiles, h_prev, Wr, a)
        add_bias(a, b)  # after the product, as rnn_forward_scan
        lstm_forward_step(a, c_prev, cs[t, b0:b1], tcs[t, b0:b1], hs[t, b0:b1])


@njit
def lstm_backward_scan(
    gemm, tiles, dhs, gates, cs, tcs, c_init, Wr, truncate, offset, da, dh_total, keep_dh, dh, dc, b0, b1
):
    """LSTM backward time loop (cells.lstm_step_backward) over a window, t = T-1 .. 0.

    Writes da (T, B, 4H), the pre-activation gradients. dh and dc enter holding dL/dh and
    dL/dc from after the window (zeros, or the final state's gradient, at the sequence's end)
    and leave holding them just before it; c_init is the cell state before the window.
    Truncation as in rnn_backward_scan, on both carries. Rows b0:b1 only.
    """
    g_h, d_c = dh[b0:b1], dc[b0:b1]
    for t in range(dhs.shape[0] - 1, -1, -1):
        c_prev = c_init[b0:b1] if t == 0 else cs[t - 1, b0:b1]
        da_t = da[t, b0:b1]
        kept = dh_total[t if keep_dh else 0, b0:b1]
        G = gates[t, b0:b1]
        lstm_backward_step(dhs[t, b0:b1], g_h, d_c, G, tcs[t, b0:b1], c_prev, da_t, kept, keep_dh)
        s = t + offset
        zero(g_h)  # its g_h is spent
        if truncate > 0 and s > 0 and s % truncate == 0:
            zero(d_c)
        else:
            product_(gemm, tiles, da_t, Wr, g_h)


# ---------------------------------------------------------------------------------------------
# GRU
# ---------------------------------------------------------------------------------------------


@njit
def gru_forward_step(G, u, b_ih, b_hh, h_prev, hn_t, h_t):
    """G (B, 3H) holds x_t W_xh^T on entry and (r, z, n) on exit; u = h_prev W_hh^T (B, 3H)
    without its bias; b_ih and b_hh (3H,) the biases (zeros where the cell has none). In passes
    that each vectorise::

    r = sigmoid(x_r + b_ir + u_r + b_hr), z = sigmoid(x_z + b_iz + u_z + b_hz),
    u_n = u_n + b_hn, n = tanh(x_n + b_in + r u_n), h_t = (1 - z) n + z h_prev;  hn_t <- u_n
    """
    u1 = unit(G)
    B, H = h_t.shape
    for b in range(B):
        for j in range(2 * H):
            G[b, j] += b_ih[j] + (u[b, j] + b_hh[j])
    apply_range(G, 0, 2 * H, 2)
    for b in range(B):
        for j in range(H):
            hn_t[b, j] = u[b, 2 * H + j] + b_hh[2 * H + j]
        for j in range(H):
            G[b, 2 * H + j] += b_ih[2 * H + j] + G[b, j] * hn_t[b, j]
    apply_range(G, 2 * H, 3 * H, 0)
    for b in range(B):
        for j in range(H):
            z = G[b, H + j]
            h_t[b, j] = (u1 - z) * G[b, 2 * H + j] + z * h_prev[b, j]


@njit
def gru_backward_step(dhs_t, carry, G, hn_t, h_prev, Xa, Ua, dh_total_t, keep_dh):
    """The elementwise part of one GRU backward step::

    g_h = dhs_t + carry;  da_n = g_h (1-z)(1-n^2);  da_r = da_n u_n r(1-r)
    da_z = g_h (h_prev - n) z(1-z);  Xa = [da_r, da_z, da_n];  Ua = [da_r, da_z, da_n r]
    carry <- g_h z   (the direct path h_{t-1} -> h_t; the caller adds Ua W_hh)

    Row by row, one short loop per equation, so that each vectorises (as lstm_backward_step);
    g_h is built in carry.
    """
    B, H = carry.shape
    u1 = unit(G)
    for b in range(B):
        for j in range(H):
            carry[b, j] += dhs_t[b, j]  # g_h
        if keep_dh:
            for j in range(H):
                dh_total_t[b, j] = carry[b, j]
        for j in range(H):
            z, n = G[b, H + j], G[b, 2 * H + j]
            Xa[b, 2 * H + j] = carry[b, j] * (u1 - z) * (u1 - n * n)  # da_n
        for j in range(H):
            r = G[b, j]
            Xa[b, j] = Xa[b, 2 * H + j] * hn_t[b, j] * r * (u1 - r)  # da_r
        for j in range(H):
            z = G[b, H + j]
            Xa[b, H + j] = carry[b, j] * (h_prev[b, j] - G[b, 2 * H + j]) * z * (u1 - z)  # da_z
        for j in range(2 * H):
            Ua[b, j] = Xa[b, j]
        for j in range(H):
            Ua[b, 2 * H + j] = Xa[b, 2 * H + j] * G[b, j]
        for j in range(H):
            carry[b, j] *= G[b, H + j]


@njit
def gru_forward_scan(gemm, tiles, gates, Wr, b_ih, b_hh, h0, hs, hn, u, b0, b1):
    """GRU time loop (cells.gru_step_forward), in place.

    gates (T, B, 3H) holds the input projection X W_xh^T on entry and r, z, n on exit; b_ih and
    b_hh (3H,) the biases (zeros where the cell has none); writes hs (T, B, H) and hn (T, B, H)
    = h_{t-1} W_hn^T + b_hn. u is a (B, 3H) work buffer. Rows b0:b1 only.
    """
    ub = u[b0:b1]
    for t in range(gates.shape[0]):
        h_prev = h0[b0:b1] if t == 0 else hs[t - 1, b0:b1]
        zero(ub)
        product_(gemm, tiles, h_prev, Wr, ub)
        gru_forward_step(gates[t, b0:b1], ub, b_ih, b_hh, h_prev, hn[t, b0:b1], hs[t, b0:b1])


@njit
def gru_backward_scan(
    gemm, tiles, dhs, hs, h_init, gates, hn, Wr, truncate, offset, dxa, dh_total, keep_dh, carry, ua, b0, b1
):
    """GRU backward time loop (cells.gru_step_backward) over a window, t = T-1 .. 0.

    Writes dxa (T, B, 3H), the input-side pre-activation gradients (the hidden-side ones differ
    only in their n part, da_n r: window_grads makes them from dxa and the gates); ua (B, 3H)
    holds one step's hidden-side gradients for the carry's product. carry enters and leaves as
    in rnn_backward_scan; h_init is the state before the window. Rows b0:b1 only.
    """
    c, u = carry[b0:b1], ua[b0:b1]
    for t in range(dhs.shape[0] - 1, -1, -1):
        h_prev = h_init[b0:b1] if t == 0 else hs[t - 1, b0:b1]
        kept = dh_total[t if keep_dh else 0, b0:b1]
        G = gates[t, b0:b1]
        gru_backward_step(dhs[t, b0:b1], c, G, hn[t, b0:b1], h_prev, dxa[t, b0:b1], u, kept, keep_dh)
        s = t + offset
        if truncate > 0 and s > 0 and s % truncate == 0:
            zero(c)
        else:
            product_(gemm, tiles, u, Wr, c)


# ---------------------------------------------------------------------------------------------
# whole-sequence and whole-window GEMMs, through NumPy's BLAS pointer
# ---------------------------------------------------------------------------------------------


def address(A, offset):
    """The address of element ``offset`` (counted in elements) of a C-contiguous A, for a C
    call. Compiled, it is one pointer offset (an intrinsic, _address_overload): views made by
    reshape and slicing cost ~1.5 s more compile time across window_grads's products."""
    return A.ctypes.data + offset * A.itemsize


def element(A, i):
    """A's element i counted flat (A C-contiguous, any dimensions): compiled, one load (an
    intrinsic, _address_overload), with no reshaped view."""
    return A.reshape(-1)[i]


def set_element(A, i, value):
    """A's element i counted flat := value (as ``element`` reads it)."""
    A.reshape(-1)[i] = value


def _address_overload() -> None:
    ext = extending()
    types = ext.types

    def pointer(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.gep(data, [context.cast(builder, args[1], signature.args[1], types.intp)])

    @ext.intrinsic
    def load_flat(typingctx, A, i):
        def codegen(context, builder, signature, args):
            return builder.load(pointer(context, builder, signature, args))

        return A.dtype(A, i), codegen

    @ext.intrinsic
    def store_flat(typingctx, A, i, value):
        def codegen(context, builder, signature, args):
            v = context.cast(builder, args[2], signature.args[2], signature.args[0].dtype)
            builder.store(v, pointer(context, builder, signature, args))
            return context.get_dummy_value()

        return types.void(A, i, value), codegen

    @ext.overload(element, jit_options=_OVERLOAD_FLAGS)
    def _element(A, i):
        return lambda A, i: load_flat(A, i)

    @ext.overload(set_element, jit_options=_OVERLOAD_FLAGS)
    def _set_element(A, i, value):
        return lambda A, i, value: store_flat(A, i, value)

    @ext.intrinsic
    def element_address(typingctx, A, offset):
        def codegen(context, builder, signature, args):
            at = pointer(context, builder, signature, args)
            return builder.ptrtoint(at, context.get_value_type(types.uintp))

        return types.uintp(A, offset), codegen

    @ext.overload(address, jit_options=_OVERLOAD_FLAGS)
    def _address(A, offset):
        return lambda A, offset: element_address(A, offset)


_address_overload()


@njit(inline="always")
def column_sums_(da, total):
    """total[j] = the sum of da[i, b, j] over all rows (i, b) of da (n, B, N), a row at a time
    (the loop over j vectorises). As a GEMM with a vector of ones through OpenBLAS (Haswell
    kernels, AMD EPYC Zen 5) it took 3-9x as long: 0.30 against 0.066 ms for 1024 x 768
    doubles, 0.19 against 0.021 for 1024 x 256."""
    for j in range(total.size):
        total[j] = 0
    for i in range(da.shape[0]):
        for b in range(da.shape[1]):
            row = da[i, b]
            for j in range(total.size):
                total[j] += row[j]


@njit
def window_grads(gemm, t0, da, gates, X, h0, hs, W_xh, total, dW_xh, dW_hh, dX, db_h, db_hh):
    """One backward window's weight gradients and dX (functional._accumulate), steps t0 ..
    t0 + n of the sequence, in one compiled call (a Python call per product cost 10-20 us of
    ctypes and NumPy overhead each, most of a short window's time at B = 1)::

        dW_xh += DA^T X_w    dX_w = DA W_xh    dW_hh += UA^T H_prev    db_h += 1^T DA    db_hh += 1^T UA

    DA = da (n, B, G*H) as (n B, G*H) rows; UA, the hidden-side gradients, is DA, except for
    the GRU (gates, the window's (n, B, 3H) r, z, n, not empty): there UA's n part is da_n r
    (cells.gru_step_backward), made in da's place once the input side is done with it. H_prev
    are the states h_{t-1}: h0 for the sequence's first step, hs before. total (G*H,) is work
    space (the caller's: an allocation here would make the kernel import numba's array module
    when loaded from the cache); an empty db_h / db_hh is a bias the cell does not have; an
    empty dW_xh, dX or dW_hh is a product the caller computes (on the tiles:
    functional._accumulate). Each product is a row-major CBLAS GEMM on the arrays' memory at
    an element offset (address). The bias sums are loops (column_sums_); both biases share
    DA's (UA's is DA's but for the GRU's n part, summed as it is made)."""
    n, B, GH = da.shape
    I = X.shape[2]
    H = hs.shape[2]
    rows = n * B
    DA = address(da, 0)
    if dW_xh.size > 0:  # empty (dW_xh, dX, dW_hh): the caller computes that product (tiles)
        x_w, dw_x = address(X, t0 * B * I), address(dW_xh, 0)
        gemm(ROW_MAJOR, TRANS, NO_TRANS, GH, I, rows, 1.0, DA, GH, x_w, I, 1.0, dw_x, I)
    if dX.size > 0:
        dx_w = address(dX, t0 * B * I)
        gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, rows, I, GH, 1.0, DA, GH, address(W_xh, 0), I, 0.0, dx_w, I)
    gru = gates.shape[0] > 0
    if db_h.size > 0 or db_hh.size > 0:  # 1^T DA once for both biases, not a pass each
        column_sums_(da, total)
        for j in range(db_h.size):
            db_h[j] += total[j]
        for j in range(db_hh.size - H if gru else db_hh.size):  # the GRU's n part: below
            db_hh[j] += total[j]
    if gru:  # da_n -> da_n r, the hidden side's n part, summed as it is made (db_hh's n part)
        for j in range(H):
            total[j] = 0
        for i in range(n):
            for b in range(B):
                row, r = da[i, b, GH - H :], gates[i, b, :H]  # rows: with 3-D indices in the
                for j in range(H):  # loop it stayed scalar, ~3 ns an element (11 ms of the
                    row[j] *= r[j]  # float64 GRU at (200, 64, 128, 256))
                for j in range(H):
                    total[j] += row[j]
        for j in range(H if db_hh.size > 0 else 0):
            db_hh[GH - H + j] += total[j]
    dw = address(dW_hh, 0)
    if dW_hh.size > 0 and t0 > 0:  # the window's h_{t-1} are hs[t0 - 1 : t0 + n - 1]: one GEMM
        h_prev = address(hs, (t0 - 1) * B * H)
        gemm(ROW_MAJOR, TRANS, NO_TRANS, GH, H, rows, 1.0, DA, GH, h_prev, H, 1.0, dw, H)
    elif dW_hh.size > 0:  # the sequence's first step takes h0, the others hs[0 : n - 1]
        gemm(ROW_MAJOR, TRANS, NO_TRANS, GH, H, B, 1.0, DA, GH, address(h0, 0), H, 1.0, dw, H)
        if n > 1:
            DA1, hs0 = address(da, B * GH), address(hs, 0)
            gemm(ROW_MAJOR, TRANS, NO_TRANS, GH, H, rows - B, 1.0, DA1, GH, hs0, H, 1.0, dw, H)
