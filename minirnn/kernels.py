"""numba time loops: the only code that runs once per time step.

Each kernel takes only arrays and scalars (validation and allocation happen in functional.py)
and computes exactly what cells.py computes, in place, with no allocation inside the loop.
The input projection and the weight gradients are whole-sequence GEMMs done by the caller;
only the recurrent product h_{t-1} W_hh^T and the fused elementwise work live here.

These kernels serve the small shapes, where a step is a few hundred operations and the cost
of leaving compiled code once per step would dominate: the whole loop stays compiled and the
recurrent product is a hand-written loop (a BLAS call costs more than it saves there, and
numba's BLAS is a second library beside NumPy's). Large shapes go to loops.py.

Activation codes (cells.ACTIVATION_CODES): 0 tanh, 1 relu, 2 sigmoid, 3 linear.
"""

from __future__ import annotations

import numpy as np

from ._jit import njit


@njit
def activate_inplace(a, code):
    """a <- f(a) elementwise on a C-contiguous 2-D array (the rows of one time step)."""
    flat = a.reshape(-1)
    n = flat.size
    if code == 0:
        for i in range(n):
            flat[i] = np.tanh(flat[i])
    elif code == 1:
        for i in range(n):
            if flat[i] < 0:
                flat[i] = 0
    elif code == 2:
        for i in range(n):
            v = flat[i]
            # the same stable split as cells.sigmoid: exp of a non-positive number only
            if v >= 0:
                flat[i] = 1 / (1 + np.exp(-v))
            else:
                e = np.exp(v)
                flat[i] = e / (1 + e)


@njit
def backprop_activation(g, h, code, out):
    """out <- g * f'(a), with f'(a) written through h = f(a) (cells.activation_derivative)."""
    gf = g.reshape(-1)
    hf = h.reshape(-1)
    of = out.reshape(-1)
    n = gf.size
    if code == 0:
        for i in range(n):
            of[i] = gf[i] * (1 - hf[i] * hf[i])
    elif code == 1:
        for i in range(n):
            of[i] = gf[i] if hf[i] > 0 else 0
    elif code == 2:
        for i in range(n):
            of[i] = gf[i] * (hf[i] * (1 - hf[i]))
    else:
        for i in range(n):
            of[i] = gf[i]


@njit
def matmul_acc(A, M, out, accumulate):
    """out (B, N) (+)= A (B, K) @ M (K, N) as axpy loops: row k of M scaled into row b of out.

    The inner loop runs over contiguous memory with no reduction, so LLVM vectorises it.
    """
    B, K = A.shape
    N = M.shape[1]
    for b in range(B):
        row = out[b]
        if not accumulate:
            for n in range(N):
                row[n] = 0
        for k in range(K):
            s = A[b, k]
            if s != 0:
                mk = M[k]
                for n in range(N):
                    row[n] += s * mk[n]


@njit
def rnn_forward_scan(hs, W_hhT, h0, code):
    """In place over the time loop: hs[t] <- f(hs[t] + h_{t-1} W_hh^T), h_{-1} = h0.

    On entry hs holds the input projection X W_xh^T + b_h for every step (T, B, H);
    on exit it holds the hidden states. W_hhT is W_hh transposed, C-contiguous (H, H).
    """
    T = hs.shape[0]
    for t in range(T):
        h_prev = h0 if t == 0 else hs[t - 1]
        a = hs[t]
        matmul_acc(h_prev, W_hhT, a, True)
        activate_inplace(a, code)


@njit
def rnn_backward_scan(dhs, hs, W_hh, code, truncate, da, dh_total, keep_dh, carry):
    """Walk t = T-1 .. 0 carrying dL/dh back through the recurrence::

        g_t  = dhs[t] + carry            (direct part + recurrent part)
        da_t = g_t * f'(a_t)             -> da[t]
        carry = da_t W_hh                (dL/dh_{t-1} from the recurrence)

    With truncate = k > 0 the carry is cut at every t with t % k == 0, t > 0: the gradient flows
    only within blocks [0, k), [k, 2k), ..., exactly as if h were detached every k steps.
    On exit carry holds dL/dh0 (the first block always reaches h0). If keep_dh, dh_total[t] = g_t.
    """
    T = dhs.shape[0]
    cf = carry.reshape(-1)
    for i in range(cf.size):
        cf[i] = 0
    for t in range(T - 1, -1, -1):
        gf = dhs[t].reshape(-1)
        if keep_dh:
            gt = dh_total[t].reshape(-1)
            for i in range(gt.size):
                gt[i] = gf[i] + cf[i]
            backprop_activation(dh_total[t], hs[t], code, da[t])
        else:
            # reuse the carry buffer for g_t: carry <- dhs[t] + carry
            for i in range(cf.size):
                cf[i] += gf[i]
            backprop_activation(carry, hs[t], code, da[t])
        if truncate > 0 and t > 0 and t % truncate == 0:
            for i in range(cf.size):
                cf[i] = 0
        else:
            matmul_acc(da[t], W_hh, carry, False)


@njit
def sigmoid(v):
    """The stable logistic of cells.sigmoid, for one scalar."""
    if v >= 0:
        return 1 / (1 + np.exp(-v))
    e = np.exp(v)
    return e / (1 + e)


