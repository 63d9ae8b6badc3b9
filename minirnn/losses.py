"""Losses on a sequence of outputs: each returns ``(value, dL/dpred)``.

Which steps count:

* a target with the prediction's time axis: every step;
* a target with one dimension fewer: the last step only (the gradient is zero before it);
* ``mask`` (T, B) of 0/1 with an every-step target: only the positions where it is 1, for
  padded sequences or tasks scored at chosen steps.

The value is a mean over the positions used (and over the output units for mse), so it does
not grow with T; an all-zero mask gives 0 and a zero gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import _validate as v

LOSSES = ("mse", "cross_entropy")

Loss = Callable[..., tuple[float, np.ndarray]]


def _last_step(where: str, pred: np.ndarray, target_ndim: int, full_ndim: int) -> bool:
    if target_ndim == full_ndim:
        return False
    if target_ndim == full_ndim - 1:
        return True
    raise ValueError(
        f"{where}: target has {target_ndim} dimensions; expected {full_ndim} (every step) "
        f"or {full_ndim - 1} (last step only) for a prediction of shape {pred.shape}"
    )


def _mask(
    where: str, mask: np.ndarray | None, shape: tuple[int, int], last: bool, dtype: np.dtype
) -> np.ndarray | None:
    if mask is None:
        return None
    if last:
        raise ValueError(f"{where}: a mask needs an every-step target (T, B, ...), not a last-step one")
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(f"{where}: mask has shape {m.shape}; expected (T, B) = {shape}")
    if m.dtype != bool and not np.isin(m, (0, 1)).all():
        raise ValueError(f"{where}: mask must hold only 0 and 1 (or booleans)")
    return m.astype(dtype)


def mse(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Mean squared error over the positions used and the output units.

    pred (T, B, P); target (T, B, P) for every step, or (B, P) for the last step only;
    mask (T, B), optional.
    """
    where = "mse"
    pred = v.float_array(where, "pred", pred, 3, "(T, B, P)")
    target = np.asarray(target)
    last = _last_step(where, pred, target.ndim, 3)
    used = pred[-1] if last else pred
    target = v.float_array(where, "target", target, used.ndim, "(T, B, P) or (B, P)")
    v.shape_is(where, "target", target, used.shape, "the prediction's shape")
    v.same_dtype(where, {"pred": pred, "target": target})
    m = _mask(where, mask, pred.shape[:2], last, pred.dtype)
    diff = used - target
    if m is not None:
        count = float(m.sum()) * pred.shape[2]
        if count == 0:
            return 0.0, np.zeros_like(pred)
        diff = diff * m[..., None]
    else:
        count = diff.size
    value = float(np.sum(diff * diff) / count)
    g = (2.0 / count) * diff  # a new array of pred's dtype (a Python float does not promote)
    if not last:
        return value, g
    grad = np.zeros_like(pred)
    grad[-1] = g
    return value, grad


def cross_entropy(
    logits: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy in nats, mean over the (time, batch) positions used.

    logits (T, B, P); target integer class indices (T, B), or (B,) for the last step only;
    mask (T, B), optional. Stable: log-softmax via the log-sum-exp with the row maximum
    subtracted.
    """
    where = "cross_entropy"
    logits = v.float_array(where, "logits", logits, 3, "(T, B, P)")
    target = np.asarray(target)
    if not np.issubdtype(target.dtype, np.integer):
        raise TypeError(f"{where}: target has dtype {target.dtype}; expected integer class indices")
    last = _last_step(where, logits, target.ndim, 2)
    used = logits[-1] if last else logits
    v.shape_is(where, "target", target, used.shape[:-1], "(T, B) or (B,)")
    P = logits.shape[-1]
    if target.min() < 0 or target.max() >= P:
        raise ValueError(
            f"{where}: target has class indices outside [0, {P}): min {target.min()}, max {target.max()}"
        )
    m = _mask(where, mask, logits.shape[:2], last, logits.dtype)
    grad = np.zeros_like(logits)
    count = float(m.sum()) if m is not None else target.size
    if count == 0:
        return 0.0, grad
    logp = _log_softmax(used)
    onehot = np.zeros_like(used)
    np.put_along_axis(onehot, target[..., None], 1, axis=-1)
    per_position = -(logp * onehot).sum(axis=-1)
    g = np.exp(logp) - onehot
    if m is not None:
        per_position = per_position * m
        g = g * m[..., None]
    value = float(per_position.sum() / count)
    g /= count
    if last:
        grad[-1] = g
    else:
        grad[...] = g
    return value, grad


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)  # the row maximum subtracted: no overflow
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def per_position(name: str, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The loss at every (time, batch) position, (T, B), for every-step targets: mse's mean
    over the output units, or cross-entropy's -log p(target); the values the functions above
    average. No checks: for callers that have just called the loss itself on the same arrays."""
    if name == "mse":
        diff = pred - target
        diff *= diff  # in place: one temporary as wide as pred, not two
        return diff.mean(axis=-1)
    return -np.take_along_axis(_log_softmax(pred), target[..., None], axis=-1)[..., 0]


def get(name: str) -> Loss:
    """The loss function called ``name``."""
    v.choice("loss", "loss", name, LOSSES)
    return {"mse": mse, "cross_entropy": cross_entropy}[name]
