"""The engine against torch.nn.RNN autograd, in float64, with the same weights.

Skipped cleanly when torch is not installed (it is an optional extra: pip install '.[torch]').
"""

import pytest

import minirnn as mr
from minirnn.gradcheck import relative_error

torch = pytest.importorskip("torch", reason="torch is not installed (optional extra: pip install '.[torch]')")

TOL = 1e-10


def torch_rnn(model: mr.RNN):
    """A torch.nn.RNN holding the model's weights; PyTorch's second bias is zeroed."""
    net = torch.nn.RNN(
        model.input_size,
        model.hidden_size,
        num_layers=model.num_layers,
        nonlinearity=model.activation,
        bias=model.bias,
        dtype=torch.float64,
    )
    with torch.no_grad():
        for k in range(model.num_layers):
            getattr(net, f"weight_ih_l{k}").copy_(torch.from_numpy(model.params[f"W_xh_l{k}"]))
            getattr(net, f"weight_hh_l{k}").copy_(torch.from_numpy(model.params[f"W_hh_l{k}"]))
            if model.bias:
                getattr(net, f"bias_ih_l{k}").copy_(torch.from_numpy(model.params[f"b_h_l{k}"]))
                getattr(net, f"bias_hh_l{k}").zero_()
    return net


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_outputs_and_gradients_equal_torch(path, rng, activation, layers, bias):
    T, B, I, H = 9, 3, 4, 6
    model = mr.RNN(I, H, num_layers=layers, activation=activation, bias=bias, seed=layers)
    X = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((layers, B, H))
    G = rng.standard_normal((T, B, H))

    hs, cache = model.forward(X, h0)
    g = model.backward(G, cache)

    net = torch_rnn(model)
    Xt = torch.tensor(X, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    out, h_n = net(Xt, h0t)
    (out * torch.from_numpy(G)).sum().backward()

    assert relative_error(hs, out.detach().numpy()) < TOL
    assert relative_error(cache.h_n, h_n.detach().numpy()) < TOL
    assert relative_error(g["X"], Xt.grad.numpy()) < TOL
    assert relative_error(g["h0"], h0t.grad.numpy()) < TOL
    for k in range(layers):
        assert relative_error(g[f"W_xh_l{k}"], getattr(net, f"weight_ih_l{k}").grad.numpy()) < TOL
        assert relative_error(g[f"W_hh_l{k}"], getattr(net, f"weight_hh_l{k}").grad.numpy()) < TOL
        if bias:
            assert relative_error(g[f"b_h_l{k}"], getattr(net, f"bias_ih_l{k}").grad.numpy()) < TOL


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
