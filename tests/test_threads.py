"""_threads.py: the compiled time loops in blocks of batch rows on OpenBLAS's threads."""

import numpy as np
import pytest

import minirnn as mr
from minirnn import _threads, functional
from tests.conftest import requires_jit
from tests.time_loops import use_loop


def _threads_available() -> bool:
    api = _threads._load()
    return api is not None and int(api[0]()) >= 2 and int(api[3].value) >= 2


needs_threads = pytest.mark.skipif(
    not _threads_available(), reason="NumPy's OpenBLAS here has no pool of two threads to run blocks on"
)


def test_blocks_by_batch_size_and_switches(monkeypatch):
    monkeypatch.setenv("MINIRNN_THREADS", "1")
    assert _threads.blocks(2 * _threads.MIN_ROWS - 1) == 1  # too few rows for two blocks
    monkeypatch.setattr(_threads, "_api", [None])  # no usable OpenBLAS
    assert _threads.blocks(1000) == 1
    monkeypatch.setattr(_threads, "_api", [(lambda: 8, None, None, type("P", (), {"value": 3})())])
    assert _threads.blocks(1000) == 3  # the pool's size bounds it
    assert _threads.blocks(2 * _threads.MIN_ROWS) == 2  # and the rows
    monkeypatch.setattr(_threads, "_api", [(lambda: 1, None, None, type("P", (), {"value": 3})())])
    assert _threads.blocks(1000) == 1  # a caller limited OpenBLAS to one thread
    monkeypatch.setenv("MINIRNN_THREADS", "0")
    monkeypatch.setattr(_threads, "_api", [(lambda: 8, None, None, type("P", (), {"value": 8})())])
    assert _threads.blocks(1000) == 1


@needs_threads
def test_by_rows_covers_every_row_once_and_restores_the_thread_count(monkeypatch):
    monkeypatch.setenv("MINIRNN_THREADS", "1")
    get = _threads._load()[0]
    before = int(get())
    seen, counts = [], []
    _threads.by_rows(45, lambda b0, b1: (seen.append((b0, b1)), counts.append(int(get()))), ())
    assert sorted(seen) == [(0, 22), (22, 45)]
    assert counts == [1, 1]  # OpenBLAS on one thread inside the blocks
    assert int(get()) == before


@needs_threads
def test_an_error_in_a_block_is_raised_in_the_caller(monkeypatch):
    monkeypatch.setenv("MINIRNN_THREADS", "1")
    get = _threads._load()[0]
    before = int(get())

    def scan(b0, b1):
        if b0 > 0:
            raise ValueError(f"rows {b0}:{b1}")

    with pytest.raises(ValueError, match="rows 20:40"):
        _threads.by_rows(40, scan, ())
    assert int(get()) == before


GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def blocks_case(monkeypatch, rng, cell: str, loop: str):
    """A forward + BPTT (truncated, in several backward windows, with dh) of 7 rows and 9 units,
    set to run in uneven blocks of rows with the given per-step product: the function running it."""
    use_loop(monkeypatch, loop)
    monkeypatch.setattr(_threads, "MIN_ROWS", 2)
    monkeypatch.setattr(functional, "TILE_MIN_ROWS", 2)
    monkeypatch.setattr(functional, "WINDOW_ROWS", 14)
    G = GATES[cell]
    X = rng.standard_normal((6, 7, 4))
    W_xh, W_hh = 0.5 * rng.standard_normal((G * 9, 4)), 0.4 * rng.standard_normal((G * 9, 9))
    b = rng.standard_normal(G * 9)
    forward, backward = getattr(mr, f"{cell}_forward"), getattr(mr, f"{cell}_backward")

    def run():
        hs, cache = forward(X, W_xh, W_hh, b)
        return hs, backward(np.sin(hs), cache, truncate=4, return_dh=True)

    return run


@needs_threads
@pytest.mark.parametrize("loop", ["blas", "tiled"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_blocks_of_rows_give_the_one_loop_numbers(monkeypatch, rng, cell, loop):
    """Forward and BPTT (truncated, in several backward windows, with dh) in uneven blocks of
    rows on OpenBLAS's threads equal one loop over all rows, with either per-step product."""
    run = blocks_case(monkeypatch, rng, cell, loop)
    assert _threads.blocks(7) == 2
    rec = functional._time_loop(7, GATES[cell] * 9, 9, np.dtype(np.float64))
    assert rec.tiled == (loop == "tiled") and rec.block_rows == 2
    out = {}
    for threads in ("0", "1"):
        monkeypatch.setenv("MINIRNN_THREADS", threads)
        out[threads] = run()
    np.testing.assert_allclose(out["1"][0], out["0"][0], rtol=1e-13, atol=1e-15)
    assert set(out["1"][1]) == set(out["0"][1])
    for k, g in out["0"][1].items():
        np.testing.assert_allclose(out["1"][1][k], g, rtol=1e-12, atol=1e-14, err_msg=k)


BESIDE_A_BUSY_THREAD = """
import threading
import numpy as np
import minirnn as mr
from minirnn import _threads
rng = np.random.default_rng(0)
X = rng.standard_normal((12, 32, 8))
W_xh, W_hh = 0.3 * rng.standard_normal((128, 8)), 0.3 * rng.standard_normal((128, 32))
assert _threads.blocks(32) == 2
hs, cache = mr.lstm_forward(X, W_xh, W_hh)
want = mr.lstm_backward(np.ones_like(hs), cache)["W_hh"]
a, b = rng.standard_normal((20, 20000)), rng.standard_normal((20000, 20))
stop = []

def busy():  # products NumPy runs on OpenBLAS's threads with the GIL held (400 elements)
    while not stop:
        np.matmul(a, b)

t = threading.Thread(target=busy)
t.start()
try:
    for _ in range(20):
        hs, cache = mr.lstm_forward(X, W_xh, W_hh)
        np.testing.assert_allclose(mr.lstm_backward(np.ones_like(hs), cache)["W_hh"], want, rtol=1e-12)
finally:
    stop.append(1)
    t.join()
print("ok")
"""


@requires_jit
@needs_threads
def test_blocks_beside_a_thread_in_threaded_blas_with_the_gil():
    """No deadlock and the same numbers while another Python thread keeps running threaded
    OpenBLAS products with the GIL held (by_rows sets one thread with the GIL held)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}  # 1 would stop blocks
    out = subprocess.run(
        [sys.executable, "-c", BESIDE_A_BUSY_THREAD], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0 and out.stdout.split() == ["ok"], out.stderr[-2000:]
