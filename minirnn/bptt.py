"""Full and truncated BPTT drivers, streaming state, measured gradient accuracy, and RTRL.

Truncated BPTT(k1, k2) (Williams & Peng 1990; Sutskever 2013, sec. 2.8.6): the sequence runs
forward k1 steps at a time; after each block the gradient of that block's losses is carried
back k2 >= k1 steps, and the state then goes on with no gradient path behind it. k1 = k2 = k is
the common chunked form (PyTorch's ``h.detach()`` every k steps, Keras' stateful RNNs).

The driver keeps only the window it will backpropagate through: the inputs of the last
k2 - k1 steps and the state before them, so memory is O(k2 B H) however long the stream.
For k2 > k1 the window's first k2 - k1 steps are recomputed forward from that state (the
price of not storing their activations; a factor k2 / k1 on forward work).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _validate as v
from . import clip as clipping
from . import functional as mr_functional
from . import losses
from .model import RNN, ModelCache

State = Any  # (L, B, H) array, or a pair of them for the LSTM; None means zeros


def _zero_rows(state: State, rows: np.ndarray | None) -> State:
    """A copy of ``state`` with the given batch rows (all rows when None) set to zero."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(_zero_rows(s, rows) for s in state)
    out = state.copy()
    if rows is None:
        out[...] = 0
    else:
        out[:, rows, :] = 0
    return out


def _state_at(cache: ModelCache, t: int) -> State:
    """The state after local step t of a forward (the form ``RNN.forward`` takes as h0)."""
    h = np.stack([c.hs[t] for c in cache.layers])
    if cache.c_n is None:
        return h
    return h, np.stack([c.cs[t] for c in cache.layers])  # type: ignore[union-attr]


def _param_grads(model: RNN, g: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: g[k] for k in model.params}


# In accumulate mode with k1 = k2, whole blocks go through together in groups of up to this many
# (time x batch) rows (TBPTT._feed_detached): per-block Python costs ~60 us, which dominates
# small blocks, while the memory stays bounded (a group's states, never the whole stream's).
GROUP_ROWS = 4096


