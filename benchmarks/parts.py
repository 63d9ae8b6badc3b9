"""Where one forward + full BPTT spends its time, part by part, for one cell, dtype and shape.

Times the whole forward and backward and, inside them, the parts that run from Python: the input
projection, the whole-sequence products on the tiles (the projection, each window's dX and its
weight gradients), each window's compiled call into NumPy's BLAS (kernels.window_grads: bias sums
and whatever the tiles do not take) and the packing of operands. What is left of the forward and
the backward is their time loops (the recurrent steps: product and elementwise work). The parts
that are products get their GFLOP/s, and the whole its ratio to the benchmark's GEMM bound
(forward + backward FLOPs over this machine's best GEMM rate, measured as bench_rnn.py does).

Run: ``python benchmarks/parts.py CELL DTYPE T B I H [--repeats N]``, for example
``python benchmarks/parts.py gru float64 200 64 128 256``. The best of the repeats is reported
(the host's noise only ever adds time).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_rnn

from minirnn import functional
from minirnn._jit import kernels


def timed(name: str, spent: dict[str, float], fn: Callable[..., Any]) -> Callable[..., Any]:
    """fn, adding the seconds of each call to spent[name]."""

    def run(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cell", choices=sorted(bench_rnn.GATES))
    parser.add_argument("dtype", choices=["float32", "float64"])
    for name, what in (("T", "steps"), ("B", "batch rows"), ("I", "inputs"), ("H", "units")):
        parser.add_argument(name, type=int, help=what)  # not nargs=4: Python 3.11's --help
        # cannot print a positional's tuple of metavars (ValueError)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    cell, dtype, (T, B, I, H) = args.cell, np.dtype(args.dtype), (args.T, args.B, args.I, args.H)
    G = bench_rnn.GATES[cell]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((T, B, I)).astype(dtype)
    W_xh = (rng.standard_normal((G * H, I)) / np.sqrt(I)).astype(dtype)
    W_hh = (rng.standard_normal((G * H, H)) / np.sqrt(H)).astype(dtype)
    bias = np.zeros(G * H, dtype)
    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    forward, backward = getattr(functional, f"{cell}_forward"), getattr(functional, f"{cell}_backward")

    spent: dict[str, float] = {}
    k = kernels()
    for module, name, label in (
        (functional, "_input_projection", "projection"),
        (functional, "_tiled_product", "tiled products (projection, dX)"),
        (functional, "_tiled_gradient", "tiled weight gradients"),
        (functional, "_accumulate", "windows' products (all)"),
        (k, "window_grads", "window_grads (BLAS, bias sums)"),
        (k, "pack_panels", "pack_panels"),
    ):
        setattr(module, name, timed(label, spent, getattr(module, name)))

    best: dict[str, float] = {}
    for repeat in range(args.repeats + 1):  # the first compiles and warms up
        spent.clear()
        t0 = time.perf_counter()
        out = forward(X, W_xh, W_hh, bias)
        t1 = time.perf_counter()
        backward(dhs, out[-1])
        t2 = time.perf_counter()
        now = {"forward": t1 - t0, "backward": t2 - t1, **spent}
        if repeat and (not best or now["forward"] + now["backward"] < best["forward"] + best["backward"]):
            best = now

    TB, GH = T * B, G * H
    flops = {  # the products of each part
        "projection": 2.0 * TB * I * GH,
        "forward steps": 2.0 * TB * H * GH,
        "backward steps": 2.0 * TB * H * GH,
        "windows' products (all)": 2.0 * TB * GH * (2 * I + H),
    }
    parts = {
        "projection": best.get("projection", 0.0),
        "forward steps": best["forward"] - best.get("projection", 0.0),
        "backward steps": best["backward"] - best.get("windows' products (all)", 0.0),
        "windows' products (all)": best.get("windows' products (all)", 0.0),
        "  of which tiled weight gradients": best.get("tiled weight gradients", 0.0),
        "  of which window_grads (BLAS, bias sums)": best.get("window_grads (BLAS, bias sums)", 0.0),
        "tiled products (projection, dX)": best.get("tiled products (projection, dX)", 0.0),
        "pack_panels (W_xh, W_hh, window rows)": best.get("pack_panels", 0.0),
    }
    total = best["forward"] + best["backward"]
    peak = bench_rnn.gemm_peak(dtype)
    bound = bench_rnn.lower_bound_flops(cell, T, B, I, H) / peak
    print(f"{cell} {dtype.name} (T, B, I, H) = {(T, B, I, H)}: best of {args.repeats}, milliseconds")
    print(
        f"  forward + backward {total * 1e3:9.2f}   (forward {best['forward'] * 1e3:.2f}, backward {best['backward'] * 1e3:.2f})"
    )
    print(
        f"  GEMM bound         {bound * 1e3:9.2f}   ({peak / 1e9:.0f} GFLOP/s, this machine's best GEMM now): x{total / bound:.2f}"
    )
    for name, seconds in parts.items():
        rate = f"  {flops[name] / seconds / 1e9:6.0f} GFLOP/s" if name in flops and seconds > 0 else ""
        print(f"  {name:42s} {seconds * 1e3:9.2f}{rate}")


if __name__ == "__main__":
    main()
