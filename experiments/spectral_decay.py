"""Gradients decay (or grow) by the spectral radius per step.

Claim: for a linear RNN with W_hh = rho * Q, Q orthogonal, the gradient of a loss on the last
step, carried back k steps by the engine's BPTT, has norm exactly rho^k times its start:
dL/dh_{T-k} = (W_hh^T)^k dL/dh_T and ||(rho Q^T)^k g|| = rho^k ||g||. So the fitted slope of
log ||dL/dh_{T-k}|| against k must equal log(rho): vanishing below rho = 1, exploding above.
Source: Pascanu, Mikolov & Bengio (2013), section 2; the source document's "largest
eigenvalue < 1 vanishes, > 1 explodes" (shared/seeds/002).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minirnn as mr
from experiments import _common
from minirnn.init import orthogonal

NAME = "spectral_decay"
RHOS = (0.5, 0.9, 1.0, 1.1, 1.5)
TOLERANCE = 1e-9  # on |fitted slope - log(rho)|: the identity is exact, only rounding remains


def gradient_norms_by_lag(rho: float, H: int, T: int, rng: np.random.Generator) -> np.ndarray:
    """||dL/dh_{T-1-k}|| for k = 0..T-1, from the engine's BPTT, loss on the last step only."""
    I, B = 4, 1
    W_hh = rho * orthogonal(H, rng, np.dtype(np.float64))
    W_xh = rng.standard_normal((H, I)) / np.sqrt(I)
    X = rng.standard_normal((T, B, I))
    hs, cache = mr.rnn_forward(X, W_xh, W_hh, activation="linear")
    dhs = np.zeros_like(hs)
    dhs[-1] = rng.standard_normal((B, H))  # dL/dh_T for L = <g, h_T>
    dh = mr.rnn_backward(dhs, cache, return_dh=True)["dh"]
    return np.linalg.norm(dh[::-1].reshape(T, -1), axis=1)


def run(quick: bool = False, seed: int = 0, out_dir: Path = _common.OUT) -> dict:
    H, T = (16, 40) if quick else (64, 150)
    rng = np.random.default_rng(seed)
    k = np.arange(T)
    rows = []
    plt = _common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for rho, color in zip(RHOS, plt.cm.viridis(np.linspace(0, 0.9, len(RHOS))), strict=True):
        norms = gradient_norms_by_lag(rho, H, T, rng)
        slope, _intercept = np.polyfit(k, np.log(norms), 1)
        predicted = np.log(rho)
        rows.append(
            {
                "rho": rho,
                "measured_slope": slope,
                "predicted_slope": predicted,
                "abs_error": abs(slope - predicted),
                "max_log_deviation": float(np.max(np.abs(np.log(norms / norms[0]) - k * predicted))),
                "norm_at_max_lag_over_start": norms[-1] / norms[0],
                "pass": abs(slope - predicted) < TOLERANCE,
            }
        )
        ax.semilogy(k, norms / norms[0], color=color, lw=2.5, alpha=0.6, label=rf"measured, $\rho$ = {rho}")
        ax.semilogy(k, rho**k, color="k", ls=":", lw=1)
    ax.plot([], [], "k:", label=r"predicted $\rho^k$")
    ax.set_xlabel("lag k (steps back from the loss at T)")
    ax.set_ylabel(r"$\|\partial L/\partial h_{T-k}\| \;/\; \|\partial L/\partial h_T\|$")
    ax.set_title(rf"Linear RNN, $W_{{hh}} = \rho Q$ ($Q$ orthogonal), H = {H}: gradient norm vs lag")
    ax.legend(fontsize=8, loc="best")
    ax.grid(True, which="major", alpha=0.3)
    result = {
        "claim": "gradient norm decays/grows as rho^k: fitted log-slope = log(rho)",
        "source": "Pascanu, Mikolov & Bengio (2013) sec. 2; seed 002 (eigenvalue < 1 vanishes, > 1 explodes)",
        "prediction": {"slope": "log(rho)", "rhos": list(RHOS)},
        "measured": rows,
        "tolerance": {"abs_slope_error": TOLERANCE, "fit_range_k": [0, T - 1]},
        "config": {"H": H, "T": T, "B": 1, "activation": "linear", "quick": quick, "seed": seed},
        "pass": all(r["pass"] for r in rows),
    }
    return _common.save(NAME, result, fig, out_dir)


def main(argv: list[str] | None = None) -> int:
    args = _common.parse_args(__doc__.splitlines()[0], argv)
    result = run(args.quick, args.seed, args.out)
    for r in result["measured"]:
        print(
            f"  rho={r['rho']:<4}  slope {r['measured_slope']:+.12f}  predicted {r['predicted_slope']:+.12f}"
            f"  |err| {r['abs_error']:.1e}"
        )
    print(_common.report_line(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
