"""The RNN model: parameters, stacked layers, an optional linear output layer.

The model is stateless between calls: ``forward`` returns the outputs and a cache, and
``backward`` takes that cache, so truncated-BPTT drivers and users can carry state explicitly.

Parameter names: ``W_xh_l{k}``, ``W_hh_l{k}``, ``b_h_l{k}`` for layer k (0 is nearest the
input), then ``W_hy``, ``b_y`` for the output layer; shapes are (out, in) as in PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _validate as v
from .functional import (
    GATES,
    GRUCache,
    LSTMCache,
    RNNCache,
    gru_backward,
    gru_forward,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)
from .init import INITS, gated_weights, pytorch_uniform, recurrent_weights, xavier_uniform

CELLS = ("rnn", "lstm", "gru")
BACKWARD = {"rnn": rnn_backward, "lstm": lstm_backward, "gru": gru_backward}
CONVENTIONS = ("keras", "pytorch")


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    """np.stack of the layers' (B, H) arrays into a new (L, B, H) array; one layer's in a
    fifth of np.stack's time (0.6 us against 3: it runs on every forward and backward)."""
    return arrays[0][None].copy() if len(arrays) == 1 else np.stack(arrays)


def count_params(
    input_size: int,
    hidden_size: int,
    output_size: int = 0,
    cell: str = "rnn",
    bias: bool = True,
    num_layers: int = 1,
    convention: str = "keras",
) -> int:
    """Number of trainable parameters, per the seeds' formula and the frameworks' conventions.

    One recurrent layer with G gates (rnn 1, lstm 4, gru 3), input I and H units has
    G*H*(I + H) weights plus biases:

    ======== ================================ ==========================
    cell     keras                            pytorch (two biases)
    ======== ================================ ==========================
    rnn      H(I + H + 1)                     H(I + H + 2)
    lstm     4H(I + H + 1)                    4H(I + H + 2)
    gru      3H(I + H + 2)  (reset_after)     3H(I + H + 2)
    ======== ================================ ==========================

    Layers after the first take H inputs. An output layer adds P(H + 1) (P*H without bias).

    Examples
    --------
    >>> count_params(1, 1), count_params(1, 2), count_params(3, 1)
    (3, 8, 5)
    >>> count_params(10, 20, 5, bias=False)
    700
    >>> count_params(10, 20, convention="pytorch")
    640
    """
    where = "count_params"
    I = v.positive_int(where, "input_size", input_size)
    H = v.positive_int(where, "hidden_size", hidden_size)
    P = v.nonnegative_int(where, "output_size", output_size or 0)
    L = v.positive_int(where, "num_layers", num_layers)
    v.choice(where, "cell", cell, tuple(GATES))
    v.choice(where, "convention", convention, CONVENTIONS)
    G = GATES[cell]
    if not bias:
        biases = 0
    elif convention == "pytorch" or cell == "gru":
        biases = 2
    else:
        biases = 1
    total = 0
    for layer in range(L):
        fan_in = I if layer == 0 else H
        total += G * H * (fan_in + H + biases)
    if P:
        total += P * (H + (1 if bias else 0))
    return total


