"""Time loops for large shapes: NumPy's threaded BLAS and vectorised ufuncs, in place.

When the batch is large the per-step Python call (a few microseconds) is cheap next to the
work, while the work itself wants what NumPy has and numba lacks here: a threaded GEMM from the
same BLAS as the whole-sequence products, and vectorised tanh/exp (about 1 ns per element
against ~15 ns for numba's scalar libm calls). So these loops make one NumPy call per
operation per step, into preallocated buffers, and compute exactly the equations of cells.py
and kernels.py (the tests hold all three to the same numbers).

functional.py picks this path or the numba kernels by the size of the step (see ``use_numpy``).
"""

from __future__ import annotations

import numpy as np


def sigmoid_(x: np.ndarray, out: np.ndarray, buf: np.ndarray) -> None:
    """out <- sigmoid(x), the stable split of cells.sigmoid: e = exp(-|x|), then 1/(1+e) for
    x >= 0 and e/(1+e) below. ``buf`` has x's shape; ``out`` may be x itself."""
    np.abs(x, out=buf)
    np.negative(buf, out=buf)
    np.exp(buf, out=buf)  # e, in (0, 1]
    neg = x < 0
    np.add(buf, 1, out=out)  # 1 + e  (x is no longer needed once its sign is kept)
    np.divide(1, out, out=out)
    np.multiply(out, buf, out=buf)  # e / (1 + e)
    np.copyto(out, buf, where=neg)


def activate_(a: np.ndarray, code: int, buf: np.ndarray) -> None:
    """a <- f(a) in place (codes as cells.ACTIVATION_CODES)."""
    if code == 0:
        np.tanh(a, out=a)
    elif code == 1:
        np.maximum(a, 0, out=a)
    elif code == 2:
        sigmoid_(a, a, buf)


def derivative_times_(g: np.ndarray, h: np.ndarray, code: int, out: np.ndarray) -> None:
    """out <- g * f'(a), f' written through h = f(a) (cells.activation_derivative)."""
    if code == 0:
        np.multiply(h, h, out=out)
        np.subtract(1, out, out=out)
        np.multiply(out, g, out=out)
    elif code == 1:
        np.multiply(g, h > 0, out=out)
    elif code == 2:
        np.subtract(1, h, out=out)
        np.multiply(out, h, out=out)
        np.multiply(out, g, out=out)
    else:
        np.copyto(out, g)


# ---------------------------------------------------------------------------------------------
# vanilla cell
# ---------------------------------------------------------------------------------------------


def rnn_forward(hs: np.ndarray, W_hhT: np.ndarray, h0: np.ndarray, code: int) -> None:
    """hs[t] <- f(hs[t] + h_{t-1} W_hh^T) in place; hs holds the input projection on entry."""
    tmp = np.empty_like(h0)
    buf = np.empty_like(h0)
    h_prev = h0
    for t in range(hs.shape[0]):
        a = hs[t]
        np.matmul(h_prev, W_hhT, out=tmp)
        a += tmp
        activate_(a, code, buf)
        h_prev = a


def rnn_backward(
    dhs: np.ndarray,
    hs: np.ndarray,
    W_hh: np.ndarray,
    code: int,
    truncate: int,
    da: np.ndarray,
    dh_total: np.ndarray | None,
    carry: np.ndarray,
) -> None:
    """The backward time loop of kernels.rnn_backward_scan; on exit carry holds dL/dh0."""
    carry[...] = 0
    g = np.empty_like(carry)
    for t in range(dhs.shape[0] - 1, -1, -1):
        gt = dh_total[t] if dh_total is not None else g
        np.add(dhs[t], carry, out=gt)
        derivative_times_(gt, hs[t], code, da[t])
        if truncate > 0 and t > 0 and t % truncate == 0:
            carry[...] = 0
        else:
            np.matmul(da[t], W_hh, out=carry)


# ---------------------------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------------------------


