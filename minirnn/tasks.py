"""Synthetic tasks and data. Each task draws batches from a ``numpy.random.Generator`` and
states its chance-level baseline, so a trained model can be judged against doing nothing.

Every batch is time-major ``X (T, B, I)`` with every-step targets ``Y`` and a ``mask (T, B)``
marking the positions the loss counts (the adding problem scores only its last step), so
full and truncated BPTT treat all tasks alike.
"""

from __future__ import annotations

import ast
import math
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _validate as v

TASKS = ("adding", "copy", "sine", "text")


@dataclass
class Batch:
    X: np.ndarray  # (T, B, I)
    Y: np.ndarray  # (T, B, P) floats, or (T, B) class indices
    mask: np.ndarray  # (T, B) of 0/1: where the loss counts


class Task:
    """Base class: name, sizes, loss, and ``sample(rng, batch_size, seq_len) -> Batch``."""

    name = "task"
    input_size = 1
    output_size = 1
    loss = "mse"
    min_seq_len = 1

    def sample(self, rng: np.random.Generator, batch_size: int, seq_len: int) -> Batch:
        where = f"{self.name}.sample"
        B = v.positive_int(where, "batch_size", batch_size)
        T = v.positive_int(where, "seq_len", seq_len)
        if T < self.min_seq_len:
            raise ValueError(f"{where}: seq_len must be at least {self.min_seq_len} for this task, got {T}")
        return self._sample(rng, B, T)

    def _sample(self, rng: np.random.Generator, B: int, T: int) -> Batch:
        raise NotImplementedError

    def baseline(self, seq_len: int) -> float:
        """The loss of the best input-blind constant prediction."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"name": self.name}


class AddingProblem(Task):
    """Hochreiter & Schmidhuber (1997), in Le et al. (2015)'s form.

    Two input channels: a value drawn from U[0, 1] at every step, and a marker that is 1 at
    exactly two steps (one in each half of the sequence) and 0 elsewhere. The target, scored
    at the last step only, is the sum of the two marked values. Predicting the mean, 1, gives
    MSE = Var(u1 + u2) = 2/12 = 0.1667: the baseline. Solving it means carrying two numbers
    across up to T steps.
    """

    name = "adding"
    input_size = 2
    output_size = 1
    loss = "mse"
    min_seq_len = 2

    def _sample(self, rng: np.random.Generator, B: int, T: int) -> Batch:
        X = np.zeros((T, B, 2))
        X[:, :, 0] = rng.uniform(0, 1, size=(T, B))
        half = T // 2
        first = rng.integers(0, half, size=B)
        second = rng.integers(half, T, size=B)
        cols = np.arange(B)
        X[first, cols, 1] = 1
        X[second, cols, 1] = 1
        Y = np.zeros((T, B, 1))
        Y[-1, :, 0] = X[first, cols, 0] + X[second, cols, 0]
        mask = np.zeros((T, B))
        mask[-1] = 1
        return Batch(X, Y, mask)

    def baseline(self, seq_len: int) -> float:
        return 2.0 / 12.0


class CopyTask(Task):
    """The copy (memory) task of Hochreiter & Schmidhuber (1997) as set by Arjovsky et al. (2016).

    ``length`` symbols from an alphabet of ``symbols`` are shown, then blanks, then a delimiter;
    over the last ``length`` steps the model must output the symbols in order (blank before).
    Inputs and outputs are one-hot over symbols + blank (0) + delimiter (last). The baseline,
    blanks then uniform guesses, costs length * ln(symbols) / T nats per step.
    """

    name = "copy"
    loss = "cross_entropy"

    def __init__(self, symbols: int = 8, length: int = 10) -> None:
        self.symbols = v.positive_int("CopyTask", "symbols", symbols)
        self.length = v.positive_int("CopyTask", "length", length)
        self.input_size = self.output_size = self.symbols + 2
        self.min_seq_len = 2 * self.length + 1

    def _sample(self, rng: np.random.Generator, B: int, T: int) -> Batch:
        n = self.length
        seq = rng.integers(1, self.symbols + 1, size=(n, B))
        tokens = np.zeros((T, B), dtype=np.int64)
        tokens[:n] = seq
        tokens[T - n - 1] = self.symbols + 1  # the delimiter: "now repeat"
        X = np.zeros((T, B, self.input_size))
        np.put_along_axis(X, tokens[..., None], 1.0, axis=2)
        Y = np.zeros((T, B), dtype=np.int64)
        Y[T - n :] = seq
        return Batch(X, Y, np.ones((T, B)))

    def baseline(self, seq_len: int) -> float:
        return self.length * math.log(self.symbols) / seq_len

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "symbols": self.symbols, "length": self.length}


class SineWave(Task):
    """Next-value prediction of sin(omega t + phi), omega ~ U[0.05, 0.5], phi ~ U[0, 2 pi].

    Input the current value, target the next one, every step scored. Predicting 0 gives
    MSE = E[sin^2] = 0.5: the baseline.
    """

    name = "sine"
    loss = "mse"

    def _sample(self, rng: np.random.Generator, B: int, T: int) -> Batch:
        omega = rng.uniform(0.05, 0.5, size=B)
        phase = rng.uniform(0, 2 * np.pi, size=B)
        t = np.arange(T + 1)[:, None]
        wave = np.sin(omega * t + phase)
        return Batch(wave[:-1, :, None].copy(), wave[1:, :, None].copy(), np.ones((T, B)))

    def baseline(self, seq_len: int) -> float:
        return 0.5


def stdlib_docstrings(max_chars: int = 400_000) -> str:
    """A corpus every machine has: docstrings of Python's standard library, read with ``ast``
    from the source files (nothing is imported), in a fixed order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    texts: list[str] = []
    total = 0
    for path in sorted(root.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40 and doc.isascii():
                    texts.append(doc.strip())
                    total += len(doc) + 2
        if total >= max_chars:
            break
    corpus = "\n\n".join(texts)[:max_chars]
    if len(corpus) < 10_000:
        raise RuntimeError(f"stdlib_docstrings: found only {len(corpus)} characters under {root}")
    return corpus


class CharText(Task):
    """Character-level language modelling: predict the next character of a UTF-8 text.

    Batches are random windows of the corpus; inputs and targets are one-hot / indices over the
    text's own alphabet. The baseline is the entropy of the character frequencies (a unigram
    model), in nats; divide by ln 2 for bits per character.
    """

    name = "text"
    loss = "cross_entropy"
    min_seq_len = 1

    def __init__(self, text: str | None = None, path: str | Path | None = None) -> None:
        if path is not None:
            p = Path(path)
            try:
                raw = p.read_bytes()
            except OSError as e:
                raise ValueError(f"CharText: cannot read {p}: {e.strerror}") from None
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"CharText: {p} is not UTF-8 text (byte {e.start}: {raw[e.start : e.start + 1]!r})"
                ) from None
            self.source = str(p)
        elif text is None:
            text = stdlib_docstrings()
            self.source = "python-stdlib-docstrings"
        else:
            self.source = "given text"
        if len(text) < 2:
            raise ValueError(f"CharText: the text is empty or a single character ({self.source})")
        self.text = text
        self.alphabet = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.alphabet)}
        self.codes = np.array([self.index[c] for c in text], dtype=np.int64)
        self.input_size = self.output_size = len(self.alphabet)

    def _sample(self, rng: np.random.Generator, B: int, T: int) -> Batch:
        if T + 1 > len(self.codes):
            raise ValueError(
                f"text.sample: seq_len {T} is longer than the text ({len(self.codes)} characters)"
            )
        starts = rng.integers(0, len(self.codes) - T, size=B)
        idx = starts[None, :] + np.arange(T + 1)[:, None]
        codes = self.codes[idx]
        return Batch(self.one_hot(codes[:-1]), codes[1:].copy(), np.ones((T, B)))

    def one_hot(self, codes: np.ndarray) -> np.ndarray:
        X = np.zeros((*codes.shape, len(self.alphabet)))
        np.put_along_axis(X, codes[..., None], 1.0, axis=-1)
        return X

    def baseline(self, seq_len: int) -> float:
        counts = np.bincount(self.codes, minlength=len(self.alphabet)).astype(float)
        p = counts[counts > 0] / counts.sum()
        return float(-(p * np.log(p)).sum())

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "alphabet": "".join(self.alphabet)}

    def sample_text(
        self, model: Any, length: int = 200, temperature: float = 1.0, prime: str = "", seed: int = 0
    ) -> str:
        """Generate ``length`` characters from a trained model, sampling softmax(logits / T)."""
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"sample_text: temperature must be a positive number, got {temperature}")
        rng = np.random.default_rng(seed)
        unknown = [c for c in prime if c not in self.index]
        if unknown:
            raise ValueError(f"sample_text: prime has characters not in the alphabet: {''.join(unknown)!r}")
        codes = [self.index[c] for c in prime] or [int(rng.integers(len(self.alphabet)))]
        state = None
        logits, cache = model.forward(self.one_hot(np.array(codes)[:, None]).astype(model.dtype), state)
        state = cache.state
        out = []
        for _ in range(length):
            z = logits[-1, 0] / temperature
            p = np.exp(z - z.max())
            p /= p.sum()
            c = int(rng.choice(len(p), p=p))
            out.append(self.alphabet[c])
            logits, cache = model.forward(self.one_hot(np.array([[c]])).astype(model.dtype), state)
            state = cache.state
        return prime + "".join(out)


def make(name: str, **kwargs: Any) -> Task:
    """A task by name: adding, copy, sine, text (``path=`` for your own text)."""
    v.choice("task", "task", name, TASKS)
    if name == "adding":
        return AddingProblem()
    if name == "copy":
        return CopyTask(**kwargs)
    if name == "sine":
        return SineWave()
    return CharText(**kwargs)
