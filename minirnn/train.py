"""The training loop: batches from a task, full or truncated BPTT, clipping, an optimizer,
a progress bar, a history, and checkpoints that resume bit-for-bit.

One training *step* is one batch of sequences: one update with full BPTT, one update per
block of k1 steps with truncated BPTT (k1, k2).
"""

from __future__ import annotations

import io as _io
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _validate as v
from . import clip as clipping
from . import losses, optim
from ._json import plain
from .bptt import TBPTT, forward_backward
from .io import atomic_write, read_npz
from .model import RNN
from .tasks import Task

CHECKPOINT = "minirnn-checkpoint"


class NonFiniteError(FloatingPointError):
    """Training met a NaN or Inf; the message names the step and the quantity."""


@dataclass
class Curriculum:
    """Sequence length growing linearly from ``start`` to ``stop`` over the first ``steps``
    training steps (then staying at ``stop``): short dependencies first, as the source
    document recommends."""

    start: int
    stop: int
    steps: int

    def __post_init__(self) -> None:
        for name in ("start", "stop", "steps"):
            v.positive_int("Curriculum", name, getattr(self, name))

    def seq_len(self, step: int) -> int:
        frac = min(1.0, step / self.steps)
        return round(self.start + (self.stop - self.start) * frac)


def _parse_bptt(bptt: Any) -> tuple[int, int] | None:
    if bptt in ("full", None):
        return None
    if isinstance(bptt, int) and not isinstance(bptt, bool):
        k = v.positive_int("train", "bptt", bptt)
        return k, k
    if isinstance(bptt, tuple | list) and len(bptt) == 2:
        k1, k2 = (v.positive_int("train", "bptt k1/k2", k) for k in bptt)
        if k2 < k1:
            raise ValueError(f"train: truncated BPTT needs k2 >= k1, got ({k1}, {k2})")
        return k1, k2
    raise ValueError(f"train: bptt must be 'full', k or (k1, k2), got {bptt!r}")


def evaluate(
    model: RNN, task: Task, seq_len: int, batches: int = 4, batch_size: int = 64, seed: int = 12345
) -> float:
    """Mean loss on fresh batches from a generator of their own (so training is unaffected)."""
    rng = np.random.default_rng(seed)
    loss_fn = losses.get(task.loss)
    values = []
    for _ in range(batches):
        b = task.sample(rng, batch_size, seq_len)
        out = model.forward(b.X.astype(model.dtype))[0]  # its cache dropped at once: no backward
        Y = b.Y.astype(model.dtype) if b.Y.dtype.kind == "f" else b.Y
        values.append(loss_fn(out, Y, b.mask)[0])
    return float(np.mean(values))