def lstm_forward(
    gates: np.ndarray,
    W_hhT: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    hs: np.ndarray,
    cs: np.ndarray,
    tcs: np.ndarray,
) -> None:
    """kernels.lstm_forward_scan with NumPy: gates holds the input projection on entry and
    i, f, g, o after; hs, cs, tcs receive h_t, c_t and tanh(c_t)."""
    B, H4 = gates.shape[1:]
    H = H4 // 4
    tmp = np.empty((B, H4), dtype=gates.dtype)
    buf = np.empty((B, H4), dtype=gates.dtype)
    prod = np.empty((B, H), dtype=gates.dtype)
    h_prev, c_prev = h0, c0
    for t in range(gates.shape[0]):
        a = gates[t]
        np.matmul(h_prev, W_hhT, out=tmp)
        a += tmp
        sigmoid_(a[:, : 2 * H], a[:, : 2 * H], buf[:, : 2 * H])  # i, f
        np.tanh(a[:, 2 * H : 3 * H], out=a[:, 2 * H : 3 * H])  # g
        sigmoid_(a[:, 3 * H :], a[:, 3 * H :], buf[:, 3 * H :])  # o
        i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        np.multiply(f, c_prev, out=cs[t])
        np.multiply(i, g, out=prod)
        cs[t] += prod
        np.tanh(cs[t], out=tcs[t])
        np.multiply(o, tcs[t], out=hs[t])
        h_prev, c_prev = hs[t], cs[t]


def lstm_backward(
    dhs: np.ndarray,
    gates: np.ndarray,
    cs: np.ndarray,
    tcs: np.ndarray,
    c0: np.ndarray,
    W_hh: np.ndarray,
    truncate: int,
    da: np.ndarray,
    dh_total: np.ndarray | None,
    dh: np.ndarray,
    dc: np.ndarray,
) -> None:
    """kernels.lstm_backward_scan with NumPy. dc enters holding dL/dc_T (zeros if none); on
    exit dh and dc hold dL/dh0 and dL/dc0."""
    B, H4 = gates.shape[1:]
    H = H4 // 4
    dh[...] = 0
    g_h = np.empty((B, H), dtype=dh.dtype)
    d_c = np.empty((B, H), dtype=dh.dtype)
    w = np.empty((B, H), dtype=dh.dtype)
    for t in range(dhs.shape[0] - 1, -1, -1):
        G, A = gates[t], da[t]
        i, f, g, o = G[:, :H], G[:, H : 2 * H], G[:, 2 * H : 3 * H], G[:, 3 * H :]
        gt = dh_total[t] if dh_total is not None else g_h
        np.add(dhs[t], dh, out=gt)
        tc = tcs[t]
        c_prev = c0 if t == 0 else cs[t - 1]
        # d_c = dc + g_h * o * (1 - tc^2)
        np.multiply(tc, tc, out=w)
        np.subtract(1, w, out=w)
        np.multiply(w, o, out=w)
        np.multiply(w, gt, out=w)
        np.add(dc, w, out=d_c)
        # A_o = g_h * tc * o (1 - o)
        Ao = A[:, 3 * H :]
        np.subtract(1, o, out=Ao)
        np.multiply(Ao, o, out=Ao)
        np.multiply(Ao, tc, out=Ao)
        np.multiply(Ao, gt, out=Ao)
        # A_i = d_c g i (1 - i)
        Ai = A[:, :H]
        np.subtract(1, i, out=Ai)
        np.multiply(Ai, i, out=Ai)
        np.multiply(Ai, g, out=Ai)
        np.multiply(Ai, d_c, out=Ai)
        # A_f = d_c c_prev f (1 - f)
        Af = A[:, H : 2 * H]
        np.subtract(1, f, out=Af)
        np.multiply(Af, f, out=Af)
        np.multiply(Af, c_prev, out=Af)
        np.multiply(Af, d_c, out=Af)
        # A_g = d_c i (1 - g^2)
        Ag = A[:, 2 * H : 3 * H]
        np.multiply(g, g, out=Ag)
        np.subtract(1, Ag, out=Ag)
        np.multiply(Ag, i, out=Ag)
        np.multiply(Ag, d_c, out=Ag)
        np.multiply(d_c, f, out=dc)
        if truncate > 0 and t > 0 and t % truncate == 0:
            dh[...] = 0
            dc[...] = 0
        else:
            np.matmul(A, W_hh, out=dh)


