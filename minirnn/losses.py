"""Losses on a sequence of outputs: each returns ``(value, dL/dpred)``.

A target with one dimension fewer than the prediction is a last-step target: the loss is
taken on ``pred[-1]`` only and the gradient is zero at every earlier step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import _validate as v

LOSSES = ("mse", "cross_entropy")


def _last_step(where: str, pred: np.ndarray, target_ndim: int, full_ndim: int) -> bool:
    if target_ndim == full_ndim:
        return False
    if target_ndim == full_ndim - 1:
        return True
    raise ValueError(
        f"{where}: target has {target_ndim} dimensions; expected {full_ndim} (every step) "
        f"or {full_ndim - 1} (last step only) for a prediction of shape {pred.shape}"
    )


def mse(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean squared error, mean over every element used.

    pred (T, B, P); target (T, B, P) for every step, or (B, P) for the last step only.
    """
    where = "mse"
    pred = v.float_array(where, "pred", pred, 3, "(T, B, P)")
    target = np.asarray(target)
    last = _last_step(where, pred, target.ndim, 3)
    used = pred[-1] if last else pred
    target = v.float_array(where, "target", target, used.ndim, "(T, B, P) or (B, P)")
    v.shape_is(where, "target", target, used.shape, "the prediction's shape")
    v.same_dtype(where, {"pred": pred, "target": target})
    diff = used - target
    value = float(np.mean(diff * diff))
    grad = np.zeros_like(pred)
    g = (2.0 / diff.size) * diff
    if last:
        grad[-1] = g
    else:
        grad[...] = g
    return value, grad


def cross_entropy(logits: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy in nats, mean over the (time, batch) positions used.

    logits (T, B, P); target integer class indices (T, B), or (B,) for the last step only.
    Stable: log-softmax via the log-sum-exp with the row maximum subtracted.
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
    z = used - used.max(axis=-1, keepdims=True)
    logsumexp = np.log(np.exp(z).sum(axis=-1, keepdims=True))
    logp = z - logsumexp
    onehot = np.zeros_like(used)
    np.put_along_axis(onehot, target[..., None], 1, axis=-1)
    n = target.size
    value = float(-(logp * onehot).sum() / n)
    g = (np.exp(logp) - onehot) / n
    grad = np.zeros_like(logits)
    if last:
        grad[-1] = g
    else:
        grad[...] = g
    return value, grad


def get(name: str) -> Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]]:
    """The loss function called ``name``."""
    v.choice("loss", "loss", name, LOSSES)
    return {"mse": mse, "cross_entropy": cross_entropy}[name]
