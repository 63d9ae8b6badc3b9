"""Forward + full BPTT, minirnn beside PyTorch, JAX and a plain NumPy loop, in one run.

For each cell (vanilla tanh, LSTM, GRU), shape (T, B, I, H) and dtype, every contender computes
the hidden states for X (T, B, I), then the gradients of L = sum(h * G) for a fixed random G
with respect to every weight and to X. Before anything is timed, each contender's gradients
are checked against minirnn's (float64: 1e-10 relative). Timings are medians of at least 7
runs after a warm-up, taken in rounds that run every contender once, so that a slow spell on a
shared machine falls on all of them alike; ratios are against the fastest framework in the same run, and against the
machine's GEMM lower bound (forward + backward FLOPs / peak GEMM FLOP/s measured here).

Run: ``make bench`` (or ``python benchmarks/bench_rnn.py [--quick] [--cells rnn,lstm]``).
Missing optional contenders (torch, jax) are reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minirnn as mr
from minirnn.calculator import peak_bytes
from minirnn.gradcheck import relative_error

SHAPES = [(1000, 1, 1, 32), (100, 1, 32, 64), (100, 32, 32, 128), (200, 64, 128, 256), (50, 128, 512, 512)]
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
OUT = Path(__file__).resolve().parent / "out"
SLOW_SPELL, RETRIES = 0.8, 2  # re-time a row measured below 80% of the run's best GEMM rate
PEAK_PROBES = 3  # GEMM rates measured before a dtype's first row


def interleaved_medians(fns: dict, repeats: int, min_total: float = 1.0, rounds: int = 3) -> dict:
    """Median seconds of each function, timed in ``rounds`` rounds in which every function
    runs a block of calls (the order rotating), so that a slow spell on this shared machine
    falls on every contender alike instead of whichever happened to be running. Each block
    starts with one untimed call, which absorbs the hand-over from the previous contender
    (another library's thread pool still spinning, caches holding other data). At least
    ``repeats`` timed calls each; then the functions that have not yet run ``min_total``
    seconds get more blocks (up to 50 calls). A function's ``prepare`` attribute, if any,
    runs first in each block, untimed."""
    names = list(fns)
    per_block = -(-repeats // rounds)
    times: dict = {name: [] for name in names}
    r = 0
    while True:
        # after the first rounds, only the functions still short of min_total (fast ones)
        todo = [n for n in names if r < rounds or (sum(times[n]) < min_total and len(times[n]) < 50)]
        if not todo:
            break
        for name in todo[r % len(todo) :] + todo[: r % len(todo)]:
            fn = fns[name]
            prepare = getattr(fn, "prepare", None)
            if prepare is not None:
                prepare()
            fn()
            for _ in range(per_block):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        r += 1
    return {name: float(np.median(t)) for name, t in times.items()}


def numpy_blas() -> str:
    """NumPy's BLAS and the kernel set it runs (OpenBLAS picks one per CPU, or takes
    OPENBLAS_CORETYPE from the environment): it sets the speed of every large product."""
    import ctypes
    import glob

    libs = glob.glob(
        os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs", "*openblas*.so*")
    )
    if not libs:
        return "a BLAS other than the bundled OpenBLAS"
    lib = ctypes.CDLL(libs[0])  # the copy NumPy already loaded
    for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = ctypes.c_char_p
            core = fn().decode()
            forced = os.environ.get("OPENBLAS_CORETYPE")
            return f"OpenBLAS, {core} kernels" + (f" (OPENBLAS_CORETYPE={forced})" if forced else "")
    return "OpenBLAS"


def cpu() -> str:
    """The CPU's model name and widest vector extension (from /proc/cpuinfo where there is one):
    the sessions' machines have changed under this benchmark (Intel with AVX-512, AMD with AVX2),
    and the ratios move with them."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.platform()
    fields = dict(
        (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in info.splitlines()) if v
    )
    flags = set(fields.get("flags", "").split())
    widest = {"avx512f": "AVX-512", "avx2": "AVX2", "avx": "AVX", "sse4_2": "SSE4.2"}
    isa = next((label for flag, label in widest.items() if flag in flags), "no AVX")
    return f"{fields.get('model name', 'unknown CPU')} ({isa})"


