"""The three time loops a recurrence can run on (functional._time_loop), for tests to pick."""

import pytest

from minirnn import _blas, functional

LOOPS = ("compiled", "blas", "python")


def use_loop(monkeypatch, loop: str) -> None:
    """compiled: the compiled scans with the hand-written product (small steps); blas: the
    compiled scans calling NumPy's GEMM through its pointer (large steps); python: loops.py's
    Python loop around np.matmul (large steps where that pointer is unavailable)."""
    monkeypatch.setattr(functional, "use_stepped", lambda B, GH, H, itemsize=8: loop != "compiled")
    monkeypatch.setattr(functional, "PYTHON_LOOP_MIN_MACS", 0)
    monkeypatch.setenv("MINIRNN_BLAS", "0" if loop == "python" else "1")
    if loop == "blas" and _blas.gemm("float64") is None:
        pytest.skip("NumPy's BLAS pointer is not available here")
