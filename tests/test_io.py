"""Model files, and weights to and from PyTorch and Keras layouts."""

import numpy as np
import pytest

import minirnn as mr
from minirnn import io


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_save_load_round_trip(tmp_path, rng, cell, dtype):
    m = mr.RNN(3, 5, 2, num_layers=2, cell=cell, dtype=dtype, seed=1)
    path = io.save_model(m, tmp_path / "m.npz")
    back = io.load_model(path)
    assert back.config() == m.config()
    X = rng.standard_normal((4, 2, 3)).astype(dtype)
    np.testing.assert_array_equal(back.forward(X)[0], m.forward(X)[0])


def test_load_refuses_foreign_files(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not a minirnn file"):
        io.load_model(tmp_path / "plain.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"not a readable \.npz file"):
        io.load_model(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="no such file"):
        io.load_model(tmp_path / "none.npz")


def test_from_config_checks_parameters():
    m = mr.RNN(3, 5)
    params = dict(m.params)
    params.pop("b_h_l0")
    with pytest.raises(ValueError, match=r"missing \['b_h_l0'\]"):
        mr.RNN.from_config(m.config(), params)
    with pytest.raises(TypeError, match="is float32; the model is float64"):
        mr.RNN.from_config(m.config(), {k: p.astype(np.float32) for k, p in m.params.items()})


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_pytorch_round_trip_with_real_modules(rng, cell):
    torch = pytest.importorskip("torch", reason="torch is not installed (optional extra)")
    kind = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    torch.manual_seed(0)
    net = kind(3, 6, num_layers=2, dtype=torch.float64)
    sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    model = io.from_pytorch(sd)
    assert model.cell == cell and model.num_layers == 2 and model.hidden_size == 6
    X = rng.standard_normal((7, 2, 3))
    out_t, _ = net(torch.from_numpy(X))
    np.testing.assert_allclose(model.forward(X)[0], out_t.detach().numpy(), rtol=1e-12, atol=1e-14)
    # and back: our weights into a fresh torch module give the same outputs
    net2 = kind(3, 6, num_layers=2, dtype=torch.float64)
    net2.load_state_dict({k: torch.from_numpy(v) for k, v in io.to_pytorch(model).items()})
    out2, _ = net2(torch.from_numpy(X))
    np.testing.assert_allclose(out2.detach().numpy(), out_t.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_pytorch_head_and_errors(rng):
    m = mr.RNN(2, 4, 3, cell="gru")
    sd = io.to_pytorch(m)
    assert sd["head.weight"].shape == (3, 4) and "bias_hh_l0" in sd
    back = io.from_pytorch(sd)
    for k in m.params:
        np.testing.assert_array_equal(back.params[k], m.params[k])
    with pytest.raises(ValueError, match="no weight_ih_l0"):
        io.from_pytorch({})
    with pytest.raises(ValueError, match=r"expected \(H, H\), \(3H, H\) or \(4H, H\)"):
        io.from_pytorch({"weight_ih_l0": np.zeros((10, 2)), "weight_hh_l0": np.zeros((10, 5))})


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def keras_forward(cell, weights, X):
    """Keras' equations in Keras' layout (kernel (I, G*H), x @ kernel), written from its docs."""
    kernel, rec, bias = weights[:3]
    T, B, _ = X.shape
    H = rec.shape[0]
    h = np.zeros((B, H))
    c = np.zeros((B, H))
    out = []
    for t in range(T):
        x = X[t]
        if cell == "rnn":
            h = np.tanh(x @ kernel + h @ rec + bias)
        elif cell == "lstm":
            z = x @ kernel + h @ rec + bias
            i, f, g, o = (z[:, k * H : (k + 1) * H] for k in range(4))  # Keras: i, f, c, o
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
        else:  # GRU, reset_after=True; gates z, r, h
            xz = x @ kernel + bias[0]
            hz = h @ rec + bias[1]
            z = sigmoid(xz[:, :H] + hz[:, :H])
            r = sigmoid(xz[:, H : 2 * H] + hz[:, H : 2 * H])
            hh = np.tanh(xz[:, 2 * H :] + r * hz[:, 2 * H :])
            h = z * h + (1 - z) * hh
        out.append(h)
    return np.stack(out)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_keras_layout_matches_keras_equations(rng, cell):
    m = mr.RNN(3, 4, cell=cell, seed=2)
    weights = io.to_keras(m)
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    assert weights[0].shape == (3, G * 4) and weights[1].shape == (4, G * 4)
    X = rng.standard_normal((5, 2, 3))
    np.testing.assert_allclose(keras_forward(cell, weights, X), m.forward(X)[0], rtol=1e-12, atol=1e-14)
    back = io.from_keras(weights, cell)
    for k in m.params:
        np.testing.assert_array_equal(back.params[k], m.params[k])


def test_keras_with_dense_head_and_errors():
    m = mr.RNN(3, 4, 2, num_layers=2, cell="lstm")
    w = io.to_keras(m)
    assert len(w) == 8 and w[-2].shape == (4, 2)
    back = io.from_keras(w, "lstm", num_layers=2)
    assert back.output_size == 2
    with pytest.raises(ValueError, match="got 7 arrays; expected 6 for 2 lstm layer"):
        io.from_keras(w[:-1], "lstm", num_layers=2)
    with pytest.raises(ValueError, match="unknown cell 'tcn'"):
        io.from_keras(w, "tcn")
    g = io.to_keras(mr.RNN(3, 4, cell="gru"))
    g[2] = g[2][0]
    with pytest.raises(ValueError, match=r"GRU bias has shape \(12,\); expected \(2, 12\)"):
        io.from_keras(g, "gru")