def train(
    model: RNN,
    task: Task,
    optimizer: optim.Optimizer,
    steps: int,
    *,
    batch_size: int = 32,
    seq_len: int = 50,
    bptt: Any = "full",
    clip: float | None = None,
    clip_value: float | None = None,
    curriculum: Curriculum | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Train ``model`` on ``task`` for ``steps`` steps (batches) and return the history.

    Parameters
    ----------
    bptt : "full", k, or (k1, k2)
        Full BPTT, or truncated BPTT(k1, k2) (:class:`minirnn.TBPTT`), each batch from zero state.
    clip, clip_value : float, optional
        Clip every update's gradient to this global norm / into [-clip_value, clip_value].
    curriculum : Curriculum, optional
        Sequence length by step (overrides ``seq_len`` while it ramps).
    out : folder, optional
        Where history.json and checkpoint.npz are written (atomically).
    checkpoint_every : int, optional
        Save a checkpoint every so many steps (and at the end) when ``out`` is given.
    resume : bool
        Continue from ``out``/checkpoint.npz: parameters, optimizer state, step, random
        generator and history are restored, so N steps + resume + M steps gives the same
        parameters, bit for bit, as N + M steps without stopping.
    progress : bool, optional
        A tqdm bar with loss and gradient norm; by default only when stderr is a terminal.

    Returns
    -------
    dict
        Lists by step: ``step``, ``loss``, ``grad_norm`` (before clipping), ``clipped_norm``,
        ``lr``, ``seq_len``, ``seconds``; plus ``baseline`` and ``config``.

    Raises
    ------
    NonFiniteError
        At a NaN/Inf loss or gradient, naming the step; no update is applied from it and the
        last checkpoint on disk is left as it was.
    """
    where = "train"
    if not isinstance(model, RNN):
        raise TypeError(f"{where}: model must be a minirnn.RNN, got {type(model).__name__}")
    if not isinstance(task, Task):
        raise TypeError(f"{where}: task must be a minirnn.tasks.Task, got {type(task).__name__}")
    if not isinstance(optimizer, optim.Optimizer) or optimizer.params is not model.params:
        raise TypeError(f"{where}: optimizer must be a minirnn.optim optimizer built on model.params")
    steps = v.positive_int(where, "steps", steps)
    batch_size = v.positive_int(where, "batch_size", batch_size)
    seq_len = v.positive_int(where, "seq_len", seq_len)
    window = _parse_bptt(bptt)
    if clip is not None:
        clipping._positive_number(where, "clip", clip)
    if clip_value is not None:
        clipping._positive_number(where, "clip_value", clip_value)
    if (task.input_size, task.output_size) != (model.input_size, model.output_size):
        raise ValueError(
            f"{where}: task {task.name!r} has {task.input_size} inputs and {task.output_size} outputs; "
            f"the model has input_size={model.input_size}, output_size={model.output_size}"
        )
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        _check_writable(out_dir)
    if checkpoint_every is not None:
        v.positive_int(where, "checkpoint_every", checkpoint_every)
    if resume and out_dir is None:
        raise ValueError(f"{where}: resume needs out= (the folder holding checkpoint.npz)")

    config = {
        "task": task.config(),
        "model": model.config(),
        "optimizer": optimizer.name,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "bptt": "full" if window is None else list(window),
        "clip": clip,
        "clip_value": clip_value,
        "curriculum": asdict(curriculum) if curriculum else None,
        "seed": seed,
    }
    rng = np.random.default_rng(seed)
    history: dict[str, Any] = {
        k: [] for k in ("step", "loss", "grad_norm", "clipped_norm", "lr", "seq_len", "seconds")
    }
    start = 0
    if resume:
        start, history = load_checkpoint(out_dir / "checkpoint.npz", model, optimizer, rng, config)  # type: ignore[operator]
    history["baseline"] = task.baseline(curriculum.stop if curriculum else seq_len)
    history["config"] = config
    loss_fn = losses.get(task.loss)
    updater = _Updater(model, optimizer, clip, clip_value, out_dir, start if resume else None)

    show = progress if progress is not None else sys.stderr.isatty()
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, initial=start, disable=not show, desc=f"train {task.name}", unit="step")
    try:
        for step in range(start + 1, steps + 1):
            T = curriculum.seq_len(step - 1) if curriculum else seq_len
            t0 = time.perf_counter()
            batch = task.sample(rng, batch_size, T)
            X = batch.X.astype(model.dtype)
            Y = batch.Y.astype(model.dtype) if batch.Y.dtype.kind == "f" else batch.Y
            updater.begin(step)
            lr = optimizer.lr
            if window is None:
                # one call: the step's activations go with it, before the next step's forward
                # (kept in this loop until it rebound the names, an LSTM's peak was 1.6x a step's)
                value, grads = forward_backward(model, X, Y, loss_fn, batch.mask, updater.check_loss)
                updater(grads)
            else:
                reports = TBPTT(model, window[0], window[1], task.loss, update=updater).feed(X, Y, batch.mask)
                w = np.array([r["weight"] for r in reports])
                value = float(np.dot(w, [r["loss"] for r in reports]) / w.sum()) if w.sum() else 0.0
                updater.check_loss(value)
            norms = updater.norms
            history["step"].append(step)
            history["loss"].append(value)
            history["grad_norm"].append(max((n[0] for n in norms), default=0.0))
            history["clipped_norm"].append(max((n[1] for n in norms), default=0.0))
            history["lr"].append(lr)
            history["seq_len"].append(T)
            history["seconds"].append(time.perf_counter() - t0)
            bar.update(1)
            if show:
                bar.set_postfix(loss=f"{value:.4f}", gnorm=f"{history['grad_norm'][-1]:.3g}")
            if out_dir is not None and checkpoint_every and step % checkpoint_every == 0 and step < steps:
                save_checkpoint(out_dir / "checkpoint.npz", model, optimizer, rng, step, history, config)
                updater.last_saved = step
    finally:
        bar.close()
    if out_dir is not None:
        save_checkpoint(out_dir / "checkpoint.npz", model, optimizer, rng, steps, history, config)
        atomic_write(
            out_dir / "history.json", lambda f: f.write(json.dumps(plain(history), indent=1).encode())
        )
    return history


class _Updater:
    """One parameter update: refuse non-finite gradients, clip, record norms, step."""

    def __init__(
        self,
        model: RNN,
        optimizer: optim.Optimizer,
        clip: float | None,
        clip_value: float | None,
        out_dir: Path | None,
        last_saved: int | None,
    ) -> None:
        self.model, self.optimizer = model, optimizer
        self.clip, self.clip_value = clip, clip_value
        self.out_dir, self.last_saved = out_dir, last_saved
        self.step = 0
        self.norms: list[tuple[float, float]] = []

    def begin(self, step: int) -> None:
        self.step, self.norms = step, []

    def _stop(self, what: str) -> NonFiniteError:
        where = ""
        if self.out_dir is not None and self.last_saved is not None:
            ckpt = self.out_dir / "checkpoint.npz"
            where = f"; the last good checkpoint (step {self.last_saved}) is intact at {ckpt}"
        return NonFiniteError(f"train: step {self.step}: {what}; no update was applied{where}")

    def check_loss(self, value: float) -> None:
        if not math.isfinite(value):
            raise self._stop(f"the loss is {value}")

    def __call__(self, grads: dict[str, np.ndarray]) -> None:
        params = [grads[k] for k in self.model.params]
        norm = clipping.global_norm(params)
        if not math.isfinite(norm):
            raise self._stop(f"the gradient norm is {norm} (before clipping)")
        after = norm if self.clip is None else clipping.rescale(params, norm, self.clip)
        if self.clip_value is not None:
            clipping.clip_grad_value(params, self.clip_value)
            after = clipping.global_norm(params)
        self.norms.append((norm, after))
        self.optimizer.step(grads)


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".minirnn-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"train: cannot write to the output folder {folder}: {e.strerror}") from None


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------


def save_checkpoint(
    path: Path,
    model: RNN,
    optimizer: optim.Optimizer,
    rng: np.random.Generator,
    step: int,
    history: dict[str, Any],
    config: dict[str, Any],
) -> Path:
    """Model, optimizer state, step, random-generator state and history in one .npz, written
    atomically (temporary file, fsync, rename)."""
    opt = optimizer.state_dict()
    meta = {
        "format": CHECKPOINT,
        "version": 1,
        "step": step,
        "config": config,
        "model": model.config(),
        "optimizer": {"name": opt["name"], "hyper": opt["hyper"], "steps": opt["steps"]},
        "rng": rng.bit_generator.state,
        "history": plain({k: val for k, val in history.items() if k != "config"}),
    }
    arrays = {f"param/{k}": p for k, p in model.params.items()}
    arrays.update({f"optim/{k}": a for k, a in opt["state"].items()})
    buf = _io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)  # type: ignore[arg-type]
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def load_checkpoint(
    path: Path, model: RNN, optimizer: optim.Optimizer, rng: np.random.Generator, config: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """Restore a checkpoint into ``model``, ``optimizer`` and ``rng`` (in place); refuse one
    written for another model, optimizer, task or dtype."""
    meta, arrays = read_npz(path, CHECKPOINT)
    for key, ours in [("model", model.config()), ("task", config["task"])]:
        theirs = meta["model"] if key == "model" else meta["config"]["task"]
        if theirs != ours:
            diff = {
                k: (theirs.get(k), ours.get(k))
                for k in set(theirs) | set(ours)
                if theirs.get(k) != ours.get(k)
            }
            raise ValueError(f"{path}: checkpoint was written for another {key} (saved vs now: {diff})")
    if meta["optimizer"]["name"] != optimizer.name:
        raise ValueError(
            f"{path}: checkpoint holds optimizer {meta['optimizer']['name']!r}, not {optimizer.name!r}"
        )
    if meta["optimizer"]["hyper"] != plain(optimizer.hyperparameters()):
        raise ValueError(
            f"{path}: checkpoint was written with optimizer settings {meta['optimizer']['hyper']}, "
            f"now {optimizer.hyperparameters()}"
        )
    params = {k[6:]: a for k, a in arrays.items() if k.startswith("param/")}
    restored = RNN.from_config(meta["model"], params)  # checks names, shapes and dtype
    for k, p in restored.params.items():
        model.params[k][...] = p
    optimizer.load_state_dict(
        {
            "name": meta["optimizer"]["name"],
            "steps": meta["optimizer"]["steps"],
            "state": {k[6:]: a for k, a in arrays.items() if k.startswith("optim/")},
        }
    )
    rng.bit_generator.state = meta["rng"]
    return int(meta["step"]), meta["history"]