@njit
def lstm_forward_scan(gates, W_hhT, h0, c0, hs, cs, tcs):
    """LSTM time loop (cells.lstm_step_forward), in place.

    gates (T, B, 4H) holds the input projection on entry and i, f, g, o on exit;
    hs, cs, tcs (T, B, H) receive h_t, c_t and tanh(c_t). W_hhT is (H, 4H) C-contiguous.
    """
    T, B, H4 = gates.shape
    H = H4 // 4
    for t in range(T):
        h_prev = h0 if t == 0 else hs[t - 1]
        c_prev = c0 if t == 0 else cs[t - 1]
        a = gates[t]
        matmul_acc(h_prev, W_hhT, a, True)
        for b in range(B):
            for j in range(H):
                i = sigmoid(a[b, j])
                f = sigmoid(a[b, H + j])
                g = np.tanh(a[b, 2 * H + j])
                o = sigmoid(a[b, 3 * H + j])
                a[b, j] = i
                a[b, H + j] = f
                a[b, 2 * H + j] = g
                a[b, 3 * H + j] = o
                c = f * c_prev[b, j] + i * g
                tc = np.tanh(c)
                cs[t, b, j] = c
                tcs[t, b, j] = tc
                hs[t, b, j] = o * tc


@njit
def lstm_backward_scan(dhs, gates, cs, tcs, c0, W_hh, truncate, da, dh_total, keep_dh, dh0, dc0):
    """LSTM backward time loop (cells.lstm_step_backward), t = T-1 .. 0.

    Writes da (T, B, 4H), the pre-activation gradients. dc0 enters holding the gradient of the
    final cell state (zeros if none); on exit dh0 and dc0 hold dL/dh0 and dL/dc0. Truncation
    cuts both carries at every t % truncate == 0, t > 0.
    """
    T, B, H4 = gates.shape
    H = H4 // 4
    dh = dh0  # the h carry lives in dh0's buffer, the c carry in dc0's
    dc = dc0  # enters holding dL/dc_T from beyond the sequence (zeros if none)
    dh[:] = 0
    for t in range(T - 1, -1, -1):
        G = gates[t]
        A = da[t]
        for b in range(B):
            for j in range(H):
                g_h = dhs[t, b, j] + dh[b, j]
                if keep_dh:
                    dh_total[t, b, j] = g_h
                i = G[b, j]
                f = G[b, H + j]
                g = G[b, 2 * H + j]
                o = G[b, 3 * H + j]
                tc = tcs[t, b, j]
                c_prev = c0[b, j] if t == 0 else cs[t - 1, b, j]
                d_c = dc[b, j] + g_h * o * (1 - tc * tc)
                A[b, j] = d_c * g * i * (1 - i)
                A[b, H + j] = d_c * c_prev * f * (1 - f)
                A[b, 2 * H + j] = d_c * i * (1 - g * g)
                A[b, 3 * H + j] = g_h * tc * o * (1 - o)
                dc[b, j] = d_c * f
        if truncate > 0 and t > 0 and t % truncate == 0:
            dh[:] = 0
            dc[:] = 0
        else:
            matmul_acc(A, W_hh, dh, False)


@njit
def gru_forward_scan(xa, W_hhT, b_hh, h0, hs, gates, hn, tmp):
    """GRU time loop (cells.gru_step_forward).

    xa (T, B, 3H): input projection plus b_h; b_hh (3H,); writes hs (T, B, H), gates (T, B, 3H)
    = r, z, n and hn (T, B, H) = h_{t-1} W_hn^T + b_hn. tmp is a (B, 3H) buffer.
    """
    T, B, H3 = xa.shape
    H = H3 // 3
    for t in range(T):
        h_prev = h0 if t == 0 else hs[t - 1]
        # u = h_prev W_hh^T + b_hh, into tmp
        matmul_acc(h_prev, W_hhT, tmp, False)
        for b in range(B):
            for k in range(H3):
                tmp[b, k] += b_hh[k]
        for b in range(B):
            for j in range(H):
                r = sigmoid(xa[t, b, j] + tmp[b, j])
                z = sigmoid(xa[t, b, H + j] + tmp[b, H + j])
                u_n = tmp[b, 2 * H + j]
                n = np.tanh(xa[t, b, 2 * H + j] + r * u_n)
                gates[t, b, j] = r
                gates[t, b, H + j] = z
                gates[t, b, 2 * H + j] = n
                hn[t, b, j] = u_n
                hs[t, b, j] = (1 - z) * n + z * h_prev[b, j]


@njit
def gru_backward_scan(dhs, hs, h0, gates, hn, W_hh, truncate, dxa, dua, dh_total, keep_dh, carry):
    """GRU backward time loop (cells.gru_step_backward), t = T-1 .. 0.

    Writes dxa (input-side pre-activation gradients) and dua (hidden-side) (T, B, 3H);
    on exit carry holds dL/dh0.
    """
    T, B, H3 = gates.shape
    H = H3 // 3
    carry[:] = 0
    for t in range(T - 1, -1, -1):
        X_ = dxa[t]
        U_ = dua[t]
        for b in range(B):
            for j in range(H):
                g_h = dhs[t, b, j] + carry[b, j]
                if keep_dh:
                    dh_total[t, b, j] = g_h
                r = gates[t, b, j]
                z = gates[t, b, H + j]
                n = gates[t, b, 2 * H + j]
                h_prev = h0[b, j] if t == 0 else hs[t - 1, b, j]
                dan = g_h * (1 - z) * (1 - n * n)
                dar = dan * hn[t, b, j] * r * (1 - r)
                daz = g_h * (h_prev - n) * z * (1 - z)
                X_[b, j] = dar
                X_[b, H + j] = daz
                X_[b, 2 * H + j] = dan
                U_[b, j] = dar
                U_[b, H + j] = daz
                U_[b, 2 * H + j] = dan * r
                carry[b, j] = g_h * z  # the direct path h_{t-1} -> h_t
        if truncate > 0 and t > 0 and t % truncate == 0:
            carry[:] = 0
        else:
            matmul_acc(U_, W_hh, carry, True)
