"""The engine against torch.nn.RNN autograd, in float64, with the same weights.

Skipped cleanly when torch is not installed (it is an optional extra: pip install '.[torch]').
"""

import numpy as np
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


def test_functional_equals_torch_at_a_large_shape(rng):
    """A shape large enough for the NumPy loops (loops.py)."""
    T, B, I, H = 20, 32, 16, 128
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
def test_models_equal_torch_at_numpy_loop_sized_shapes(rng, cell):
    from minirnn import functional

    T, B, I, H = 12, 64, 8, 128
    assert functional.use_stepped(B, H, H)
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


def torch_head(model: mr.RNN):
    head = torch.nn.Linear(model.hidden_size, model.output_size, dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(model.params["W_hy"]))
        head.bias.copy_(torch.from_numpy(model.params["b_y"]))
    return head


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("k", [1, 4, 5])
def test_chunked_tbptt_equals_torch_detach(rng, cell, k):
    """PyTorch users' truncated BPTT: run a chunk, backward its loss, detach the state."""
    T, B, I, H, P = 17, 3, 2, 5, 2
    model = mr.RNN(I, H, P, num_layers=2, cell=cell, seed=2)
    X, Y = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, P))
    ours = mr.TBPTT(model, k)
    ours.feed(X, Y)
    g = ours.gradients()

    net, head = torch_net(model), torch_head(model)
    state = None
    for s in range(0, T, k):
        Xc, Yc = torch.from_numpy(X[s : s + k]), torch.from_numpy(Y[s : s + k])
        out, state = net(Xc, state)
        loss = ((head(out) - Yc) ** 2).mean() * (len(Xc) / T)
        loss.backward()
        state = tuple(x.detach() for x in state) if cell == "lstm" else state.detach()
    for layer in range(2):
        assert relative_error(g[f"W_hh_l{layer}"], getattr(net, f"weight_hh_l{layer}").grad.numpy()) < TOL
        assert relative_error(g[f"W_xh_l{layer}"], getattr(net, f"weight_ih_l{layer}").grad.numpy()) < TOL
        assert relative_error(g[f"b_h_l{layer}"], getattr(net, f"bias_ih_l{layer}").grad.numpy()) < TOL
    assert relative_error(g["W_hy"], head.weight.grad.numpy()) < TOL
    assert relative_error(g["b_y"], head.bias.grad.numpy()) < TOL


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.1, 1.0, 1e6])
def test_clip_grad_norm_equals_torch(rng, norm_type, max_norm):
    arrays = [rng.standard_normal(s) for s in [(4, 3), (4, 4), (4,)]]
    ours = {f"p{i}": a.copy() for i, a in enumerate(arrays)}
    tensors = [torch.nn.Parameter(torch.zeros(a.shape, dtype=torch.float64)) for a in arrays]
    for t, a in zip(tensors, arrays, strict=True):
        t.grad = torch.from_numpy(a.copy())
    total_t = torch.nn.utils.clip_grad_norm_(tensors, max_norm, norm_type=norm_type)
    total = mr.clip_grad_norm(ours, max_norm, norm_type=norm_type)
    assert total == pytest.approx(float(total_t), rel=1e-13)
    for i, t in enumerate(tensors):
        assert relative_error(ours[f"p{i}"], t.grad.numpy()) < 1e-13


@pytest.mark.parametrize("clip_value", [0.05, 0.5, 5.0])
def test_clip_grad_value_equals_torch(rng, clip_value):
    arrays = [rng.standard_normal(s) for s in [(5, 3), (7,)]]
    ours = [a.copy() for a in arrays]
    tensors = [torch.nn.Parameter(torch.zeros(a.shape, dtype=torch.float64)) for a in arrays]
    for t, a in zip(tensors, arrays, strict=True):
        t.grad = torch.from_numpy(a.copy())
    torch.nn.utils.clip_grad_value_(tensors, clip_value)
    mr.clip_grad_value(ours, clip_value)
    for a, t in zip(ours, tensors, strict=True):
        np.testing.assert_array_equal(a, t.grad.numpy())
