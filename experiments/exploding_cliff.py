"""The exploding-gradient cliff, and gradient clipping (Pascanu, Mikolov & Bengio 2013, Fig. 6).

One unit, x_t = w * sigmoid(x_{t-1}) + b, x_0 = 0.5, loss E = (sigmoid(x_50) - 0.7)^2. With
h_t = sigmoid(x_t) this is exactly the engine's vanilla sigmoid cell: h_t = sigmoid(w h_{t-1} + b),
h_0 = sigmoid(0.5), so the engine's BPTT gives dE/dw and dE/db.

Claims:
  (a) in the linear case (x_t = w x_{t-1}, b = 0) the engine's BPTT gradient equals the closed
      form dx_t/dw = t x_0 w^(t-1), to rounding;
  (b) the engine's gradient equals an independent forward-mode recursion on the loss surface;
  (c) the surface has a cliff: the largest gradient on the grid is orders of magnitude above
      the median (a bifurcation of the one-unit dynamics);
  (d) plain gradient descent that reaches the cliff is thrown far (a step many times the
      clipped step bound), while norm clipping bounds every step by lr * threshold.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minirnn as mr
from experiments import _common

NAME = "exploding_cliff"
T = 50
TARGET = 0.7
EXACT_TOL = 1e-12
CLIFF_RATIO = 1e3
START = (6.0, -3.0)
LR, THRESHOLD, STEPS = 0.5, 1.0, 100


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def engine_loss_and_grad(w: float, b: float) -> tuple[float, float, float]:
    """E and (dE/dw, dE/db) from the engine's forward and BPTT."""
    X = np.zeros((T, 1, 1))
    h0 = np.array([[sigmoid(0.5)]])
    hs, cache = mr.rnn_forward(X, np.zeros((1, 1)), np.array([[w]]), np.array([b]), h0, "sigmoid")
    dhs = np.zeros_like(hs)
    dhs[-1] = 2 * (hs[-1] - TARGET)
    g = mr.rnn_backward(dhs, cache)
    return float((hs[-1, 0, 0] - TARGET) ** 2), float(g["W_hh"][0, 0]), float(g["b_h"][0])


def surface(W: np.ndarray, Bv: np.ndarray):
    """E, dE/dw, dE/db on a grid by forward-mode differentiation (independent of the engine)."""
    x = np.full(W.shape, 0.5)
    dw = np.zeros_like(x)
    db = np.zeros_like(x)
    for _ in range(T):
        s = sigmoid(x)
        ds = s * (1 - s)
        dw, db = s + W * ds * dw, 1 + W * ds * db
        x = W * s + Bv
    h = sigmoid(x)
    de = 2 * (h - TARGET) * h * (1 - h)
    return (h - TARGET) ** 2, de * dw, de * db


def descend(clip: float | None) -> np.ndarray:
    path = [np.array(START)]
    for _ in range(STEPS):
        w, b = path[-1]
        _, gw, gb = engine_loss_and_grad(w, b)
        g = {"w": np.array([gw]), "b": np.array([gb])}
        if clip is not None:
            mr.clip_grad_norm(g, clip)
        path.append(path[-1] - LR * np.array([g["w"][0], g["b"][0]]))
    return np.array(path)


