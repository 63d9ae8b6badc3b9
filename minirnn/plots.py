"""Pictures of gradient flow (matplotlib, Agg backend, PNG). Imported only when drawing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def gradient_flow_heatmap(heat: np.ndarray, path: str | Path, title: str) -> Path:
    """Heatmap of ||dL_t/dh_{t-k}|| over loss step t (y) and lag k (x), log colour scale."""
    from matplotlib.colors import LogNorm

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    data = np.ma.masked_invalid(np.where(heat > 0, heat, np.nan))
    lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
    im = ax.imshow(
        data, aspect="auto", origin="lower", norm=LogNorm(vmin=lo, vmax=max(hi, lo * 1.0001)), cmap="magma"
    )
    fig.colorbar(im, ax=ax, label=r"$\|\partial L_t/\partial h_{t-k}\|$ (batch mean)")
    ax.set_xlabel("lag k (steps back)")
    ax.set_ylabel("loss step t")
    ax.set_title(title)
    return _save(fig, path)


def norms_by_lag_plot(
    lag: np.ndarray,
    measured: dict[str, np.ndarray],
    path: str | Path,
    title: str,
    bound: np.ndarray | None = None,
    predicted: np.ndarray | None = None,
    predicted_label: str = "prediction",
) -> Path:
    """Measured ||dh_t/dh_{t-k}|| (mean, with min-max band) against the lag, log scale,
    with the theoretical bound (gamma sigma_max)^k and an optional prediction beside it."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.fill_between(
        lag, measured["min"], measured["max"], alpha=0.25, label="measured, min-max over t and batch"
    )
    ax.semilogy(lag, measured["mean"], lw=2, label="measured, mean")
    if bound is not None:
        ax.semilogy(lag, bound, "k--", lw=1.2, label=r"bound $(\gamma\,\sigma_{max})^k$")
    if predicted is not None:
        ax.semilogy(lag, predicted, "r:", lw=1.5, label=predicted_label)
    ax.set_xlabel("lag k (steps)")
    ax.set_ylabel(r"$\|\partial h_t/\partial h_{t-k}\|_2$")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def singular_value_spectra(svals: np.ndarray, lags: list[int], path: str | Path, title: str) -> Path:
    """Sorted singular values of the Jacobian products at a few lags (svals: (K, S), lag k at k-1)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(lags)))
    for k, c in zip(lags, colors, strict=True):
        ax.semilogy(
            np.arange(1, svals.shape[1] + 1), svals[k - 1], color=c, marker=".", ms=3, label=f"k = {k}"
        )
    ax.set_xlabel("index i (sorted)")
    ax.set_ylabel(r"singular value $\sigma_i(\partial h_t/\partial h_{t-k})$")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _plt().close(fig)
    return path


def training_curves(history: dict[str, Any], path: str | Path, title: str) -> Path:
    """Loss (with the task's baseline), gradient norm before/after clipping, and learning rate."""
    plt = _plt()
    fig, axes = plt.subplots(3, 1, figsize=(7, 8), sharex=True)
    steps = np.asarray(history["step"])
    loss = np.asarray(history["loss"], dtype=float)
    ax = axes[0]
    ax.plot(steps, loss, lw=0.6, alpha=0.5, label="loss (batch)")
    if len(loss) >= 20:
        w = max(1, len(loss) // 50)
        smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1 :], smooth, lw=1.8, label=f"loss ({w}-step mean)")
    if history.get("baseline") is not None:
        ax.axhline(history["baseline"], color="k", ls="--", lw=1, label=f"baseline {history['baseline']:.4g}")
    ax.set_yscale("log")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.set_title(title)
    ax = axes[1]
    ax.semilogy(steps, history["grad_norm"], lw=0.8, label="before clipping")
    ax.semilogy(steps, history["clipped_norm"], lw=0.8, label="after clipping")
    clipped = np.mean(np.asarray(history["grad_norm"]) > np.asarray(history["clipped_norm"]) * (1 + 1e-9))
    ax.set_ylabel("gradient norm")
    ax.legend(fontsize=8, title=f"clipping fired on {100 * clipped:.0f}% of steps", title_fontsize=8)
    ax = axes[2]
    ax.plot(steps, history["lr"])
    ax.set_ylabel("learning rate")
    ax.set_xlabel("step")
    for a in axes:
        a.grid(True, alpha=0.3)
    return _save(fig, path)
