"""The Lyapunov view: the largest Lyapunov exponent of the hidden dynamics against rho.

The gradient ||dh_t/dh_{t-k}|| is the growth of a perturbation pushed through the linearised
dynamics, so its per-step log rate over long lags is the largest Lyapunov exponent lambda_1
(computed separately, by the QR method on the step Jacobians). Predictions: the measured
decay rate equals lambda_1 within the tolerance, and the sign of lambda_1 tells the regime:
lambda_1 < 0 the gradient vanishes, lambda_1 > 0 it explodes. For a tanh RNN the crossing is
not at rho = 1: saturation moves it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minirnn as mr
from experiments import _common
from minirnn import analysis
from minirnn.init import scale_to_spectral_radius

NAME = "lyapunov"
TOLERANCE = 0.03  # |decay rate - lambda_1| per step
SIGN_MARGIN = 0.03  # signs are compared where |lambda_1| exceeds this


def run(quick: bool = False, seed: int = 0, out_dir: Path = _common.OUT) -> dict:
    H, T, K, fit_from = (32, 200, 100, 30) if quick else (64, 300, 150, 40)
    rhos = [0.5, 1.0, 1.5, 2.0, 3.0] if quick else [round(r, 2) for r in np.linspace(0.5, 3.0, 11)]
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((H, H))
    X = 0.5 * rng.standard_normal((T, 4, 3))
    rows = []
    for rho in rhos:
        model = mr.RNN(3, H, activation="tanh", bias=False, seed=seed)
        model.params["W_hh_l0"] = scale_to_spectral_radius(base, rho)
        J = analysis.step_jacobians(model, X)
        lam = float(analysis.lyapunov_exponents(J, 1, skip=T // 5).mean())
        rate, _ = _common.decay_rate(J, K, fit_from)
        rows.append({"rho": rho, "lyapunov": lam, "decay_rate": rate, "abs_error": abs(rate - lam)})
    checks = {
        "rate_equals_lyapunov": all(r["abs_error"] < TOLERANCE for r in rows),
        "sign_gives_regime": all(
            np.sign(r["lyapunov"]) == np.sign(r["decay_rate"])
            for r in rows
            if abs(r["lyapunov"]) > SIGN_MARGIN
        ),
    }
    crossing = _common.zero_crossing([r["rho"] for r in rows], [r["lyapunov"] for r in rows])
    plt = _common.pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    ax.plot(
        rhos, [r["lyapunov"] for r in rows], "o-", label=r"largest Lyapunov exponent $\lambda_1$ (QR method)"
    )
    ax.plot(
        rhos,
        [r["decay_rate"] for r in rows],
        "s--",
        label=r"measured growth rate of $\|\partial h_t/\partial h_{t-k}\|$",
    )
    ax.plot(rhos, np.log(rhos), "k:", lw=1, label=r"$\log\rho$ (a linear cell)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.fill_between(rhos, -2, 0, color="C0", alpha=0.05)
    ax.text(rhos[0], -0.1, "vanishing", fontsize=8, va="top")
    ax.text(rhos[0], 0.05, "exploding", fontsize=8)
    ax.set_ylim(min(r["lyapunov"] for r in rows) - 0.2, max(np.log(rhos)) + 0.1)
    ax.set_xlabel(r"spectral radius $\rho$ of $W_{hh}$")
    ax.set_ylabel("per-step log rate")
    ax.set_title(
        f"tanh RNN, H = {H}: the gradient's fate is the sign of $\\lambda_1$ (crossing at rho = {crossing})"
    )
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    result = {
        "claim": "the gradient's per-step decay rate equals the largest Lyapunov exponent; its sign gives the regime",
        "source": "Pascanu et al. (2013) sec. 2.2 (dynamical-systems view); Vogt et al. (2022), Lyapunov spectra of RNNs",
        "prediction": {"decay_rate": "lambda_1", "vanishing": "lambda_1 < 0", "exploding": "lambda_1 > 0"},
        "measured": {"checks": checks, "zero_crossing_rho": crossing, "rows": rows},
        "tolerance": {"abs_rate_error": TOLERANCE, "sign_margin": SIGN_MARGIN, "fit_lags": [fit_from, K]},
        "config": {"H": H, "T": T, "rhos": rhos, "input_std": 0.5, "quick": quick, "seed": seed},
        "headline": f"max |decay rate - lambda_1| = {max(r['abs_error'] for r in rows):.1e}; "
        f"lambda_1 changes sign at rho = {crossing}",
        "pass": all(checks.values()),
    }
    return _common.save(NAME, result, fig, out_dir)


def main(argv: list[str] | None = None) -> int:
    args = _common.parse_args(__doc__.splitlines()[0], argv)
    result = run(args.quick, args.seed, args.out)
    for r in result["measured"]["rows"]:
        print(f"  rho={r['rho']:<5} lambda_1 {r['lyapunov']:+.4f}  decay rate {r['decay_rate']:+.4f}")
    return _common.finish(result)


if __name__ == "__main__":
    sys.exit(main())
