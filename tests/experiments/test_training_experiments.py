"""Experiments that train or time things, at their quick sizes; each claim can also fail."""

from experiments import adding_problem, char_rnn, exploding_cliff, truncation
from tests.conftest import requires_jit


def test_exploding_cliff(tmp_path):
    r = exploding_cliff.run(quick=True, out_dir=tmp_path)
    assert r["pass"] and all(r["measured"]["checks"].values())
    assert r["measured"]["linear_closed_form_rel_error"] < exploding_cliff.EXACT_TOL
    assert r["measured"]["largest_step"]["clipped"] <= exploding_cliff.LR * exploding_cliff.THRESHOLD * (
        1 + 1e-9
    )


def test_exploding_cliff_can_fail(tmp_path, monkeypatch):
    monkeypatch.setattr(exploding_cliff, "CLIFF_RATIO", 1e12)
    assert not exploding_cliff.run(quick=True, out_dir=tmp_path)["pass"]


def test_truncation(tmp_path):
    r = truncation.run(quick=True, out_dir=tmp_path)
    assert r["pass"]
    m = r["measured"]
    assert set(m["ours_vs_seed"]) == {"full", "10", "20"}
    assert m["memory_bytes"]["5"] < m["memory_bytes"]["full"]


def test_truncation_can_fail(tmp_path, monkeypatch):
    real = truncation.mr.gradient_accuracy
    monkeypatch.setattr(
        truncation.mr,
        "gradient_accuracy",
        lambda *a, **k: {"overall": {**real(*a, **k)["overall"], "rel_error": 1.0}},
    )
    assert not truncation.run(quick=True, out_dir=tmp_path)["pass"]


@requires_jit
def test_adding_problem(tmp_path):
    r = adding_problem.run(quick=True, out_dir=tmp_path)
    assert r["pass"], r["measured"]["checks"]
    runs = {x["model"]: x["test_mse"] for x in r["measured"]["runs"]}
    assert runs["GRU"] < adding_problem.SOLVED and runs["LSTM"] < adding_problem.SOLVED


@requires_jit
def test_adding_problem_can_fail(tmp_path, monkeypatch):
    monkeypatch.setattr(adding_problem, "SOLVED", 1e-9)
    assert not adding_problem.run(quick=True, out_dir=tmp_path)["pass"]


@requires_jit
def test_char_rnn(tmp_path):
    r = char_rnn.run(quick=True, out_dir=tmp_path)
    assert r["pass"], r["measured"]["checks"]
    m = r["measured"]
    assert m["test_bits_per_char"] < m["unigram_bits_per_char"] - char_rnn.MARGIN_BITS
    assert set(m["samples"]) == {"0.5", "0.8", "1.0"}


@requires_jit
def test_char_rnn_can_fail(tmp_path, monkeypatch):
    monkeypatch.setattr(char_rnn, "WORD_SHARE", 2.0)  # no sample can have a share above 1
    assert not char_rnn.run(quick=True, out_dir=tmp_path)["pass"]


def test_adding_problem_workers_take_one_blas_thread_without_touching_the_environment():
    """Its two worker processes share the cores, each on one OpenBLAS thread, set in the worker
    (_common.one_blas_thread); importing the experiment changes nothing for this process or for
    its later subprocesses."""
    import os
    import subprocess
    import sys

    from minirnn import _threads

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    script = (
        "import os\n"
        "from experiments import adding_problem, _common\n"
        "from minirnn import _threads\n"
        "print('OPENBLAS_NUM_THREADS' in os.environ)\n"
        "api = _threads._load()\n"
        "before = int(api[0]()) if api else -1\n"
        "_common.one_blas_thread()\n"
        "print(before, int(api[0]()) if api else -1)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    lines = out.stdout.split("\n")
    assert lines[0] == "False"
    before, after = map(int, lines[1].split())
    if _threads._load() is not None:
        assert after == 1 and before >= 1
