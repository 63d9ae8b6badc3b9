"""The spectral_decay experiment's claim, at its quick size: slope of log-norm = log(rho)."""

import json

import numpy as np
import pytest

from experiments import spectral_decay


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return spectral_decay.run(quick=True, seed=0, out_dir=tmp_path_factory.mktemp("out"))


def test_measured_slopes_equal_log_rho(result):
    assert result["pass"]
    rhos = [r["rho"] for r in result["measured"]]
    assert rhos == list(spectral_decay.RHOS)
    for r in result["measured"]:
        assert abs(r["measured_slope"] - np.log(r["rho"])) < spectral_decay.TOLERANCE
        assert r["max_log_deviation"] < 1e-9


def test_gaussian_slopes_approach_log_rho(result):
    rows = result["measured_gaussian"]
    assert [r["rho"] for r in rows] == list(spectral_decay.GAUSSIAN_RHOS)
    assert all(abs(r["measured_slope"] - np.log(r["rho"])) < spectral_decay.GAUSSIAN_TOLERANCE for r in rows)


def test_vanishing_and_exploding_regimes(result):
    by_rho = {r["rho"]: r["norm_at_max_lag_over_start"] for r in result["measured"]}
    assert by_rho[0.5] < 1e-10 and by_rho[1.5] > 1e5 and by_rho[1.0] == pytest.approx(1.0, rel=1e-9)


def test_outputs_written_and_deterministic(result, tmp_path):
    again = spectral_decay.run(quick=True, seed=0, out_dir=tmp_path)
    assert again["measured"] == result["measured"]
    data = json.loads((tmp_path / "spectral_decay.json").read_text())
    assert data["pass"] is True and data["tolerance"]["abs_slope_error"] == spectral_decay.TOLERANCE
    assert (tmp_path / "spectral_decay.png").stat().st_size > 1000


def test_the_claim_can_fail(monkeypatch, tmp_path):
    """Give the engine a wrong W_hh (radius 1.01 rho) and the experiment must say FAIL."""
    real = spectral_decay.orthogonal
    monkeypatch.setattr(spectral_decay, "orthogonal", lambda n, rng, dtype: 1.01 * real(n, rng, dtype))
    assert not spectral_decay.run(quick=True, seed=0, out_dir=tmp_path)["pass"]
