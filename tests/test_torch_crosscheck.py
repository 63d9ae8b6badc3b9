"""The engine against torch.nn.RNN autograd, in float64, with the same weights.

Skipped cleanly when torch is not installed (it is an optional extra: pip install '.[torch]').
"""

import pytest

import minirnn as mr
from minirnn.gradcheck import relative_error

torch = pytest.importorskip("torch", reason="torch is not installed (optional extra: pip install '.[torch]')")

TOL = 1e-10


def torch_net(model: mr.RNN):
    """torch.nn.RNN/LSTM/GRU holding the model's weights.

    The vanilla cell and the LSTM keep one bias: PyTorch's bias_hh is zeroed and bias_ih holds
    ours. The GRU keeps both, as PyTorch does.
    """
    kind = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[model.cell]
    extra = {"nonlinearity": model.activation} if model.cell == "rnn" else {}
    net = kind(
        model.input_size,
        model.hidden_size,
        num_layers=model.num_layers,
        bias=model.bias,
        dtype=torch.float64,
        **extra,
    )
    with torch.no_grad():
        for k in range(model.num_layers):
            getattr(net, f"weight_ih_l{k}").copy_(torch.from_numpy(model.params[f"W_xh_l{k}"]))
            getattr(net, f"weight_hh_l{k}").copy_(torch.from_numpy(model.params[f"W_hh_l{k}"]))
            if model.bias:
                getattr(net, f"bias_ih_l{k}").copy_(torch.from_numpy(model.params[f"b_h_l{k}"]))
                if model.cell == "gru":
                    getattr(net, f"bias_hh_l{k}").copy_(torch.from_numpy(model.params[f"b_hh_l{k}"]))
                else:
                    getattr(net, f"bias_hh_l{k}").zero_()
    return net


CASES = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]


@pytest.mark.parametrize(("cell", "activation"), CASES)
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_outputs_and_gradients_equal_torch(path, rng, cell, activation, layers, bias):
    T, B, I, H = 9, 3, 4, 6
    model = mr.RNN(I, H, num_layers=layers, cell=cell, activation=activation, bias=bias, seed=layers)
    X = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((layers, B, H))
    c0 = rng.standard_normal((layers, B, H))
    G = rng.standard_normal((T, B, H))

    hs, cache = model.forward(X, (h0, c0) if cell == "lstm" else h0)
    g = model.backward(G, cache)

    net = torch_net(model)
    Xt = torch.tensor(X, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    out, state = net(Xt, (h0t, c0t) if cell == "lstm" else h0t)
    (out * torch.from_numpy(G)).sum().backward()

    assert relative_error(hs, out.detach().numpy()) < TOL
    h_n = state[0] if cell == "lstm" else state
    assert relative_error(cache.h_n, h_n.detach().numpy()) < TOL
    assert relative_error(g["X"], Xt.grad.numpy()) < TOL
    assert relative_error(g["h0"], h0t.grad.numpy()) < TOL
    if cell == "lstm":
        assert relative_error(cache.c_n, state[1].detach().numpy()) < TOL
        assert relative_error(g["c0"], c0t.grad.numpy()) < TOL
    for k in range(layers):
        assert relative_error(g[f"W_xh_l{k}"], getattr(net, f"weight_ih_l{k}").grad.numpy()) < TOL
        assert relative_error(g[f"W_hh_l{k}"], getattr(net, f"weight_hh_l{k}").grad.numpy()) < TOL
        if bias:
            assert relative_error(g[f"b_h_l{k}"], getattr(net, f"bias_ih_l{k}").grad.numpy()) < TOL
            if cell == "gru":
                assert relative_error(g[f"b_hh_l{k}"], getattr(net, f"bias_hh_l{k}").grad.numpy()) < TOL


def test_functional_equals_torch_at_a_blas_sized_shape(rng):
    """A shape large enough that the kernel takes its BLAS branch."""
    T, B, I, H = 20, 32, 16, 64
    X = rng.standard_normal((T, B, I))
    W_xh, W_hh, b = rng.standard_normal((H, I)) / 4, rng.standard_normal((H, H)) / 8, rng.standard_normal(H)
    G = rng.standard_normal((T, B, H))
    hs, cache = mr.rnn_forward(X, W_xh, W_hh, b)
    g = mr.rnn_backward(G, cache)
    net = torch.nn.RNN(I, H, dtype=torch.float64)
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(W_xh))
        net.weight_hh_l0.copy_(torch.from_numpy(W_hh))
        net.bias_ih_l0.copy_(torch.from_numpy(b))
        net.bias_hh_l0.zero_()
    Xt = torch.tensor(X, requires_grad=True)
    out, _ = net(Xt)
    (out * torch.from_numpy(G)).sum().backward()
    assert relative_error(hs, out.detach().numpy()) < TOL
    assert relative_error(g["W_hh"], net.weight_hh_l0.grad.numpy()) < TOL
    assert relative_error(g["W_xh"], net.weight_ih_l0.grad.numpy()) < TOL
    assert relative_error(g["X"], Xt.grad.numpy()) < TOL


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_models_equal_torch_at_blas_sized_shapes(rng, cell):
    from minirnn import functional

    T, B, I, H = 12, 32, 8, 64
    assert functional.use_blas(B, H)
    model = mr.RNN(I, H, cell=cell, seed=0)
    X = rng.standard_normal((T, B, I))
    G = rng.standard_normal((T, B, H))
    hs, cache = model.forward(X)
    g = model.backward(G, cache)
    net = torch_net(model)
    Xt = torch.tensor(X, requires_grad=True)
    out, _ = net(Xt)
    (out * torch.from_numpy(G)).sum().backward()
    assert relative_error(hs, out.detach().numpy()) < TOL
    assert relative_error(g["W_hh_l0"], net.weight_hh_l0.grad.numpy()) < TOL
    assert relative_error(g["W_xh_l0"], net.weight_ih_l0.grad.numpy()) < TOL
    assert relative_error(g["X"], Xt.grad.numpy()) < TOL
