"""The time loops a recurrence can run on (functional._time_loop), for tests to pick."""

import pytest

from minirnn import _blas, functional

LOOPS = ("compiled", "tiled", "whole", "blas", "python")


def use_loop(monkeypatch, loop: str) -> None:
    """compiled: the compiled scans with the hand-written product (small steps); tiled: the
    compiled scans with the register-tiled product (from any number of rows here); blas: the
    compiled scans calling NumPy's GEMM through its pointer (large steps without tiles); python:
    loops.py's Python loop around np.matmul (large steps where that pointer is unavailable);
    whole: tiled, and the whole-sequence products (the input projection, a window's dX) on the
    tiles too, at any size (functional.whole_tiles)."""
    tiled = loop in ("tiled", "whole")
    whole = loop == "whole"
    monkeypatch.setattr(functional, "WHOLE_TILES_MIN_MACS", 0 if whole else 1 << 62)
    monkeypatch.setattr(functional, "WHOLE_TILES_BLOCK_ROWS", 1)
    monkeypatch.setattr(functional, "avx512", lambda: whole)
    monkeypatch.setattr(functional, "tiles_enabled", lambda: tiled)
    monkeypatch.setattr(functional, "TILE_MIN_ROWS", 1)
    monkeypatch.setattr(functional, "TILE_MIN_ROW_MACS", 0)
    monkeypatch.setattr(
        functional, "use_stepped", lambda B, GH, H, itemsize=8: loop not in ("compiled", "tiled")
    )
    monkeypatch.setattr(functional, "PYTHON_LOOP_MIN_MACS", 0)
    monkeypatch.setenv("MINIRNN_BLAS", "0" if loop == "python" else "1")
    if loop == "blas" and _blas.gemm("float64") is None:
        pytest.skip("NumPy's BLAS pointer is not available here")
