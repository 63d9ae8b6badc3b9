"""The training loop: learning, exact resume, atomic checkpoints, non-finite stops, refusals."""

import json

import numpy as np
import pytest

import minirnn as mr
from minirnn import io, losses, optim, tasks
from minirnn.train import Curriculum, NonFiniteError, evaluate, load_checkpoint, train
from tests.conftest import requires_jit


def setup(cell="rnn", opt="adam", lr=0.01, seed=0):
    task = tasks.make("sine")
    model = mr.RNN(1, 8, 1, cell=cell, seed=seed)
    return model, task, optim.make(opt, model.params, lr)


@requires_jit
@pytest.mark.parametrize("bptt", ["full", 5, (4, 8)])
def test_training_beats_the_baseline(bptt):
    model, task, opt = setup(cell="gru")
    before = evaluate(model, task, 30)
    history = train(model, task, opt, 60, batch_size=16, seq_len=30, bptt=bptt, clip=1.0)
    after = evaluate(model, task, 30)
    assert after < 0.5 * before and after < task.baseline(30) / 2
    assert len(history["loss"]) == 60 and history["step"][-1] == 60
    assert all(c <= 1.0 + 1e-6 for c in history["clipped_norm"])


@pytest.mark.parametrize("bptt", ["full", (3, 6)])
@pytest.mark.parametrize("opt", ["adam", "momentum"])
def test_resume_is_bit_identical(tmp_path, bptt, opt):
    kw = dict(batch_size=4, seq_len=12, bptt=bptt, clip=0.5, seed=7)
    m1, task, o1 = setup(cell="lstm", opt=opt)
    train(m1, task, o1, 10, out=tmp_path / "straight", **kw)

    m2, _, o2 = setup(cell="lstm", opt=opt)
    train(m2, task, o2, 6, out=tmp_path / "split", **kw)
    m3, _, o3 = setup(cell="lstm", opt=opt, seed=99)  # different init: must be overwritten
    h = train(m3, task, o3, 10, out=tmp_path / "split", resume=True, **kw)
    for k in m1.params:
        np.testing.assert_array_equal(m1.params[k], m3.params[k])
    assert h["step"] == list(range(1, 11))


def test_curriculum_grows_sequence_length():
    c = Curriculum(5, 25, 10)
    assert [c.seq_len(s) for s in (0, 5, 10, 50)] == [5, 15, 25, 25]
    model, task, opt = setup()
    h = train(model, task, opt, 12, batch_size=2, curriculum=Curriculum(4, 12, 8))
    assert h["seq_len"][0] == 4 and h["seq_len"][-1] == 12
    assert h["seq_len"] == sorted(h["seq_len"])


def test_history_and_checkpoint_files(tmp_path):
    model, task, opt = setup()
    train(model, task, opt, 5, batch_size=2, seq_len=6, out=tmp_path, checkpoint_every=2)
    data = json.loads((tmp_path / "history.json").read_text())
    assert (
        data["step"] == [1, 2, 3, 4, 5]
        and data["baseline"] == 0.5
        and data["config"]["task"]["name"] == "sine"
    )
    assert not list(tmp_path.glob("*.tmp"))


def test_non_finite_gradient_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    model, task, opt = setup()
    real = model.backward
    calls = {"n": 0}

    def poisoned(dY, cache, truncate=None, dstate=None):
        calls["n"] += 1
        g = real(dY, cache, truncate, dstate)
        if calls["n"] == 5:
            g["W_hh_l0"][0, 0] = np.nan
        return g

    monkeypatch.setattr(model, "backward", poisoned)
    with pytest.raises(
        NonFiniteError, match=r"step 5: the gradient norm is nan .* last good checkpoint \(step 4\)"
    ):
        train(model, task, opt, 10, batch_size=2, seq_len=6, out=tmp_path, checkpoint_every=2)
    assert np.isfinite(model.params["W_hh_l0"]).all()  # the poisoned update was not applied
    fresh, _, fopt = setup()
    step, _ = load_checkpoint(
        tmp_path / "checkpoint.npz", fresh, fopt, np.random.default_rng(0), {"task": task.config()}
    )
    assert step == 4


