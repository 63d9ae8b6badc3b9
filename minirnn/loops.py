"""Time loops for large steps where NumPy's BLAS pointer is unavailable: Python around np.matmul.

The compiled scans (kernels.py) call NumPy's GEMM through a C function pointer (_blas.py). Where
NumPy was built against another BLAS (MKL, Accelerate, a system library) or MINIRNN_BLAS=0,
there is no such pointer, and these loops do the same work from Python: each step is one
``np.matmul(..., out=)`` into a preallocated buffer and one call of the same fused compiled step
(kernels.*_step). A few microseconds more per step; the same numbers (tests/test_kernels.py
runs every cell through all three loops).

functional.py picks the loop (``_time_loop``). The forward loops take W_hh^T as the view
``W_hh.T``: NumPy's GEMM runs the transposed operand faster than a transposed copy (float64).
"""

from __future__ import annotations

import numpy as np

from ._jit import kernels

# ---------------------------------------------------------------------------------------------
# vanilla cell
# ---------------------------------------------------------------------------------------------


def rnn_forward(hs: np.ndarray, W_hhT: np.ndarray, h0: np.ndarray, b: np.ndarray, code: int) -> None:
    """hs[t] <- f(hs[t] + b + h_{t-1} W_hh^T) in place; hs holds the input projection on entry,
    b the bias (empty: none)."""
    k = kernels()
    tmp = np.empty_like(h0)
    h_prev = h0
    for t in range(hs.shape[0]):
        np.matmul(h_prev, W_hhT, out=tmp)
        k.add_bias(tmp, b)
        hs[t] += tmp
        k.activate_inplace(hs[t], code)
        h_prev = hs[t]


def rnn_backward(
    dhs: np.ndarray,
    hs: np.ndarray,
    W_hh: np.ndarray,
    code: int,
    truncate: int,
    offset: int,
    da: np.ndarray,
    dh_total: np.ndarray | None,
    carry: np.ndarray,
) -> None:
    """kernels.rnn_backward_scan (same window contract) with NumPy's GEMM for the carry."""
    step = kernels().rnn_backward_step
    keep = dh_total is not None
    for t in range(dhs.shape[0] - 1, -1, -1):
        step(dhs[t], carry, hs[t], code, da[t], dh_total[t] if dh_total is not None else carry, keep)
        s = t + offset
        if truncate > 0 and s > 0 and s % truncate == 0:
            carry[...] = 0
        else:
            np.matmul(da[t], W_hh, out=carry)


# ---------------------------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------------------------


def lstm_forward(
    gates: np.ndarray,
    W_hhT: np.ndarray,
    b: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    hs: np.ndarray,
    cs: np.ndarray,
    tcs: np.ndarray,
) -> None:
    """kernels.lstm_forward_scan with NumPy's GEMM: gates holds the input projection on entry
    (b the bias, empty: none) and i, f, g, o after; hs, cs, tcs receive h_t, c_t and tanh(c_t)."""
    k = kernels()
    step = k.lstm_forward_step
    tmp = np.empty(gates.shape[1:], dtype=gates.dtype)
    h_prev, c_prev = h0, c0
    for t in range(gates.shape[0]):
        np.matmul(h_prev, W_hhT, out=tmp)
        k.add_bias(tmp, b)
        gates[t] += tmp
        step(gates[t], c_prev, cs[t], tcs[t], hs[t])
        h_prev, c_prev = hs[t], cs[t]


def lstm_backward(
    dhs: np.ndarray,
    gates: np.ndarray,
    cs: np.ndarray,
    tcs: np.ndarray,
    c_init: np.ndarray,
    W_hh: np.ndarray,
    truncate: int,
    offset: int,
    da: np.ndarray,
    dh_total: np.ndarray | None,
    dh: np.ndarray,
    dc: np.ndarray,
) -> None:
    """kernels.lstm_backward_scan (same window contract) with NumPy's GEMM."""
    step = kernels().lstm_backward_step
    keep = dh_total is not None
    for t in range(dhs.shape[0] - 1, -1, -1):
        c_prev = c_init if t == 0 else cs[t - 1]
        total_t = dh_total[t] if dh_total is not None else dh
        step(dhs[t], dh, dc, gates[t], tcs[t], c_prev, da[t], total_t, keep)
        s = t + offset
        if truncate > 0 and s > 0 and s % truncate == 0:
            dh[...] = 0
            dc[...] = 0
        else:
            np.matmul(da[t], W_hh, out=dh)


# ---------------------------------------------------------------------------------------------
# GRU
# ---------------------------------------------------------------------------------------------


def gru_forward(
    gates: np.ndarray,
    W_hhT: np.ndarray,
    b_ih: np.ndarray,
    b_hh: np.ndarray,
    h0: np.ndarray,
    hs: np.ndarray,
    hn: np.ndarray,
    u: np.ndarray,
) -> None:
    """kernels.gru_forward_scan with NumPy's GEMM: gates holds the input projection on entry and
    r, z, n after; writes hs and hn (u_n)."""
    step = kernels().gru_forward_step
    h_prev = h0
    for t in range(gates.shape[0]):
        np.matmul(h_prev, W_hhT, out=u)
        step(gates[t], u, b_ih, b_hh, h_prev, hn[t], hs[t])
        h_prev = hs[t]


def gru_backward(
    dhs: np.ndarray,
    hs: np.ndarray,
    h_init: np.ndarray,
    gates: np.ndarray,
    hn: np.ndarray,
    W_hh: np.ndarray,
    truncate: int,
    offset: int,
    dxa: np.ndarray,
    dh_total: np.ndarray | None,
    carry: np.ndarray,
    ua: np.ndarray,
) -> None:
    """kernels.gru_backward_scan (same window contract) with NumPy's GEMM."""
    step = kernels().gru_backward_step
    keep = dh_total is not None
    tmp = np.empty_like(carry)
    for t in range(dhs.shape[0] - 1, -1, -1):
        h_prev = h_init if t == 0 else hs[t - 1]
        total_t = dh_total[t] if dh_total is not None else carry
        step(dhs[t], carry, gates[t], hn[t], h_prev, dxa[t], ua, total_t, keep)
        s = t + offset
        if truncate > 0 and s > 0 and s % truncate == 0:
            carry[...] = 0
        else:
            np.matmul(ua, W_hh, out=tmp)
            carry += tmp