def numpy_gemm(dtype: np.dtype) -> float:
    """FLOP/s of numpy's GEMM on this machine: the fastest of ten 1024^3 products."""
    n = 1024
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    b = a.T.copy()
    c = np.empty_like(a)
    return 2 * n**3 / fastest(lambda: np.matmul(a, b, out=c))


def tiled_gemm(dtype: np.dtype) -> float:
    """FLOP/s of minirnn's own tiled GEMM (kernels.tiles_rows on OpenBLAS's threads, the right
    operand packed beforehand, as for the whole-sequence products): the fastest of ten 1024^3."""
    from minirnn import functional
    from minirnn._jit import kernels

    n = 1024
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    p = kernels().pack_panels(a.T)
    c = np.empty_like(a)
    return 2 * n**3 / fastest(lambda: functional._tiled_product(a, p, c))


def fastest(product) -> float:
    product()
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        product()
        times.append(time.perf_counter() - t0)
    return min(times)


GEMM_RATES: dict[str, dict[str, float]] = {"numpy": {}, "minirnn tiles": {}}  # best of the run


def gemm_peak(dtype: np.dtype) -> float:
    """This machine's GEMM rate now: the faster of NumPy's GEMM and minirnn's tiled one (where
    minirnn's own products outrun NumPy's, the machine's limit is theirs). The best of each
    over the run is kept in GEMM_RATES."""
    key = np.dtype(dtype).name
    rates = {"numpy": numpy_gemm(dtype), "minirnn tiles": tiled_gemm(dtype)}
    for name, rate in rates.items():
        GEMM_RATES[name][key] = max(GEMM_RATES[name].get(key, 0.0), rate / 1e9)
    return max(rates.values())


UNPINNED_PROBE = """
import json, sys
sys.path.insert(0, {here!r})
import numpy as np
from bench_rnn import numpy_gemm, numpy_blas
print(json.dumps({{"blas": numpy_blas(), "float64": numpy_gemm(np.float64) / 1e9,
                  "float32": numpy_gemm(np.float32) / 1e9}}))
"""


def unpinned_gemm() -> dict | None:
    """Where the environment pins OpenBLAS's kernels (OPENBLAS_CORETYPE), the GEMM rate with
    OpenBLAS's own choice instead, measured in a child process (the pin is read when the library
    loads). minirnn keeps the environment's setting; this only says what it costs here."""
    if not os.environ.get("OPENBLAS_CORETYPE"):
        return None
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    code = UNPINNED_PROBE.format(here=os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=True
        )
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


def best_unpinned(probes: list[dict | None]) -> dict | None:
    """The best rate per dtype over several unpinned probes (as the pinned peak is the best of
    the run: a load spike on the shared machine only ever makes a GEMM slower)."""
    ok = [p for p in probes if p]
    if not ok:
        return None
    return {"blas": ok[0]["blas"], **{k: max(p[k] for p in ok) for k in ("float64", "float32")}}


def set_bound(row: dict, peak: float) -> None:
    """The row's GEMM lower bound (forward + backward FLOPs at ``peak`` FLOP/s) and minirnn's
    ratio to it."""
    cell, (T, B, I, H) = row["cell"], row["shape"]
    row["lower_bound_ms"] = 1e3 * lower_bound_flops(cell, T, B, I, H) / peak
    row["ratio_to_bound"] = row["ms"]["minirnn"] / row["lower_bound_ms"]


def lower_bound_flops(cell: str, T: int, B: int, I: int, H: int) -> float:
    G = GATES[cell]
    return 3 * T * (2 * B * I * G * H + 2 * B * H * G * H)


def make_case(cell: str, T: int, B: int, I: int, H: int, dtype: np.dtype, seed: int = 0):
    model = mr.RNN(I, H, cell=cell, dtype=dtype, seed=seed, bias=True)
    rng = np.random.default_rng(seed + 1)
    X = rng.standard_normal((T, B, I)).astype(dtype)
    G = rng.standard_normal((T, B, H)).astype(dtype)
    return model, X, G


def ours(model, X, G):
    def run():
        out, cache = model.forward(X)
        return out, model.backward(G, cache)

    return run