def test_non_finite_loss_is_named(monkeypatch):
    model, task, opt = setup()
    monkeypatch.setattr(losses, "get", lambda name: lambda *a, **k: (float("inf"), np.zeros_like(a[0])))
    with pytest.raises(NonFiniteError, match=r"step 1: the loss is inf"):
        train(model, task, opt, 3, batch_size=2, seq_len=5)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "ckpt.npz"
    target.write_bytes(b"old")

    def explode(f):
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        io.atomic_write(target, explode)
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_corrupt_and_mismatched_checkpoints_are_refused(tmp_path):
    model, task, opt = setup()
    train(model, task, opt, 2, batch_size=2, seq_len=5, out=tmp_path)
    ckpt = tmp_path / "checkpoint.npz"
    cfg = {"task": task.config()}
    rng = np.random.default_rng(0)
    bigger = mr.RNN(1, 9, 1)
    with pytest.raises(ValueError, match=r"written for another model .*hidden_size"):
        load_checkpoint(ckpt, bigger, optim.make("adam", bigger.params, 0.01), rng, cfg)
    gru = mr.RNN(1, 8, 1, cell="gru")
    with pytest.raises(ValueError, match=r"another model .*cell"):
        load_checkpoint(ckpt, gru, optim.make("adam", gru.params, 0.01), rng, cfg)
    f32 = mr.RNN(1, 8, 1, dtype="float32")
    with pytest.raises(ValueError, match=r"another model .*dtype"):
        load_checkpoint(ckpt, f32, optim.make("adam", f32.params, 0.01), rng, cfg)
    m, _, _ = setup()
    with pytest.raises(ValueError, match=r"holds optimizer 'adam', not 'sgd'"):
        load_checkpoint(ckpt, m, optim.make("sgd", m.params, 0.01), rng, cfg)
    with pytest.raises(ValueError, match=r"optimizer settings"):
        load_checkpoint(ckpt, m, optim.make("adam", m.params, 0.5), rng, cfg)
    with pytest.raises(ValueError, match=r"another task"):
        load_checkpoint(ckpt, m, optim.make("adam", m.params, 0.01), rng, {"task": {"name": "adding"}})
    bad = tmp_path / "bad.npz"
    bad.write_bytes(ckpt.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"not a readable \.npz file"):
        load_checkpoint(bad, m, optim.make("adam", m.params, 0.01), rng, cfg)
    io.save_model(m, tmp_path / "model.npz")
    with pytest.raises(ValueError, match="holds 'minirnn-model', expected a 'minirnn-checkpoint' file"):
        load_checkpoint(tmp_path / "model.npz", m, optim.make("adam", m.params, 0.01), rng, cfg)


def test_train_refusals(tmp_path):
    model, task, opt = setup()
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        train(model, task, opt, 0)
    with pytest.raises(ValueError, match=r"bptt must be 'full', k or \(k1, k2\)"):
        train(model, task, opt, 2, bptt="half")
    with pytest.raises(ValueError, match=r"needs k2 >= k1"):
        train(model, task, opt, 2, bptt=(5, 3))
    with pytest.raises(ValueError, match=r"task 'adding' has 2 inputs"):
        train(model, tasks.make("adding"), opt, 2)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot write to the output folder"):
        train(model, task, opt, 2, out=blocker / "sub")
    with pytest.raises(ValueError, match="resume needs out="):
        train(model, task, opt, 2, resume=True)
    with pytest.raises(TypeError, match=r"optimizer built on model\.params"):
        train(model, task, optim.make("adam", {"W": np.zeros(2)}, 0.1), 2)


def test_masked_losses_and_tbptt(rng):
    pred, target = rng.standard_normal((5, 3, 2)), rng.standard_normal((5, 3, 2))
    mask = np.zeros((5, 3))
    mask[[1, 4], [0, 2]] = 1
    value, grad = losses.mse(pred, target, mask)
    assert value == pytest.approx(np.mean((pred - target)[[1, 4], [0, 2]] ** 2))
    assert not grad[mask == 0].any()
    assert losses.mse(pred, target, np.zeros((5, 3)))[0] == 0.0
    with pytest.raises(ValueError, match=r"mask has shape \(3, 5\)"):
        losses.mse(pred, target, mask.T)
    with pytest.raises(ValueError, match="mask needs an every-step target"):
        losses.mse(pred, target[-1], mask)
    model = mr.RNN(2, 4, 2, seed=0)
    X = rng.standard_normal((5, 3, 2))
    lf, gf = mr.bptt.full_gradients(model, X, target, mask=mask)
    lt, gt = mr.bptt.tbptt_gradients(model, X, target, 5, mask=mask)
    assert lt == pytest.approx(lf) and all(np.allclose(gt[k], gf[k], rtol=1e-12) for k in gf)


@requires_jit
@pytest.mark.parametrize("bptt", ["full", 10])
def test_training_holds_one_steps_activations_at_a_time(bptt):
    """Over several steps, training peaks at what one step's forward + loss + backward takes
    (calculator.measure), not two: a step's cache freed before the next step's forward (kept
    until the names were rebound, an LSTM's training peaked at 1.6x)."""
    from minirnn import calculator as C

    task = tasks.make("sine")
    model = mr.RNN(task.input_size, 64, task.output_size, cell="lstm")
    opt = optim.Adam(model.params, lr=1e-3)
    train(model, task, opt, 1, batch_size=32, seq_len=100, bptt=bptt, progress=False)  # warm
    peak = C.peak_bytes(
        lambda: train(model, task, opt, 3, batch_size=32, seq_len=100, bptt=bptt, progress=False)
    )
    one = C.measure(model, 100, 32, None if bptt == "full" else bptt, task.loss)["peak_bytes"]
    assert peak < 1.15 * one, (peak, one)
