"""One JSON-safe conversion for everything minirnn writes (CLI output, histories, checkpoints,
experiment results): NumPy scalars and arrays to Python numbers and lists, tuples to lists,
keys to strings, and NaN/Inf to their names (JSON has no literal for them)."""

from __future__ import annotations

from typing import Any

import numpy as np


def plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return plain(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return str(x)
    return x
