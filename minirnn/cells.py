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


# ---------------------------------------------------------------------------------------------
# LSTM (Hochreiter & Schmidhuber 1997, with forget gate; PyTorch's gate order i, f, g, o)
# ---------------------------------------------------------------------------------------------


class LSTMStepCache(NamedTuple):
    x: np.ndarray
    h_prev: np.ndarray
    c_prev: np.ndarray
    gates: np.ndarray  # (B, 4H): i, f, g, o after their nonlinearities
    c: np.ndarray
    tanh_c: np.ndarray
    W_xh: np.ndarray
    W_hh: np.ndarray
    has_bias: bool


def lstm_step_forward(
    x: np.ndarray,
    h_prev: np.ndarray,
    c_prev: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
    b_h: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, LSTMStepCache]:
    """One LSTM step; W_xh (4H, I), W_hh (4H, H), b_h (4H,) stacked [i; f; g; o]::

        [a_i, a_f, a_g, a_o] = x_t W_xh^T + h_{t-1} W_hh^T + b_h
        i = sigmoid(a_i)   f = sigmoid(a_f)   g = tanh(a_g)   o = sigmoid(a_o)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    Returns (h, c, cache).
    """
    H = h_prev.shape[1]
    a = x @ W_xh.T + h_prev @ W_hh.T
    if b_h is not None:
        a += b_h
    gates = np.concatenate(
        [sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), np.tanh(a[:, 2 * H : 3 * H]), sigmoid(a[:, 3 * H :])],
        axis=1,
    )
    i, f, g, o = np.split(gates, 4, axis=1)
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    h = o * tanh_c
    return h, c, LSTMStepCache(x, h_prev, c_prev, gates, c, tanh_c, W_xh, W_hh, b_h is not None)


def lstm_step_backward(
    dh: np.ndarray, dc: np.ndarray, cache: LSTMStepCache
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Backward of :func:`lstm_step_forward` given dh = dL/dh_t and dc = dL/dc_t from later steps::

        do = dh * tanh(c_t)                  dc_t += dh * o * (1 - tanh(c_t)^2)
        di = dc_t * g    df = dc_t * c_{t-1}    dg = dc_t * i    dc_{t-1} = dc_t * f
        da = [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)]
        dW_xh += da^T x_t   dW_hh += da^T h_{t-1}   db_h += sum_b da
        dx_t = da W_xh      dh_{t-1} = da W_hh

    Returns (dh_prev, dc_prev, grads) with grads W_xh, W_hh, (b_h,) x and a (= da).
    """
    i, f, g, o = np.split(cache.gates, 4, axis=1)
    dc = dc + dh * o * (1 - cache.tanh_c**2)
    da = np.concatenate(
        [
            dc * g * i * (1 - i),
            dc * cache.c_prev * f * (1 - f),
            dc * i * (1 - g * g),
            dh * cache.tanh_c * o * (1 - o),
        ],
        axis=1,
    )
    grads = {"W_xh": da.T @ cache.x, "W_hh": da.T @ cache.h_prev, "x": da @ cache.W_xh, "a": da}
    if cache.has_bias:
        grads["b_h"] = da.sum(axis=0)
    return da @ cache.W_hh, dc * f, grads


# ---------------------------------------------------------------------------------------------
# GRU (Cho et al. 2014) in PyTorch's form: the reset gate multiplies W_hn h + b_hn
# ---------------------------------------------------------------------------------------------


class GRUStepCache(NamedTuple):
    x: np.ndarray
    h_prev: np.ndarray
    gates: np.ndarray  # (B, 3H): r, z, n after their nonlinearities
    hn: np.ndarray  # (B, H): h_{t-1} W_hn^T + b_hn, what r multiplies
    W_xh: np.ndarray
    W_hh: np.ndarray
    has_bias: bool


def gru_step_forward(
    x: np.ndarray,
    h_prev: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
    b_h: np.ndarray | None,
    b_hh: np.ndarray | None,
) -> tuple[np.ndarray, GRUStepCache]:
    """One GRU step; W_xh (3H, I), W_hh (3H, H), biases (3H,) stacked [r; z; n]::

        [x_r, x_z, x_n] = x_t W_xh^T + b_h          [u_r, u_z, u_n] = h_{t-1} W_hh^T + b_hh
        r = sigmoid(x_r + u_r)    z = sigmoid(x_z + u_z)    n = tanh(x_n + r * u_n)
        h_t = (1 - z) * n + z * h_{t-1}

    The second bias b_hh is what PyTorch (and Keras with reset_after=True) keep: its n part
    sits inside the reset gate, so it cannot be folded into b_h. Returns (h, cache).
    """
    H = h_prev.shape[1]
    xa = x @ W_xh.T
    ua = h_prev @ W_hh.T
    if b_h is not None:
        xa += b_h
    if b_hh is not None:
        ua += b_hh
    r = sigmoid(xa[:, :H] + ua[:, :H])
    z = sigmoid(xa[:, H : 2 * H] + ua[:, H : 2 * H])
    hn = ua[:, 2 * H :]
    n = np.tanh(xa[:, 2 * H :] + r * hn)
    h = (1 - z) * n + z * h_prev
    gates = np.concatenate([r, z, n], axis=1)
    return h, GRUStepCache(x, h_prev, gates, hn, W_xh, W_hh, b_h is not None)


def gru_step_backward(dh: np.ndarray, cache: GRUStepCache) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Backward of :func:`gru_step_forward` given dh = dL/dh_t::

        dn = dh (1 - z)      dz = dh (h_{t-1} - n)      dh_{t-1} = dh z  (+ below)
        da_n = dn (1 - n^2)  dr = da_n u_n
        da_r = dr r (1 - r)  da_z = dz z (1 - z)
        input side   dxa = [da_r, da_z, da_n]        -> dW_xh, db_h, dx
        hidden side  dua = [da_r, da_z, da_n * r]    -> dW_hh, db_hh, dh_{t-1} += dua W_hh

    Returns (dh_prev, grads) with grads W_xh, W_hh, (b_h, b_hh,) x, a (= dxa) and u (= dua).
    """
    r, z, n = np.split(cache.gates, 3, axis=1)
    dn = dh * (1 - z)
    dz = dh * (cache.h_prev - n)
    dan = dn * (1 - n * n)
    dar = dan * cache.hn * r * (1 - r)
    daz = dz * z * (1 - z)
    dxa = np.concatenate([dar, daz, dan], axis=1)
    dua = np.concatenate([dar, daz, dan * r], axis=1)
    grads = {
        "W_xh": dxa.T @ cache.x,
        "W_hh": dua.T @ cache.h_prev,
        "x": dxa @ cache.W_xh,
        "a": dxa,
        "u": dua,
    }
    if cache.has_bias:
        grads["b_h"] = dxa.sum(axis=0)
        grads["b_hh"] = dua.sum(axis=0)
    return dh * z + dua @ cache.W_hh, grads
