r"""Where gradients go: step Jacobians, their products, spectra, bounds and Lyapunov exponents.

The derivation (Pascanu, Mikolov & Bengio 2013; d2l.ai sec. 9.7). For the vanilla cell
h_t = f(W_hh h_{t-1} + W_xh x_t + b) the one-step Jacobian is

    J_t = dh_t / dh_{t-1} = diag(f'(a_t)) W_hh,

and the gradient of a loss at step t reaches step t - k through the product

    dL_t/dh_{t-k} = dL_t/dh_t  J_t J_{t-1} ... J_{t-k+1}.

With gamma = sup |f'| (tanh 1, sigmoid 1/4, relu 1, linear 1) and sigma_max the largest
singular value of W_hh, every factor has ||J_s|| <= gamma sigma_max, so

    ||dh_t/dh_{t-k}|| <= (gamma sigma_max)^k.

If sigma_max < 1/gamma the bound decays geometrically: the gradient vanishes whatever the
inputs (a sufficient condition). Exploding needs sigma_max > 1/gamma (a necessary condition,
not a sufficient one: saturation can still damp it). For a linear cell with W_hh = rho Q
(Q orthogonal) the product is rho^k Q^k and the norm is exactly rho^k; in general the rate
log ||J_t...J_{t-k+1}|| / k tends to the largest Lyapunov exponent of the hidden dynamics.

For the LSTM the state is (h, c) and J_t is the (2H, 2H) Jacobian of (h_t, c_t) w.r.t.
(h_{t-1}, c_{t-1}); for the GRU it is (H, H). All Jacobians are batched: shape (T, B, S, S).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .cells import ACTIVATION_GAMMA, activation_derivative
from .functional import GRUCache, LSTMCache, RNNCache
from .init import spectral_radius

__all__ = [
    "activation_gamma",
    "gradient_norm_trace",
    "jacobian_products",
    "lyapunov_exponents",
    "norm_bound",
    "norms_by_lag",
    "pascanu_conditions",
    "sigma_max",
    "spectral_radius",
    "step_jacobians",
    "step_jacobians_from_cache",
]


def sigma_max(W: np.ndarray) -> float:
    """Largest singular value ||W||_2."""
    return float(np.linalg.norm(np.asarray(W, dtype=np.float64), 2))


def activation_gamma(activation: str) -> float:
    """sup |f'(a)|: tanh 1, sigmoid 1/4, relu 1, linear 1."""
    if activation not in ACTIVATION_GAMMA:
        raise ValueError(f"unknown activation {activation!r}; expected one of {', '.join(ACTIVATION_GAMMA)}")
    return ACTIVATION_GAMMA[activation]


def pascanu_conditions(W_hh: np.ndarray, activation: str = "tanh") -> dict[str, Any]:
    """Pascanu et al. (2013)'s conditions for the vanilla cell with recurrent matrix W_hh.

    Returns sigma_max, spectral_radius, gamma, the per-step bound factor gamma * sigma_max, and
    which condition holds: ``vanishing_guaranteed`` (sigma_max < 1/gamma, sufficient) or
    ``exploding_possible`` (sigma_max > 1/gamma, necessary).
    """
    s, g = sigma_max(W_hh), activation_gamma(activation)
    return {
        "sigma_max": s,
        "spectral_radius": spectral_radius(W_hh),
        "gamma": g,
        "threshold": 1.0 / g,
        "bound_factor": g * s,
        "vanishing_guaranteed": s < 1.0 / g,
        "exploding_possible": s > 1.0 / g,
    }


