"""Gradient clipping: by global norm (Pascanu et al. 2013) and by value (min-char-rnn's +-5).

Both take the dict that ``RNN.backward`` returns (or any dict or list of arrays) and change the
parameter gradients in place. Entries named ``X``, ``h0``, ``c0`` and ``dh`` are gradients with
respect to inputs and states, not parameters: they are neither counted nor clipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

NOT_PARAMETERS = frozenset({"X", "h0", "c0", "dh"})
# A sum of squares above this has lost nothing to subnormal squares (float64's smallest normal
# is 2.2e-308; squares of gradients whose norm is above 1e-140 are all normal or negligible).
_SAFE_SQUARES = 1e-280


def _parameter_grads(where: str, grads: Mapping[str, np.ndarray] | Iterable[np.ndarray]) -> list[np.ndarray]:
    items = (
        [g for k, g in grads.items() if k not in NOT_PARAMETERS]
        if isinstance(grads, Mapping)
        else list(grads)
    )
    for g in items:
        if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
            raise TypeError(f"{where}: gradients must be float arrays, got {type(g).__name__}")
    return items


def _positive_number(where: str, name: str, value: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: {name} must be a positive number, got {value!r}") from None
    if not math.isfinite(x) or x <= 0:
        raise ValueError(f"{where}: {name} must be a positive finite number, got {value!r}")
    return x


def global_norm(grads: Mapping[str, np.ndarray] | Iterable[np.ndarray], norm_type: float = 2.0) -> float:
    """The norm of all parameter gradients taken together, accumulated in float64.

    For finite p the sum is scaled by the largest magnitude first, so float32 gradients of 1e20
    (whose squares overflow float32) or float64 ones of 1e200 still give the right norm.
    """
    where = "global_norm"
    arrays = _parameter_grads(where, grads)
    p = float(norm_type)
    if not (p > 0):
        raise ValueError(f"global_norm: norm_type must be > 0 or inf, got {norm_type!r}")
    if not arrays:
        return 0.0
    if p == 2.0:
        # one float64 dot product per array (12x faster on a small model's five arrays, where
        # a training step per block of a short sequence paid ~70 us for the scaled sums below);
        # those only where the plain sum of squares leaves float64's safe range: overflow
        # (huge gradients), subnormal squares (tiny ones), zero, NaN or Inf
        total = 0.0
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            for g in arrays:
                a = g.reshape(-1).astype(np.float64, copy=False)
                total += float(np.dot(a, a))
        if _SAFE_SQUARES < total < math.inf:
            return math.sqrt(total)
    peak = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in arrays)
    if p == math.inf or peak == 0.0 or not math.isfinite(peak):
        if not math.isfinite(peak) and any(np.isnan(g).any() for g in arrays):
            return math.nan
        return peak
    total = 0.0
    for g in arrays:
        scaled = np.abs(g, dtype=np.float64) / peak
        total += float(np.sum(scaled * scaled)) if p == 2.0 else float(np.sum(scaled**p))
    return peak * total ** (1.0 / p)


def clip_grad_norm(
    grads: Mapping[str, np.ndarray] | Iterable[np.ndarray],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Rescale the gradients in place so their global norm is at most ``max_norm``.

    As in Pascanu et al. (2013): if ||g|| > max_norm then g <- max_norm * g / ||g||. The factor
    is computed as PyTorch's ``clip_grad_norm_`` does, ``min(1, max_norm / (||g|| + 1e-6))``, so
    the results agree with it exactly.

    Non-finite norm: with ``error_if_nonfinite=True`` a ValueError is raised and nothing is
    changed; otherwise PyTorch's documented behaviour is followed: the factor is applied as it
    comes out (NaN for a NaN norm, 0 for an infinite one), which leaves NaN in the gradients.
    Returns the total norm before clipping.
    """
    where = "clip_grad_norm"
    max_norm = _positive_number(where, "max_norm", max_norm)
    arrays = _parameter_grads(where, grads)
    total = global_norm(arrays, norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise ValueError(
            f"{where}: the total norm of order {norm_type} of the gradients is {total}; "
            "expected a finite number (set error_if_nonfinite=False to clip anyway)"
        )
    rescale(arrays, total, max_norm)
    return total


def rescale(arrays: list[np.ndarray], total: float, max_norm: float) -> float:
    """Scale ``arrays`` (their global norm already known to be ``total``) as
    :func:`clip_grad_norm` does, and return the norm they have afterwards: for callers that
    computed the norm themselves, so the gradients are not read twice."""
    coef = max_norm / (total + 1e-6)
    if math.isfinite(total):
        coef = min(1.0, coef)
    if coef != 1.0:
        with np.errstate(invalid="ignore"):
            for g in arrays:
                g *= g.dtype.type(coef)
    return total * coef


def clip_grad_value(grads: Mapping[str, np.ndarray] | Iterable[np.ndarray], clip_value: float) -> None:
    """Clip every parameter-gradient entry into [-clip_value, clip_value], in place."""
    where = "clip_grad_value"
    c = _positive_number(where, "clip_value", clip_value)
    for g in _parameter_grads(where, grads):
        np.clip(g, -c, c, out=g)