def group_steps(k: int, B: int, group_rows: int = GROUP_ROWS) -> int:
    """Steps per group of whole k-step blocks of B rows (at least one block)."""
    return k * max(1, group_rows // (B * k))


class TBPTT:
    """Truncated BPTT(k1, k2) over a stream of (X, Y) chunks, carrying the state between them.

    Parameters
    ----------
    model : RNN
    k1 : int
        Steps run forward between two backward passes (the block length).
    k2 : int, optional
        Steps each backward pass reaches into the past; k2 >= k1, default k1.
    loss : {"mse", "cross_entropy"}
        Applied to each block's outputs against its targets (a mean over the block).
    update : callable, optional
        Training mode: called as ``update(grads)`` after every block with that block's parameter
        gradients (after clipping), e.g. an optimizer step. Without it the driver accumulates:
        :meth:`gradients` returns the gradient of the mean loss over every step fed so far.
    clip : float, optional
        Clip each block's gradient to this global norm (:func:`minirnn.clip_grad_norm`).
    group_rows : int
        In accumulate mode with k1 = k2 (no update, no clip), run whole blocks together, up
        to this many (time x batch) rows per forward and backward, the recurrence cut at every
        block start by the kernels: the same numbers, without a Python round trip per block.
        Memory then grows with the group, not with k; 0 runs block by block (memory O(k)).

    Each processed block is reported as a dict: ``steps``, ``weight`` (positions scored),
    ``loss`` and, when training or clipping, ``grad_norm`` (before clipping) and
    ``clipped_norm`` (after).
    """

    def __init__(
        self,
        model: RNN,
        k1: int,
        k2: int | None = None,
        loss: str = "mse",
        *,
        update: Callable[[dict[str, np.ndarray]], None] | None = None,
        clip: float | None = None,
        group_rows: int = GROUP_ROWS,
    ) -> None:
        where = "TBPTT"
        if not isinstance(model, RNN):
            raise TypeError(f"{where}: model must be a minirnn.RNN, got {type(model).__name__}")
        self.model = model
        self.k1 = v.positive_int(where, "k1", k1)
        self.k2 = self.k1 if k2 is None else v.positive_int(where, "k2", k2)
        if self.k2 < self.k1:
            raise ValueError(
                f"{where}: k2 must be >= k1 (the backward pass covers the block), got k1={k1}, k2={k2}"
            )
        self.loss_fn = losses.get(loss)
        self.loss_name = loss
        self.update = update
        if clip is not None:
            clipping._positive_number(where, "clip", clip)
        self.clip = clip
        self._state: State = None
        self._hist_X: np.ndarray | None = None  # inputs of the last <= k2 - k1 steps
        self._hist_state: State = None  # the state before _hist_X[0]
        self._resets: list[tuple[int, np.ndarray | None]] = []  # (offset into history, rows)
        self._shape: tuple[int, int] | None = None  # (B, I) of the stream
        if not isinstance(group_rows, (int, np.integer)) or isinstance(group_rows, bool) or group_rows < 0:
            raise ValueError(f"{where}: group_rows must be an integer >= 0, got {group_rows!r}")
        self.group_rows = int(group_rows)
        self.zero_grad()

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> State:
        """The state after the last step fed (None before any data or after a full reset)."""
        return self._state

    def reset(self, rows: Iterable[int] | None = None) -> None:
        """Start new sequences: in every batch row (``rows=None``) or only in the rows given.

        Rows that are reset start from a zero state and their gradient does not reach back
        across the reset, while the other rows go on.
        """
        if rows is None:
            self._state, self._hist_X, self._hist_state, self._resets = None, None, None, []
            return
        idx = np.unique(np.asarray(list(rows), dtype=np.int64))
        B = self._shape[0] if self._shape else None
        if B is not None and idx.size and (idx.min() < 0 or idx.max() >= B):
            raise ValueError(f"TBPTT.reset: rows {idx.tolist()} out of range for batch size {B}")
        if self._state is None or idx.size == 0:
            return
        self._state = _zero_rows(self._state, idx)
        if self._hist_X is not None:
            self._resets.append((len(self._hist_X), idx))

    # ------------------------------------------------------------------ gradients
    def zero_grad(self) -> None:
        """Forget the accumulated gradient (accumulate mode)."""
        # filled by _add: the first gradient of each parameter is taken as it is, not added
        # to zeros (a fixed cost that shows on one-call drivers of short sequences)
        self._acc: dict[str, np.ndarray] = {}
        self._acc_steps = 0.0
        self._acc_loss = 0.0

    def _add(self, name: str, g: np.ndarray) -> None:
        """Accumulate ``g``, a fresh array the accumulator may keep, into parameter ``name``."""
        acc = self._acc.get(name)
        if acc is None:
            self._acc[name] = g
        else:
            acc += g

    def gradients(self) -> dict[str, np.ndarray]:
        """Accumulated gradient of the mean loss over all positions fed since :meth:`zero_grad`
        (each block weighted by the (time, batch) positions its loss counted)."""
        if self._acc_steps == 0:
            raise ValueError("TBPTT.gradients: no scored steps have been fed yet")
        return {k: g / self._acc_steps for k, g in self._acc.items()}

    @property
    def mean_loss(self) -> float:
        """Mean loss over all steps fed since :meth:`zero_grad`."""
        return self._acc_loss / self._acc_steps if self._acc_steps else float("nan")

    # ------------------------------------------------------------------ driving
    def run(self, chunks: Iterable[tuple[np.ndarray, ...]]) -> list[dict[str, float]]:
        """Feed every (X, Y) or (X, Y, mask) chunk of an iterable (a generator can stream
        from disk)."""
        reports: list[dict[str, float]] = []
        for chunk in chunks:
            reports.extend(self.feed(*chunk))
        return reports

    def feed(self, X: np.ndarray, Y: np.ndarray, mask: np.ndarray | None = None) -> list[dict[str, float]]:
        """Process one chunk ``X (T, B, I)`` with targets ``Y`` (T, B, P) or class indices (T, B),
        in blocks of k1 steps. ``mask`` (T, B), optional, selects the positions the loss counts.

        If T is not a multiple of k1 the last block is shorter (n < k1 steps); it gets the same
        k2 - k1 steps of history before it as a full block, so its window is k2 - k1 + n steps
        (with k1 = k2 that is exactly chunk-and-detach at every block start).
        """
        where = "TBPTT.feed"
        X = v.float_array(where, "X", X, 3, "(T, B, I)")
        Y = np.asarray(Y)
        T, B, I = X.shape
        if self._shape is None:
            self._shape = (B, I)
        elif self._shape != (B, I):
            raise ValueError(
                f"{where}: chunk has batch {B} and {I} features (shape {X.shape}); expected batch "
                f"{self._shape[0]} and {self._shape[1]} features, as in the stream's earlier chunks"
            )
        if Y.ndim < 2 or Y.shape[:2] != (T, B):
            raise ValueError(
                f"{where}: Y has shape {Y.shape}; expected targets for every step, ({T}, {B}, ...)"
            )
        if mask is not None and np.shape(mask) != (T, B):
            raise ValueError(f"{where}: mask has shape {np.shape(mask)}; expected (T, B) = {(T, B)}")
        k1 = self.k1
        if mask is not None:
            mask = np.asarray(mask)
        if self.group_rows and self.update is None and self.clip is None and self.k1 == self.k2:
            return self._feed_detached(X, Y, mask)
        return [
            self._block(X[s : s + k1], Y[s : s + k1], None if mask is None else mask[s : s + k1])
            for s in range(0, T, k1)
        ]

    def _feed_detached(self, X: np.ndarray, Y: np.ndarray, mask: np.ndarray | None) -> list[dict[str, float]]:
        """Accumulate mode with k1 = k2 (chunk-and-detach), many blocks per pass.

        Each block's gradient is that of its mean loss, weighted by its scored positions, so
        their sum is the gradient of the sum of the per-position losses with the recurrence cut
        at every block start: one forward, one loss and one backward(truncate=k) over a group
        of whole blocks, the kernels cutting the carry themselves, and no Python per block.
        Groups of up to group_rows (time x batch) rows bound the memory.
        """
        k, T = self.k1, X.shape[0]
        group = group_steps(k, X.shape[1], self.group_rows)
        reports = []
        for g0 in range(0, T, group):
            mg = None if mask is None else mask[g0 : g0 + group]
            reports += self._group(X[g0 : g0 + group], Y[g0 : g0 + group], mg)
        return reports

    def _group(self, Xg: np.ndarray, Yg: np.ndarray, mg: np.ndarray | None) -> list[dict[str, float]]:
        """One group of _feed_detached: its gradient added, its blocks' reports returned. A
        method of its own, so that the group's arrays go when it returns, before the next
        group's forward (held until the next forward rebound the names, they had made the peak
        1.3-1.5x of one group's)."""
        k, B = self.k1, Xg.shape[1]
        out, cache = self.model.forward(Xg, self._state, check_finite=False)
        _, dY = self.loss_fn(out, Yg, mg)  # validates targets and mask; the group's mean loss
        scored = None if mg is None else mg.astype(bool)
        dY *= float(len(Yg) * B if scored is None else scored.sum())  # the sum of the losses
        # the per-position losses (for the blocks' reports) now, so that the output can go
        # before the backward, as in full_gradients
        pos = losses.per_position(self.loss_name, out, Yg)
        del out
        g = self.model.backward(dY, cache, truncate=k, check_finite=False)
        for name in self.model.params:
            self._add(name, g[name])
        self._state = cache.state  # a copy (model._stack): it keeps no activations alive
        # the blocks' reports: their mean losses, from the per-position losses
        starts = np.arange(0, len(Yg), k)
        steps = np.minimum(k, len(Yg) - starts).astype(np.float64)
        if scored is None:
            sums, weights = np.add.reduceat(pos.sum(axis=1), starts), steps * B
        else:
            sums = np.add.reduceat(np.where(scored, pos, 0.0).sum(axis=1), starts)
            weights = np.add.reduceat(scored.sum(axis=1), starts).astype(np.float64)
        values = np.divide(sums, weights, out=np.zeros_like(sums), where=weights > 0)
        self._acc_steps += float(weights.sum())
        self._acc_loss += float(sums.sum())
        return [
            {"steps": n, "weight": w, "loss": value}
            for n, w, value in zip(steps.tolist(), weights.tolist(), values.tolist(), strict=True)
        ]

    def _block(self, Xb: np.ndarray, Yb: np.ndarray, mb: np.ndarray | None) -> dict[str, float]:
        model = self.model
        n_b = len(Xb)
        if self._hist_X is not None:
            win_X = np.concatenate([self._hist_X, Xb])
            start = self._hist_state
        else:
            win_X, start = Xb, self._state
        cuts = sorted({off for off, _ in self._resets})
        bounds = [0, *[c for c in cuts if 0 < c < len(win_X)], len(win_X)]
        rows_at = {
            c: (
                None
                if any(r is None for o, r in self._resets if o == c)
                else np.unique(np.concatenate([r for o, r in self._resets if o == c]))
            )
            for c in cuts
        }

        # forward, segment by segment (a segment ends where a row was reset)
        state, caches, outs = start, [], []
        for i in range(len(bounds) - 1):
            if i > 0:
                state = _zero_rows(state, rows_at[bounds[i]])
            # feed() checked X once; the loss checks the targets
            Y_seg, cache = model.forward(win_X[bounds[i] : bounds[i + 1]], state, check_finite=False)
            caches.append(cache)
            outs.append(Y_seg)
            state = cache.state
        value, dY_block = self.loss_fn(outs[-1][-n_b:], Yb, mb)
        weight = float(np.sum(mb)) if mb is not None else float(n_b * Xb.shape[1])
        # the outputs' shapes are all the backward needs of them: they go before it
        shapes, dtype = [o.shape for o in outs], outs[-1].dtype
        del outs, Y_seg

        # backward through the window, passing the state gradient from segment to segment
        grads: dict[str, np.ndarray] = {}
        dstate = None
        for i in range(len(caches) - 1, -1, -1):
            last = i == len(caches) - 1
            if last and shapes[i][0] == n_b:
                dY = dY_block  # the common case: the window is the block
            else:
                dY = np.zeros(shapes[i], dtype=dtype)
                if last:
                    dY[-n_b:] = dY_block
            g = model.backward(dY, caches[i], dstate=dstate, check_finite=False)
            for k in model.params:
                grads[k] = grads[k] + g[k] if k in grads else g[k]
            if i > 0:  # into the previous segment, except through the rows reset between them
                rows = rows_at[bounds[i]]
                d = (g["h0"], g["c0"]) if "c0" in g else g["h0"]
                dstate = None if rows is None else _zero_rows(d, rows)

        self._state = state
        self._keep_history(win_X, caches, bounds, rows_at, start)

        report = {"steps": float(n_b), "weight": weight, "loss": value}
        if self.update is not None or self.clip is not None:  # the norms matter when training
            arrays = list(grads.values())
            report["grad_norm"] = norm = clipping.global_norm(arrays)
            report["clipped_norm"] = norm if self.clip is None else clipping.rescale(arrays, norm, self.clip)
        if self.update is not None:
            if weight > 0:  # a block with no scored position has nothing to learn from
                self.update(grads)
        else:
            for k in grads:
                self._add(k, weight * grads[k])
            self._acc_steps += weight
            self._acc_loss += weight * value
        return report

    def _keep_history(
        self,
        win_X: np.ndarray,
        caches: list[ModelCache],
        bounds: list[int],
        rows_at: dict[int, np.ndarray | None],
        start: State,
    ) -> None:
        """Keep the last k2 - k1 steps of the window and the state before them."""
        keep = min(self.k2 - self.k1, len(win_X))
        if keep == 0:
            self._hist_X, self._hist_state, self._resets = None, None, []
            return
        j = len(win_X) - keep  # the new history starts before window step j
        if j == 0:
            hist_state = start
        else:
            seg = max(i for i in range(len(bounds) - 1) if bounds[i] < j)
            hist_state = _state_at(caches[seg], j - 1 - bounds[seg])
        if j in rows_at:
            hist_state = _zero_rows(hist_state, rows_at[j])
        self._hist_X = win_X[j:].copy()
        self._hist_state = hist_state
        self._resets = [(off - j, r) for off, r in self._resets if off > j]


def tbptt_gradients(
    model: RNN,
    X: np.ndarray,
    Y: np.ndarray,
    k1: int,
    k2: int | None = None,
    loss: str = "mse",
    mask: np.ndarray | None = None,
    group_rows: int = GROUP_ROWS,
) -> tuple[float, dict[str, np.ndarray]]:
    """(mean loss, accumulated TBPTT(k1, k2) gradient) over one sequence, from a zero state
    (``group_rows`` as in :class:`TBPTT`)."""
    driver = TBPTT(model, k1, k2, loss, group_rows=group_rows)
    driver.feed(X, Y, mask)
    return driver.mean_loss, driver.gradients()


def full_gradients(
    model: RNN, X: np.ndarray, Y: np.ndarray, loss: str = "mse", mask: np.ndarray | None = None
) -> tuple[float, dict[str, np.ndarray]]:
    """(mean loss, full-BPTT gradient) over one sequence, from a zero state."""
    return forward_backward(model, X, Y, losses.get(loss), mask)


def forward_backward(
    model: RNN,
    X: np.ndarray,
    Y: np.ndarray,
    loss_fn: losses.Loss,
    mask: np.ndarray | None = None,
    check: Callable[[float], None] | None = None,
) -> tuple[float, dict[str, np.ndarray]]:
    """(loss, the parameters' gradients) of one forward, loss and full backward, ``check`` (if
    given) called on the loss before the backward. The output goes before the backward (it
    needs only dY and the cache: 17% of the peak at P = H), and the activations, dY and the
    other gradients (dX, dh0) when it returns (train's steps, full_gradients)."""
    out, cache = model.forward(X)
    value, dY = loss_fn(out, Y, mask)
    del out
    if check is not None:
        check(value)
    return value, _param_grads(model, model.backward(dY, cache))


def _compare(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    cos = float(np.dot(a.ravel(), b.ravel()) / (na * nb)) if na > 0 and nb > 0 else float(na == nb)
    rel = float(np.linalg.norm(a - b) / nb) if nb > 0 else float(na)
    return {"cosine": cos, "rel_error": rel, "norm_truncated": na, "norm_full": nb}


def gradient_accuracy(
    model: RNN,
    X: np.ndarray,
    Y: np.ndarray,
    k1: int,
    k2: int | None = None,
    loss: str = "mse",
    mask: np.ndarray | None = None,
) -> dict[str, Any]:
    """How close truncated BPTT(k1, k2) comes to the full gradient, measured.

    Both are gradients of the same objective (the mean loss over all T steps from a zero
    state); the truncated one is accumulated over the blocks. Returns per-parameter and overall
    ``cosine`` similarity and ``rel_error`` = ||g_trunc - g_full|| / ||g_full||, with the norms.
    This is how the source document's "gradient accuracy 85% at k = 10" is put to a number.
    """
    _, g_t = tbptt_gradients(model, X, Y, k1, k2, loss, mask)
    _, g_f = full_gradients(model, X, Y, loss, mask)
    per = {k: _compare(g_t[k], g_f[k]) for k in g_f}
    flat_t = np.concatenate([g_t[k].ravel() for k in g_f])
    flat_f = np.concatenate([g_f[k].ravel() for k in g_f])
    return {"per_param": per, "overall": _compare(flat_t, flat_f), "k1": k1, "k2": k2 or k1}


# ---------------------------------------------------------------------------------------------
# real-time recurrent learning
# ---------------------------------------------------------------------------------------------


def rtrl_steps(
    model: RNN, X: np.ndarray, Y: np.ndarray, loss: str = "mse"
) -> Iterator[tuple[int, float, dict[str, np.ndarray]]]:
    """Real-time recurrent learning (Williams & Zipser 1989) for a one-layer vanilla RNN.

    Carries the sensitivities P_t = dh_t/dtheta forward instead of storing the history::

        a_t = x_t W_xh^T + h_{t-1} W_hh^T + b_h,   h_t = f(a_t),   D_t = diag f'(a_t)
        P_t = D_t (E_t + W_hh P_{t-1}),    E_t = da_t/dtheta holding h_{t-1} fixed
        dL/dtheta = sum_t dL_t/dh_t P_t

    so after every step t the exact gradient of the losses up to t is known (yielded as
    ``(t, loss so far, gradient so far)``), with no stored history. The loss is the mean over
    all T steps, as in :func:`full_gradients`, so after the last step the gradient equals
    full BPTT's.

    Cost: P_t has B * H * n entries for n = H(I + H + 1) parameters, and each step multiplies
    it by W_hh: O(B H^2 n) = O(B H^4) time per step and O(B H^3) memory. Meant for H <= 32 and
    for study, not for training.
    """
    where = "rtrl"
    if model.cell != "rnn" or model.num_layers != 1:
        raise ValueError(f"{where}: RTRL is implemented for a one-layer vanilla RNN, got {model!r}")
    from .cells import activate, activation_derivative

    X = v.float_array(where, "X", X, 3, "(T, B, I)")
    T, B, I = X.shape
    H = model.hidden_size
    p = model.params
    W_xh, W_hh, b = p["W_xh_l0"], p["W_hh_l0"], p.get("b_h_l0")
    names = ["W_xh_l0", "W_hh_l0", *(["b_h_l0"] if b is not None else [])]
    sizes = [H * I, H * H, *([H] if b is not None else [])]
    offsets = np.cumsum([0, *sizes])
    n = int(offsets[-1])
    P = np.zeros((B, H, n), dtype=X.dtype)
    h = np.zeros((B, H), dtype=X.dtype)
    loss_fn = losses.get(loss)
    grad = np.zeros(n, dtype=X.dtype)
    out_grads = {k: np.zeros_like(p[k]) for k in ("W_hy", "b_y") if k in p}
    rows = np.arange(H)
    total = 0.0
    for t in range(T):
        a = X[t] @ W_xh.T + h @ W_hh.T
        if b is not None:
            a += b
        h_new = activate(a, model.activation)
        # E_t: da_t[i]/dW_xh[i, j] = x_t[j], da_t[i]/dW_hh[i, j] = h_{t-1}[j], da_t[i]/db[i] = 1
        E = np.einsum("ij,bjn->bin", W_hh, P)
        Ew = E[:, :, offsets[0] : offsets[1]].reshape(B, H, H, I)
        Ew[:, rows, rows, :] += X[t][:, None, :]
        Eh = E[:, :, offsets[1] : offsets[2]].reshape(B, H, H, H)
        Eh[:, rows, rows, :] += h[:, None, :]
        if b is not None:
            E[:, rows, offsets[2] + rows] += 1
        P = activation_derivative(h_new, model.activation)[:, :, None] * E
        h = h_new
        # this step's loss, normalised as the mean over all T steps
        if "W_hy" in p:
            y = h @ p["W_hy"].T + (p["b_y"] if "b_y" in p else 0)
        else:
            y = h
        value, dy = loss_fn(y[None], Y[t][None])
        total += value / T
        dy = dy[0] / T
        if "W_hy" in p:
            out_grads["W_hy"] += dy.T @ h
            if "b_y" in p:
                out_grads["b_y"] += dy.sum(axis=0)
            dh = dy @ p["W_hy"]
        else:
            dh = dy
        grad += np.einsum("bh,bhn->n", dh, P)
        result = {
            name: grad[offsets[i] : offsets[i + 1]].reshape(p[name].shape).copy()
            for i, name in enumerate(names)
        }
        result.update({k: g.copy() for k, g in out_grads.items()})
        yield t, total, result


def rtrl(model: RNN, X: np.ndarray, Y: np.ndarray, loss: str = "mse") -> dict[str, np.ndarray]:
    """The gradient RTRL has after the last step (equal to full BPTT's); see :func:`rtrl_steps`."""
    last: dict[str, np.ndarray] = {}
    for _, _, grads in rtrl_steps(model, X, Y, loss):
        last = grads
    return last


# ---------------------------------------------------------------------------------------------
# stepping through BPTT
# ---------------------------------------------------------------------------------------------


def _norm(a: np.ndarray | None) -> float:
    return float(np.linalg.norm(a)) if a is not None else float("nan")


@dataclass
class BPTTStep:
    """One step of the backward pass, at time t (1-based: h_t is ``hs[t - 1]``).

    dh = dh_direct + dh_recurrent is dL/dh_t: the direct part from this step's loss and the
    part carried back from step t + 1. ``da`` is dL/da_t (pre-activations; for gated cells the
    stacked gate pre-activations), ``fprime`` the vanilla cell's f'(a_t) (None for gated
    cells), ``dc`` the LSTM's dL/dc_t. ``contributions`` is what this step adds to every weight
    gradient, ``running`` the sum over steps T..t so far.
    """

    t: int
    dh_direct: np.ndarray
    dh_recurrent: np.ndarray
    dh: np.ndarray
    da: np.ndarray
    fprime: np.ndarray | None
    dc: np.ndarray | None
    contributions: dict[str, np.ndarray] = field(repr=False)
    running: dict[str, np.ndarray] = field(repr=False)

    def __repr__(self) -> str:
        fp = "" if self.fprime is None else f"  mean f'={float(np.mean(self.fprime)):.3f}"
        W = "W_hh_l0"
        return (
            f"t={self.t:>4}  |dL/dh|={_norm(self.dh):.3e} (direct {_norm(self.dh_direct):.2e}, "
            f"recurrent {_norm(self.dh_recurrent):.2e})  |dL/da|={_norm(self.da):.3e}{fp}  "
            f"|step dW_hh|={_norm(self.contributions[W]):.2e}  |dW_hh so far|={_norm(self.running[W]):.3e}"
        )


def bptt_steps(
    model: RNN, X: np.ndarray, Y: np.ndarray, loss: str = "mse", h0: Any = None
) -> Iterator[BPTTStep]:
    """Walk the backward pass of a one-layer model from t = T down to 1, one record per step.

    The same maths as ``model.backward`` (cells.py's step pairs), exposed step by step: the
    records' ``contributions`` summed over all steps equal the model's gradients (and the
    last record's ``running`` holds that sum).

    Examples
    --------
    >>> import numpy as np, minirnn as mr
    >>> model = mr.RNN(2, 3, 1, seed=0)
    >>> X, Y = np.ones((4, 1, 2)), np.zeros((4, 1, 1))
    >>> [s.t for s in mr.bptt_steps(model, X, Y)]
    [4, 3, 2, 1]
    """
    from . import cells

    if model.num_layers != 1:
        raise ValueError(f"bptt_steps: steps through one recurrent layer; the model has {model.num_layers}")
    out, mcache = model.forward(X, h0)
    _, dY = losses.get(loss)(out, Y)
    p = model.params
    cache = mcache.layers[0]
    T, B, H = cache.hs.shape
    if "W_hy" in p:
        direct = (dY.reshape(T * B, -1) @ p["W_hy"]).reshape(T, B, H)
    else:
        direct = dY
    running = {k: np.zeros_like(v) for k, v in p.items()}
    carry_h = np.zeros((B, H), dtype=cache.hs.dtype)
    carry_c = np.zeros((B, H), dtype=cache.hs.dtype)
    for t in range(T - 1, -1, -1):
        dh = direct[t] + carry_h
        fprime = dc = None
        if isinstance(cache, mr_functional.RNNCache):
            new_h, g = cells.rnn_step_backward(dh, cache.step(t))
            fprime = cells.activation_derivative(cache.hs[t], cache.activation)
        elif isinstance(cache, mr_functional.LSTMCache):
            dc = carry_c + dh * cache.gates[t, :, 3 * H :] * (1 - cache.tanh_cs[t] ** 2)
            new_h, carry_c, g = cells.lstm_step_backward(dh, carry_c, cache.step(t))
        else:
            new_h, g = cells.gru_step_backward(dh, cache.step(t))
        contrib = {"W_xh_l0": g["W_xh"], "W_hh_l0": g["W_hh"]}
        if "b_h" in g:
            contrib["b_h_l0"] = g["b_h"]
        if "b_hh" in g:
            contrib["b_hh_l0"] = g["b_hh"]
        if "W_hy" in p:
            contrib["W_hy"] = dY[t].T @ cache.hs[t]
            if "b_y" in p:
                contrib["b_y"] = dY[t].sum(axis=0)
        running = {
            k: r + contrib[k] if k in contrib else r for k, r in running.items()
        }  # a new dict per record
        yield BPTTStep(
            t=t + 1,
            dh_direct=direct[t],
            dh_recurrent=carry_h,
            dh=dh,
            da=g["a"],
            fprime=fprime,
            dc=dc,
            contributions=contrib,
            running=running,
        )
        carry_h = new_h