def run(quick: bool = False, seed: int = 0, out_dir: Path = _common.OUT) -> dict:
    rng = np.random.default_rng(seed)
    # (a) the linear closed form
    lin_err = 0.0
    for w in (0.5, 0.9, 1.1):
        for t in (1, 5, 50):
            x0 = 0.5
            hs, cache = mr.rnn_forward(
                np.zeros((t, 1, 1)),
                np.zeros((1, 1)),
                np.array([[w]]),
                h0=np.array([[x0]]),
                activation="linear",
            )
            dhs = np.zeros_like(hs)
            dhs[-1] = 1.0
            got = mr.rnn_backward(dhs, cache)["W_hh"][0, 0]
            want = t * x0 * w ** (t - 1)
            lin_err = max(lin_err, abs(got - want) / abs(want))
    # (b, c) the surface
    n = 81 if quick else 241
    W, Bv = np.meshgrid(np.linspace(0, 14, n), np.linspace(-10, 2, n))
    E, gw, gb = surface(W, Bv)
    gnorm = np.hypot(gw, gb)
    pick = rng.choice(W.size, size=10 if quick else 40, replace=False)
    pick = np.append(pick, np.argmax(gnorm))  # include the cliff itself
    eng_err = 0.0
    for i in pick:
        e, ew, eb = engine_loss_and_grad(W.flat[i], Bv.flat[i])
        scale = max(abs(gw.flat[i]), abs(gb.flat[i]), 1e-300)
        eng_err = max(eng_err, abs(ew - gw.flat[i]) / scale, abs(eb - gb.flat[i]) / scale, abs(e - E.flat[i]))
    cliff_ratio = float(gnorm.max() / np.median(gnorm))
    # (d) descent with and without clipping
    plain, clipped = descend(None), descend(THRESHOLD)
    step_plain = np.linalg.norm(np.diff(plain, axis=0), axis=1)
    step_clip = np.linalg.norm(np.diff(clipped, axis=0), axis=1)
    final = {name: engine_loss_and_grad(*p[-1])[0] for name, p in (("plain", plain), ("clipped", clipped))}
    checks = {
        "linear_closed_form": lin_err < EXACT_TOL,
        "engine_matches_forward_mode": eng_err < 1e-9,
        "cliff_present": cliff_ratio > CLIFF_RATIO,
        "clipping_bounds_steps": bool(step_clip.max() <= LR * THRESHOLD * (1 + 1e-9)),
        "plain_descent_thrown_by_cliff": bool(step_plain.max() > 2 * LR * THRESHOLD),
    }

    plt = _common.pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    cs = ax1.contourf(W, Bv, np.log10(E + 1e-12), levels=30, cmap="viridis")
    fig.colorbar(cs, ax=ax1, label=r"$\log_{10} E$")
    ax1.plot(plain[:, 0], plain[:, 1], "r.-", lw=1, ms=3, label="gradient descent")
    ax1.plot(clipped[:, 0], clipped[:, 1], "w.-", lw=1, ms=3, label=f"with norm clipping at {THRESHOLD}")
    ax1.plot(*START, "k*", ms=10, label="start")
    ax1.set_xlabel("w")
    ax1.set_ylabel("b")
    ax1.set_title(r"$E = (\sigma(x_{50}) - 0.7)^2$, $x_t = w\,\sigma(x_{t-1}) + b$")
    ax1.legend(fontsize=7, loc="lower left")
    ax2.semilogy(step_plain, "r", label="step length, plain")
    ax2.semilogy(step_clip, "k", label="step length, clipped")
    ax2.axhline(LR * THRESHOLD, color="grey", ls=":", label="lr x threshold")
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("|step| in (w, b)")
    ax2.set_title(f"final E: plain {final['plain']:.3g}, clipped {final['clipped']:.3g}")
    ax2.legend(fontsize=8)
    ax2.grid(True, alpha=0.3)
    result = {
        "claim": "BPTT equals the closed form t x0 w^(t-1); the loss surface has a cliff; clipping keeps descent from being thrown off it",
        "source": "Pascanu, Mikolov & Bengio (2013), sec. 3.2 and Fig. 6; seed 002 (clipping to 1-10)",
        "prediction": {
            "linear": "dx_t/dw = t x0 w^(t-1)",
            "cliff_ratio_above": CLIFF_RATIO,
            "clipped_step_at_most": LR * THRESHOLD,
        },
        "measured": {
            "checks": checks,
            "linear_closed_form_rel_error": lin_err,
            "engine_vs_forward_mode_error": eng_err,
            "cliff_ratio_max_over_median_gradient": cliff_ratio,
            "largest_step": {"plain": float(step_plain.max()), "clipped": float(step_clip.max())},
            "final_loss": final,
        },
        "tolerance": {"exact": EXACT_TOL, "engine_vs_forward_mode": 1e-9},
        "config": {
            "T": T,
            "start": list(START),
            "lr": LR,
            "threshold": THRESHOLD,
            "steps": STEPS,
            "grid": n,
            "quick": quick,
            "seed": seed,
        },
        "headline": f"closed form to {lin_err:.1e}; cliff {cliff_ratio:.1e}x the median gradient; largest step "
        f"{step_plain.max():.2f} plain vs {step_clip.max():.2f} clipped; final loss {final['plain']:.3g} vs {final['clipped']:.3g}",
        "pass": all(checks.values()),
    }
    return _common.save(NAME, result, fig, out_dir)


def main(argv: list[str] | None = None) -> int:
    args = _common.parse_args(__doc__.splitlines()[0], argv)
    result = run(args.quick, args.seed, args.out)
    m = result["measured"]
    print("  checks:", m["checks"])
    print(
        f"  largest step: plain {m['largest_step']['plain']:.3g}, clipped {m['largest_step']['clipped']:.3g}; final loss {m['final_loss']}"
    )
    return _common.finish(result)


if __name__ == "__main__":
    sys.exit(main())
