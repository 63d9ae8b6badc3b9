"""Slow, obvious references: scalar loops straight from the equations, no vectorisation.

They share no code with minirnn, so agreement with them is evidence, not tautology.
"""

import math

import numpy as np


def act(a, name):
    if name == "tanh":
        return math.tanh(a)
    if name == "relu":
        return max(a, 0.0)
    if name == "sigmoid":
        return 1.0 / (1.0 + math.exp(-a))
    return a


def rnn_forward(X, W_xh, W_hh, b_h, h0, activation):
    """h_t[b, i] = f(sum_j W_xh[i, j] x_t[b, j] + sum_j W_hh[i, j] h_{t-1}[b, j] + b_h[i])."""
    T, B, I = X.shape
    H = W_hh.shape[0]
    hs = np.zeros((T, B, H))
    for b in range(B):
        h = [float(h0[b, i]) if h0 is not None else 0.0 for i in range(H)]
        for t in range(T):
            new = []
            for i in range(H):
                a = sum(W_xh[i, j] * X[t, b, j] for j in range(I))
                a += sum(W_hh[i, j] * h[j] for j in range(H))
                if b_h is not None:
                    a += b_h[i]
                new.append(act(a, activation))
            h = new
            hs[t, b] = h
    return hs


def loss_and_numeric_grad(f, x, eps=1e-6):
    """Central differences of scalar f at every entry of x (modified in place, restored)."""
    g = np.zeros_like(x)
    flat, gf = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        fp = f()
        flat[i] = orig - eps
        fm = f()
        flat[i] = orig
        gf[i] = (fp - fm) / (2 * eps)
    return g
