"""benchmarks/bench_rnn.py runs end to end (quick mode, one cell): the table `make bench` writes
must not rot between full runs. No timing is checked here, only that every number is there."""

import json
import math
import subprocess
import sys
from pathlib import Path

from tests.conftest import requires_jit

ROOT = Path(__file__).resolve().parent.parent


@requires_jit
def test_quick_benchmark_writes_its_table(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_rnn.py"), "--quick", "--cells", "rnn"]
    cmd += ["--dtypes", "float64", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "results.json").read_text())
    shapes = [tuple(r["shape"]) for r in result["rows"]]
    assert shapes == [(1000, 1, 1, 32), (100, 1, 32, 64), (100, 32, 32, 128)]
    for row in result["rows"]:
        assert math.isfinite(row["ms"]["minirnn"]) and row["ms"]["minirnn"] > 0
        assert row["lower_bound_ms"] > 0 and row["memory"]["ratio"] >= 1
        assert row["gemm_gflops_beside"] > 0 and 1 <= row["attempts"] <= 6 and "slow_spell" in row
    assert result["repeats"] == 3 and result["startup"] and result["truncation"]
    assert 0 < result["numba_floor_s"] < 60
    for r in result["truncation"]:
        assert r["model_truncated_ms"] > 0 and r["model_full_ms"] > 0 and r["model_ratio"] > 0
    table = (tmp_path / "results.md").read_text()
    assert "median of at least 3 runs" in table and table.count("| rnn | float64 |") == 3


@requires_jit
def test_parts_breakdown_runs_and_its_help_prints():
    parts = str(ROOT / "benchmarks" / "parts.py")
    shown = subprocess.run(
        [sys.executable, parts, "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert shown.returncode == 0 and "T " in shown.stdout, shown.stderr[-3000:]
    cmd = [sys.executable, parts, "gru", "float64", "6", "4", "3", "5", "--repeats", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "forward + backward" in done.stdout and "windows' products (all)" in done.stdout