def numpy_loop(model, X, G):
    """The plain NumPy reference (cells.py, a Python loop over steps): MINIRNN_JIT=0."""

    def run():
        old = os.environ.get("MINIRNN_JIT")
        os.environ["MINIRNN_JIT"] = "0"
        try:
            out, cache = model.forward(X)
            return out, model.backward(G, cache)
        finally:
            if old is None:
                del os.environ["MINIRNN_JIT"]
            else:
                os.environ["MINIRNN_JIT"] = old

    return run


def torch_contender(model, X, G, threads: int):
    import torch

    torch.set_num_threads(threads)
    kind = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[model.cell]
    tdtype = torch.float64 if model.dtype == np.float64 else torch.float32
    net = kind(model.input_size, model.hidden_size, dtype=tdtype)
    with torch.no_grad():
        p = model.params
        net.weight_ih_l0.copy_(torch.from_numpy(p["W_xh_l0"]))
        net.weight_hh_l0.copy_(torch.from_numpy(p["W_hh_l0"]))
        net.bias_ih_l0.copy_(torch.from_numpy(p["b_h_l0"]))
        if model.cell == "gru":
            net.bias_hh_l0.copy_(torch.from_numpy(p["b_hh_l0"]))
        else:
            net.bias_hh_l0.zero_()
    Xt = torch.from_numpy(X)
    Gt = torch.from_numpy(G)

    def run():
        x = Xt.detach().requires_grad_(True)
        for prm in net.parameters():
            prm.grad = None
        out, _ = net(x)
        (out * Gt).sum().backward()
        return out.detach().numpy(), {
            "W_xh_l0": net.weight_ih_l0.grad.numpy(),
            "W_hh_l0": net.weight_hh_l0.grad.numpy(),
            "X": x.grad.numpy(),
        }

    def prepare():
        """Contenders take turns, so set this one's thread count; after a change, run once
        untimed: the first call after a change pays for resizing torch's thread pool."""
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
            run()

    prepare()
    run.prepare = prepare
    return run


def jax_contender(model, X, G):
    import jax
    import jax.numpy as jnp

    if model.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    p = {k: jnp.asarray(v) for k, v in model.params.items()}
    H = model.hidden_size
    cell = model.cell

    def step(params, carry, x):
        W, U = params["W_xh_l0"], params["W_hh_l0"]
        b = params["b_h_l0"]
        if cell == "rnn":
            h = jnp.tanh(x @ W.T + carry @ U.T + b)
            return h, h
        if cell == "lstm":
            h, c = carry
            a = x @ W.T + h @ U.T + b
            i, f, g, o = (
                jax.nn.sigmoid(a[:, :H]),
                jax.nn.sigmoid(a[:, H : 2 * H]),
                jnp.tanh(a[:, 2 * H : 3 * H]),
                jax.nn.sigmoid(a[:, 3 * H :]),
            )
            c = f * c + i * g
            h = o * jnp.tanh(c)
            return (h, c), h
        xa = x @ W.T + b
        ua = carry @ U.T + params["b_hh_l0"]
        r = jax.nn.sigmoid(xa[:, :H] + ua[:, :H])
        z = jax.nn.sigmoid(xa[:, H : 2 * H] + ua[:, H : 2 * H])
        n = jnp.tanh(xa[:, 2 * H :] + r * ua[:, 2 * H :])
        h = (1 - z) * n + z * carry
        return h, h

    B = X.shape[1]

    def loss(params, x):
        h0 = jnp.zeros((B, H), x.dtype)
        carry = (h0, h0) if cell == "lstm" else h0
        _, hs = jax.lax.scan(lambda c, xt: step(params, c, xt), carry, x)
        return jnp.sum(hs * G), hs

    grad = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))
    Xj = jnp.asarray(X)

    def run():
        (gp, gx), hs = grad(p, Xj)
        hs.block_until_ready()
        return np.asarray(hs), {
            "W_xh_l0": np.asarray(gp["W_xh_l0"]),
            "W_hh_l0": np.asarray(gp["W_hh_l0"]),
            "X": np.asarray(gx),
        }

    return run


# What a cell's backward pass needs from its forward besides h, per (step, row, unit): the LSTM
# its four gates, c and tanh(c); the GRU its three gates and h_{t-1} W_hn^T + b_hn.
SAVED_PER_UNIT = {"rnn": 0, "lstm": 6, "gru": 4}
# The state gradients BPTT returns, per (row, unit): dL/dh0, and dL/dc0 for the LSTM.
STATE_GRADS = {"rnn": 1, "lstm": 2, "gru": 1}


