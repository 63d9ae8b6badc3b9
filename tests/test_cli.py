"""The minirnn command, called in-process (main(argv)) and once as a real subprocess."""

import json
import subprocess
import sys

import pytest

from minirnn.cli import main


def test_summary_prints_the_seed_example(capsys):
    assert main(["summary", "--input", "10", "--hidden", "20", "--output", "5", "--no-bias"]) == 0
    out = capsys.readouterr().out
    assert "(20, 10)" in out and "(20, 20)" in out and "(5, 20)" in out and out.split()[-1] == "700"


def test_summary_json(capsys):
    assert main(["summary", "--input", "3", "--hidden", "4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"] == data["keras"] == 4 * (3 + 4 + 1)
    assert data["pytorch"] == 4 * (3 + 4 + 2)
    assert data["params"]["W_hh_l0"] == {"shape": [4, 4], "count": 16}


def test_gradcheck_passes_and_reports(capsys):
    assert (
        main(["gradcheck", "--input", "2", "--hidden", "3", "--output", "2", "--layers", "2", "--json"]) == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["pass"] and data["max_error"] < 1e-7 and "W_hh_l1" in data["errors"]


def test_gradcheck_fails_with_impossible_tolerance(capsys):
    assert main(["gradcheck", "--input", "2", "--hidden", "3", "--tol", "0"]) == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["summary", "--input", "0", "--hidden", "3"],
        ["summary", "--input", "x", "--hidden", "3"],
        ["summary", "--input", "2", "--hidden", "3", "--activation", "gelu"],
        ["summary", "--hidden", "3"],
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_bad_init_is_a_clean_error(capsys):
    assert main(["summary", "--input", "2", "--hidden", "3", "--init", "he"]) == 2
    assert "unknown init 'he'" in capsys.readouterr().err


def test_experiments_list_and_unknown(capsys):
    assert main(["experiments", "--list"]) == 0
    assert "spectral_decay" in capsys.readouterr().out.split()
    assert main(["experiments", "no_such_experiment"]) == 2
    assert "unknown no_such_experiment" in capsys.readouterr().err


def test_experiments_quick_run_writes_report(tmp_path, capsys):
    assert main(["experiments", "spectral_decay", "--quick", "--out", str(tmp_path)]) == 0
    assert "1 passed, 0 failed, 0 crashed" in capsys.readouterr().out
    assert (tmp_path / "spectral_decay.png").stat().st_size > 1000
    report = (tmp_path / "report.md").read_text()
    assert "## spectral_decay: PASS" in report and "| spectral_decay |" in report
    assert "data:image/png;base64" in (tmp_path / "report.html").read_text()


def test_module_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "minirnn", "summary", "--input", "1", "--hidden", "2"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.split("\n")[-3].split()[-1] == "8"


def test_trace_writes_pictures_and_json(tmp_path, capsys):
    out = tmp_path / "tr"
    argv = ["trace", "--hidden", "8", "--seq-len", "30", "--radius", "1.2", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "Lyapunov" in text and "sigma_max" in text
    for name in ("trace_heatmap.png", "trace_norms.png", "trace_spectra.png"):
        assert (out / name).stat().st_size > 1000
    data = json.loads((out / "trace.json").read_text())
    assert data["config"]["radius"] == 1.2 and len(data["norm_by_lag"]["mean"]) == 29
    assert main([*argv[:-2], "--cell", "gru", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pascanu"] is None


def test_step_prints_one_line_per_step(capsys):
    assert main(["step", "--seq-len", "5", "--no-pause"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("t=")]
    assert [int(ln.split()[0][2:] or ln.split()[1]) for ln in lines] == [5, 4, 3, 2, 1]


def test_train_writes_checkpoint_history_and_plot(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--task", "sine", "--steps", "6", "--seq-len", "8", "--hidden", "4", "--batch", "4"]
    assert main([*argv, "--out", str(out), "--json", "--truncate", "4", "--clip", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["baseline"] == 0.5 and data["steps"] == 6
    for name in ("checkpoint.npz", "history.json", "training.png"):
        assert (out / name).exists()
    assert (
        main([*argv[:4], "10", *argv[5:], "--out", str(out), "--resume", "--truncate", "4", "--clip", "1"])
        == 0
    )
    assert json.loads((out / "history.json").read_text())["step"][-1] == 10


def test_train_text_prints_bits_and_sample(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat. " * 50)
    argv = [
        "train",
        "--task",
        "text",
        "--text",
        str(text),
        "--steps",
        "3",
        "--seq-len",
        "10",
        "--hidden",
        "8",
    ]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "bits per character" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--steps", "0"], "--steps must be a positive integer, got 0"),
        (["--lr", "0"], "--lr must be a positive number, got 0.0"),
        (["--lr", "-1"], "--lr must be a positive number"),
        (["--task", "text", "--text", "EMPTY"], "empty or a single character"),
        (["--text", "EMPTY"], "--text goes with --task text"),
        (["--out", "BLOCKED/sub"], "cannot write to the output folder"),
    ],
)
def test_train_refuses_before_work(tmp_path, capsys, extra, message):
    (tmp_path / "EMPTY").write_text("")
    (tmp_path / "BLOCKED").write_text("a file, not a folder")
    extra = [
        e.replace("EMPTY", str(tmp_path / "EMPTY")).replace("BLOCKED", str(tmp_path / "BLOCKED"))
        for e in extra
    ]
    argv = ["train", "--task", "sine", "--steps", "2", "--out", str(tmp_path / "o"), *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flag", [["--task", "parity"], ["--cell", "tcn"], ["--optimizer", "lbfgs"]])
def test_train_unknown_names(flag, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", *flag])
    assert info.value.code == 2 and "invalid choice" in capsys.readouterr().err