def norm_bound(W_hh: np.ndarray, activation: str, lags: np.ndarray) -> np.ndarray:
    """The bound (gamma * sigma_max)^k on ||dh_t/dh_{t-k}||_2 for each k in ``lags``."""
    return (activation_gamma(activation) * sigma_max(W_hh)) ** np.asarray(lags, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# one-step Jacobians
# ---------------------------------------------------------------------------------------------


def _diag_times(d: np.ndarray, M: np.ndarray) -> np.ndarray:
    """diag(d) M for batched d (B, H) and M (H, K): (B, H, K)."""
    return d[:, :, None] * M[None]


def step_jacobians_from_cache(cache: RNNCache | LSTMCache | GRUCache) -> np.ndarray:
    """J[t] = d s_t / d s_{t-1} for every step, shape (T, B, S, S), from a forward's cache."""
    if isinstance(cache, RNNCache):
        fp = activation_derivative(cache.hs, cache.activation)  # (T, B, H)
        return fp[..., None] * cache.W_hh[None, None]
    if isinstance(cache, GRUCache):
        return np.stack([_gru_jacobian(cache, t) for t in range(len(cache.hs))])
    if isinstance(cache, LSTMCache):
        return np.stack([_lstm_jacobian(cache, t) for t in range(len(cache.hs))])
    raise TypeError(f"step_jacobians_from_cache: unknown cache type {type(cache).__name__}")


def _gru_jacobian(c: GRUCache, t: int) -> np.ndarray:
    H = c.hs.shape[2]
    W_hr, W_hz, W_hn = c.W_hh[:H], c.W_hh[H : 2 * H], c.W_hh[2 * H :]
    r, z, n = c.gates[t, :, :H], c.gates[t, :, H : 2 * H], c.gates[t, :, 2 * H :]
    h_prev = c.h0 if t == 0 else c.hs[t - 1]
    dz = _diag_times(z * (1 - z), W_hz)
    dr = _diag_times(r * (1 - r), W_hr)
    dn = (1 - n * n)[:, :, None] * (c.hn[t][:, :, None] * dr + _diag_times(r, W_hn))
    eye = np.eye(H)[None] * z[:, :, None]
    return eye + (1 - z)[:, :, None] * dn + (h_prev - n)[:, :, None] * dz


def _lstm_jacobian(c: LSTMCache, t: int) -> np.ndarray:
    H = c.hs.shape[2]
    W = [c.W_hh[g * H : (g + 1) * H] for g in range(4)]
    i, f, g, o = (c.gates[t, :, k * H : (k + 1) * H] for k in range(4))
    c_prev = c.c0 if t == 0 else c.cs[t - 1]
    tc = c.tanh_cs[t]
    di = _diag_times(i * (1 - i), W[0])
    df = _diag_times(f * (1 - f), W[1])
    dg = _diag_times(1 - g * g, W[2])
    do = _diag_times(o * (1 - o), W[3])
    dc_dh = c_prev[:, :, None] * df + g[:, :, None] * di + i[:, :, None] * dg
    dc_dc = np.eye(H)[None] * f[:, :, None]
    k = (o * (1 - tc * tc))[:, :, None]
    dh_dh = tc[:, :, None] * do + k * dc_dh
    dh_dc = k * dc_dc
    top = np.concatenate([dh_dh, dh_dc], axis=2)
    bottom = np.concatenate([dc_dh, dc_dc], axis=2)
    return np.concatenate([top, bottom], axis=1)


def step_jacobians(model: Any, X: np.ndarray, h0: Any = None, layer: int = 0) -> np.ndarray:
    """Run ``model`` over X and return layer ``layer``'s step Jacobians (T, B, S, S)."""
    if not 0 <= layer < model.num_layers:
        raise ValueError(f"step_jacobians: layer must be in [0, {model.num_layers}), got {layer}")
    _, cache = model.forward(X, h0)
    return step_jacobians_from_cache(cache.layers[layer])


# ---------------------------------------------------------------------------------------------
# products, norms, spectra
# ---------------------------------------------------------------------------------------------


def jacobian_products(J: np.ndarray, end: int | None = None, max_lag: int | None = None) -> np.ndarray:
    """P[k-1] = J[end] J[end-1] ... J[end-k+1] = d s_end / d s_{end-k}, for k = 1..max_lag.

    J (T, B, S, S) -> (max_lag, B, S, S). ``end`` defaults to the last step.
    """
    T = J.shape[0]
    end = T - 1 if end is None else end
    if not 0 <= end < T:
        raise ValueError(f"jacobian_products: end must be in [0, {T}), got {end}")
    K = end + 1 if max_lag is None else min(max_lag, end + 1)
    out = np.empty((K, *J.shape[1:]), dtype=J.dtype)
    P = J[end]
    out[0] = P
    for k in range(2, K + 1):
        P = P @ J[end - k + 1]
        out[k - 1] = P
    return out


def norms_by_lag(
    J: np.ndarray, max_lag: int, ends: list[int] | None = None, every: int = 1
) -> dict[str, np.ndarray]:
    """Spectral norms ||d s_t / d s_{t-k}||_2 for k = 1..max_lag, over end steps t and batch.

    Returns ``lag`` (K,), ``mean``, ``geomean``, ``min``, ``max`` (K,) and ``singular_values``
    (K, S): the mean over ends and batch of the sorted singular values of each product.
    ``every`` > 1 keeps only the lags 1, 1 + every, ... (the SVDs dominate the cost).
    """
    T = J.shape[0]
    if ends is None:
        ends = [T - 1]
    K = min(max_lag, min(ends) + 1)
    keep = np.arange(0, K, every)
    norms, svals = [], []
    for e in ends:
        s = np.linalg.svd(jacobian_products(J, e, K)[keep], compute_uv=False)  # (K', B, S)
        svals.append(s)
        norms.append(s[..., 0])
    sv = np.concatenate(svals, axis=1)  # (K, ends*B, S)
    nm = np.concatenate(norms, axis=1)  # (K, ends*B)
    with np.errstate(divide="ignore"):
        geo = np.exp(np.mean(np.log(nm), axis=1))
    return {
        "lag": keep + 1,
        "mean": nm.mean(axis=1),
        "geomean": geo,
        "min": nm.min(axis=1),
        "max": nm.max(axis=1),
        "singular_values": sv.mean(axis=1),
    }


def gradient_norm_trace(J: np.ndarray, G: np.ndarray, max_lag: int) -> dict[str, np.ndarray]:
    """||dL_t/ds_{t-k}|| for a loss at every step t whose gradient at s_t is G[t].

    dL_t/ds_{t-k} = G[t] J[t] J[t-1] ... J[t-k+1] (row vector times the product). Returns
    ``lag`` (K+1,) from 0, ``mean`` over t and batch (K+1,), and ``heatmap`` (T, K+1): the
    batch mean for each loss step t (NaN where t - k < 0).
    """
    T, B, S, _ = J.shape
    if G.shape != (T, B, S):
        raise ValueError(f"gradient_norm_trace: G has shape {G.shape}; expected (T, B, S) = {(T, B, S)}")
    K = min(max_lag, T - 1)
    heat = np.full((T, K + 1), np.nan)
    V = G.astype(np.float64, copy=True)
    heat[:, 0] = np.linalg.norm(V, axis=2).mean(axis=1)
    for k in range(1, K + 1):
        # V[t] holds dL_t/ds_{t-k+1}; multiply by J[t-k+1] for every t >= k
        V[k:] = np.einsum("tbs,tbsr->tbr", V[k:], J[1 : T - k + 1])
        heat[k:, k] = np.linalg.norm(V[k:], axis=2).mean(axis=1)
    return {"lag": np.arange(K + 1), "mean": np.nanmean(heat, axis=0), "heatmap": heat}


def lyapunov_exponents(J: np.ndarray, num: int = 1, skip: int = 0, seed: int = 0) -> np.ndarray:
    """The ``num`` largest Lyapunov exponents of the linearised dynamics, by the QR method.

    Q_0 random orthonormal (S, num); for each step Z = J_t Q, Q R = qr(Z), and
    lambda_i = mean_t log |R_ii| over the steps after ``skip``. Returns (B, num): per batch row.
    A linear RNN with W_hh = rho Q has every exponent equal to log(rho).
    """
    T, B, S, _ = J.shape
    if not 1 <= num <= S:
        raise ValueError(f"lyapunov_exponents: num must be in [1, {S}], got {num}")
    if not 0 <= skip < T:
        raise ValueError(f"lyapunov_exponents: skip must be in [0, {T}), got {skip}")
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((S, num)))
    Q = np.broadcast_to(Q, (B, S, num)).copy()
    acc = np.zeros((B, num))
    for t in range(T):
        Q, R = np.linalg.qr(J[t] @ Q)
        if t >= skip:
            with np.errstate(divide="ignore"):
                acc += np.log(np.abs(np.diagonal(R, axis1=1, axis2=2)))
    return acc / (T - skip)


