"""Gradients decay (or grow) by the spectral radius per step.

Claim 1 (exact): for a linear RNN with W_hh = rho * Q, Q orthogonal, the gradient of a loss on
the last step, carried back k steps by the engine's BPTT, has norm exactly rho^k times its
start: dL/dh_{T-k} = (W_hh^T)^k dL/dh_T and ||(rho Q^T)^k g|| = rho^k ||g||. The fitted slope
of log ||dL/dh_{T-k}|| against k equals log(rho) to rounding.

Claim 2 (asymptotic): for a random Gaussian W_hh rescaled to spectral radius rho the norm is
no longer a pure power (W is not normal), but by Gelfand's formula ||W^k||^(1/k) -> rho, so the
slope fitted over large lags approaches log(rho).

Source: Pascanu, Mikolov & Bengio (2013), sec. 2; the source document's "largest eigenvalue
< 1 vanishes, > 1 explodes" (shared/seeds/002).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minirnn as mr
from experiments import _common
from minirnn.init import orthogonal, scale_to_spectral_radius

NAME = "spectral_decay"
RHOS = (0.5, 0.9, 1.0, 1.1, 1.5)
GAUSSIAN_RHOS = (0.5, 0.8, 0.9, 1.0, 1.1, 1.2, 1.5)
TOLERANCE = 1e-9  # orthogonal: |fitted slope - log(rho)|, the identity is exact up to rounding
GAUSSIAN_TOLERANCE = 0.01  # Gaussian: |slope - log(rho)| fitted over the last half of the lags


def gradient_norms_by_lag(W_hh: np.ndarray, T: int, rng: np.random.Generator) -> np.ndarray:
    """||dL/dh_{T-1-k}|| for k = 0..T-1 from the engine's BPTT, loss <g, h_T> on the last step."""
    H, I, B = W_hh.shape[0], 4, 1
    W_xh = rng.standard_normal((H, I)) / np.sqrt(I)
    X = rng.standard_normal((T, B, I))
    hs, cache = mr.rnn_forward(X, W_xh, W_hh, activation="linear")
    dhs = np.zeros_like(hs)
    dhs[-1] = rng.standard_normal((B, H))
    dh = mr.rnn_backward(dhs, cache, return_dh=True)["dh"]
    return np.linalg.norm(dh[::-1].reshape(T, -1), axis=1)


def run(quick: bool = False, seed: int = 0, out_dir: Path = _common.OUT) -> dict:
    H, T = (32, 300) if quick else (64, 400)
    fit_from = T // 2
    rng = np.random.default_rng(seed)
    k = np.arange(T)
    plt = _common.pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))

    exact = []
    for rho, color in zip(RHOS, plt.cm.viridis(np.linspace(0, 0.9, len(RHOS))), strict=True):
        norms = gradient_norms_by_lag(rho * orthogonal(H, rng, np.dtype(np.float64)), T, rng)
        slope = np.polyfit(k, np.log(norms), 1)[0]
        exact.append(
            {
                "rho": rho,
                "measured_slope": slope,
                "predicted_slope": np.log(rho),
                "abs_error": abs(slope - np.log(rho)),
                "max_log_deviation": float(np.max(np.abs(np.log(norms / norms[0]) - k * np.log(rho)))),
                "norm_at_max_lag_over_start": norms[-1] / norms[0],
                "pass": abs(slope - np.log(rho)) < TOLERANCE,
            }
        )
        ax1.semilogy(k, norms / norms[0], color=color, lw=2.5, alpha=0.6, label=rf"$\rho$ = {rho}")
        ax1.semilogy(k, rho**k, color="k", ls=":", lw=1)
    ax1.plot([], [], "k:", label=r"predicted $\rho^k$")
    ax1.set_title(r"$W_{hh} = \rho Q$, $Q$ orthogonal: exactly $\rho^k$")

    gaussian = []
    for rho, color in zip(GAUSSIAN_RHOS, plt.cm.plasma(np.linspace(0, 0.9, len(GAUSSIAN_RHOS))), strict=True):
        W = scale_to_spectral_radius(rng.standard_normal((H, H)), rho)
        norms = gradient_norms_by_lag(W, T, rng)
        slope = np.polyfit(k[fit_from:], np.log(norms[fit_from:]), 1)[0]
        gaussian.append(
            {
                "rho": rho,
                "measured_slope": slope,
                "predicted_slope": np.log(rho),
                "abs_error": abs(slope - np.log(rho)),
                "pass": abs(slope - np.log(rho)) < GAUSSIAN_TOLERANCE,
            }
        )
        ax2.semilogy(k, norms / norms[0], color=color, lw=2, alpha=0.7, label=rf"$\rho$ = {rho}")
        ax2.semilogy(k, rho**k * norms[fit_from] / norms[0] / rho**fit_from, color="k", ls=":", lw=1)
    ax2.plot([], [], "k:", label=r"slope $\log\rho$ (fitted from k = " + f"{fit_from})")
    ax2.axvline(fit_from, color="grey", lw=0.8)
    ax2.set_title(r"Gaussian $W_{hh}$ rescaled to spectral radius $\rho$")
    for ax in (ax1, ax2):
        ax.set_xlabel("lag k (steps back from the loss at T)")
        ax.set_ylabel(r"$\|\partial L/\partial h_{T-k}\| \;/\; \|\partial L/\partial h_T\|$")
        ax.legend(fontsize=7, loc="best")
        ax.grid(True, alpha=0.3)
    fig.suptitle(
        f"Linear RNN, H = {H}: the gradient norm goes as the spectral radius to the power of the lag"
    )

    result = {
        "claim": "gradient norm decays/grows as rho^k: fitted log-slope = log(rho) "
        "(exact for rho*orthogonal)",
        "source": "Pascanu, Mikolov & Bengio (2013) sec. 2; seed 002 (eigenvalue < 1 vanishes, > 1 explodes)",
        "prediction": {
            "slope": "log(rho)",
            "rhos_orthogonal": list(RHOS),
            "rhos_gaussian": list(GAUSSIAN_RHOS),
        },
        "measured": exact,
        "measured_gaussian": gaussian,
        "tolerance": {
            "abs_slope_error": TOLERANCE,
            "fit_range_k": [0, T - 1],
            "gaussian_abs_slope_error": GAUSSIAN_TOLERANCE,
            "gaussian_fit_range_k": [fit_from, T - 1],
        },
        "config": {"H": H, "T": T, "B": 1, "activation": "linear", "quick": quick, "seed": seed},
        "headline": f"max |slope - log rho|: {max(r['abs_error'] for r in exact):.1e} (rho*orthogonal, exact), "
        f"{max(r['abs_error'] for r in gaussian):.1e} (Gaussian, lags {fit_from}-{T - 1})",
        "pass": all(r["pass"] for r in exact + gaussian),
    }
    return _common.save(NAME, result, fig, out_dir)


def main(argv: list[str] | None = None) -> int:
    args = _common.parse_args(__doc__.splitlines()[0], argv)
    result = run(args.quick, args.seed, args.out)
    for label, rows in (("orthogonal", result["measured"]), ("gaussian", result["measured_gaussian"])):
        for r in rows:
            print(
                f"  {label:<10} rho={r['rho']:<4} slope {r['measured_slope']:+.6f} "
                f"predicted {r['predicted_slope']:+.6f}  |err| {r['abs_error']:.1e}"
            )
    return _common.finish(result)


if __name__ == "__main__":
    sys.exit(main())
