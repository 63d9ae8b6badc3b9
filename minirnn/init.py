"""Weight initializers. Each takes a ``numpy.random.Generator`` and returns a new array.

The recurrent matrix decides how gradients travel: its spectral radius rho sets the per-step
factor of the linearised dynamics (||dh_t/dh_{t-k}|| ~ rho^k), so every scheme here can be
rescaled to a chosen radius with :func:`scale_to_spectral_radius`.
"""

from __future__ import annotations

import numpy as np

INITS = ("pytorch", "xavier", "orthogonal", "identity", "normal")


def pytorch_uniform(
    shape: tuple[int, ...], hidden_size: int, rng: np.random.Generator, dtype: np.dtype
) -> np.ndarray:
    """U(-1/sqrt(H), 1/sqrt(H)): PyTorch's default for every RNN weight and bias."""
    bound = 1.0 / np.sqrt(hidden_size)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def xavier_uniform(
    shape: tuple[int, int], rng: np.random.Generator, dtype: np.dtype, gain: float = 1.0
) -> np.ndarray:
    """Glorot & Bengio (2010): U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_out, fan_in = shape
    bound = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def orthogonal(n: int, rng: np.random.Generator, dtype: np.dtype, gain: float = 1.0) -> np.ndarray:
    """A Haar-random orthogonal (n, n) matrix times ``gain`` (QR of a Gaussian, signs fixed
    as in Mezzadri 2007 so the distribution is uniform). All its eigenvalues have |lambda| = gain.
    """
    A = rng.standard_normal((n, n))
    Q, R = np.linalg.qr(A)
    Q *= np.sign(np.diag(R))
    return (gain * Q).astype(dtype)


def spectral_radius(W: np.ndarray) -> float:
    """max |lambda_i(W)|."""
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(W, dtype=np.float64)))))


def scale_to_spectral_radius(W: np.ndarray, radius: float) -> np.ndarray:
    """W rescaled so that its spectral radius is ``radius`` (a new array, same dtype)."""
    if not np.isfinite(radius) or radius < 0:
        raise ValueError(f"scale_to_spectral_radius: radius must be finite and >= 0, got {radius}")
    rho = spectral_radius(W)
    if rho == 0:
        raise ValueError("scale_to_spectral_radius: W has spectral radius 0 and cannot be rescaled")
    return (W * (radius / rho)).astype(W.dtype)


def recurrent_weights(
    init: str,
    hidden_size: int,
    input_size: int,
    rng: np.random.Generator,
    dtype: np.dtype,
    radius: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W_xh (H, I), W_hh (H, H), b_h (H,)) for one vanilla layer under scheme ``init``.

    pytorch     all U(-1/sqrt(H), 1/sqrt(H)), bias too
    xavier      Glorot-uniform weights, zero bias
    orthogonal  Glorot-uniform W_xh, orthogonal W_hh (Saxe et al. 2014), zero bias
    identity    IRNN (Le et al. 2015): W_hh = I, W_xh ~ N(0, 0.001^2), zero bias
    normal      W_hh ~ N(0, 1/H) (spectral radius close to 1 by the circular law),
                Glorot-uniform W_xh, zero bias

    With ``radius``, W_hh is then rescaled to that spectral radius.
    """
    W_xh, W_hh, b_h = _vanilla(init, hidden_size, input_size, rng, dtype)
    if radius is not None:
        W_hh = scale_to_spectral_radius(W_hh, radius)
    return W_xh, W_hh, b_h


def _vanilla(
    init: str, hidden_size: int, input_size: int, rng: np.random.Generator, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    H, I = hidden_size, input_size
    if init == "pytorch":
        return (
            pytorch_uniform((H, I), H, rng, dtype),
            pytorch_uniform((H, H), H, rng, dtype),
            pytorch_uniform((H,), H, rng, dtype),
        )
    zeros = np.zeros(H, dtype=dtype)
    if init == "xavier":
        return xavier_uniform((H, I), rng, dtype), xavier_uniform((H, H), rng, dtype), zeros
    if init == "orthogonal":
        return xavier_uniform((H, I), rng, dtype), orthogonal(H, rng, dtype), zeros
    if init == "identity":
        return (0.001 * rng.standard_normal((H, I))).astype(dtype), np.eye(H, dtype=dtype), zeros
    if init == "normal":
        W_hh = (rng.standard_normal((H, H)) / np.sqrt(H)).astype(dtype)
        return xavier_uniform((H, I), rng, dtype), W_hh, zeros
    raise ValueError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")


def gated_weights(
    cell: str,
    init: str,
    hidden_size: int,
    input_size: int,
    rng: np.random.Generator,
    dtype: np.dtype,
    radius: float | None = None,
) -> dict[str, np.ndarray]:
    """Weights of one LSTM (4 gates) or GRU (3 gates) layer, gate blocks stacked as in PyTorch.

    Returns W_xh (G*H, I), W_hh (G*H, H), b_h (G*H,) and, for the GRU, b_hh (G*H,). "pytorch"
    draws everything from U(-1/sqrt(H), 1/sqrt(H)); the other schemes initialise each gate's
    (H, I) and (H, H) block as :func:`recurrent_weights` would and zero the biases. ``radius``
    rescales each gate's recurrent block.
    """
    G = {"lstm": 4, "gru": 3}[cell]
    H, I = hidden_size, input_size
    if init == "identity":
        raise ValueError(f"init 'identity' (IRNN) is for the vanilla cell, not {cell!r}")
    if init == "pytorch":
        W_xh = pytorch_uniform((G * H, I), H, rng, dtype)
        W_hh = pytorch_uniform((G * H, H), H, rng, dtype)
        biases = [pytorch_uniform((G * H,), H, rng, dtype) for _ in range(2 if cell == "gru" else 1)]
    else:
        blocks = [_vanilla(init, H, I, rng, dtype) for _ in range(G)]
        W_xh = np.concatenate([b[0] for b in blocks])
        W_hh = np.concatenate([b[1] for b in blocks])
        biases = [np.zeros(G * H, dtype=dtype) for _ in range(2 if cell == "gru" else 1)]
    if radius is not None:
        W_hh = np.concatenate([scale_to_spectral_radius(W_hh[g * H : (g + 1) * H], radius) for g in range(G)])
    out = {"W_xh": W_xh, "W_hh": W_hh, "b_h": biases[0]}
    if cell == "gru":
        out["b_hh"] = biases[1]
    return out
