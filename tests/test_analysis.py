"""Study tools: Jacobians against finite differences, the Pascanu bound, stepping, Lyapunov."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minirnn as mr
from minirnn import analysis, cells, losses
from minirnn.gradcheck import relative_error
from minirnn.init import orthogonal


def numeric_step_jacobian(model, X, h0, t, eps=1e-6):
    """d s_t / d s_{t-1} by central differences: rerun step t from a perturbed state."""
    _, cache = model.forward(X, h0)
    c = cache.layers[0]
    p = model.params
    W_xh, W_hh, b = p["W_xh_l0"], p["W_hh_l0"], p.get("b_h_l0")
    lstm = model.cell == "lstm"
    h_prev = (c.h0 if t == 0 else c.hs[t - 1]).copy()
    c_prev = ((c.c0 if t == 0 else c.cs[t - 1]).copy()) if lstm else None
    s_prev = np.concatenate([h_prev, c_prev], axis=1) if lstm else h_prev
    B, S = s_prev.shape
    H = h_prev.shape[1]

    def step(s):
        if model.cell == "rnn":
            return cells.rnn_step_forward(X[t], s, W_xh, W_hh, b, model.activation)[0]
        if model.cell == "gru":
            return cells.gru_step_forward(X[t], s, W_xh, W_hh, b, p.get("b_hh_l0"))[0]
        h, cc, _ = cells.lstm_step_forward(X[t], s[:, :H], s[:, H:], W_xh, W_hh, b)
        return np.concatenate([h, cc], axis=1)

    J = np.empty((B, S, S))
    for j in range(S):
        d = np.zeros_like(s_prev)
        d[:, j] = eps
        J[:, :, j] = (step(s_prev + d) - step(s_prev - d)) / (2 * eps)
    return J


@pytest.mark.parametrize(
    ("cell", "activation"),
    [
        ("rnn", "tanh"),
        ("rnn", "sigmoid"),
        ("rnn", "linear"),
        ("rnn", "relu"),
        ("lstm", "tanh"),
        ("gru", "tanh"),
    ],
)
def test_step_jacobians_match_finite_differences(rng, cell, activation):
    model = mr.RNN(3, 5, cell=cell, activation=activation, seed=2)
    X = rng.standard_normal((6, 2, 3))
    h0 = rng.standard_normal((1, 2, 5))
    state0 = (h0, rng.standard_normal((1, 2, 5))) if cell == "lstm" else h0
    J = analysis.step_jacobians(model, X, state0)
    S = 10 if cell == "lstm" else 5
    assert J.shape == (6, 2, S, S)
    for t in range(6):
        assert relative_error(J[t], numeric_step_jacobian(model, X, state0, t)) < 1e-7, t


def test_products_are_chain_rule_of_the_sequence(rng):
    """d h_T / d h_{T-k} from the products equals the finite difference through k steps."""
    model = mr.RNN(2, 4, seed=1)
    X = rng.standard_normal((7, 1, 2))
    J = analysis.step_jacobians(model, X)
    P = analysis.jacobian_products(J, end=6, max_lag=4)
    _, cache = model.forward(X)
    hs = cache.layers[0].hs
    start = hs[2].copy()  # state before step 3: dh_6/dh_2 is a product of 4 Jacobians
    p = model.params

    def run_from(h):
        for t in range(3, 7):
            h = cells.rnn_step_forward(X[t], h, p["W_xh_l0"], p["W_hh_l0"], p["b_h_l0"], "tanh")[0]
        return h

    num = np.empty((4, 4))
    for j in range(4):
        d = np.zeros_like(start)
        d[0, j] = 1e-6
        num[:, j] = (run_from(start + d) - run_from(start - d))[0] / 2e-6
    assert relative_error(P[3, 0], num) < 1e-7


@given(
    activation=st.sampled_from(["tanh", "sigmoid", "relu", "linear"]),
    H=st.integers(1, 8),
    scale=st.floats(0.1, 3.0),
    T=st.integers(2, 30),
    seed=st.integers(0, 10_000),
)
def test_pascanu_bound_is_never_exceeded(activation, H, scale, T, seed):
    rng = np.random.default_rng(seed)
    model = mr.RNN(2, H, activation=activation, init="normal", seed=seed)
    model.params["W_hh_l0"] *= scale
    X = rng.standard_normal((T, 2, 2)) * 2
    J = analysis.step_jacobians(model, X)
    prod = analysis.norms_by_lag(J, T, ends=[T - 1])
    bound = analysis.norm_bound(model.params["W_hh_l0"], activation, prod["lag"])
    assert np.all(prod["max"] <= bound * (1 + 1e-12) + 1e-300)


def test_pascanu_conditions():
    W = 0.5 * np.eye(3)
    c = analysis.pascanu_conditions(W, "tanh")
    assert c["vanishing_guaranteed"] and not c["exploding_possible"] and c["bound_factor"] == 0.5
    c = analysis.pascanu_conditions(3.0 * np.eye(3), "sigmoid")  # 3 < 1/(1/4)
    assert c["vanishing_guaranteed"] and c["threshold"] == 4.0
    c = analysis.pascanu_conditions(5.0 * np.eye(3), "sigmoid")
    assert c["exploding_possible"] and c["spectral_radius"] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        analysis.activation_gamma("swish")


@pytest.mark.parametrize("rho", [0.5, 0.9, 1.0, 1.3])
def test_lyapunov_of_scaled_orthogonal_linear_rnn_is_log_rho(rng, rho):
    model = mr.RNN(2, 6, activation="linear", bias=False)
    model.params["W_hh_l0"] = rho * orthogonal(6, rng, np.dtype(np.float64))
    J = analysis.step_jacobians(model, rng.standard_normal((80, 2, 2)))
    lam = analysis.lyapunov_exponents(J, num=3)
    assert np.abs(lam - np.log(rho)).max() < 1e-6


def test_lyapunov_sign_follows_regime(rng):
    def largest(rho):
        m = mr.RNN(2, 32, activation="tanh", init="normal", radius=rho, bias=False, seed=3)
        return analysis.lyapunov_exponents(
            analysis.step_jacobians(m, 0.1 * rng.standard_normal((300, 1, 2))), skip=50
        )[0, 0]

    assert largest(0.5) < 0 < largest(3.0)  # tanh saturation keeps it contracting well past rho = 1


def test_gradient_norm_trace_matches_backward(rng):
    """The trace for a loss at one step equals the engine's BPTT dL/dh_{t-k}."""
    model = mr.RNN(2, 5, seed=0)
    X = rng.standard_normal((9, 2, 2))
    J = analysis.step_jacobians(model, X)
    G = np.zeros((9, 2, 5))
    G[8] = rng.standard_normal((2, 5))
    tr = analysis.gradient_norm_trace(J, G, 8)
    _, cache = model.forward(X)
    dh = mr.rnn_backward(G, cache.layers[0], return_dh=True)["dh"]
    for k in range(9):
        assert tr["heatmap"][8, k] == pytest.approx(np.linalg.norm(dh[8 - k], axis=1).mean(), rel=1e-12)
    with pytest.raises(ValueError, match=r"G has shape"):
        analysis.gradient_norm_trace(J, G[:, :, :3], 3)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("output", [True, False])