def trace(model: Any, X: np.ndarray, max_lag: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Everything `minirnn trace` reports for layer 0 of ``model`` on inputs X (T, B, I).

    Jacobian-product norms and spectra by lag (ending at the last step), the gradient-norm
    trace for a random unit gradient at every step, the largest Lyapunov exponent and, for the
    vanilla cell, Pascanu et al.'s conditions and bound.
    """
    T = X.shape[0]
    K = T - 1 if max_lag is None else min(max_lag, T - 1)
    J = step_jacobians(model, X)
    rng = np.random.default_rng(seed)
    G = rng.standard_normal(J.shape[:3])
    G /= np.linalg.norm(G, axis=2, keepdims=True)
    ends = sorted({T - 1 - i for i in range(0, max(1, T - K), max(1, (T - K) // 4))} | {T - 1})
    ends = [e for e in ends if e + 1 >= K] or [T - 1]
    products = norms_by_lag(J, K, ends)
    result: dict[str, Any] = {
        "cell": model.cell,
        "activation": model.activation if model.cell == "rnn" else None,
        "T": T,
        "B": X.shape[1],
        "H": model.hidden_size,
        "products": products,
        "trace": gradient_norm_trace(J, G, K),
        "lyapunov": float(lyapunov_exponents(J, 1, skip=min(T // 5, T - 1), seed=seed).mean()),
    }
    W = model.params["W_hh_l0"]
    if model.cell == "rnn":
        result["pascanu"] = pascanu_conditions(W, model.activation)
        result["bound"] = norm_bound(W, model.activation, products["lag"])
    else:
        H = model.hidden_size
        result["spectral_radius"] = [spectral_radius(W[g * H : (g + 1) * H]) for g in range(W.shape[0] // H)]
    return result
