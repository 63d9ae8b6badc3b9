"""_buffers: large arrays recycled across calls, never while anything still refers to them."""

import threading

import numpy as np
import pytest

from minirnn import _buffers, functional

MB = 1 << 20


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    monkeypatch.delenv("MINIRNN_REUSE", raising=False)
    _buffers.release()
    yield
    _buffers.release()


def test_a_dropped_array_is_handed_out_again_aligned_and_shaped():
    a = _buffers.empty((300, 1000), np.float64)
    where = a.ctypes.data
    assert where % _buffers.ALIGN == 0 and a.flags.c_contiguous and a.shape == (300, 1000)
    assert _buffers.held() == (a.nbytes + _buffers.ALIGN, 0)
    del a
    assert _buffers.held() == (0, 2_400_000 + _buffers.ALIGN)
    b = _buffers.empty((600, 1000), np.float32)  # same bytes, another dtype and shape
    assert b.ctypes.data == where and b.dtype == np.float32 and b.shape == (600, 1000)


def test_an_array_in_use_or_a_view_of_it_keeps_its_block():
    a = _buffers.empty((2 * MB,), np.uint8)
    a[:] = 7
    b = _buffers.empty((2 * MB,), np.uint8)  # a still alive: a new block
    assert not np.shares_memory(a, b)
    row = a[5:9]  # only a view left: the block is still in use
    del a
    c = _buffers.empty((2 * MB,), np.uint8)
    assert not np.shares_memory(row, c)
    c[:] = 1
    assert (row == 7).all()
    assert _buffers.held()[1] == 0


def test_small_arrays_are_plain_and_the_switch_turns_reuse_off(monkeypatch):
    small = _buffers.empty((100,), np.float64)
    assert small.base is None and _buffers.held() == (0, 0)
    monkeypatch.setenv("MINIRNN_REUSE", "0")
    big = _buffers.empty((MB,), np.float64)
    assert big.base is None and _buffers.held() == (0, 0)


def test_a_block_much_larger_than_asked_is_not_used():
    a = _buffers.empty((8 * MB,), np.uint8)
    where = a.ctypes.data
    del a
    small = _buffers.empty((2 * MB,), np.uint8)  # under 1/SLACK of the idle block
    assert small.ctypes.data != where
    half = _buffers.empty((4 * MB,), np.uint8)
    assert half.ctypes.data == where


def test_blocks_stay_under_the_cap_and_idle_ones_go_oldest_first(monkeypatch):
    monkeypatch.setattr(_buffers, "MAX_BYTES", 5 * MB)
    a = _buffers.empty((2 * MB,), np.uint8)
    b = _buffers.empty((2 * MB - 128,), np.uint8)
    over = _buffers.empty((2 * MB,), np.uint8)  # a and b in use: not tracked
    assert over.ctypes.data % _buffers.ALIGN == 0
    assert _buffers.held() == (a.nbytes + b.nbytes + 2 * _buffers.ALIGN, 0)
    del over
    a_at, b_at = a.ctypes.data, b.ctypes.data
    del a, b  # a is the older: it goes first to make room
    c = _buffers.empty((3 * MB,), np.uint8)
    d = _buffers.empty((2 * MB - 128,), np.uint8)
    assert c.ctypes.data not in (a_at, b_at) and d.ctypes.data == b_at
    assert sum(_buffers.held()) <= 5 * MB


def test_fresh_lets_idle_blocks_go_and_allocates_anew():
    a = _buffers.empty((2 * MB,), np.uint8)
    del a
    with _buffers.fresh():
        assert _buffers.held() == (0, 0)
        b = _buffers.empty((2 * MB,), np.uint8)
        assert b.base is None and _buffers.held() == (0, 0)
    assert _buffers.enabled()


def test_threads_never_share_a_block():
    arrays: list[np.ndarray] = []
    lock = threading.Lock()

    def grab(seed: int) -> None:
        for i in range(30):
            a = _buffers.empty((MB + 8 * (i % 3),), np.uint8)
            a[:] = seed
            if i % 2:
                with lock:
                    arrays.append(a)
            del a

    threads = [threading.Thread(target=grab, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, a in enumerate(arrays):
        for b in arrays[i + 1 :]:
            assert not np.shares_memory(a, b)


def _lstm_inputs(dtype=np.float32, T=40, B=16, I=64, H=128):  # gates 1.3 MB: recycled
    rng = np.random.default_rng(3)
    X = rng.standard_normal((T, B, I)).astype(dtype)
    W_xh = (rng.standard_normal((4 * H, I)) / 8).astype(dtype)
    W_hh = (rng.standard_normal((4 * H, H)) / 12).astype(dtype)
    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    return X, W_xh, W_hh, dhs


def test_a_kept_result_is_never_overwritten_and_a_dropped_one_is_reused_with_equal_numbers():
    X, W_xh, W_hh, dhs = _lstm_inputs()
    hs1, cache1 = functional.lstm_forward(X, W_xh, W_hh)
    kept = hs1.copy(), cache1.gates.copy()
    g1 = functional.lstm_backward(dhs, cache1)
    hs2, cache2 = functional.lstm_forward(X[::-1].copy(), W_xh, W_hh)  # hs1 alive: apart
    assert not np.shares_memory(hs1, hs2) and not np.shares_memory(cache1.gates, cache2.gates)
    np.testing.assert_array_equal(hs1, kept[0])
    np.testing.assert_array_equal(cache1.gates, kept[1])
    where = cache2.gates.ctypes.data
    del hs2, cache2
    hs3, cache3 = functional.lstm_forward(X, W_xh, W_hh)
    assert cache3.gates.ctypes.data == where  # the dropped call's gates, recycled
    g3 = functional.lstm_backward(dhs, cache3)
    np.testing.assert_array_equal(hs3, hs1)
    for name in g1:
        np.testing.assert_array_equal(g3[name], g1[name])