def test_bptt_steps_sum_to_the_gradient(rng, cell, output):
    model = mr.RNN(3, 4, 2 if output else None, cell=cell, seed=1)
    X, Y = rng.standard_normal((6, 2, 3)), rng.standard_normal((6, 2, 2 if output else 4))
    steps = list(mr.bptt_steps(model, X, Y))
    assert [s.t for s in steps] == [6, 5, 4, 3, 2, 1]
    out, cache = model.forward(X)
    _, dY = losses.mse(out, Y)
    g = model.backward(dY, cache)
    for k in model.params:
        total = sum(s.contributions[k] for s in steps if k in s.contributions)
        assert relative_error(total, g[k]) < 1e-12, k
        assert relative_error(steps[-1].running[k], g[k]) < 1e-12, k
    first = steps[0]
    assert not first.dh_recurrent.any()  # nothing comes back from beyond T
    np.testing.assert_allclose(first.dh, first.dh_direct)
    for s in steps:
        np.testing.assert_allclose(s.dh, s.dh_direct + s.dh_recurrent, rtol=1e-15)
    if cell == "rnn":
        np.testing.assert_allclose(steps[2].da, steps[2].dh * steps[2].fprime, rtol=1e-14)
        dh_engine = mr.rnn_backward(
            (dY.reshape(12, -1) @ model.params["W_hy"]).reshape(6, 2, 4) if output else dY,
            cache.layers[0],
            return_dh=True,
        )["dh"]
        for s in steps:
            np.testing.assert_allclose(s.dh, dh_engine[s.t - 1], rtol=1e-12)
    assert "t=   6" in repr(first) and "|dL/dh|" in repr(first)


def test_bptt_steps_refuses_stacks():
    with pytest.raises(ValueError, match="one recurrent layer; the model has 2"):
        next(mr.bptt_steps(mr.RNN(2, 3, num_layers=2), np.zeros((2, 1, 2)), np.zeros((2, 1, 3))))


def test_trace_report(rng):
    model = mr.RNN(2, 8, init="normal", radius=0.9, seed=0)
    r = analysis.trace(model, rng.standard_normal((40, 2, 2)), max_lag=20)
    assert r["products"]["lag"][-1] == 20
    assert np.all(r["products"]["max"] <= r["bound"] * (1 + 1e-12))
    assert r["trace"]["heatmap"].shape == (40, 21)
    assert r["lyapunov"] < 0
