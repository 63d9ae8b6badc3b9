"""Gradient checking: the engine's BPTT against central finite differences in float64.

The derivative is estimated with the fourth-order central stencil

    f'(x) ~ (f(x - 2e) - 8 f(x - e) + 8 f(x + e) - f(x + 2e)) / (12 e),

whose truncation error is O(e^4), so a step e = 1e-3 keeps both truncation (~1e-13) and
roundoff (~1e-16 / e) far below the 1e-7 we require. ReLU has a kink at 0: when a perturbation
flips the sign of any pre-activation the difference quotient is meaningless there, so the step
is shrunk (up to three times by 10x) and, if the kink is still crossed, the entry is skipped
and counted in the report rather than reported as an error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import _validate as v
from . import losses
from .model import RNN

FLOOR = 1e-5


class GradcheckReport(dict):
    """``{name: relative error}`` for every checked array (see :func:`relative_error`).

    Attributes: ``checked`` and ``skipped`` (entries per array), ``eps``, ``loss``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.checked: dict[str, int] = {}
        self.skipped: dict[str, int] = {}
        self.eps = 0.0
        self.loss = ""

    @property
    def max_error(self) -> float:
        return max(self.values(), default=0.0)

    def ok(self, tol: float = 1e-7) -> bool:
        return self.max_error < tol

    def __str__(self) -> str:
        w = max(len(k) for k in self) if self else 4
        lines = [f"{'array':<{w}}  {'max rel error':>13}  {'checked':>7}  {'skipped':>7}"]
        for k, err in self.items():
            lines.append(f"{k:<{w}}  {err:>13.3e}  {self.checked[k]:>7}  {self.skipped[k]:>7}")
        lines.append(f"worst {self.max_error:.3e} (loss {self.loss}, step {self.eps:g})")
        return "\n".join(lines)

    __repr__ = __str__


def relative_error(analytic: np.ndarray, numeric: np.ndarray, floor: float = 0.0) -> float:
    """Normwise relative error max_i |a_i - n_i| / max(max_i |a_i|, max_i |n_i|, floor).

    Normwise, not elementwise: an entry a million times smaller than the array's largest is
    below what a finite difference resolves in float64, and an elementwise ratio would report
    that roundoff as error. ``floor`` does the same for an array whose gradient is (nearly)
    zero altogether. 0 when both are exactly 0.
    """
    if analytic.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(analytic))), float(np.max(np.abs(numeric))), floor)
    diff = float(np.max(np.abs(analytic - numeric)))
    return diff / scale if scale > 0 else diff


def gradcheck(
    model: RNN,
    X: np.ndarray,
    Y: np.ndarray,
    loss: str = "mse",
    h0: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
    *,
    eps: float = 1e-3,
    max_checks: int | None = None,
    seed: int = 0,
) -> GradcheckReport:
    """Compare ``model.backward`` with finite differences of the loss.

    Parameters
    ----------
    model : RNN
        A float64 model (use ``model.astype("float64")`` for a float32 one).
    X : ndarray, shape (T, B, I)
    Y : ndarray
        Targets for ``loss``: (T, B, P) or last-step (B, P) for "mse"; integer (T, B) or
        (B,) for "cross_entropy".
    h0 : ndarray, shape (L, B, H), or a pair (h0, c0) of them for the LSTM, optional
        Initial states (zeros when omitted; their gradient is checked either way).
    eps : float
        Finite-difference step.
    max_checks : int, optional
        Check at most this many randomly chosen entries per array (all when None).

    Returns
    -------
    GradcheckReport
        Relative error per parameter, and for ``X``, ``h0`` (and ``c0`` for the LSTM).
    """
    where = "gradcheck"
    if not isinstance(model, RNN):
        raise TypeError(f"{where}: model must be a minirnn.RNN, got {type(model).__name__}")
    if model.dtype != np.float64:
        raise TypeError(
            f"{where}: the model is {model.dtype}; finite differences need float64 "
            "(check model.astype('float64'))"
        )
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"{where}: eps must be a positive number, got {eps!r}")
    if max_checks is not None:
        v.positive_int(where, "max_checks", max_checks)
    loss_fn: Callable = losses.get(loss)
    Xw = v.float_array(where, "X", X, 3, "(T, B, I)").copy()
    _T, B, _ = Xw.shape
    L, H = model.num_layers, model.hidden_size
    lstm = model.cell == "lstm"
    states: dict[str, np.ndarray] = {"h0": np.zeros((L, B, H))}
    if lstm:
        states["c0"] = np.zeros((L, B, H))
    if h0 is not None:
        given = h0 if lstm else (h0,)
        if lstm and (not isinstance(h0, tuple | list) or len(h0) != 2):
            raise TypeError(f"{where}: the LSTM's h0 must be a pair (h0, c0) of (L, B, H) arrays")
        for name, arr in zip(states, given, strict=True):
            states[name] = v.float_array(where, name, arr, 3, "(L, B, H)").copy()
    state0 = (states["h0"], states["c0"]) if lstm else states["h0"]
    relu = model.activation == "relu"

    def evaluate() -> tuple[float, np.ndarray | None]:
        out, cache = model.forward(Xw, state0)
        pattern = np.concatenate([(c.hs > 0).ravel() for c in cache.layers]) if relu else None
        return loss_fn(out, Y)[0], pattern

    out, cache = model.forward(Xw, state0)
    _, dY = loss_fn(out, Y)
    analytic = model.backward(dY, cache)
    base_loss, base_pattern = evaluate()
    # The stencil's roundoff is ~1e-13 |L| at eps = 1e-3: gradients below 1e-5 |L| are judged
    # on that scale, so an exactly-zero gradient (W_hh at T = 1 from h0 = 0) is not "100% off".
    floor = FLOOR * max(1.0, abs(base_loss)) * (1e-3 / min(eps, 1e-3))

    report = GradcheckReport()
    report.eps, report.loss = eps, loss
    rng = np.random.default_rng(seed)
    targets = {**model.params, "X": Xw, **states}
    for name, arr in targets.items():
        flat = arr.reshape(-1)  # a view: perturbing it perturbs what forward reads
        a_flat = analytic[name].reshape(-1)
        idx = np.arange(flat.size)
        if max_checks is not None and flat.size > max_checks:
            idx = rng.choice(flat.size, size=max_checks, replace=False)
        num = np.empty(idx.size)
        keep = np.ones(idx.size, dtype=bool)
        for j, i in enumerate(idx):
            orig = flat[i]
            step = eps
            for _attempt in range(4):
                values = []
                crossed = False
                for m in (-2, -1, 1, 2):
                    flat[i] = orig + m * step
                    value, pattern = evaluate()
                    values.append(value)
                    if pattern is not None and base_pattern is not None:
                        crossed |= not np.array_equal(pattern, base_pattern)
                flat[i] = orig
                if not crossed:
                    break
                step /= 10
            if crossed:
                keep[j] = False
                num[j] = np.nan
                continue
            f_m2, f_m1, f_p1, f_p2 = values
            num[j] = (f_m2 - 8 * f_m1 + 8 * f_p1 - f_p2) / (12 * step)
        report[name] = relative_error(a_flat[idx][keep], num[keep], floor)
        report.checked[name] = int(keep.sum())
        report.skipped[name] = int((~keep).sum())
    return report
