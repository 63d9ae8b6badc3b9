"""Arrays in, arrays out: forward and backward over a whole sequence.

Each public function validates at the boundary (shapes, dtypes, finiteness), then either

* the fast path: one GEMM for the input projection of all T steps, a numba kernel for the
  recurrence (kernels.py), and whole-sequence GEMMs for the weight gradients; or
* the reference path (``MINIRNN_JIT=0``): a plain loop over cells.py's step functions.

Both give the same numbers to rounding; the tests hold them to 1e-12.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _validate as v
from ._jit import jit_enabled, kernels
from .cells import ACTIVATION_CODES, RNNStepCache, rnn_step_backward, rnn_step_forward

# Below this many multiply-adds per step the hand-written loop beats a BLAS call's overhead.
BLAS_MIN_MACS = 32 * 64 * 64


def use_blas(B: int, H: int) -> bool:
    """Pick the recurrent product for one step of a (B, H) state."""
    return B * H * H >= BLAS_MIN_MACS


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


def _check_rnn_inputs(
    where: str,
    X: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
    b_h: np.ndarray | None,
    h0: np.ndarray | None,
    activation: str,
    check_finite: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    v.choice(where, "activation", activation, v.ACTIVATIONS)
    X = v.float_array(where, "X", X, 3, "(T, B, I)", check_finite=check_finite)
    W_xh = v.float_array(where, "W_xh", W_xh, 2, "(H, I)", check_finite=check_finite)
    W_hh = v.float_array(where, "W_hh", W_hh, 2, "(H, H)", check_finite=check_finite)
    _T, B, I = X.shape
    H = W_hh.shape[0]
    v.shape_is(where, "W_hh", W_hh, (H, H), "(H, H), square")
    v.shape_is(where, "W_xh", W_xh, (H, I), "(H, I) with H from W_hh and I from X")
    if b_h is not None:
        b_h = v.float_array(where, "b_h", b_h, 1, "(H,)", check_finite=check_finite)
        v.shape_is(where, "b_h", b_h, (H,), "(H,)")
    if h0 is not None:
        h0 = v.float_array(where, "h0", h0, 2, "(B, H)", check_finite=check_finite)
        v.shape_is(where, "h0", h0, (B, H), "(B, H) with B from X and H from W_hh")
    v.same_dtype(where, {"X": X, "W_xh": W_xh, "W_hh": W_hh, "b_h": b_h, "h0": h0})
    return X, W_xh, W_hh, b_h, h0


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
    X, W_xh, W_hh, b_h, h0 = _check_rnn_inputs(
        "rnn_forward", X, W_xh, W_hh, b_h, h0, activation, check_finite
    )
    T, B, I = X.shape
    H = W_hh.shape[0]
    if h0 is None:
        h0 = np.zeros((B, H), dtype=X.dtype)
    if jit_enabled():
        hs = (X.reshape(T * B, I) @ W_xh.T).reshape(T, B, H)
        if b_h is not None:
            hs += b_h
        kernels().rnn_forward_scan(
            hs,
            np.ascontiguousarray(W_hh.T),
            h0,
            ACTIVATION_CODES[activation],
            use_blas(B, H),
            np.empty((B, H), dtype=X.dtype),
        )
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
    dhs = v.float_array(where, "dhs", dhs, 3, "(T, B, H)", check_finite=check_finite)
    v.shape_is(where, "dhs", dhs, cache.hs.shape, "(T, B, H), the shape of the forward's hs")
    v.same_dtype(where, {"dhs": dhs, "hs (from the forward)": cache.hs})
    k = 0
    if truncate is not None:
        k = v.positive_int(where, "truncate", truncate)
    X, hs, h0, W_xh, W_hh = cache.X, cache.hs, cache.h0, cache.W_xh, cache.W_hh
    T, B, I = X.shape
    H = W_hh.shape[0]

    if jit_enabled():
        da = np.empty_like(hs)
        dh_total = np.empty_like(hs) if return_dh else da[:1]
        dh0 = np.empty((B, H), dtype=hs.dtype)
        kernels().rnn_backward_scan(
            dhs,
            hs,
            W_hh,
            ACTIVATION_CODES[cache.activation],
            k,
            use_blas(B, H),
            da,
            dh_total,
            return_dh,
            dh0,
            np.empty((B, H), dtype=hs.dtype),
        )
        DA = da.reshape(T * B, H)
        dW_hh = da[0].T @ h0
        if T > 1:
            dW_hh += DA[B:].T @ hs[:-1].reshape((T - 1) * B, H)
        grads = {
            "W_xh": DA.T @ X.reshape(T * B, I),
            "W_hh": dW_hh,
            "X": (DA @ W_xh).reshape(T, B, I),
            "h0": dh0,
        }
        if cache.b_h is not None:
            grads["b_h"] = DA.sum(axis=0)
        if return_dh:
            grads["dh"] = dh_total
        return grads

    # reference path: the step pair from cells.py, walked backwards
    grads = {"W_xh": np.zeros_like(W_xh), "W_hh": np.zeros_like(W_hh), "X": np.empty_like(X)}
    if cache.b_h is not None:
        grads["b_h"] = np.zeros_like(cache.b_h)
    dh_all = np.empty_like(hs) if return_dh else None
    carry = np.zeros((B, H), dtype=hs.dtype)
    for t in range(T - 1, -1, -1):
        step = RNNStepCache(
            X[t], h0 if t == 0 else hs[t - 1], hs[t], W_xh, W_hh, cache.b_h is not None, cache.activation
        )
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
