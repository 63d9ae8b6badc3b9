"""Optimizers and learning-rate schedules. State is plain arrays, so it checkpoints exactly.

Every update follows PyTorch's formula for the same optimizer (torch.optim), so the two agree
to rounding when given the same gradients; the tests hold them to it when torch is installed.
``step(grads)`` updates the parameter arrays in place; entries of ``grads`` that are not
parameters (X, h0, ...) are ignored.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import _validate as v

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
SCHEDULES = ("constant", "step", "cosine")


@dataclass
class Schedule:
    """Learning-rate factor by update number (0-based), after an optional linear warm-up.

    constant  1
    step      gamma ** (n // step_size)
    cosine    min_factor + (1 - min_factor) (1 + cos(pi n / total)) / 2, n clipped to total
    warmup    the first ``warmup`` updates ramp linearly from 1/warmup up to the schedule
    """

    kind: str = "constant"
    warmup: int = 0
    step_size: int = 1000
    gamma: float = 0.5
    total: int = 1000
    min_factor: float = 0.0

    def __post_init__(self) -> None:
        where = "Schedule"
        v.choice(where, "kind", self.kind, SCHEDULES)
        v.nonnegative_int(where, "warmup", self.warmup)
        v.positive_int(where, "step_size", self.step_size)
        v.positive_int(where, "total", self.total)
        if not 0 < self.gamma <= 1:
            raise ValueError(f"{where}: gamma must be in (0, 1], got {self.gamma}")
        if not 0 <= self.min_factor <= 1:
            raise ValueError(f"{where}: min_factor must be in [0, 1], got {self.min_factor}")

    def factor(self, n: int) -> float:
        if self.kind == "step":
            f = self.gamma ** (n // self.step_size)
        elif self.kind == "cosine":
            m = min(n, self.total)
            f = self.min_factor + (1 - self.min_factor) * (1 + math.cos(math.pi * m / self.total)) / 2
        else:
            f = 1.0
        if self.warmup and n < self.warmup:
            f *= (n + 1) / self.warmup
        return f


class Optimizer:
    """Base: holds the parameter dict, the hyperparameters, the update count and the state."""

    name = "optimizer"

    def __init__(self, params: dict[str, np.ndarray], lr: float, schedule: Schedule | None = None) -> None:
        if not isinstance(params, dict) or not params:
            raise TypeError(f"{self.name}: params must be the model's non-empty parameter dict")
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"{self.name}: learning rate must be a positive number, got {lr!r}")
        self.params = params
        self.base_lr = float(lr)
        self.schedule = schedule or Schedule()
        self.steps = 0
        self.state: dict[str, np.ndarray] = {}

    @property
    def lr(self) -> float:
        """The learning rate the next update will use."""
        return self.base_lr * self.schedule.factor(self.steps)

    def step(self, grads: dict[str, np.ndarray]) -> None:
        missing = [k for k in self.params if k not in grads]
        if missing:
            raise ValueError(f"{self.name}.step: no gradient for {', '.join(missing)}")
        lr = self.lr
        self.steps += 1
        for k, p in self.params.items():
            g = grads[k]
            if g.shape != p.shape:
                raise ValueError(f"{self.name}.step: gradient {k} has shape {g.shape}; expected {p.shape}")
            self._update(k, p, g, lr)

    def _update(self, key: str, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        raise NotImplementedError

    def _buffer(self, key: str, p: np.ndarray, suffix: str = "") -> np.ndarray:
        name = key + suffix
        if name not in self.state:
            self.state[name] = np.zeros_like(p)
        return self.state[name]

    # ------------------------------------------------------------------ checkpoints
    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.base_lr, "schedule": asdict(self.schedule)}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: hyperparameters, update count, state arrays."""
        return {
            "name": self.name,
            "hyper": self.hyperparameters(),
            "steps": self.steps,
            "state": {k: a.copy() for k, a in self.state.items()},
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if d.get("name") != self.name:
            raise ValueError(f"{self.name}: the saved state belongs to optimizer {d.get('name')!r}")
        for k, a in d["state"].items():
            base = k.split("#")[0]
            if base not in self.params or a.shape != self.params[base].shape:
                raise ValueError(f"{self.name}: saved state {k!r} does not match the model's parameters")
        self.steps = int(d["steps"])
        self.state = {k: np.array(a, dtype=self.params[k.split("#")[0]].dtype) for k, a in d["state"].items()}


class SGD(Optimizer):
    """p -= lr * g; with momentum mu: b = mu b + g (b = g at the first update), p -= lr * b;
    Nesterov: p -= lr * (g + mu b). As torch.optim.SGD (dampening 0)."""

    name = "sgd"

    def __init__(self, params, lr, momentum: float = 0.0, nesterov: bool = False, schedule=None):
        super().__init__(params, lr, schedule)
        if not 0 <= momentum < 1:
            raise ValueError(f"sgd: momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0:
            raise ValueError("sgd: nesterov needs momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def hyperparameters(self):
        return {**super().hyperparameters(), "momentum": self.momentum, "nesterov": self.nesterov}

    def _update(self, key, p, g, lr):
        if self.momentum:
            first = key + "#momentum" not in self.state
            b = self._buffer(key, p, "#momentum")
            if first:
                b[...] = g
            else:
                b *= self.momentum
                b += g
            g = g + self.momentum * b if self.nesterov else b
        p -= lr * g


class Adagrad(Optimizer):
    """s += g^2; p -= lr * g / (sqrt(s) + eps). min-char-rnn's choice; as torch.optim.Adagrad."""

    name = "adagrad"

    def __init__(self, params, lr, eps: float = 1e-10, schedule=None):
        super().__init__(params, lr, schedule)
        self.eps = float(eps)

    def hyperparameters(self):
        return {**super().hyperparameters(), "eps": self.eps}

    def _update(self, key, p, g, lr):
        s = self._buffer(key, p, "#sum")
        s += g * g
        p -= lr * g / (np.sqrt(s) + self.eps)


class RMSprop(Optimizer):
    """s = alpha s + (1 - alpha) g^2; p -= lr * g / (sqrt(s) + eps). As torch.optim.RMSprop."""

    name = "rmsprop"

    def __init__(self, params, lr, alpha: float = 0.99, eps: float = 1e-8, schedule=None):
        super().__init__(params, lr, schedule)
        if not 0 < alpha < 1:
            raise ValueError(f"rmsprop: alpha must be in (0, 1), got {alpha}")
        self.alpha, self.eps = float(alpha), float(eps)

    def hyperparameters(self):
        return {**super().hyperparameters(), "alpha": self.alpha, "eps": self.eps}

    def _update(self, key, p, g, lr):
        s = self._buffer(key, p, "#square")
        s *= self.alpha
        s += (1 - self.alpha) * g * g
        p -= lr * g / (np.sqrt(s) + self.eps)


class Adam(Optimizer):
    """Kingma & Ba (2015): m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    p -= lr / (1 - b1^n) * m / (sqrt(v) / sqrt(1 - b2^n) + eps). As torch.optim.Adam."""

    name = "adam"

    def __init__(
        self, params, lr, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, schedule=None
    ):
        super().__init__(params, lr, schedule)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"adam: betas must be in [0, 1), got {betas}")
        self.b1, self.b2, self.eps = float(b1), float(b2), float(eps)

    def hyperparameters(self):
        return {**super().hyperparameters(), "betas": [self.b1, self.b2], "eps": self.eps}

    def _update(self, key, p, g, lr):
        m = self._buffer(key, p, "#m")
        s = self._buffer(key, p, "#v")
        m *= self.b1
        m += (1 - self.b1) * g
        s *= self.b2
        s += (1 - self.b2) * g * g
        n = self.steps
        bc1, bc2 = 1 - self.b1**n, 1 - self.b2**n
        p -= (lr / bc1) * m / (np.sqrt(s) / math.sqrt(bc2) + self.eps)


def make(name: str, params: dict[str, np.ndarray], lr: float, **kwargs: Any) -> Optimizer:
    """An optimizer by name: sgd, momentum (0.9), nesterov (0.9), adagrad, rmsprop, adam."""
    v.choice("optimizer", "optimizer", name, OPTIMIZERS)
    if name == "momentum":
        return SGD(params, lr, momentum=kwargs.pop("momentum", 0.9), **kwargs)
    if name == "nesterov":
        return SGD(params, lr, momentum=kwargs.pop("momentum", 0.9), nesterov=True, **kwargs)
    cls = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam}[name]
    return cls(params, lr, **kwargs)


def from_state_dict(params: dict[str, np.ndarray], d: dict[str, Any]) -> Optimizer:
    """Rebuild an optimizer (hyperparameters, schedule, state) from :meth:`Optimizer.state_dict`."""
    hyper = dict(d["hyper"])
    lr = hyper.pop("lr")
    schedule = Schedule(**hyper.pop("schedule"))
    if "betas" in hyper:
        hyper["betas"] = tuple(hyper["betas"])
    cls = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam}[d["name"]]
    opt = cls(params, lr, schedule=schedule, **hyper)
    opt.load_state_dict(d)
    return opt
