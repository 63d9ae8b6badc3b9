"""The BPTT calculator: parameters, memory, FLOPs, vanishing/exploding risk, truncation, time.

The source document (shared/seeds/002) describes a calculator with these outputs; here each is
computed from the model's real sizes and weights, and can be checked against a measurement:

* parameters: :func:`minirnn.count_params` in both conventions;
* memory: the arrays *this engine* allocates for one forward + BPTT pass, phase by phase
  (forward caches, the loss, the backward working set), so the estimate can be held to the
  measured tracemalloc peak; params, gradients and Adam's two moments beside it;
* FLOPs: the matrix products per step (backward = 2 x forward), per sequence and per epoch;
* risk: the spectral radius, sigma_max and gamma of W_hh, Pascanu et al.'s conditions, and the
  per-step factor of a gradient-norm trace measured on random inputs with the model's weights;
* the gradient horizon (the lag where that trace falls under 1e-3 of its start), the
  truncation it recommends, and the time per epoch from a micro-benchmark on this machine.
"""

from __future__ import annotations

import math
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import _buffers, analysis, bptt
from . import _validate as v
from .functional import HELD, window_elements
from .model import GATES, RNN, count_params

HORIZON = 1e-3  # the gradient horizon: where the trace falls under this fraction of its start
TRUNCATION_RANGE = (5, 500)
OVERHEAD_BYTES = 64 * 1024  # Python objects around the arrays (dicts, caches, reports)
LOSS_UNITS = {"mse": 2, "cross_entropy": 4}  # loss temporaries incl. dL/dY, in units of (T, B, P), measured


def activation_bytes(
    cell: str,
    layers: int,
    T: int,
    B: int,
    I: int,
    H: int,
    P: int | None,
    itemsize: int,
    loss: str = "mse",
) -> int:
    """Peak bytes of one forward + loss + backward over T steps, as this engine allocates them.

    forward keeps per layer: vanilla h (1 x TBH); LSTM gates, h, c, tanh(c) (7); GRU h, gates, u_n
    (5); the gates are written over the input projection. The loss holds the output Y and its
    temporaries (LOSS_UNITS, measured: mse's difference and its square, then the gradient;
    cross-entropy's log-softmax, one-hot targets and gradient; a mask adds one). The backward
    for layer l holds the incoming dL/dh (1), what its windows hold (the longest window's
    pre-activation gradients and packed rows, the weights' copies: functional.window_elements)
    and dX (the layer's input width); not the read-out's output Y (bptt.full_gradients and the
    truncated driver let it go before the backward).
    """
    tb = T * B
    out = P if P is not None else H
    kept = layers * HELD[cell] * tb * H
    y = tb * P if P is not None else 0  # without an output layer Y is the top layer's h
    phases = [kept]  # end of the last layer's forward
    phases.append(kept + y + LOSS_UNITS[loss] * tb * out)
    for layer in range(layers - 1, -1, -1):
        width = I if layer == 0 else H
        # the backward walks windows (functional._window_plan)
        work = window_elements(cell, T, B, width, H, np.float32 if itemsize == 4 else np.float64)
        incoming = tb * H if (P is not None or layer < layers - 1) else 0
        phases.append(kept + tb * out + incoming + work + tb * width)
    return max(phases) * itemsize


def flops(cell: str, layers: int, B: int, I: int, H: int, P: int | None) -> dict[str, int]:
    """Multiply-adds x 2 per time step, forward and backward (elementwise work excluded)."""
    G = GATES[cell]
    fwd = 0
    for layer in range(layers):
        width = I if layer == 0 else H
        fwd += 2 * B * G * H * (width + H)
    if P is not None:
        fwd += 2 * B * H * P
    return {"forward_per_step": fwd, "backward_per_step": 2 * fwd}


