"""Pascanu, Mikolov & Bengio (2013)'s conditions for vanishing and exploding gradients.

With gamma = sup|f'| (tanh 1, sigmoid 1/4) and sigma_max the largest singular value of W_hh,
every one-step Jacobian diag(f'(a_t)) W_hh has norm <= gamma * sigma_max, so

    ||dh_t/dh_{t-k}|| <= (gamma sigma_max)^k   for every input sequence.

Claims checked, sweeping sigma_max across 1/gamma with W_hh = sigma * Q (Q orthogonal, so all
singular values equal sigma) and several input scales:
  (a) no measured ||dh_t/dh_{t-k}|| ever exceeds the bound;
  (b) below 1/gamma the gradient vanishes whatever the input: the norm at k = 50 is under
      (gamma sigma)^50 < 1 (sufficient condition);
  (c) exploding (norm at k = 50 above 1) is observed only above 1/gamma (necessary condition);
      above it, saturation can still make it vanish, so exploding is possible, not certain.
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
from minirnn.init import orthogonal

NAME = "pascanu_conditions"
LAG = 50
SWEEPS = {"tanh": np.linspace(0.5, 3.0, 11), "sigmoid": np.linspace(2.0, 12.0, 11)}
INPUT_SCALES = (0.0, 0.5, 2.0)
BOUND_RTOL = 1e-12


def measure(
    activation: str, sigma: float, input_scale: float, H: int, T: int, rng: np.random.Generator
) -> dict:
    model = mr.RNN(3, H, activation=activation, seed=int(rng.integers(2**31)))
    model.params["W_hh_l0"] = sigma * orthogonal(H, rng, np.dtype(np.float64))
    X = input_scale * rng.standard_normal((T, 4, 3))
    J = analysis.step_jacobians(model, X)
    ends = [T - 1, T - 11, T - 21]
    prod = analysis.norms_by_lag(J, LAG, ends)
    bound = analysis.norm_bound(model.params["W_hh_l0"], activation, prod["lag"])
    return {
        "sigma_max": sigma,
        "input_scale": input_scale,
        "max_norm_by_lag": prod["max"],
        "bound_by_lag": bound,
        "norm_at_lag": float(prod["max"][LAG - 1]),
        "bound_at_lag": float(bound[LAG - 1]),
        "bound_held": bool(np.all(prod["max"] <= bound * (1 + BOUND_RTOL))),
    }


def run(quick: bool = False, seed: int = 0, out_dir: Path = _common.OUT) -> dict:
    H, T = (16, LAG + 25) if quick else (64, LAG + 25)
    rng = np.random.default_rng(seed)
    plt = _common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    rows, checks = [], {}
    for ax, (activation, sigmas) in zip(axes, SWEEPS.items(), strict=True):
        gamma = analysis.activation_gamma(activation)
        sigmas = sigmas[::2] if quick else sigmas
        per_scale = {s: [] for s in INPUT_SCALES}
        for sigma in sigmas:
            for scale in INPUT_SCALES:
                r = measure(activation, float(sigma), scale, H, T, rng)
                r["activation"] = activation
                rows.append(r)
                per_scale[scale].append(r["norm_at_lag"])
        mine = [r for r in rows if r["activation"] == activation]
        below = [r for r in mine if r["sigma_max"] < 1 / gamma]
        exploded = [r for r in mine if r["norm_at_lag"] > 1]
        checks[activation] = {
            "bound_never_exceeded": all(r["bound_held"] for r in mine),
            "vanishes_below_threshold": all(r["norm_at_lag"] <= r["bound_at_lag"] < 1 for r in below),
            "explodes_only_above_threshold": all(r["sigma_max"] > 1 / gamma for r in exploded),
            "exploding_observed_above": bool(exploded),
            "largest_norm_below_threshold": max((r["norm_at_lag"] for r in below), default=None),
        }
        for scale, color in zip(INPUT_SCALES, ("C0", "C1", "C2"), strict=True):
            ax.semilogy(
                sigmas, per_scale[scale], "o-", color=color, ms=4, label=f"measured, input scale {scale}"
            )
        ax.semilogy(
            sigmas, (gamma * sigmas) ** LAG, "k--", lw=1, label=rf"bound $(\gamma\sigma_{{max}})^{{{LAG}}}$"
        )
        ax.axvline(1 / gamma, color="r", lw=1, label=rf"$1/\gamma$ = {1 / gamma:g}")
        ax.axhline(1, color="grey", lw=0.8, ls=":")
        ax.set_xlabel(r"$\sigma_{max}(W_{hh})$")
        ax.set_ylabel(rf"max $\|\partial h_t/\partial h_{{t-{LAG}}}\|_2$")
        ax.set_title(rf"{activation} ($\gamma$ = {gamma:g}), H = {H}")
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(True, alpha=0.3)
    fig.suptitle(
        "Pascanu et al. (2013): vanishing is guaranteed below 1/gamma, exploding needs sigma_max above it"
    )
    result = {
        "claim": "||dh_t/dh_{t-k}|| <= (gamma sigma_max)^k; vanishing below 1/gamma at any input; "
        "exploding only above 1/gamma",
        "source": "Pascanu, Mikolov & Bengio (2013), sec. 3.1 (sufficient / necessary conditions)",
        "prediction": {
            "bound": "(gamma * sigma_max)^k",
            "threshold": {a: 1 / analysis.activation_gamma(a) for a in SWEEPS},
        },
        "measured": {"checks": checks, "rows": rows},
        "tolerance": {"bound_rtol": BOUND_RTOL, "lag": LAG},
        "config": {"H": H, "T": T, "input_scales": list(INPUT_SCALES), "quick": quick, "seed": seed},
        "headline": "; ".join(
            f"{a}: bound held in {sum(r['bound_held'] for r in rows if r['activation'] == a)}/"
            f"{sum(r['activation'] == a for r in rows)} runs, largest norm at k={LAG} below 1/gamma "
            f"{c['largest_norm_below_threshold']:.1e}"
            for a, c in checks.items()
        ),
        "pass": all(
            c["bound_never_exceeded"] and c["vanishes_below_threshold"] and c["explodes_only_above_threshold"]
            for c in checks.values()
        ),
    }
    return _common.save(NAME, result, fig, out_dir)


def main(argv: list[str] | None = None) -> int:
    args = _common.parse_args(__doc__.splitlines()[0], argv)
    result = run(args.quick, args.seed, args.out)
    for act, c in result["measured"]["checks"].items():
        print(f"  {act:<8} " + ", ".join(f"{k}={v}" for k, v in c.items()))
    return _common.finish(result)


if __name__ == "__main__":
    sys.exit(main())
