"""Saving and loading models, and moving weights to and from PyTorch and Keras layouts.

No torch or keras import is needed: the foreign formats are plain dicts / lists of arrays
(``{k: v.numpy() for k, v in module.state_dict().items()}``, ``layer.get_weights()``).

Layouts. PyTorch: ``weight_ih_l{k}`` (G*H, I), ``weight_hh_l{k}`` (G*H, H), ``bias_ih_l{k}``,
``bias_hh_l{k}`` (G*H,), gates LSTM i, f, g, o and GRU r, z, n: our layout, so weights copy
straight across; the vanilla and LSTM cells fold PyTorch's two biases into our one (their sum
is all the maths sees). Keras: ``kernel`` (I, G*H), ``recurrent_kernel`` (H, G*H), ``bias``;
gates LSTM i, f, c, o (ours) and GRU z, r, h (reordered here); a GRU with reset_after=True
has bias (2, 3H): input and recurrent bias, our b_h and b_hh.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .model import GATES, RNN

FORMAT = "minirnn-model"


def atomic_write(path: str | Path, write: Any) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it over
    ``path``: a crash mid-write leaves the old file intact, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def save_model(model: RNN, path: str | Path) -> Path:
    """Write the model (configuration and parameters) to one .npz file, atomically."""
    meta = json.dumps({"format": FORMAT, "version": 1, "config": model.config()})
    arrays = {f"param/{k}": p for k, p in model.params.items()}
    return atomic_write(path, lambda f: np.savez(f, meta=np.array(meta), **arrays))  # type: ignore[arg-type]


def load_model(path: str | Path) -> RNN:
    """Read a model written by :func:`save_model`; a foreign or damaged file is refused."""
    meta, arrays = read_npz(path, FORMAT)
    return RNN.from_config(meta["config"], {k[6:]: a for k, a in arrays.items() if k.startswith("param/")})


def read_npz(path: str | Path, fmt: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(meta, arrays) of a minirnn .npz, with a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile / numpy raise many kinds for a damaged file
        raise ValueError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except (KeyError, json.JSONDecodeError):
        raise ValueError(f"{path}: not a minirnn file (no metadata)") from None
    if meta.get("format") != fmt:
        raise ValueError(f"{path}: holds {meta.get('format')!r}, expected a {fmt!r} file")
    return meta, arrays


# ---------------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------------


def to_pytorch(model: RNN) -> dict[str, np.ndarray]:
    """A state_dict (of NumPy arrays) for torch.nn.RNN/LSTM/GRU with the same sizes; PyTorch's
    second bias is zero for the vanilla and LSTM cells. The output layer, if any, is returned
    under ``head.weight`` / ``head.bias`` (an nn.Linear's names behind a ``head.`` prefix)."""
    p, sd = model.params, {}
    for k in range(model.num_layers):
        sd[f"weight_ih_l{k}"] = p[f"W_xh_l{k}"].copy()
        sd[f"weight_hh_l{k}"] = p[f"W_hh_l{k}"].copy()
        if model.bias:
            sd[f"bias_ih_l{k}"] = p[f"b_h_l{k}"].copy()
            sd[f"bias_hh_l{k}"] = (
                p[f"b_hh_l{k}"].copy() if model.cell == "gru" else np.zeros_like(p[f"b_h_l{k}"])
            )
    if "W_hy" in p:
        sd["head.weight"] = p["W_hy"].copy()
        if "b_y" in p:
            sd["head.bias"] = p["b_y"].copy()
    return sd


def from_pytorch(state_dict: dict[str, Any], activation: str = "tanh") -> RNN:
    """A model from a torch RNN/LSTM/GRU state_dict (arrays or tensors with ``.numpy()``), and
    an optional ``head.weight``/``head.bias`` output layer. The cell is read off the shapes."""
    sd = {k: np.asarray(v.detach().numpy() if hasattr(v, "detach") else v) for k, v in state_dict.items()}
    if "weight_ih_l0" not in sd or "weight_hh_l0" not in sd:
        raise ValueError("from_pytorch: no weight_ih_l0 / weight_hh_l0 in the state_dict")
    GH, H = sd["weight_hh_l0"].shape
    cells = {g: c for c, g in GATES.items()}
    if GH % H or GH // H not in cells:
        raise ValueError(
            f"from_pytorch: weight_hh_l0 has shape {(GH, H)}; expected (H, H), (3H, H) or (4H, H)"
        )
    cell = cells[GH // H]
    L = 1 + max(int(k.rsplit("_l", 1)[1]) for k in sd if k.startswith("weight_ih_l"))
    if any(k.endswith("_reverse") for k in sd):
        raise ValueError("from_pytorch: bidirectional modules are not supported")
    bias = "bias_ih_l0" in sd
    head = sd.get("head.weight")
    dtype = sd["weight_ih_l0"].dtype
    model = RNN(
        sd["weight_ih_l0"].shape[1],
        H,
        None if head is None else head.shape[0],
        num_layers=L,
        cell=cell,
        activation=activation if cell == "rnn" else "tanh",
        bias=bias,
        dtype=dtype,
    )
    params: dict[str, np.ndarray] = {}
    for k in range(L):
        params[f"W_xh_l{k}"] = sd[f"weight_ih_l{k}"]
        params[f"W_hh_l{k}"] = sd[f"weight_hh_l{k}"]
        if bias:
            if cell == "gru":
                params[f"b_h_l{k}"] = sd[f"bias_ih_l{k}"]
                params[f"b_hh_l{k}"] = sd[f"bias_hh_l{k}"]
            else:
                params[f"b_h_l{k}"] = sd[f"bias_ih_l{k}"] + sd[f"bias_hh_l{k}"]
    if head is not None:
        params["W_hy"] = head
        if bias:
            if "head.bias" not in sd:
                raise ValueError("from_pytorch: the recurrent layers have biases but head.bias is missing")
            params["b_y"] = sd["head.bias"]
    return RNN.from_config(model.config(), params)


# ---------------------------------------------------------------------------------------------
# Keras
# ---------------------------------------------------------------------------------------------

_KERAS_GRU = [1, 0, 2]  # Keras z, r, h  <->  ours r, z, n (the permutation is its own inverse)


def _gate_blocks(a: np.ndarray, H: int, order: list[int], axis: int) -> np.ndarray:
    return np.concatenate([np.take(a, range(g * H, (g + 1) * H), axis=axis) for g in order], axis=axis)


def to_keras(model: RNN) -> list[np.ndarray]:
    """``get_weights()`` of the equivalent Keras stack: per recurrent layer [kernel,
    recurrent_kernel, bias] (SimpleRNN / LSTM / GRU with reset_after=True), then [kernel,
    bias] of a Dense output layer if the model has one."""
    p, H, out = model.params, model.hidden_size, []
    order = _KERAS_GRU if model.cell == "gru" else list(range(GATES[model.cell]))
    for k in range(model.num_layers):
        out.append(_gate_blocks(p[f"W_xh_l{k}"], H, order, 0).T.copy())
        out.append(_gate_blocks(p[f"W_hh_l{k}"], H, order, 0).T.copy())
        if model.bias:
            b = _gate_blocks(p[f"b_h_l{k}"], H, order, 0)
            if model.cell == "gru":
                b = np.stack([b, _gate_blocks(p[f"b_hh_l{k}"], H, order, 0)])
            out.append(b)
    if "W_hy" in p:
        out.append(p["W_hy"].T.copy())
        if "b_y" in p:
            out.append(p["b_y"].copy())
    return out


def from_keras(
    weights: list[np.ndarray], cell: str, num_layers: int = 1, activation: str = "tanh", bias: bool = True
) -> RNN:
    """A model from a Keras stack's weights in :func:`to_keras`'s order (cell and depth given,
    as Keras' flat list does not say them). A trailing [kernel, bias] pair is the output layer."""
    if cell not in GATES:
        raise ValueError(f"from_keras: unknown cell {cell!r}; expected one of {', '.join(GATES)}")
    per = 3 if bias else 2
    need = per * num_layers
    ws = [np.asarray(w) for w in weights]
    if len(ws) not in (need, need + (2 if bias else 1)):
        raise ValueError(
            f"from_keras: got {len(ws)} arrays; expected {need} for {num_layers} {cell} layer(s) "
            f"(+{2 if bias else 1} for an output layer)"
        )
    G = GATES[cell]
    I, GH = ws[0].shape
    H = GH // G
    if GH != G * H or ws[1].shape != (H, GH):
        raise ValueError(
            f"from_keras: kernel {ws[0].shape} / recurrent_kernel {ws[1].shape} do not fit a {cell} cell"
        )
    order = _KERAS_GRU if cell == "gru" else list(range(G))
    params: dict[str, np.ndarray] = {}
    for k in range(num_layers):
        kern, rec = ws[per * k], ws[per * k + 1]
        params[f"W_xh_l{k}"] = _gate_blocks(kern.T, H, order, 0)
        params[f"W_hh_l{k}"] = _gate_blocks(rec.T, H, order, 0)
        if bias:
            b = ws[per * k + 2]
            if cell == "gru":
                if b.shape != (2, GH):
                    raise ValueError(
                        f"from_keras: GRU bias has shape {b.shape}; expected (2, {GH}) (reset_after=True)"
                    )
                params[f"b_h_l{k}"] = _gate_blocks(b[0], H, order, 0)
                params[f"b_hh_l{k}"] = _gate_blocks(b[1], H, order, 0)
            else:
                params[f"b_h_l{k}"] = _gate_blocks(b, H, order, 0)
    P = None
    if len(ws) > need:
        params["W_hy"] = ws[need].T.copy()
        P = params["W_hy"].shape[0]
        if bias:
            params["b_y"] = ws[need + 1]
    config = RNN(I, H, P, num_layers, cell, activation, bias, dtype=ws[0].dtype).config()
    return RNN.from_config(config, params)
