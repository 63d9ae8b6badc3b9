"""What every experiment shares: its command line, its output files, and its plot style.

An experiment is a module with ``run(quick, seed, out_dir) -> dict`` and a ``main``; the dict
holds the claim, where it comes from, the prediction, the measurement, the tolerance and
whether it passed, and is written as NAME.json beside NAME.png.
"""

from __future__ import annotations

import argparse
import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from minirnn._json import plain

OUT = Path(__file__).resolve().parent / "out"


def one_blas_thread() -> None:
    """Put NumPy's OpenBLAS in this process on one thread: for worker processes that share the
    cores between them (a ProcessPoolExecutor initializer). Set through OpenBLAS's own call, not
    OPENBLAS_NUM_THREADS, which would reach the parent and every later subprocess too, and which
    a forked worker, whose OpenBLAS is already loaded, would not read. Does nothing where NumPy's
    BLAS is not the bundled OpenBLAS."""
    from minirnn import _threads

    _threads.set_num_threads(1)


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a smaller run that checks the same claim in seconds")
    p.add_argument("--seed", type=int, default=0, help="random seed (the run is deterministic for it)")
    p.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    return p.parse_args(argv)


def save(name: str, result: dict[str, Any], fig: Any, out_dir: Path) -> dict[str, Any]:
    """Write out_dir/NAME.json and out_dir/NAME.png; return the JSON-safe result."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = plain({"name": name, **result, "png": f"{name}.png"})
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    fig.savefig(out_dir / f"{name}.png", dpi=120, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return result


def pyplot():
    """matplotlib.pyplot on the Agg backend (no screen needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def report_line(result: dict[str, Any]) -> str:
    return f"{result['name']}: {'PASS' if result['pass'] else 'FAIL'} - {result['claim']}"


def finish(result: dict[str, Any]) -> int:
    """Print the source document's claims the experiment measured and its verdict; the exit
    code of the script (0 when its predictions hold)."""
    measured = result.get("measured")
    for claim, c in (measured.get("seed_claims", {}) if isinstance(measured, dict) else {}).items():
        print(f"  seed claim '{claim}': {'holds' if c['holds'] else 'does not hold'} ({c['evidence']})")
    print(report_line(result))
    return 0 if result["pass"] else 1


def decay_rate(
    J: np.ndarray, max_lag: int, fit_from: int, ends: list[int] | None = None, every: int = 5
) -> tuple[float, dict]:
    """Per-step log growth rate of ||dh_t/dh_{t-k}||: the slope of log(geometric-mean norm)
    against k, fitted over lags fit_from..max_lag (every ``every``-th lag). Returns (slope,
    the norms_by_lag dict)."""
    from minirnn import analysis

    T = J.shape[0]
    ends = ends or [T - 1, T - 1 - T // 8, T - 1 - T // 4]
    prod = analysis.norms_by_lag(J, max_lag, ends, every)
    k, g = prod["lag"], np.log(prod["geomean"])
    use = k >= fit_from
    slope = float(np.polyfit(k[use], g[use], 1)[0])
    return slope, prod


def zero_crossing(xs: list[float], ys: list[float]) -> float | None:
    """The first x where the piecewise-linear y(x) crosses from <= 0 to > 0 (None if never)."""
    for (x0, y0), (x1, y1) in pairwise(zip(xs, ys, strict=True)):
        if y0 <= 0 < y1:
            return float(x0 + (x1 - x0) * (-y0) / (y1 - y0))
    return None
