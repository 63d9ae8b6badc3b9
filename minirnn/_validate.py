"""Boundary checks: every public function validates here, then hands clean arrays inward.

Messages follow one pattern: ``<function>: <argument> <what was wrong>; expected <what>``,
so a user sees the offending value and the rule in one line (as Keras and PyTorch do).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")


def positive_int(where: str, name: str, value: Any) -> int:
    """Return ``value`` as int if it is a positive integer (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{where}: {name} must be a positive integer, got {value}")
    return int(value)


def nonnegative_int(where: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name} must be a non-negative integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{where}: {name} must be a non-negative integer, got {value}")
    return int(value)


def choice(where: str, name: str, value: Any, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{where}: unknown {name} {value!r}; expected one of {', '.join(options)}")
    return value


def dtype_of(where: str, value: Any) -> np.dtype:
    """Parse a dtype argument ("float64", np.float32, ...) into one of the two we support."""
    try:
        dt = np.dtype(value)
    except TypeError:
        raise TypeError(f"{where}: dtype {value!r} is not a dtype; expected float32 or float64") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{where}: dtype {dt} is not supported; expected float32 or float64")
    return dt


def float_array(
    where: str,
    name: str,
    value: Any,
    ndim: int,
    dims: str,
    *,
    check_finite: bool = True,
) -> np.ndarray:
    """Return ``value`` as a C-contiguous float32/float64 array with ``ndim`` dimensions.

    ``dims`` names the axes for the message, e.g. "(T, B, I)". The dtype is never changed:
    an integer array is refused rather than silently converted.
    """
    if value is None:
        raise TypeError(f"{where}: {name} is None; expected an array of shape {dims}")
    arr = np.asarray(value)
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{where}: {name} has dtype {arr.dtype}; expected float32 or float64 "
            f"(convert it yourself, e.g. {name}.astype(np.float64))"
        )
    if arr.ndim != ndim:
        raise ValueError(
            f"{where}: {name} must have {ndim} dimension{'s' if ndim != 1 else ''} {dims}, "
            f"got shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"{where}: {name} is empty (shape {arr.shape}); expected {dims} with sizes > 0")
    if check_finite and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{where}: {name} contains NaN or Inf (first at index {tuple(int(i) for i in bad)}: "
            f"{arr[tuple(bad)]}); expected finite values"
        )
    return np.ascontiguousarray(arr)


def same_dtype(where: str, arrays: dict[str, np.ndarray | None]) -> np.dtype:
    """All given arrays share one dtype; otherwise a TypeError listing each."""
    present = {k: a for k, a in arrays.items() if a is not None}
    dts = {a.dtype for a in present.values()}
    if len(dts) > 1:
        listing = ", ".join(f"{k} {a.dtype}" for k, a in present.items())
        raise TypeError(
            f"{where}: mixed dtypes ({listing}); expected one dtype for all arrays "
            "(minirnn never converts silently)"
        )
    return next(iter(dts))


def shape_is(where: str, name: str, arr: np.ndarray, expected: tuple[int, ...], dims: str) -> None:
    if arr.shape != tuple(expected):
        raise ValueError(f"{where}: {name} has shape {arr.shape}; expected {dims} = {tuple(expected)}")
