"""Synthetic tasks: structure, determinism, and that the stated baselines are what they say."""

import math

import numpy as np
import pytest

import minirnn as mr
from minirnn import losses, tasks


def test_adding_problem_structure(rng):
    b = tasks.make("adding").sample(rng, 64, 30)
    assert b.X.shape == (30, 64, 2) and b.Y.shape == (30, 64, 1) and b.mask.shape == (30, 64)
    markers = b.X[:, :, 1]
    assert (markers.sum(axis=0) == 2).all()
    assert (markers[:15].sum(axis=0) == 1).all() and (markers[15:].sum(axis=0) == 1).all()
    np.testing.assert_allclose(b.Y[-1, :, 0], (b.X[:, :, 0] * markers).sum(axis=0))
    assert (b.mask[-1] == 1).all() and not b.mask[:-1].any()


def test_adding_baseline_is_measured(rng):
    task = tasks.make("adding")
    b = task.sample(rng, 200_000, 4)
    pred = np.ones((4, 200_000, 1))
    value, _ = losses.mse(pred, b.Y, b.mask)
    assert value == pytest.approx(task.baseline(4), rel=0.02)  # 2/12


def test_copy_task_structure_and_baseline(rng):
    task = tasks.CopyTask(symbols=8, length=5)
    b = task.sample(rng, 3, 20)
    tokens = b.X.argmax(axis=2)
    np.testing.assert_array_equal(b.Y[-5:], tokens[:5])
    assert (tokens[14] == 9).all() and not b.Y[:-5].any()
    # blanks, then the uniform guess over symbols: the stated baseline
    logits = np.zeros((20, 3, 10))
    logits[:15, :, 0] = 50.0
    logits[15:, :, 1:9] = 0.0
    logits[15:, :, [0, 9]] = -50.0
    value, _ = losses.cross_entropy(logits, b.Y)
    assert value == pytest.approx(task.baseline(20), rel=1e-6)
    with pytest.raises(ValueError, match="seq_len must be at least 11"):
        task.sample(rng, 2, 10)


def test_sine_targets_are_next_inputs(rng):
    task = tasks.make("sine")
    b = task.sample(rng, 4, 50)
    np.testing.assert_array_equal(b.Y[:-1], b.X[1:])
    big = task.sample(rng, 20_000, 50)
    assert np.mean(big.Y**2) == pytest.approx(task.baseline(50), rel=0.03)


def test_default_corpus_is_deterministic_and_substantial():
    text = tasks.stdlib_docstrings()
    assert len(text) > 100_000 and text == tasks.stdlib_docstrings()
    task = tasks.CharText(text=text)
    assert 40 < task.input_size < 128
    assert 1.5 < task.baseline(10) / math.log(2) < 6  # unigram entropy in bits


def test_text_windows_and_sampling(rng, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("hello world, hello minirnn. " * 20, encoding="utf-8")
    task = tasks.make("text", path=f)
    b = task.sample(rng, 5, 12)
    codes_in = b.X.argmax(axis=2)
    np.testing.assert_array_equal(codes_in[1:], b.Y[:-1])
    model = mr.RNN(task.input_size, 8, task.output_size, seed=0)
    s = task.sample_text(model, 40, temperature=0.7, prime="hel", seed=3)
    assert s.startswith("hel") and len(s) == 43 and set(s) <= set(task.alphabet)
    assert s == task.sample_text(model, 40, temperature=0.7, prime="hel", seed=3)
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        task.sample_text(model, 5, temperature=0)
    with pytest.raises(ValueError, match="not in the alphabet"):
        task.sample_text(model, 5, prime="Z")


def test_bad_text_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty or a single character"):
        tasks.make("text", path=empty)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match=r"is not UTF-8 text \(byte 3"):
        tasks.make("text", path=latin)
    with pytest.raises(ValueError, match="cannot read"):
        tasks.make("text", path=tmp_path / "missing.txt")


def test_task_refusals(rng):
    with pytest.raises(ValueError, match="unknown task 'parity'"):
        tasks.make("parity")
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        tasks.make("sine").sample(rng, 0, 5)
    with pytest.raises(ValueError, match="seq_len must be at least 2"):
        tasks.make("adding").sample(rng, 2, 1)