@dataclass
class ModelCache:
    """Per-layer caches from :meth:`RNN.forward`, and the top layer's states for the output layer."""

    layers: list[RNNCache | LSTMCache | GRUCache]
    top: np.ndarray  # (T, B, H) input of the output layer
    h_n: np.ndarray = field(repr=False)  # (L, B, H) final hidden state of every layer
    c_n: np.ndarray | None = field(default=None, repr=False)  # (L, B, H) final LSTM cell states

    @property
    def state(self) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The final state in the form ``forward`` takes as h0: h_n, or (h_n, c_n) for the LSTM."""
        return self.h_n if self.c_n is None else (self.h_n, self.c_n)


class RNN:
    """A stack of recurrent layers with an optional linear read-out.

    Parameters
    ----------
    input_size, hidden_size : int
        I and H.
    output_size : int, optional
        P: add ``y_t = h_t W_hy^T + b_y`` (linear; apply a loss from minirnn.losses to it).
    num_layers : int
        Stacked layers; layer k > 0 reads layer k-1's hidden states.
    cell : {"rnn", "lstm", "gru"}
        The recurrent cell; gates stacked as in PyTorch (LSTM i, f, g, o; GRU r, z, n).
    activation : {"tanh", "relu", "sigmoid", "linear"}
        The vanilla cell's nonlinearity (the gated cells have theirs built in).
    bias : bool
        Biases in every layer and in the output layer: one per vanilla or LSTM layer (Keras
        convention), two per GRU layer (``b_h`` and ``b_hh``, as PyTorch and Keras keep them).
    init : {"pytorch", "xavier", "orthogonal", "identity", "normal"}
        See :func:`minirnn.init.recurrent_weights` (identity is the vanilla cell's IRNN only).
    radius : float, optional
        Rescale every W_hh (every gate block of it, for gated cells) to this spectral radius.
    forget_bias : float, optional
        LSTM only: initial forget-gate bias (Jozefowicz et al. 2015 recommend 1.0).
    dtype : "float64" or "float32"
    seed : int or numpy.random.Generator

    Examples
    --------
    >>> import minirnn as mr
    >>> print(mr.RNN(10, 20, 5, bias=False).summary())  # doctest: +NORMALIZE_WHITESPACE
    layer     weight  shape     count
    rnn 0     W_xh    (20, 10)    200
    rnn 0     W_hh    (20, 20)    400
    output    W_hy    (5, 20)     100
    total                         700
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int | None = None,
        num_layers: int = 1,
        cell: str = "rnn",
        activation: str = "tanh",
        bias: bool = True,
        init: str = "pytorch",
        dtype: str | np.dtype | type = "float64",
        seed: int | np.random.Generator = 0,
        radius: float | None = None,
        forget_bias: float | None = None,
    ) -> None:
        where = "RNN"
        self.input_size = v.positive_int(where, "input_size", input_size)
        self.hidden_size = v.positive_int(where, "hidden_size", hidden_size)
        self.output_size = None if output_size is None else v.positive_int(where, "output_size", output_size)
        self.num_layers = v.positive_int(where, "num_layers", num_layers)
        self.cell = v.choice(where, "cell", cell, CELLS)
        self.activation = v.choice(where, "activation", activation, v.ACTIVATIONS)
        if cell != "rnn" and activation != "tanh":
            raise ValueError(
                f"{where}: activation {activation!r} applies to the vanilla cell only; "
                f"the {cell} cell has its gates' nonlinearities built in (leave activation='tanh')"
            )
        if init == "identity" and cell != "rnn":
            raise ValueError(f"{where}: init 'identity' (IRNN) is for the vanilla cell, not {cell!r}")
        if forget_bias is not None and cell != "lstm":
            raise ValueError(f"{where}: forget_bias applies to the LSTM only, not {cell!r}")
        if forget_bias is not None and not bias:
            raise ValueError(f"{where}: forget_bias needs bias=True")
        if not isinstance(bias, bool):
            raise TypeError(f"{where}: bias must be True or False, got {bias!r}")
        self.bias = bias
        self.init = v.choice(where, "init", init, INITS)
        self.dtype = v.dtype_of(where, dtype)
        if radius is not None and (not np.isfinite(radius) or radius <= 0):
            raise ValueError(f"{where}: radius must be a positive finite number, got {radius!r}")
        self.radius = radius
        self.forget_bias = forget_bias
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

        H = self.hidden_size
        self.params: dict[str, np.ndarray] = {}
        for k in range(self.num_layers):
            fan_in = self.input_size if k == 0 else H
            if cell == "rnn":
                W_xh, W_hh, b_h = recurrent_weights(self.init, H, fan_in, rng, self.dtype, radius)
                weights = {"W_xh": W_xh, "W_hh": W_hh, "b_h": b_h}
            else:
                weights = gated_weights(cell, self.init, H, fan_in, rng, self.dtype, radius)
            if forget_bias is not None:
                weights["b_h"][H : 2 * H] = forget_bias
            for name, w in weights.items():
                if name.startswith("W") or bias:
                    self.params[f"{name}_l{k}"] = w
        if self.output_size is not None:
            P = self.output_size
            if self.init == "pytorch":  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                self.params["W_hy"] = pytorch_uniform((P, H), H, rng, self.dtype)
                b_y = pytorch_uniform((P,), H, rng, self.dtype)
            else:
                self.params["W_hy"] = xavier_uniform((P, H), rng, self.dtype)
                b_y = np.zeros(P, dtype=self.dtype)
            if bias:
                self.params["b_y"] = b_y

    # ------------------------------------------------------------------ configuration
    def config(self) -> dict[str, Any]:
        """The constructor arguments (without seed): with ``params`` they rebuild the model."""
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "output_size": self.output_size,
            "num_layers": self.num_layers,
            "cell": self.cell,
            "activation": self.activation,
            "bias": self.bias,
            "init": self.init,
            "dtype": self.dtype.name,
            "radius": self.radius,
            "forget_bias": self.forget_bias,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], params: dict[str, np.ndarray]) -> RNN:
        """Rebuild a model from :meth:`config` and a parameter dict (checked name by name)."""
        model = cls(**config)
        expected = {k: p.shape for k, p in model.params.items()}
        got = {k: np.shape(p) for k, p in params.items()}
        if expected != got:
            missing = sorted(set(expected) - set(got))
            extra = sorted(set(got) - set(expected))
            wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
            raise ValueError(
                f"RNN.from_config: parameters do not fit the configuration (missing {missing}, "
                f"unexpected {extra}, wrong shape {[(k, got[k], expected[k]) for k in wrong]})"
            )
        for k, p in params.items():
            arr = np.asarray(p)
            if arr.dtype != model.dtype:
                raise TypeError(f"RNN.from_config: parameter {k} is {arr.dtype}; the model is {model.dtype}")
            model.params[k] = arr.copy()
        return model

    # ------------------------------------------------------------------ introspection
    def __repr__(self) -> str:
        return (
            f"RNN(input_size={self.input_size}, hidden_size={self.hidden_size}, "
            f"output_size={self.output_size}, num_layers={self.num_layers}, cell={self.cell!r}, "
            f"activation={self.activation!r}, bias={self.bias}, dtype={self.dtype.name})"
        )

    @property
    def num_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def summary(self) -> str:
        """A table of every weight: layer, name, shape, count; then the total."""
        rows = []
        for name, p in self.params.items():
            base, _, layer = name.rpartition("_l")
            if base and layer.isdigit():
                rows.append((f"{self.cell} {layer}", base, str(p.shape), p.size))
            else:
                rows.append(("output", name, str(p.shape), p.size))
        rows.append(("total", "", "", self.num_params))
        head = ("layer", "weight", "shape", "count")
        w = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
        lines = []
        for r in [head, *rows]:
            lines.append(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]!s:>{w[3]}}".rstrip())
        pt = self.num_params
        if self.bias:
            pt = count_params(
                self.input_size,
                self.hidden_size,
                self.output_size or 0,
                self.cell,
                self.bias,
                self.num_layers,
                "pytorch",
            )
        if pt != self.num_params:
            lines.append(f"(PyTorch counts {pt}: it keeps two biases per recurrent layer)")
        return "\n".join(lines)

    def astype(self, dtype: str | np.dtype | type) -> RNN:
        """A copy of the model with every parameter in ``dtype``."""
        new = self.copy()
        new.dtype = v.dtype_of("RNN.astype", dtype)
        new.params = {k: p.astype(new.dtype) for k, p in self.params.items()}
        return new

    def copy(self) -> RNN:
        new = object.__new__(RNN)
        new.__dict__.update(self.__dict__)
        new.params = {k: p.copy() for k, p in self.params.items()}
        return new

    # ------------------------------------------------------------------ forward / backward
    def _h0_layers(self, h0: Any, B: int) -> list[Any]:
        L, H = self.num_layers, self.hidden_size
        if h0 is None:
            return [None] * L

        def per_layer(name: str, arr: Any) -> list[np.ndarray]:
            arr = np.asarray(arr)
            if arr.ndim == 2 and L == 1:
                arr = arr[None]
            if arr.ndim != 3 or arr.shape != (L, B, H):
                raise ValueError(
                    f"RNN.forward: {name} has shape {arr.shape}; expected (num_layers, B, H) = {(L, B, H)}"
                    + (" or (B, H)" if L == 1 else "")
                )
            return list(arr)

        if self.cell == "lstm":
            if not isinstance(h0, tuple | list) or len(h0) != 2 or h0[0] is None or h0[1] is None:
                raise TypeError(
                    "RNN.forward: the LSTM's h0 must be a pair (h0, c0) of (num_layers, B, H) arrays, "
                    f"got {type(h0).__name__}"
                )
            return list(zip(per_layer("h0", h0[0]), per_layer("c0", h0[1]), strict=True))
        return per_layer("h0", h0)

    def _layer_forward(
        self, k: int, inp: np.ndarray, state0: Any, check_finite: bool
    ) -> tuple[np.ndarray, RNNCache | LSTMCache | GRUCache]:
        p = self.params
        W_xh, W_hh, b_h = p[f"W_xh_l{k}"], p[f"W_hh_l{k}"], p.get(f"b_h_l{k}")
        if self.cell == "lstm":
            return lstm_forward(inp, W_xh, W_hh, b_h, state0, check_finite=check_finite)
        if self.cell == "gru":
            return gru_forward(inp, W_xh, W_hh, b_h, p.get(f"b_hh_l{k}"), state0, check_finite=check_finite)
        return rnn_forward(inp, W_xh, W_hh, b_h, state0, self.activation, check_finite=check_finite)

    def forward(
        self, X: np.ndarray, h0: Any = None, *, check_finite: bool = True
    ) -> tuple[np.ndarray, ModelCache]:
        """Run the stack over ``X (T, B, I)``.

        Returns ``(Y, cache)``: Y is (T, B, P) when the model has an output layer, otherwise
        the top layer's hidden states (T, B, H). ``cache.state`` holds the final states in the
        form h0 takes: h0 is (L, B, H) (or (B, H) for one layer), a pair (h0, c0) of those for
        the LSTM; zeros when omitted. ``check_finite=False`` skips the NaN/Inf scan of X (for
        drivers that checked it already).
        """
        # finiteness: the first layer's forward scans X (and its weights), once
        X = v.float_array("RNN.forward", "X", X, 3, "(T, B, I)", check_finite=False)
        if X.dtype != self.dtype:
            raise TypeError(
                f"RNN.forward: X has dtype {X.dtype} but the model is {self.dtype}; "
                f"convert X or use model.astype({X.dtype.name!r})"
            )
        if X.shape[2] != self.input_size:
            raise ValueError(
                f"RNN.forward: X has {X.shape[2]} features (shape {X.shape}); "
                f"expected (T, B, {self.input_size})"
            )
        p = self.params
        caches = []
        inp = X
        for k, h0_k in enumerate(self._h0_layers(h0, X.shape[1])):
            inp, c = self._layer_forward(k, inp, h0_k, check_finite=check_finite and k == 0)
            caches.append(c)
        h_n = _stack([c.h_last for c in caches])
        c_n = _stack([c.cs[-1] for c in caches]) if self.cell == "lstm" else None  # type: ignore[union-attr]
        if self.output_size is None:
            return inp, ModelCache(caches, inp, h_n, c_n)
        T, B, H = inp.shape
        Y = (inp.reshape(T * B, H) @ p["W_hy"].T).reshape(T, B, -1)
        if "b_y" in p:
            Y += p["b_y"]
        return Y, ModelCache(caches, inp, h_n, c_n)

    def backward(
        self,
        dY: np.ndarray,
        cache: ModelCache,
        truncate: int | None = None,
        dstate: Any = None,
        *,
        check_finite: bool = True,
    ) -> dict[str, np.ndarray]:
        """Gradients of the loss given ``dY = dL/dY`` (the shape of forward's Y).

        ``dstate``, optional, is the gradient of the loss w.r.t. the final state ``cache.state``
        (same form: (L, B, H), or a pair for the LSTM): what flows back into this sequence from
        a later one, e.g. the next segment of a truncated-BPTT window. ``check_finite=False``
        skips the NaN/Inf scan of dY.

        Returns a dict with a gradient for every name in ``params``, plus ``X`` (T, B, I),
        ``h0`` (L, B, H) and, for the LSTM, ``c0`` (L, B, H). ``truncate`` is passed to
        :func:`minirnn.rnn_backward` (or the gated cells' backward).
        """
        where = "RNN.backward"
        if not isinstance(cache, ModelCache):
            raise TypeError(f"{where}: cache must come from RNN.forward, got {type(cache).__name__}")
        top = cache.top
        T, B, H = top.shape
        out_shape = (T, B, self.output_size if self.output_size is not None else H)
        dY = v.float_array(where, "dY", dY, 3, "(T, B, P)", check_finite=check_finite)
        v.shape_is(where, "dY", dY, out_shape, "the shape of forward's Y")
        v.same_dtype(where, {"dY": dY, "model": top})
        p = self.params
        grads: dict[str, np.ndarray] = {}
        if self.output_size is not None:
            DY = dY.reshape(T * B, -1)
            grads["W_hy"] = DY.T @ top.reshape(T * B, H)
            if "b_y" in p:
                grads["b_y"] = DY.sum(axis=0)
            dhs = (DY @ p["W_hy"]).reshape(T, B, H)
        else:
            dhs = dY
        dh_last, dc_last = self._split_dstate(dstate, cache)
        dh0, dc0 = [], []
        backward = BACKWARD[self.cell]
        for k in range(self.num_layers - 1, -1, -1):
            if dh_last is not None:
                dhs = dhs.copy() if k == self.num_layers - 1 and dhs is dY else dhs
                dhs[-1] += dh_last[k]
            extra = {"dc_last": dc_last[k]} if dc_last is not None else {}
            g = backward(dhs, cache.layers[k], truncate, check_finite=False, **extra)  # type: ignore[operator]
            for name in ("W_xh", "W_hh", "b_h", "b_hh"):
                if name in g:
                    grads[f"{name}_l{k}"] = g[name]
            dh0.append(g["h0"])
            if "c0" in g:
                dc0.append(g["c0"])
            dhs = g["X"]
        grads["X"] = dhs
        grads["h0"] = _stack(dh0[::-1])
        inputs = ["X", "h0"]
        if dc0:
            grads["c0"] = _stack(dc0[::-1])
            inputs.append("c0")
        return {k: grads[k] for k in [*p, *inputs]}

    def _split_dstate(self, dstate: Any, cache: ModelCache) -> tuple[np.ndarray | None, np.ndarray | None]:
        if dstate is None:
            return None, None
        where = "RNN.backward"
        shape = cache.h_n.shape
        if self.cell == "lstm":
            if not isinstance(dstate, tuple | list) or len(dstate) != 2:
                raise TypeError(f"{where}: the LSTM's dstate must be a pair (dh_n, dc_n) of {shape} arrays")
            parts = list(dstate)
        else:
            parts = [dstate]
        out = []
        for name, arr in zip(("dh_n", "dc_n"), parts, strict=False):
            arr = v.float_array(where, name, arr, 3, "(L, B, H)")
            v.shape_is(where, name, arr, shape, "(L, B, H), the shape of cache.h_n")
            v.same_dtype(where, {name: arr, "model": cache.top})
            out.append(arr)
        return out[0], (out[1] if len(out) > 1 else None)
