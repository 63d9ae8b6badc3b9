"""kernels.py (numba) against cells.py (NumPy reference): the same numbers on every branch."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minirnn as mr
from minirnn import _blas, functional
from tests.conftest import requires_jit
from tests.time_loops import LOOPS, use_loop

ACTS = ["tanh", "relu", "sigmoid", "linear"]


def run_both(monkeypatch, args, dhs, truncate=None):
    out = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("MINIRNN_JIT", flag)
        hs, cache = mr.rnn_forward(*args)
        g = mr.rnn_backward(dhs, cache, truncate, return_dh=True)
        out[flag] = (hs, g)
    return out["1"], out["0"]


def draw(rng, T, B, I, H, dtype, bias=True, h0=True, scale=1.0):
    X = rng.standard_normal((T, B, I)).astype(dtype)
    W_xh = rng.standard_normal((H, I)).astype(dtype)
    W_hh = (scale * rng.standard_normal((H, H)) / np.sqrt(H)).astype(dtype)
    b_h = rng.standard_normal(H).astype(dtype) if bias else None
    h_0 = rng.standard_normal((B, H)).astype(dtype) if h0 else None
    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    return (X, W_xh, W_hh, b_h, h_0), dhs


def assert_same(jit, ref, rtol):
    (hs_j, g_j), (hs_r, g_r) = jit, ref
    scale = max(1.0, float(np.abs(hs_r).max()))
    np.testing.assert_allclose(hs_j, hs_r, rtol=rtol, atol=rtol * scale)
    assert g_j.keys() == g_r.keys()
    for k in g_r:
        s = max(1.0, float(np.abs(g_r[k]).max()))
        np.testing.assert_allclose(g_j[k], g_r[k], rtol=rtol, atol=rtol * s, err_msg=k)


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("truncate", [None, 1, 3])
def test_kernel_equals_reference_float64(monkeypatch, rng, activation, loop, truncate):
    use_loop(monkeypatch, loop)
    args, dhs = draw(rng, 9, 3, 4, 6, np.float64)
    args = (*args, activation)
    assert_same(*run_both(monkeypatch, args, dhs, truncate), rtol=1e-12)


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("loop", LOOPS)
def test_kernel_equals_reference_float32(monkeypatch, rng, activation, loop):
    use_loop(monkeypatch, loop)
    args, dhs = draw(rng, 12, 2, 3, 8, np.float32)
    jit, ref = run_both(monkeypatch, (*args, activation), dhs)
    assert jit[0].dtype == np.float32 and all(g.dtype == np.float32 for g in jit[1].values())
    assert_same(jit, ref, rtol=2e-5)


@given(
    T=st.integers(1, 12),
    B=st.integers(1, 5),
    I=st.integers(1, 6),
    H=st.integers(1, 9),
    activation=st.sampled_from(ACTS),
    bias=st.booleans(),
    h0=st.booleans(),
    loop=st.sampled_from(LOOPS),
    seed=st.integers(0, 2**16),
)
def test_kernel_equals_reference_any_shape(monkeypatch, T, B, I, H, activation, bias, h0, loop, seed):
    use_loop(monkeypatch, loop)
    args, dhs = draw(np.random.default_rng(seed), T, B, I, H, np.float64, bias, h0, scale=1.5)
    assert_same(*run_both(monkeypatch, (*args, activation), dhs), rtol=1e-12)


def test_path_threshold_picks_by_work(monkeypatch):
    use = functional.use_stepped
    for wide in (False, True):
        monkeypatch.setattr(functional, "avx512", lambda wide=wide: wide)
        assert not use(1, 4 * 1024, 1024)  # one row: hand-written at any width
        first = 12 if wide else 8  # float64: the GEMM from 12 rows with AVX-512, from 8 without
        assert not use(first - 1, 4 * 512, 512) and use(first, 4 * 512, 512)
        assert not use(200, 8, 8)  # a tiny step (12,800 multiply-adds) never pays for a call
    # float32: the GEMM from 8 rows with 256-bit vectors, from 24 with AVX-512's 512-bit ones
    assert not use(23, 4 * 512, 512, 4) and use(24, 4 * 512, 512, 4)
    monkeypatch.setattr(functional, "avx512", lambda: False)
    assert not use(7, 4 * 512, 512, 4) and use(8, 4 * 512, 512, 4)
    f64 = np.dtype(np.float64)
    monkeypatch.setenv("MINIRNN_TILES", "0")
    monkeypatch.setenv("MINIRNN_BLAS", "0")  # no pointer: a Python loop only for large steps
    assert functional._time_loop(16, 32, 32, f64) == functional.Recurrence()
    assert functional._time_loop(64, 256, 256, f64) == functional.Recurrence(python_loop=True)
    monkeypatch.setenv("MINIRNN_BLAS", "1")
    rec = functional._time_loop(64, 256, 256, f64)
    assert not rec.python_loop and not rec.tiled and (rec.gemm is not None) == (_blas.gemm(f64) is not None)


def test_tiles_from_four_rows_in_blocks_for_large_steps(monkeypatch):
    monkeypatch.setattr(functional, "avx512", lambda: False)
    monkeypatch.setenv("MINIRNN_TILES", "1")
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    assert functional._time_loop(4, 4 * 32, 32, f64).tiled  # from 4 rows at 4,096 a row
    assert not functional._time_loop(64, 4 * 16, 16, f64).tiled  # narrower, many rows: BLAS
    narrow = functional._time_loop(8, 4 * 16, 16, f64)  # narrower, few rows: tiles in one loop
    assert narrow.tiled and narrow.block_rows == 0
    assert not functional._time_loop(3, 4 * 16, 16, f64).tiled  # under four rows: hand-written
    assert functional._time_loop(2, 512, 128, f64).tiled  # from 2 for wide steps
    assert not functional._time_loop(3, 128, 64, f64).tiled  # 8,192 multiply-adds a row
    assert not functional._time_loop(1, 512, 128, f64).tiled  # one row: hand-written
    # in blocks of at least TILE_MIN_ROWS rows, whatever the step
    assert functional._time_loop(8, 4 * 32, 32, f64).block_rows == functional.TILE_MIN_ROWS == 4
    assert functional._time_loop(2, 512, 128, f32).block_rows == 4  # too few rows for two blocks
    assert functional._time_loop(8, 64, 64, f32).block_rows == 4
    monkeypatch.setattr(functional, "avx512", lambda: True)  # 512-bit tiles there: the same choice
    monkeypatch.delenv("MINIRNN_TILES")
    assert functional._time_loop(64, 256, 256, f64).tiled
    monkeypatch.setenv("MINIRNN_TILES", "0")  # switched off anywhere
    assert not functional._time_loop(64, 256, 256, f64).tiled
    monkeypatch.setattr(functional, "avx512", lambda: False)
    assert not functional._time_loop(64, 256, 256, f64).tiled


def test_kernels_handle_non_contiguous_inputs(rng):
    X = rng.standard_normal((3, 5, 4)).transpose(1, 0, 2)  # (5, 3, 4), not C-contiguous
    W_xh, W_hh = rng.standard_normal((6, 4)), rng.standard_normal((6, 6)).T * 0.3
    hs, _cache = mr.rnn_forward(X, W_xh, W_hh)
    hs2, _ = mr.rnn_forward(np.ascontiguousarray(X), W_xh, np.ascontiguousarray(W_hh))
    np.testing.assert_array_equal(hs, hs2)


def test_vectorisable_tanh_and_sigmoid_match_numpy():
    from minirnn import cells, kernels

    edges = [0.0, -0.0, 1e-300, -1e-12, 0.625, -0.625, 19.5, 700, -800]
    x = np.concatenate([np.linspace(-50, 50, 400_001), edges])
    for code, name in ((0, "tanh"), (2, "sigmoid")):
        got = x.copy()
        kernels.activate_inplace(got[None], code)  # one row
        ref = cells.activate(x, name)
        normal = np.abs(ref) > 1e-300  # sigmoid(-800) underflows: compared absolutely below
        rel = np.abs(got - ref)[normal] / np.abs(ref[normal])
        assert rel.max() < 2e-15, (name, rel.max(), x[normal][rel.argmax()])
        assert np.abs(got - ref)[~normal].max(initial=0) < 1e-300


def test_float32_tanh_and_sigmoid_are_float32_accurate():
    """float32 rows are computed in float32 (kernels.transcend32_): within 2.5 units in the last
    place of the exact value, where NumPy's own float32 tanh and sigmoid reach 1.3 and 3.2."""
    from minirnn import cells, kernels

    edges = [0.0, -0.0, 1e-30, -1e-7, 0.625, -0.625, 9.0, -9.5, 87.0, -88.0, 1e4, -1e4]
    x32 = np.concatenate([np.linspace(-100, 100, 2_000_001), edges]).astype(np.float32)
    x = x32.astype(np.float64)
    for code, exact in ((0, np.tanh(x)), (2, cells.sigmoid(x))):  # float64: exact to 1e-16
        got = x32.copy()
        kernels.activate_inplace(got[None], code)  # one row
        assert got.dtype == np.float32
        normal = np.abs(exact) > 1e-37  # sigmoid below -88 is subnormal: compared absolutely
        ulps = np.abs(got - exact)[normal] / np.spacing(np.abs(exact[normal]).astype(np.float32))
        assert ulps.max() <= 3, (code, ulps.max(), x32[normal][ulps.argmax()])
        assert np.abs(got - exact)[~normal].max(initial=0) < 1e-37