def memory_ratio(model, X, G) -> dict:
    """Peak bytes (tracemalloc) of our forward + full BPTT against the arrays the result must
    hold anyway: the hidden states and every gradient the call returns (dX, the weight
    gradients, dh0 and the LSTM's dc0; X is the caller's); and against those plus the
    activations the cell's backward needs (SAVED_PER_UNIT)."""
    run = ours(model, X, G)
    run()
    peak = peak_bytes(run)
    T, B, I = X.shape
    H, size = model.hidden_size, X.dtype.itemsize
    must = (T * B * H + T * B * I + model.num_params + STATE_GRADS[model.cell] * B * H) * size
    saved = SAVED_PER_UNIT[model.cell] * T * B * H * size
    return {
        "peak_bytes": peak,
        "must_keep_bytes": must,
        "ratio": peak / must,
        "saved_activation_bytes": saved,
        "ratio_with_saved": peak / (must + saved),
    }


def truncation_cost(shapes, repeats: int, min_total: float = 1.0) -> list[dict]:
    """Truncated BPTT (k1 = k2 = 20, accumulated) against full BPTT on the same sequence: the
    same steps forward and backward, so the time per step should match (no copying of history).
    Timed twice: through the drivers (bptt.tbptt_gradients against bptt.full_gradients: loss,
    per-block reports and accumulation included, a fixed cost per call), and the model's own
    forward + backward with and without ``truncate`` (the per-step cost alone)."""
    from minirnn import bptt

    rows = []
    for T, B, I, H in shapes:
        model = mr.RNN(I, H, 1, seed=0)
        rng = np.random.default_rng(1)
        X, Y = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, 1))

        def model_only(m=model, x=X, truncate=None):
            out, cache = m.forward(x)
            m.backward(out, cache, truncate=truncate)

        timed = interleaved_medians(
            {
                "full": lambda m=model, x=X, y=Y: bptt.full_gradients(m, x, y),
                "trunc": lambda m=model, x=X, y=Y: bptt.tbptt_gradients(m, x, y, 20),
                "model full": model_only,
                "model trunc": lambda: model_only(truncate=20),
            },
            repeats,
            min_total,
        )
        full, trunc = timed["full"], timed["trunc"]
        rows.append(
            {
                "shape": [T, B, I, H],
                "k": 20,
                "full_ms": 1e3 * full,
                "truncated_ms": 1e3 * trunc,
                "ratio": trunc / full,
                "model_full_ms": 1e3 * timed["model full"],
                "model_truncated_ms": 1e3 * timed["model trunc"],
                "model_ratio": timed["model trunc"] / timed["model full"],
            }
        )
    return rows


STARTUP = """
import time, os
t0 = time.perf_counter()
import minirnn, numpy as np
t1 = time.perf_counter()
m = minirnn.RNN(4, 32, cell=os.environ["CELL"])
X = np.random.default_rng(0).standard_normal((50, 8, 4))  # 8 rows: the tiled product
t2 = time.perf_counter()
Y, c = m.forward(X)
m.backward(np.ones_like(Y), c)
t3 = time.perf_counter()
print(t1 - t0, t3 - t2)
"""


NUMBA_FLOOR_MODULE = """
import numba

@numba.njit(cache=True)
def total(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i]
    return s
"""

NUMBA_FLOOR = """
import sys, time
import numpy as np
x = np.ones(4)
t0 = time.perf_counter()
import floor_kernel
floor_kernel.total(x)
print(time.perf_counter() - t0)
"""
WARM_STARTS = 3  # new processes timed with the caches warm; the median counts

# Every compiled path of a cell in one new process with numba's cache cold: one row (the
# hand-written product), eight (the tiled steps), and a large batch (the whole-sequence
# products on the tiles where numba compiles for AVX-512).
COLD_ALL_PATHS = """
import time, os
import minirnn, numpy as np
t0 = time.perf_counter()
for B, I, H in ((1, 4, 32), (8, 4, 32), (128, 64, 128)):
    m = minirnn.RNN(I, H, cell=os.environ["CELL"])
    Y, c = m.forward(np.random.default_rng(0).standard_normal((50, B, I)))
    m.backward(np.ones_like(Y), c)
print(time.perf_counter() - t0)
"""


