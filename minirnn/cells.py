"""The maths of one time step, in plain NumPy: the readable reference.

Each cell is a pair: ``*_step_forward(x, state, weights) -> (state, cache)`` saves only what
its backward needs; ``*_step_backward(d_state, cache) -> (d_state_prev, grads)`` sits right
below it. Shapes are batch-first within a step: ``x (B, I)``, ``h (B, H)``; weights are
``(out, in)`` as in PyTorch. The fast numba kernels (kernels.py) compute the same numbers and
are tested against these functions; ``MINIRNN_JIT=0`` runs these instead.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# ---------------------------------------------------------------------------------------------
# activations: f and f' written in terms of the output h = f(a), so backward needs only h
# ---------------------------------------------------------------------------------------------

ACTIVATION_CODES = {"tanh": 0, "relu": 1, "sigmoid": 2, "linear": 3}

#: sup |f'(a)|: the factor gamma in Pascanu et al. (2013)'s bound ||dh_t/dh_{t-1}|| <= gamma * sigma_max
ACTIVATION_GAMMA = {"tanh": 1.0, "relu": 1.0, "sigmoid": 0.25, "linear": 1.0}


def sigmoid(a: np.ndarray) -> np.ndarray:
    """Logistic function, stable for large |a| (no overflow in exp)."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(a.dtype, copy=False)


def activate(a: np.ndarray, activation: str) -> np.ndarray:
    """h = f(a)."""
    if activation == "tanh":
        return np.tanh(a)
    if activation == "relu":
        return np.maximum(a, 0)
    if activation == "sigmoid":
        return sigmoid(a)
    if activation == "linear":
        return a.copy()
    raise ValueError(f"unknown activation {activation!r}; expected one of {', '.join(ACTIVATION_CODES)}")


def activation_derivative(h: np.ndarray, activation: str) -> np.ndarray:
    """f'(a) from h = f(a): tanh 1 - h^2, sigmoid h (1 - h), relu [h > 0], linear 1."""
    if activation == "tanh":
        return 1 - h * h
    if activation == "relu":
        return (h > 0).astype(h.dtype)
    if activation == "sigmoid":
        return h * (1 - h)
    if activation == "linear":
        return np.ones_like(h)
    raise ValueError(f"unknown activation {activation!r}; expected one of {', '.join(ACTIVATION_CODES)}")


# ---------------------------------------------------------------------------------------------
# vanilla (Elman) cell
# ---------------------------------------------------------------------------------------------


class RNNStepCache(NamedTuple):
    x: np.ndarray
    h_prev: np.ndarray
    h: np.ndarray
    W_xh: np.ndarray
    W_hh: np.ndarray
    has_bias: bool
    activation: str


def rnn_step_forward(
    x: np.ndarray,
    h_prev: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
    b_h: np.ndarray | None,
    activation: str = "tanh",
) -> tuple[np.ndarray, RNNStepCache]:
    """One step of the vanilla RNN::

        a_t = x_t W_xh^T + h_{t-1} W_hh^T + b_h
        h_t = f(a_t)

    x (B, I), h_prev (B, H), W_xh (H, I), W_hh (H, H), b_h (H,) or None -> h (B, H).
    """
    a = x @ W_xh.T + h_prev @ W_hh.T
    if b_h is not None:
        a += b_h
    h = activate(a, activation)
    return h, RNNStepCache(x, h_prev, h, W_xh, W_hh, b_h is not None, activation)


def rnn_step_backward(dh: np.ndarray, cache: RNNStepCache) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Backward of :func:`rnn_step_forward`, given dh = dL/dh_t (direct + from later steps)::

        da_t      = dh_t * f'(a_t)
        dW_xh    += da_t^T x_t          dW_hh += da_t^T h_{t-1}        db_h += sum_b da_t
        dx_t      = da_t W_xh
        dh_{t-1}  = da_t W_hh           (the recurrent part carried to the previous step)

    Returns (dh_prev, grads) with grads keys W_xh, W_hh, (b_h,) x, and a (= da_t, for study).
    """
    da = dh * activation_derivative(cache.h, cache.activation)
    grads = {
        "W_xh": da.T @ cache.x,
        "W_hh": da.T @ cache.h_prev,
        "x": da @ cache.W_xh,
        "a": da,
    }
    if cache.has_bias:
        grads["b_h"] = da.sum(axis=0)
    return da @ cache.W_hh, grads