def test_vectorisable_expm1_matches_numpy():
    from numba import njit

    from minirnn.kernels import expm1_pos32_, expm1_pos_

    @njit
    def apply(y, out, single):
        for i in range(y.size):
            out[i] = expm1_pos32_(y[i]) if single else expm1_pos_(y[i])

    y = np.concatenate([np.linspace(0, 709, 300_001), [0.0, 1e-300, 1e-9, 0.34657359, 0.34657360, 708.9]])
    out = np.empty_like(y)
    apply(y, out, False)
    exact = np.expm1(y)
    nz = exact > 0
    assert (out[~nz] == 0).all() and (np.abs(out - exact)[nz] / exact[nz]).max() < 5e-16
    y32 = np.concatenate([np.linspace(0, 88, 100_001), [1e-30, 1e-6, 0.3465736]]).astype(np.float32)
    out32 = np.empty_like(y32)
    apply(y32, out32, True)
    exact32 = np.expm1(y32.astype(np.float64))
    nz = exact32 > 0
    assert out32.dtype == np.float32 and (np.abs(out32 - exact32)[nz] / exact32[nz]).max() < 2.5e-7


@requires_jit
def test_fmadd_is_one_fused_rounding_where_the_cpu_fuses():
    """kernels.fmadd compiles to one fused multiply-add on a CPU with FMA (the polynomials of
    tanh and sigmoid rely on it for speed): (1 + 2^-30)(1 - 2^-30) - 1 is -2^-60 fused, and 0
    when the product is rounded first."""
    import llvmlite.binding as llvm
    from numba import njit

    from minirnn.kernels import fmadd

    @njit
    def fused(a, b, c):
        return fmadd(a, b, c)

    a, b = 1.0 + 2.0**-30, 1.0 - 2.0**-30
    has_fma = llvm.get_host_cpu_features().get("fma", False)
    assert fused(a, b, -1.0) == (-(2.0**-60) if has_fma else 0.0)
    assert fmadd(a, b, -1.0) == 0.0  # the Python body (NUMBA_DISABLE_JIT) rounds twice
    assert fused(np.float32(3), np.float32(2), np.float32(1)) == 7 and fused(2.0, 3.0, 1.0) == 7.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tanh_and_sigmoid_at_nan_and_infinity(dtype):
    """NaN in gives NaN out (check_finite=False lets it through), +-inf the limits exactly."""
    from minirnn import kernels

    x = np.array([np.nan, np.inf, -np.inf, 0.0, 50.0], dtype=dtype)
    for code, expected in ((0, [np.nan, 1, -1, 0, 1]), (2, [np.nan, 1, 0, 0.5, 1])):
        got = x.copy()
        kernels.activate_inplace(got[None], code)  # one row
        np.testing.assert_array_equal(got[:2], np.array(expected[:2], dtype=dtype))
        assert abs(got[2] - expected[2]) < 1e-37 and got[3] == expected[3] and got[4] == expected[4]


