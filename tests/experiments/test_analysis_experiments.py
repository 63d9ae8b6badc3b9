"""The analysis experiments' claims at their quick sizes; each can also be made to fail."""

import json

import numpy as np
import pytest

from experiments import activations, gated_cells, initialization, lyapunov, pascanu_conditions


def run(module, tmp_path, **kw):
    return module.run(quick=True, seed=0, out_dir=tmp_path, **kw)


def test_pascanu_conditions(tmp_path):
    r = run(pascanu_conditions, tmp_path)
    assert r["pass"]
    for act in ("tanh", "sigmoid"):
        c = r["measured"]["checks"][act]
        assert (
            c["bound_never_exceeded"] and c["vanishes_below_threshold"] and c["explodes_only_above_threshold"]
        )
    saved = json.loads((tmp_path / "pascanu_conditions.json").read_text())
    assert saved["pass"] is True and (tmp_path / "pascanu_conditions.png").stat().st_size > 1000


def test_pascanu_bound_check_can_fail(tmp_path, monkeypatch):
    real = pascanu_conditions.analysis.norm_bound
    monkeypatch.setattr(pascanu_conditions.analysis, "norm_bound", lambda W, a, k: real(W, a, k) * 0.5**k)
    assert not run(pascanu_conditions, tmp_path)["pass"]


def test_activations(tmp_path):
    r = run(activations, tmp_path)
    assert r["pass"] and all(r["measured"]["checks"].values())
    assert r["measured"]["zero_crossing_rho"]["linear"] == pytest.approx(1.0, abs=0.05)
    assert set(r["measured"]["seed_claims"]) == {
        "relu explodes before tanh as rho grows",
        "relu explodes as soon as rho > 1",
        "tanh vanishes more than relu (rho <= 1)",
    }


def test_activations_can_fail(tmp_path, monkeypatch):
    monkeypatch.setattr(activations, "LINEAR_TOLERANCE", 1e-9)
    assert not run(activations, tmp_path)["pass"]


def test_initialization(tmp_path):
    r = run(initialization, tmp_path)
    assert r["pass"]
    exact = r["measured"]["exact_max_deviation"]
    assert max(exact.values()) < initialization.EXACT_TOL
    assert r["measured"]["seed_claims"]["identity (IRNN) mitigates vanishing"]["holds"]


def test_initialization_can_fail(tmp_path, monkeypatch):
    monkeypatch.setitem(
        initialization.SCHEMES, "identity (IRNN, relu)", dict(init="identity", activation="tanh")
    )
    assert not run(initialization, tmp_path)["pass"]  # tanh' is not 0/1: the exact claim breaks


def test_gated_cells(tmp_path):
    r = run(gated_cells, tmp_path)
    assert r["pass"]
    ratios = r["measured"]["ratio_to_vanilla_at_lag"]
    assert ratios["LSTM, forget bias 1"] > ratios["LSTM"] > 1
    assert 0.6 < r["measured"]["cells"]["LSTM, forget bias 1"]["mean_forget_gate"] < 1


def test_gated_cells_can_fail(tmp_path, monkeypatch):
    monkeypatch.setattr(gated_cells, "SAME_INIT_FACTOR", 1e9)
    assert not run(gated_cells, tmp_path)["pass"]


def test_lyapunov(tmp_path):
    r = run(lyapunov, tmp_path)
    assert r["pass"]
    rows = r["measured"]["rows"]
    assert rows[0]["lyapunov"] < 0 < rows[-1]["lyapunov"]
    assert max(x["abs_error"] for x in rows) < lyapunov.TOLERANCE
    assert np.isfinite(r["measured"]["zero_crossing_rho"])


def test_lyapunov_can_fail(tmp_path, monkeypatch):
    monkeypatch.setattr(lyapunov, "TOLERANCE", 1e-7)
    assert not run(lyapunov, tmp_path)["pass"]