def _risk(model: RNN, T: int, seed: int) -> dict[str, Any]:
    """Spectral numbers, Pascanu's conditions and a measured gradient-norm trace."""
    H = model.hidden_size
    W = model.params["W_hh_l0"]
    blocks = [W[g * H : (g + 1) * H] for g in range(W.shape[0] // H)]
    rho = max(analysis.spectral_radius(b) for b in blocks)
    smax = max(analysis.sigma_max(b) for b in blocks)
    gamma = analysis.activation_gamma(model.activation) if model.cell == "rnn" else None
    rng = np.random.default_rng(seed)
    Tm = max(2, min(T, 300))
    X = rng.standard_normal((Tm, 4, model.input_size)).astype(model.dtype)
    J = analysis.step_jacobians(model, X).astype(np.float64)
    G = np.zeros(J.shape[:3])
    G[..., :H] = rng.standard_normal((Tm, 4, H))
    G /= np.linalg.norm(G, axis=2, keepdims=True)
    tr = analysis.gradient_norm_trace(J, G, Tm - 1)["mean"]
    lags = np.arange(len(tr))
    use = tr > 0
    rate = float(np.polyfit(lags[use], np.log(tr[use]), 1)[0]) if use.sum() > 2 else 0.0
    factor = math.exp(rate)
    below = np.nonzero(tr < HORIZON * tr[0])[0]
    horizon = int(below[0]) if below.size else None

    if gamma is not None and smax < 1 / gamma:
        van = (
            "high",
            f"sigma_max {smax:.3g} < 1/gamma = {1 / gamma:g}: vanishing is guaranteed; "
            f"the gradient shrinks at least by {gamma * smax:.3g} per step (measured {factor:.3g})",
        )
    elif factor < 0.9:
        van = (
            "high",
            f"measured per-step factor {factor:.3g}: 1e-3 of the gradient is left after "
            f"{math.log(1e-3) / rate:.0f} steps",
        )
    elif factor < 0.99:
        van = (
            "medium",
            f"measured per-step factor {factor:.3g}: the gradient fades over "
            f"{math.log(1e-3) / rate:.0f} steps",
        )
    else:
        van = (
            "low",
            f"measured per-step factor {factor:.3g}: the gradient keeps its size over the lags measured",
        )
    if gamma is not None and smax < 1 / gamma:
        exp = (
            "low",
            f"sigma_max {smax:.3g} < 1/gamma = {1 / gamma:g}: exploding is impossible (Pascanu et al.)",
        )
    elif factor > 1.05:
        exp = (
            "high",
            f"measured per-step factor {factor:.3g} > 1: the gradient grows "
            f"{factor**50:.3g}x over 50 steps; clip it",
        )
    elif factor > 0.95:
        cond = f"sigma_max {smax:.3g} > 1/gamma, so exploding is possible" if gamma else "a gated cell"
        exp = ("medium", f"{cond}; measured per-step factor {factor:.3g}, close to 1")
    elif gamma is not None:
        exp = (
            "low",
            f"sigma_max {smax:.3g} > 1/gamma = {1 / gamma:g} makes exploding possible, but the measured "
            f"per-step factor is {factor:.3g}: saturation damps it",
        )
    else:
        exp = ("low", f"measured per-step factor {factor:.3g} < 1")
    return {
        "spectral_radius": rho,
        "sigma_max": smax,
        "gamma": gamma,
        "per_step_factor": factor,
        "vanishing_risk": {"level": van[0], "reason": van[1]},
        "exploding_risk": {"level": exp[0], "reason": exp[1]},
        "gradient_horizon": horizon,
        "measured_over_lags": int(len(tr) - 1),
    }


def _time_per_sequence(model: RNN, T: int, B: int, truncate: int | None, seed: int) -> float:
    """Seconds for one forward + BPTT over a (T, B) batch, from a short micro-benchmark on a
    shorter sequence scaled linearly in T (the work per step is constant). The best of five
    runs: the machine's undisturbed speed, not whatever else it was doing at that moment."""
    Tb = max(1, min(T, 64))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((Tb, B, model.input_size)).astype(model.dtype)
    Y = rng.standard_normal((Tb, B, model.output_size or model.hidden_size)).astype(model.dtype)

    def once() -> None:
        if truncate and truncate < Tb:
            bptt.tbptt_gradients(model, X, Y, truncate)
        else:
            bptt.full_gradients(model, X, Y)

    once()  # compile and warm caches
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    return float(np.min(times)) * T / Tb


def _model_from_weights(path: str | Path) -> RNN:
    from .io import FORMAT, read_npz
    from .train import CHECKPOINT

    p = Path(path)
    try:
        meta, arrays = read_npz(p, FORMAT)
    except ValueError as first:
        try:
            meta, arrays = read_npz(p, CHECKPOINT)
        except ValueError:
            raise ValueError(f"calc: cannot read weights from {p}: {first}") from None
        meta = {"config": meta["model"]}
    params = {k[6:]: a for k, a in arrays.items() if k.startswith("param/")}
    return RNN.from_config(meta["config"], params)


def calc(
    input_size: int | None = None,
    hidden_size: int | None = None,
    output_size: int | None = None,
    seq_len: int = 100,
    batch_size: int = 32,
    truncate: int | None = None,
    cell: str = "rnn",
    activation: str = "tanh",
    num_layers: int = 1,
    dtype: str = "float64",
    radius: float | None = None,
    init: str = "pytorch",
    weights: str | Path | None = None,
    samples: int = 10_000,
    loss: str = "mse",
    seed: int = 0,
    benchmark: bool = True,
) -> dict[str, Any]:
    """Everything the seed's calculator reports, computed for a model described by its sizes
    (weights drawn with ``init``, W_hh rescaled to ``radius``) or loaded from ``weights``
    (a model file or a training checkpoint).

    Returns a dict with stable keys: total_params, params_keras, params_pytorch, memory_bytes
    {params, activations_full, activations_truncated, grads, optimizer, total}, flops
    {forward_per_step, backward_per_step, per_sequence, per_epoch}, spectral_radius, sigma_max,
    gamma, vanishing_risk and exploding_risk {level, reason}, gradient_horizon,
    recommended_truncation {steps, reason}, time_per_epoch_s, notes, config.
    """
    where = "calc"
    if weights is not None:
        model = _model_from_weights(weights)
    else:
        if input_size is None or hidden_size is None:
            raise ValueError(f"{where}: give input_size and hidden_size, or weights=")
        model = RNN(
            input_size,
            hidden_size,
            output_size,
            num_layers,
            cell,
            activation,
            init=init,
            dtype=dtype,
            seed=seed,
            radius=radius,
        )
    T = v.positive_int(where, "seq_len", seq_len)
    B = v.positive_int(where, "batch_size", batch_size)
    N = v.positive_int(where, "samples", samples)
    v.choice(where, "loss", loss, ("mse", "cross_entropy"))
    notes = []
    if truncate is not None:
        k = v.positive_int(where, "truncate", truncate)
        if k >= T:
            notes.append(f"truncation {k} >= sequence length {T}: truncated BPTT is full BPTT here")
        elif bptt.group_steps(k, B) >= T:
            notes.append(
                f"truncated BPTT runs whole blocks together, up to {bptt.GROUP_ROWS} (time x batch) rows "
                f"per pass (TBPTT's group_rows): here that is the whole sequence, so it needs the memory "
                f"of full BPTT; group_rows=0 runs block by block, O(k) memory, more Python per block"
            )
    else:
        k = None
    I, H, P, L, c = model.input_size, model.hidden_size, model.output_size, model.num_layers, model.cell
    s = model.dtype.itemsize
    params_bytes = model.num_params * s
    act_full = activation_bytes(c, L, T, B, I, H, P, s, loss)
    # truncated BPTT (k1 = k2) runs whole blocks in groups (bptt.TBPTT's group_rows)
    act_trunc = act_full  # k >= T is full BPTT (as measure runs it)
    if k is not None and k < T:
        group = min(bptt.group_steps(k, B), T)
        act_trunc = activation_bytes(c, L, group, B, I, H, P, s, loss)
        if T > group:  # later groups run beside the running sum the first group's gradient began
            later = activation_bytes(c, L, min(group, T - group), B, I, H, P, s, loss) + params_bytes
            act_trunc = max(act_trunc, later)
    # grads: the returned gradient dict (truncated BPTT's running sum counted with the activations)
    grads = params_bytes
    optimizer = 2 * params_bytes  # Adam's two moments
    fl = flops(c, L, B, I, H, P)
    per_seq = T * (fl["forward_per_step"] + fl["backward_per_step"])
    batches = math.ceil(N / B)
    risk = _risk(model, T, seed)
    horizon = risk["gradient_horizon"]
    lo, hi = TRUNCATION_RANGE
    if horizon is None:
        rec: dict[str, Any] = {
            "steps": min(T, hi),
            "reason": f"the gradient stays above {HORIZON:g} of its start over "
            f"{risk['measured_over_lags']} lags: truncate as little as memory allows",
        }
    else:
        steps = int(min(max(horizon, lo), hi, T))
        rec = {
            "steps": steps,
            "reason": f"the gradient falls under {HORIZON:g} of its start after {horizon} steps; "
            f"truncating there loses what BPTT would barely carry (clamped to [{lo}, {min(hi, T)}])",
        }
    if risk["exploding_risk"]["level"] == "high":
        rec["reason"] = (
            f"{rec['reason']}; the gradient explodes: clip it (global norm 1-10) whatever the truncation"
        )
    seconds = _time_per_sequence(model, T, B, k, seed) * batches if benchmark else None
    return {
        "total_params": model.num_params,
        "params_keras": count_params(I, H, P or 0, c, model.bias, L, "keras"),
        "params_pytorch": count_params(I, H, P or 0, c, model.bias, L, "pytorch"),
        "memory_bytes": {
            "params": params_bytes,
            "activations_full": act_full,
            "activations_truncated": act_trunc,
            "grads": grads,
            "optimizer": optimizer,
            "total": params_bytes + (act_trunc if k else act_full) + grads + optimizer + OVERHEAD_BYTES,
        },
        "flops": {**fl, "per_sequence": per_seq, "per_epoch": per_seq * batches},
        "spectral_radius": risk["spectral_radius"],
        "sigma_max": risk["sigma_max"],
        "gamma": risk["gamma"],
        "per_step_factor": risk["per_step_factor"],
        "vanishing_risk": risk["vanishing_risk"],
        "exploding_risk": risk["exploding_risk"],
        "gradient_horizon": horizon,
        "recommended_truncation": rec,
        "time_per_epoch_s": seconds,
        "notes": notes,
        "config": {
            **model.config(),
            "seq_len": T,
            "batch_size": B,
            "truncate": k,
            "samples": N,
            "batches_per_epoch": batches,
            "loss": loss,
        },
    }


def estimated_peak(result: dict[str, Any], truncated: bool) -> int:
    """The estimate the measurement is compared with: one pass's activations, its gradients
    and the fixed overhead."""
    m = result["memory_bytes"]
    return (m["activations_truncated"] if truncated else m["activations_full"]) + m["grads"] + OVERHEAD_BYTES


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes Python allocates (tracemalloc) while ``fn()`` runs; run it once before, so
    that first-call caches and compilation stay out of the measurement. Arrays are fresh
    allocations meanwhile (_buffers.fresh): a block recycled from the run before would be
    memory the call needs that tracemalloc does not see allocated."""
    with _buffers.fresh():
        tracemalloc.start()
        try:
            fn()
            return int(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()


def measure(
    model: RNN, seq_len: int, batch_size: int, truncate: int | None = None, loss: str = "mse", seed: int = 0
) -> dict[str, float]:
    """Run one real forward + BPTT pass: peak memory (tracemalloc; inputs allocated before) and
    seconds per sequence (best of 5 after a warm-up, as the estimate)."""
    rng = np.random.default_rng(seed)
    T, B = seq_len, batch_size
    X = rng.standard_normal((T, B, model.input_size)).astype(model.dtype)
    out = model.output_size or model.hidden_size
    if loss == "cross_entropy":
        Y: np.ndarray = rng.integers(0, out, size=(T, B))
    else:
        Y = rng.standard_normal((T, B, out)).astype(model.dtype)

    def once() -> None:
        if truncate and truncate < T:
            bptt.tbptt_gradients(model, X, Y, truncate, loss=loss)
        else:
            bptt.full_gradients(model, X, Y, loss)

    once()
    peak = peak_bytes(once)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    return {"peak_bytes": float(peak), "seconds_per_sequence": float(np.min(times))}


def human_bytes(n: float) -> str:
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def human_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    return f"{s * 1e3:.2f} ms"


def human_flops(n: float) -> str:
    for unit, size in (("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} FLOP"


def format_table(r: dict[str, Any], measured: dict[str, Any] | None = None) -> str:
    """The human report: a short aligned table with units."""
    m, f, cfg = r["memory_bytes"], r["flops"], r["config"]
    rows = [
        (
            "Total parameters",
            f"{r['total_params']:,} (Keras {r['params_keras']:,}, PyTorch {r['params_pytorch']:,})",
        ),
        ("Memory: parameters", human_bytes(m["params"])),
        ("Memory: activations, full BPTT", human_bytes(m["activations_full"])),
        (
            "Memory: activations, truncated",
            human_bytes(m["activations_truncated"])
            + (f" (k = {cfg['truncate']})" if cfg["truncate"] else " (no truncation)"),
        ),
        ("Memory: gradients + Adam state", human_bytes(m["grads"] + m["optimizer"])),
        ("Memory: total", human_bytes(m["total"])),
        (
            "FLOPs per step (fwd / bwd)",
            f"{human_flops(f['forward_per_step'])} / {human_flops(f['backward_per_step'])}",
        ),
        ("FLOPs per sequence / epoch", f"{human_flops(f['per_sequence'])} / {human_flops(f['per_epoch'])}"),
        (
            "Spectral radius / sigma_max",
            f"{r['spectral_radius']:.4g} / {r['sigma_max']:.4g}"
            + (f" (gamma {r['gamma']:g})" if r["gamma"] else ""),
        ),
        ("Vanishing gradient risk", f"{r['vanishing_risk']['level']}: {r['vanishing_risk']['reason']}"),
        ("Exploding gradient risk", f"{r['exploding_risk']['level']}: {r['exploding_risk']['reason']}"),
        (
            "Gradient horizon",
            "beyond the measured lags" if r["gradient_horizon"] is None else f"{r['gradient_horizon']} steps",
        ),
        (
            "Recommended truncation",
            f"{r['recommended_truncation']['steps']} steps: {r['recommended_truncation']['reason']}",
        ),
        (
            "Estimated time per epoch",
            human_seconds(r["time_per_epoch_s"])
            + f" ({cfg['batches_per_epoch']} batches of {cfg['batch_size']})",
        ),
    ]
    if measured:
        for label, est, got in measured["rows"]:
            rows.append((f"{label} (estimate / measured)", f"{est} / {got}"))
    w = max(len(a) for a, _ in rows)
    lines = [f"{a:<{w}}  {b}" for a, b in rows]
    lines += [f"note: {n}" for n in r["notes"]]
    return "\n".join(lines)
