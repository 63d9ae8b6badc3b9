import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Deterministic draws: a failure seen once is seen every run, on every machine.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=int(os.environ.get("MINIRNN_HYPOTHESIS_EXAMPLES", "25")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
)
settings.load_profile("ci")


# Long runs through the kernels are hopeless when numba runs them as Python (the coverage run).
requires_jit = pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT") == "1",
    reason="too slow with NUMBA_DISABLE_JIT=1 (kernels as Python); the jitted run covers it",
)


@pytest.fixture(params=["jit", "reference"])
def path(request, monkeypatch):
    """Run a test on both the numba kernels and the plain NumPy reference (MINIRNN_JIT=0)."""
    monkeypatch.setenv("MINIRNN_JIT", "1" if request.param == "jit" else "0")
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