# ---------------------------------------------------------------------------------------------
# GRU
# ---------------------------------------------------------------------------------------------


def gru_forward(
    xa: np.ndarray,
    W_hhT: np.ndarray,
    b_hh: np.ndarray,
    h0: np.ndarray,
    hs: np.ndarray,
    gates: np.ndarray,
    hn: np.ndarray,
) -> None:
    """kernels.gru_forward_scan with NumPy: writes hs, gates (r, z, n) and hn (u_n)."""
    B, H3 = xa.shape[1:]
    H = H3 // 3
    u = np.empty((B, H3), dtype=xa.dtype)
    buf = np.empty((B, 2 * H), dtype=xa.dtype)
    w = np.empty((B, H), dtype=xa.dtype)
    h_prev = h0
    for t in range(xa.shape[0]):
        np.matmul(h_prev, W_hhT, out=u)
        u += b_hh
        G = gates[t]
        rz = G[:, : 2 * H]
        np.add(xa[t, :, : 2 * H], u[:, : 2 * H], out=rz)
        sigmoid_(rz, rz, buf)
        r, z, n = G[:, :H], G[:, H : 2 * H], G[:, 2 * H :]
        np.copyto(hn[t], u[:, 2 * H :])
        np.multiply(r, hn[t], out=n)
        n += xa[t, :, 2 * H :]
        np.tanh(n, out=n)
        # h = (1 - z) n + z h_prev = n + z (h_prev - n)
        np.subtract(h_prev, n, out=w)
        np.multiply(w, z, out=w)
        np.add(n, w, out=hs[t])
        h_prev = hs[t]


def gru_backward(
    dhs: np.ndarray,
    hs: np.ndarray,
    h0: np.ndarray,
    gates: np.ndarray,
    hn: np.ndarray,
    W_hh: np.ndarray,
    truncate: int,
    dxa: np.ndarray,
    dua: np.ndarray,
    dh_total: np.ndarray | None,
    carry: np.ndarray,
) -> None:
    """kernels.gru_backward_scan with NumPy; on exit carry holds dL/dh0."""
    B, H3 = gates.shape[1:]
    H = H3 // 3
    carry[...] = 0
    g_h = np.empty((B, H), dtype=carry.dtype)
    w = np.empty((B, H), dtype=carry.dtype)
    for t in range(dhs.shape[0] - 1, -1, -1):
        G, Xa, Ua = gates[t], dxa[t], dua[t]
        r, z, n = G[:, :H], G[:, H : 2 * H], G[:, 2 * H :]
        h_prev = h0 if t == 0 else hs[t - 1]
        gt = dh_total[t] if dh_total is not None else g_h
        np.add(dhs[t], carry, out=gt)
        # da_n = g_h (1 - z)(1 - n^2)
        dan = Xa[:, 2 * H :]
        np.multiply(n, n, out=dan)
        np.subtract(1, dan, out=dan)
        np.subtract(1, z, out=w)
        np.multiply(dan, w, out=dan)
        np.multiply(dan, gt, out=dan)
        # da_r = da_n u_n r (1 - r)
        dar = Xa[:, :H]
        np.subtract(1, r, out=dar)
        np.multiply(dar, r, out=dar)
        np.multiply(dar, hn[t], out=dar)
        np.multiply(dar, dan, out=dar)
        # da_z = g_h (h_prev - n) z (1 - z)
        daz = Xa[:, H : 2 * H]
        np.subtract(h_prev, n, out=daz)
        np.multiply(daz, gt, out=daz)
        np.multiply(w, z, out=w)  # w held (1 - z)
        np.multiply(daz, w, out=daz)
        np.copyto(Ua[:, : 2 * H], Xa[:, : 2 * H])
        np.multiply(dan, r, out=Ua[:, 2 * H :])
        if truncate > 0 and t > 0 and t % truncate == 0:
            carry[...] = 0
        else:
            np.matmul(Ua, W_hh, out=carry)
            np.multiply(gt, z, out=w)
            carry += w