def cold_all_paths(cell: str) -> float:
    """Seconds for COLD_ALL_PATHS in a new process with a fresh numba cache: the compile time of
    all of a cell's kernels (less the three small runs themselves)."""
    with tempfile.TemporaryDirectory() as cache:
        out = new_process(COLD_ALL_PATHS, {**os.environ, "CELL": cell, "NUMBA_CACHE_DIR": cache})
    return float(out.split()[-1])


def new_process(script: str, env: dict) -> str:
    """The output of ``script`` run in a new Python process. Python writes its bytecode as it
    does on a user's machine (PYTHONDONTWRITEBYTECODE, set in some development environments,
    would compile every module of ours anew in each process)."""
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout


def new_processes(script: str, env: dict) -> tuple[str, list[str]]:
    """Run ``script`` in 1 + WARM_STARTS new Python processes (new_process), one after another
    with the same numba cache: the first output (cold cache), and the others' (warm)."""
    outs = [new_process(script, env) for _ in range(1 + WARM_STARTS)]
    return outs[0], outs[1:]


def startup(cell: str) -> dict:
    """Import time, and the first forward + backward in a new process: with numba's cache cold
    (the compile time after a fresh install) and warm (every later start, the median of
    WARM_STARTS processes)."""
    keys = ("import_s", "first_forward_backward_s")
    with tempfile.TemporaryDirectory() as cache:
        cold, warm = new_processes(STARTUP, {**os.environ, "CELL": cell, "NUMBA_CACHE_DIR": cache})
    runs = [dict(zip(keys, map(float, out.split()), strict=True)) for out in warm]
    return {
        "cold cache": dict(zip(keys, map(float, cold.split()), strict=True)),
        "warm cache": {k: float(np.median([r[k] for r in runs])) for k in keys},
        "cold cache, all paths": cold_all_paths(cell),
    }


