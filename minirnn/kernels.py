"""numba time loops: the only code that runs once per time step.

Each kernel takes only arrays and scalars (validation and allocation happen in functional.py)
and computes exactly what cells.py computes, in place, with no allocation inside the loop.
The input projection and the weight gradients are whole-sequence GEMMs done by the caller;
only the recurrent product h_{t-1} W_hh^T and the fused elementwise work live here.

Activation codes (cells.ACTIVATION_CODES): 0 tanh, 1 relu, 2 sigmoid, 3 linear.

``use_blas`` selects the recurrent product: hand-written axpy loops (no call overhead, best when
B*H*H is small) or ``np.dot`` into a preallocated buffer (BLAS; best for large B and H).
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
def rnn_forward_scan(hs, W_hhT, h0, code, use_blas, tmp):
    """In place over the time loop: hs[t] <- f(hs[t] + h_{t-1} W_hh^T), h_{-1} = h0.

    On entry hs holds the input projection X W_xh^T + b_h for every step (T, B, H);
    on exit it holds the hidden states. W_hhT is W_hh transposed, C-contiguous (H, H);
    tmp is a (B, H) work buffer for the BLAS path.
    """
    T = hs.shape[0]
    for t in range(T):
        h_prev = h0 if t == 0 else hs[t - 1]
        a = hs[t]
        if use_blas:
            np.dot(h_prev, W_hhT, tmp)
            af = a.reshape(-1)
            tf = tmp.reshape(-1)
            for i in range(af.size):
                af[i] += tf[i]
        else:
            matmul_acc(h_prev, W_hhT, a, True)
        activate_inplace(a, code)


@njit
def rnn_backward_scan(dhs, hs, W_hh, code, truncate, use_blas, da, dh_total, keep_dh, carry, tmp):
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
        g = dhs[t]
        if keep_dh:
            gt = dh_total[t].reshape(-1)
            gf = g.reshape(-1)
            for i in range(gt.size):
                gt[i] = gf[i] + cf[i]
            backprop_activation(dh_total[t], hs[t], code, da[t])
        else:
            # reuse the carry buffer for g_t: carry <- dhs[t] + carry
            gf = g.reshape(-1)
            for i in range(cf.size):
                cf[i] += gf[i]
            backprop_activation(carry, hs[t], code, da[t])
        if truncate > 0 and t > 0 and t % truncate == 0:
            for i in range(cf.size):
                cf[i] = 0
        elif use_blas:
            np.dot(da[t], W_hh, tmp)
            tf = tmp.reshape(-1)
            for i in range(cf.size):
                cf[i] = tf[i]
        else:
            matmul_acc(da[t], W_hh, carry, False)
