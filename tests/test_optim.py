"""Optimizers and schedules: the update rules, against torch.optim when torch is installed."""

import math

import numpy as np
import pytest

from minirnn import optim


def params(rng):
    return {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}


def grads_seq(rng, n):
    return [
        {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4), "X": np.ones(2)} for _ in range(n)
    ]


CONFIGS = [
    ("sgd", {}),
    ("momentum", {}),
    ("nesterov", {}),
    ("adagrad", {}),
    ("rmsprop", {}),
    ("adam", {}),
]


def torch_optimizer(torch, name, tensors, lr):
    o = torch.optim
    return {
        "sgd": lambda: o.SGD(tensors, lr=lr),
        "momentum": lambda: o.SGD(tensors, lr=lr, momentum=0.9),
        "nesterov": lambda: o.SGD(tensors, lr=lr, momentum=0.9, nesterov=True),
        "adagrad": lambda: o.Adagrad(tensors, lr=lr),
        "rmsprop": lambda: o.RMSprop(tensors, lr=lr),
        "adam": lambda: o.Adam(tensors, lr=lr),
    }[name]()


@pytest.mark.parametrize(("name", "kw"), CONFIGS)
def test_updates_equal_torch(rng, name, kw):
    torch = pytest.importorskip("torch", reason="torch is not installed (optional extra)")
    p = params(rng)
    gs = grads_seq(rng, 6)
    tensors = [torch.nn.Parameter(torch.from_numpy(p[k].copy())) for k in ("W", "b")]
    topt = torch_optimizer(torch, name, tensors, 0.05)
    ours = optim.make(name, p, 0.05, **kw)
    for g in gs:
        ours.step(g)
        for t, k in zip(tensors, ("W", "b"), strict=True):
            t.grad = torch.from_numpy(g[k].copy())
        topt.step()
    for t, k in zip(tensors, ("W", "b"), strict=True):
        np.testing.assert_allclose(p[k], t.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_sgd_rule_by_hand(rng):
    p = params(rng)
    before = {k: a.copy() for k, a in p.items()}
    g = grads_seq(rng, 1)[0]
    optim.SGD(p, 0.1).step(g)
    for k in p:
        np.testing.assert_allclose(p[k], before[k] - 0.1 * g[k])


def test_adam_first_step_moves_by_lr_times_sign(rng):
    p = params(rng)
    before = {k: a.copy() for k, a in p.items()}
    g = grads_seq(rng, 1)[0]
    optim.Adam(p, 0.01).step(g)
    for k in p:  # bias correction makes the first step lr * g / (|g| + eps')
        np.testing.assert_allclose(before[k] - p[k], 0.01 * np.sign(g[k]), rtol=1e-6)


def test_schedules():
    s = optim.Schedule("step", step_size=10, gamma=0.5)
    assert [s.factor(n) for n in (0, 9, 10, 25)] == [1, 1, 0.5, 0.25]
    c = optim.Schedule("cosine", total=100, min_factor=0.1)
    assert c.factor(0) == 1 and c.factor(100) == pytest.approx(0.1) and c.factor(500) == pytest.approx(0.1)
    assert c.factor(50) == pytest.approx(0.55)
    w = optim.Schedule("constant", warmup=4)
    assert [w.factor(n) for n in range(6)] == [0.25, 0.5, 0.75, 1, 1, 1]
    with pytest.raises(ValueError, match="unknown kind 'linear'"):
        optim.Schedule("linear")
    with pytest.raises(ValueError, match=r"gamma must be in \(0, 1\]"):
        optim.Schedule("step", gamma=2)


def test_lr_follows_schedule(rng):
    p = params(rng)
    o = optim.SGD(p, 1.0, schedule=optim.Schedule("step", step_size=2, gamma=0.1))
    lrs = []
    for g in grads_seq(rng, 5):
        lrs.append(o.lr)
        o.step(g)
    assert lrs == pytest.approx([1, 1, 0.1, 0.1, 0.01])


@pytest.mark.parametrize(("name", "kw"), CONFIGS)
def test_state_dict_round_trip_continues_identically(rng, name, kw):
    p1 = params(rng)
    p2 = {k: a.copy() for k, a in p1.items()}
    gs = grads_seq(rng, 6)
    a = optim.make(name, p1, 0.05, schedule=optim.Schedule("cosine", total=6, warmup=2))
    for g in gs[:3]:
        a.step(g)
    b_state = a.state_dict()
    p2.update({k: v.copy() for k, v in p1.items()})
    b = optim.from_state_dict(p2, b_state)
    for g in gs[3:]:
        a.step(g)
        b.step(g)
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k])


def test_refusals(rng):
    p = params(rng)
    for bad in (0, -1.0, math.nan, math.inf, "0.1", True):
        with pytest.raises(ValueError, match="learning rate must be a positive number"):
            optim.Adam(p, bad)
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        optim.make("lbfgs", p, 0.1)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
        optim.SGD(p, 0.1, momentum=1.5)
    with pytest.raises(ValueError, match="nesterov needs momentum"):
        optim.SGD(p, 0.1, nesterov=True)
    with pytest.raises(ValueError, match="no gradient for b"):
        optim.SGD(p, 0.1).step({"W": np.zeros((3, 4))})
    with pytest.raises(ValueError, match=r"gradient W has shape \(4, 3\); expected \(3, 4\)"):
        optim.SGD(p, 0.1).step({"W": np.zeros((4, 3)), "b": np.zeros(4)})
    with pytest.raises(TypeError, match="non-empty parameter dict"):
        optim.SGD({}, 0.1)
    with pytest.raises(ValueError, match="belongs to optimizer 'sgd'"):
        optim.Adam(p, 0.1).load_state_dict(optim.SGD(p, 0.1).state_dict())