def numba_floor() -> float:
    """What numba itself takes before any kernel of ours: ``import numba`` and the first call of
    a one-loop @njit(cache=True) kernel in a new process with its cache warm (numba readies its
    typing and lowering registries, and imports scipy, on the first call). Median seconds of
    WARM_STARTS processes."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "floor_kernel.py").write_text(NUMBA_FLOOR_MODULE)
        env = {**os.environ, "PYTHONPATH": tmp, "NUMBA_CACHE_DIR": str(Path(tmp, "cache"))}
        _, warm = new_processes(NUMBA_FLOOR, env)
    return float(np.median([float(out) for out in warm]))


def check(reference, result, tol: float) -> float:
    hs_r, g_r = reference
    hs, g = result
    errs = [relative_error(hs.astype(np.float64), hs_r.astype(np.float64))]
    errs += [
        relative_error(g[k].astype(np.float64), g_r[k].astype(np.float64))
        for k in ("W_xh_l0", "W_hh_l0", "X")
    ]
    return max(errs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and only the three smaller shapes")
    ap.add_argument("--cells", default="rnn,lstm,gru")
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    print(
        f"{'cell':<5}{'dtype':<8}{'(T, B, I, H)':<22}{'minirnn':>9} {'torch2':>9} {'torch1':>9} {'jax':>9} {'numpy':>9} {'bound':>9}  (ms)"
    )
    shapes = SHAPES[:3] if args.quick else SHAPES
    repeats = 3 if args.quick else max(7, args.repeats)
    min_total = 0.2 if args.quick else 1.0  # seconds of timed calls per contender and row, at least
    contenders = ["minirnn", "torch (2 threads)", "torch (1 thread)", "jax", "numpy loop"]
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    try:
        import jax  # noqa: F401

        have_jax = True
    except ImportError:
        have_jax = False

    rows = []
    peaks = {}
    unpinned = unpinned_gemm()  # measured at the start and the end; the best rate counts

    def timed_row(cell: str, dtn: str, shape: tuple[int, int, int, int]) -> dict:
        """One row: every contender checked against minirnn, then timed, interleaved. The GEMM
        rate is measured before and after the row. The best rate of the run sets every bound
        (rows are re-scored against it below), so a slow spell cannot lower the bound; and a row
        timed while the machine's 2-thread GEMM ran below SLOW_SPELL of the best is timed again
        (at most RETRIES times): on this shared machine whole seconds pass at one core's speed."""
        T, B, I, H = shape
        dtype = np.dtype(dtn)
        tol = 1e-10 if dtype == np.float64 else 1e-4
        model, X, G = make_case(cell, T, B, I, H, dtype)
        runners = {"minirnn": ours(model, X, G), "numpy loop": numpy_loop(model, X, G)}
        if have_torch:
            runners["torch (2 threads)"] = torch_contender(model, X, G, 2)
            runners["torch (1 thread)"] = torch_contender(model, X, G, 1)
        if have_jax:
            runners["jax"] = jax_contender(model, X, G)
        ref = runners["minirnn"]()
        row = {"cell": cell, "dtype": dtn, "shape": [T, B, I, H], "ms": {}, "error": {}}
        for name in contenders:
            if name not in runners:
                row["ms"][name] = None
                continue
            err = check(ref, runners[name](), tol) if name != "minirnn" else 0.0
            row["error"][name] = err
            if err > tol:
                raise SystemExit(
                    f"{name} disagrees with minirnn on {cell} {(T, B, I, H)} {dtn}: {err:.2e} > {tol}"
                )
        attempts = 0
        while True:
            attempts += 1
            before = gemm_peak(dtype)
            timed = interleaved_medians(
                {n: runners[n] for n in contenders if n in runners}, repeats, min_total
            )
            after = gemm_peak(dtype)
            peaks[dtn] = max(peaks[dtn], before, after)
            if min(before, after) >= SLOW_SPELL * peaks[dtn] or attempts > RETRIES:
                break
        row["ms"].update({n: 1e3 * t for n, t in timed.items()})
        row["gemm_gflops_beside"] = min(before, after) / 1e9
        row["attempts"] = attempts
        set_bound(row, peaks[dtn])
        frameworks = [
            row["ms"][n] for n in ("torch (2 threads)", "torch (1 thread)", "jax") if row["ms"].get(n)
        ]
        row["best_framework_ms"] = min(frameworks) if frameworks else None
        row["ratio_to_best_framework"] = (
            row["ms"]["minirnn"] / row["best_framework_ms"] if frameworks else None
        )
        row["memory"] = memory_ratio(model, X, G)
        return row

    def slow_spell(row: dict) -> bool:
        """The row was timed while the GEMM beside it ran under SLOW_SPELL of the best so far."""
        return row["gemm_gflops_beside"] * 1e9 < SLOW_SPELL * peaks[row["dtype"]]

    for dtn in args.dtypes.split(","):
        # the slow-spell test of the first rows needs a best rate to compare with already
        peaks[dtn] = max(gemm_peak(np.dtype(dtn)) for _ in range(PEAK_PROBES))
        for cell in args.cells.split(","):
            for shape in shapes:
                rows.append(timed_row(cell, dtn, shape))
                print(format_row(rows[-1]), flush=True)
    # A row timed in a slow spell that only the run's later best rate shows (its GEMM beside it
    # under SLOW_SPELL of that best) is timed once more, as the rows were.
    for i, row in enumerate(rows):
        if slow_spell(row) and row["attempts"] <= RETRIES:
            again = timed_row(row["cell"], row["dtype"], tuple(row["shape"]))
            again["attempts"] += row["attempts"]
            rows[i] = again
            print(format_row(again) + "  (timed again: a slow spell)", flush=True)
    # Every bound against the best GEMM rate of the whole run: NumPy's, minirnn's tiled GEMM's,
    # or (where the environment pins OpenBLAS's kernels) OpenBLAS's with its own choice, measured
    # in a child process at the start and the end.
    unpinned = best_unpinned([unpinned, unpinned_gemm()])
    bound_peaks = {k: max(v, 1e9 * unpinned[k]) if unpinned else v for k, v in peaks.items()}
    for row in rows:
        set_bound(row, bound_peaks[row["dtype"]])
        row["slow_spell"] = slow_spell(row)
    trunc_rows = (
        truncation_cost([sh for sh in shapes if sh[0] >= 100], repeats, min_total)
        if "rnn" in args.cells
        else []
    )
    for r in trunc_rows:
        print(
            f"truncated BPTT k=20 vs full, rnn {tuple(r['shape'])}: {r['truncated_ms']:.2f} vs {r['full_ms']:.2f} ms (x{r['ratio']:.2f}); "
            f"the model's forward + backward alone {r['model_truncated_ms']:.2f} vs {r['model_full_ms']:.2f} ms (x{r['model_ratio']:.2f})"
        )
    starts = {cell: startup(cell) for cell in args.cells.split(",")}
    floor = numba_floor()
    for cell, st in starts.items():
        print(
            f"startup {cell}: import {st['warm cache']['import_s']:.2f} s; first forward+backward "
            f"{st['cold cache']['first_forward_backward_s']:.2f} s with a cold numba cache (compiling), "
            f"{st['warm cache']['first_forward_backward_s']:.2f} s warm; every path compiled "
            f"{st['cold cache, all paths']:.2f} s"
        )
    print(f"numba's own floor: import numba + a one-loop cached kernel's first call {floor:.2f} s")
    result = {
        "startup": starts,
        "numba_floor_s": floor,
        "truncation": trunc_rows,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu()}, {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": numpy_blas(),
        "gemm_gflops": {k: v / 1e9 for k, v in bound_peaks.items()},
        "gemm_gflops_by_source": GEMM_RATES,
        "gemm_unpinned": unpinned,
        "repeats": repeats,
        "skipped": [n for n, ok in (("torch", have_torch), ("jax", have_jax)) if not ok],
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "results.md").write_text(markdown_table(result))
    print("\nGEMM peak: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in result["gemm_gflops"].items()))
    print("  " + rates_sentence(result))
    if result["gemm_unpinned"]:
        print("without OPENBLAS_CORETYPE: " + unpinned_sentence(result["gemm_unpinned"]))
    if result["skipped"]:
        print("skipped (not installed): " + ", ".join(result["skipped"]))
    wins = sum(
        1 for r in rows if r["ratio_to_best_framework"] is not None and r["ratio_to_best_framework"] <= 1
    )
    comparable = sum(1 for r in rows if r["ratio_to_best_framework"] is not None)
    print(
        f"minirnn at most the fastest framework's time on {wins} of {comparable} rows; table in {args.out / 'results.json'}"
    )
    return 0


def rates_sentence(result: dict) -> str:
    by = result.get("gemm_gflops_by_source", {})
    return (
        "; ".join(
            f"{name} " + ", ".join(f"{k} {v:.0f}" for k, v in rates.items()) for name, rates in by.items()
        )
        + " GFLOP/s, each its best of the run on 1024^3 with 2 threads"
    )


def unpinned_sentence(u: dict) -> str:
    return f"{u['blas']}, GEMM float64 {u['float64']:.0f} GFLOP/s, float32 {u['float32']:.0f} GFLOP/s"


def markdown_table(result: dict) -> str:
    """The README's table: milliseconds for forward + full BPTT, and minirnn's ratios."""
    names = ("minirnn", "torch (2 threads)", "torch (1 thread)", "jax", "numpy loop")
    lines = [
        f"Measured {result['date']} on {result['machine']}; numpy {result['numpy']} with {result['numpy_blas']}. GEMM peak, the best rate "
        "of the run of NumPy's GEMM, minirnn's own tiled GEMM and (where the environment pins OpenBLAS's kernels) "
        "OpenBLAS with its own choice, which sets the GEMM bound: "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in result["gemm_gflops"].items())
        + (f" ({rates_sentence(result)})" if result.get("gemm_gflops_by_source") else "")
        + (f"; not installed: {', '.join(result['skipped'])}" if result["skipped"] else "")
        + f". Milliseconds, median of at least {result.get('repeats', 7)} runs."
        + (
            " The environment pins OpenBLAS's kernels; with its own choice (a child process without "
            f"OPENBLAS_CORETYPE): {unpinned_sentence(result['gemm_unpinned'])}. minirnn keeps the "
            "environment's setting; PyTorch and JAX bring their own GEMM kernels."
            if result.get("gemm_unpinned")
            else ""
        ),
        "",
        "| cell | dtype | (T, B, I, H) | "
        + " | ".join(names)
        + " | GEMM bound | vs fastest framework | vs bound | peak memory |",
        "|---|---|---|" + "---:|" * (len(names) + 4),
    ]
    for r in result["rows"]:
        ms = [f"{r['ms'][n]:.2f}" if r["ms"].get(n) is not None else "-" for n in names]
        if r.get("slow_spell"):
            ms[0] += " (*)"
        ratio = f"{r['ratio_to_best_framework']:.2f}x" if r["ratio_to_best_framework"] else "-"
        lines.append(
            f"| {r['cell']} | {r['dtype']} | {tuple(r['shape'])} | "
            + " | ".join(ms)
            + f" | {r['lower_bound_ms']:.2f} | {ratio} | {r['ratio_to_bound']:.2f}x"
            + f" | {r['memory']['ratio']:.2f}x ({r['memory']['ratio_with_saved']:.2f}x) |"
        )
    lines.append("")
    slow = [r for r in result["rows"] if r.get("slow_spell")]
    if slow:
        lines.append(
            f"(*) {len(slow)} row(s) timed while NumPy's GEMM ran below {SLOW_SPELL:.0%} of the run's best "
            f"rate (a slow spell on the shared machine; timed up to {1 + RETRIES} times, and where the "
            f"run's later best rate showed the spell, up to {1 + RETRIES} times more): read with care."
        )
    lines.append(
        "Peak memory is tracemalloc's peak over one forward + BPTT against the hidden states and the "
        "gradients it returns (dX, the weights', dh0 and the LSTM's dc0), and in brackets against those plus what the cell's backward needs from its "
        "forward (LSTM: gates, c, tanh c; GRU: gates and the hidden-side candidate term)."
    )
    for r in result.get("truncation", []):
        lines.append(
            f"Truncated BPTT (k1 = k2 = {r['k']}) against full BPTT, vanilla cell {tuple(r['shape'])}: "
            f"{r['truncated_ms']:.2f} vs {r['full_ms']:.2f} ms per sequence ({r['ratio']:.2f}x) through the drivers"
            f"; the model's forward + backward alone, with and without truncate: {r['model_truncated_ms']:.2f} "
            f"vs {r['model_full_ms']:.2f} ms ({r['model_ratio']:.2f}x)."
        )
    for cell, st in result.get("startup", {}).items():
        lines.append(
            f"Start-up, {cell}: `import minirnn` {st['warm cache']['import_s']:.2f} s; the first forward + backward "
            f"in a new process {st['warm cache']['first_forward_backward_s']:.2f} s with numba's cache warm, "
            f"{st['cold cache']['first_forward_backward_s']:.2f} s cold (compiling the kernels of its path)"
            + (
                f"; every path of the cell (B = 1, 8 and 128 in one new process, numba's cache cold) "
                f"{st['cold cache, all paths']:.2f} s."
                if "cold cache, all paths" in st
                else "."
            )
        )
    lines.append(
        f"numba's own floor, for comparison: `import numba` and the first call of a one-loop "
        f"`@njit(cache=True)` kernel in a new process with its cache warm, {result['numba_floor_s']:.2f} s "
        f"(median of {WARM_STARTS} processes, as the warm start-up times above)."
    )
    return "\n".join(lines) + "\n"


def format_row(row: dict) -> str:
    ms = row["ms"]

    def f(x):
        return f"{x:9.2f}" if x is not None else "     skip"

    head = f"{row['cell']:<5}{row['dtype']:<8}{tuple(row['shape'])!s:<22}"
    cols = " ".join(
        f(ms.get(n)) for n in ("minirnn", "torch (2 threads)", "torch (1 thread)", "jax", "numpy loop")
    )
    ratio = row["ratio_to_best_framework"]
    mem = (
        f"  mem x{row['memory']['ratio']:.2f} (x{row['memory']['ratio_with_saved']:.2f})"
        if "memory" in row
        else ""
    )
    tries = f"  ({row['attempts']} attempts)" if row.get("attempts", 1) > 1 else ""
    return (
        head + cols + f" {f(row['lower_bound_ms'])}  x{ratio:.2f} best" + mem + tries
        if ratio
        else head + cols + mem + tries
    )


if __name__ == "__main__":
    sys.exit(main())