def test_avx512_follows_the_cpu_numba_compiles_for(monkeypatch):
    from llvmlite import binding
    from numba.core import config

    from minirnn import _jit

    def fresh():
        _jit.avx512.cache_clear()
        return _jit.avx512()

    try:
        monkeypatch.setattr(config, "CPU_NAME", None)  # the host's features
        assert fresh() == bool(binding.get_host_cpu_features().get("avx512f", False))
        monkeypatch.setattr(config, "CPU_NAME", "generic")  # NUMBA_CPU_NAME: as named
        monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,+fma")
        assert fresh() is False
        monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,+avx512f,+avx512bw")
        assert fresh() is True
    finally:
        monkeypatch.undo()
        _jit.avx512.cache_clear()


def test_narrow_steps_of_up_to_eleven_rows_stay_on_the_tiles(monkeypatch):
    """The fallback's threshold (the GEMM from 8 rows with the tiles off) leaves the tiles' own
    choice alone: narrow steps of 4-11 rows run on the tiles in one loop, 12 rows on the GEMM."""
    from minirnn._jit import kernels

    monkeypatch.setattr(functional, "avx512", lambda: False)
    f64 = np.dtype(np.float64)
    if not functional.tiles_enabled() or kernels().tiles_entry(f64) == 0:
        pytest.skip("no tiles here")
    for B in (4, 8, 11):  # GRU, H = 36: 3,888 multiply-adds a row, narrow
        rec = functional._time_loop(B, 3 * 36, 36, f64)
        assert rec.tiled and rec.block_rows == 0
    rec = functional._time_loop(12, 3 * 36, 36, f64)
    assert not rec.tiled
