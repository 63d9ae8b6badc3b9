"""The ``minirnn`` command: summary, gradcheck, calc, train, trace, step, experiments.

Every subcommand has ``--help``; those whose output is data take ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._json import plain
from ._validate import ACTIVATIONS

CELLS = ("rnn", "lstm", "gru")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=_positive, required=True, metavar="I", help="input features I")
    p.add_argument("--hidden", type=_positive, required=True, metavar="H", help="hidden units H")
    p.add_argument(
        "--output", type=_positive, default=None, metavar="P", help="output units P (none by default)"
    )
    p.add_argument("--layers", type=_positive, default=1, metavar="L", help="stacked layers (default 1)")
    _cell_args(p)
    p.add_argument("--no-bias", action="store_true", help="no bias vectors")
    p.add_argument("--init", default="pytorch", help="initializer (default pytorch)")
    p.add_argument("--seed", type=int, default=0)


def _cell_args(p: argparse.ArgumentParser) -> None:
    """--cell and --activation, the same for every subcommand that builds a model."""
    p.add_argument("--cell", default="rnn", choices=CELLS, help="recurrent cell (default rnn)")
    p.add_argument(
        "--activation", default="tanh", choices=ACTIVATIONS, help="vanilla cell's f (default tanh)"
    )


def _build(args: argparse.Namespace):
    from .model import RNN

    return RNN(
        args.input,
        args.hidden,
        args.output,
        num_layers=args.layers,
        cell=args.cell,
        activation=args.activation,
        bias=not args.no_bias,
        init=args.init,
        seed=args.seed,
    )


def cmd_summary(args: argparse.Namespace) -> int:
    from .model import count_params

    model = _build(args)
    if args.json:
        out = {
            "params": {k: {"shape": list(p.shape), "count": int(p.size)} for k, p in model.params.items()},
            "total": model.num_params,
            "keras": count_params(
                args.input, args.hidden, args.output or 0, args.cell, not args.no_bias, args.layers
            ),
            "pytorch": count_params(
                args.input, args.hidden, args.output or 0, args.cell, not args.no_bias, args.layers, "pytorch"
            ),
        }
        print(json.dumps(out, indent=2))
    else:
        print(model.summary())
    return 0


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from .gradcheck import gradcheck

    model = _build(args)
    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((args.seq_len, args.batch, args.input))
    Y = rng.standard_normal((args.seq_len, args.batch, args.output or args.hidden))
    report = gradcheck(model, X, Y, max_checks=args.max_checks)
    ok = report.ok(args.tol)
    if args.json:
        print(
            json.dumps(
                {
                    "errors": dict(report),
                    "checked": report.checked,
                    "skipped": report.skipped,
                    "max_error": report.max_error,
                    "tolerance": args.tol,
                    "pass": ok,
                },
                indent=2,
            )
        )
    else:
        print(report)
        print(
            f"{'PASS' if ok else 'FAIL'}: worst relative error {report.max_error:.2e} "
            f"(tolerance {args.tol:g})"
        )
    return 0 if ok else 1


def _study_model(args: argparse.Namespace):
    from .model import RNN

    return RNN(
        args.input,
        args.hidden,
        args.output,
        cell=args.cell,
        activation=args.activation,
        init=args.init,
        radius=args.radius,
        seed=args.seed,
    )


def cmd_trace(args: argparse.Namespace) -> int:
    from . import analysis, plots

    model = _study_model(args)
    X = np.random.default_rng(args.seed).standard_normal((args.seq_len, args.batch, args.input))
    r = analysis.trace(model, X, args.max_lag, args.seed)
    out = Path(args.out)
    label = f"{args.cell}" + (f" ({args.activation})" if args.cell == "rnn" else "")
    title = f"{label}, H = {args.hidden}, radius {args.radius}"
    prod = r["products"]
    files = [
        plots.gradient_flow_heatmap(
            r["trace"]["heatmap"], out / "trace_heatmap.png", f"Gradient flow: {title}"
        ),
        plots.norms_by_lag_plot(
            prod["lag"],
            prod,
            out / "trace_norms.png",
            f"Jacobian-product norms: {title}",
            bound=r.get("bound"),
        ),
        plots.singular_value_spectra(
            prod["singular_values"],
            sorted({1, max(1, len(prod["lag"]) // 4), max(1, len(prod["lag"]) // 2), len(prod["lag"])}),
            out / "trace_spectra.png",
            f"Singular values of dh_t/dh_(t-k): {title}",
        ),
    ]
    summary = {
        "config": {
            k: getattr(args, k)
            for k in ("cell", "activation", "hidden", "input", "seq_len", "batch", "radius", "init", "seed")
        },
        "lyapunov_exponent": r["lyapunov"],
        "norm_by_lag": {"lag": prod["lag"], "mean": prod["mean"], "min": prod["min"], "max": prod["max"]},
        "gradient_trace_mean": r["trace"]["mean"],
        "pascanu": r.get("pascanu"),
        "bound": r.get("bound"),
        "files": [str(f) for f in files],
    }
    (out / "trace.json").write_text(json.dumps(plain(summary), indent=2) + "\n")
    if args.json:
        print(json.dumps(plain(summary), indent=2))
    else:
        k = len(prod["lag"])
        print(
            f"largest Lyapunov exponent {r['lyapunov']:+.4f} per step "
            f"(growth factor {np.exp(r['lyapunov']):.4f})"
        )
        print(f"||dh_T/dh_(T-k)||: k=1 {prod['mean'][0]:.3e}   k={k} {prod['mean'][-1]:.3e}")
        if "pascanu" in r:
            p = r["pascanu"]
            verdict = (
                "vanishing guaranteed (sigma_max < 1/gamma)"
                if p["vanishing_guaranteed"]
                else "exploding possible (sigma_max > 1/gamma)"
            )
            print(
                f"sigma_max {p['sigma_max']:.4f}, gamma {p['gamma']}, "
                f"bound factor {p['bound_factor']:.4f}: {verdict}"
            )
        print("wrote " + ", ".join(str(f) for f in [*files, out / "trace.json"]))
    return 0


def cmd_step(args: argparse.Namespace) -> int:
    from .bptt import bptt_steps

    model = _study_model(args)
    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((args.seq_len, args.batch, args.input))
    Y = rng.standard_normal((args.seq_len, args.batch, args.output or args.hidden))
    pause = sys.stdin.isatty() and sys.stdout.isatty() and not args.no_pause
    print(f"backward pass of {model!r}, loss mse on every step; one line per step from t = T")
    for step in bptt_steps(model, X, Y):
        print(step, flush=True)
        if pause and step.t > 1 and input("[Enter] next step, q quit: ").strip().lower() == "q":
            break
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from . import optim, plots, tasks
    from .model import RNN
    from .train import Curriculum, evaluate, train

    if args.steps <= 0:
        raise ValueError(f"--steps must be a positive integer, got {args.steps}")
    if not args.lr > 0:
        raise ValueError(f"--lr must be a positive number, got {args.lr}")
    task = tasks.make(args.task, **({"path": args.text} if args.task == "text" and args.text else {}))
    if args.text and args.task != "text":
        raise ValueError("--text goes with --task text")
    model = RNN(
        task.input_size,
        args.hidden,
        task.output_size,
        num_layers=args.layers,
        cell=args.cell,
        activation=args.activation,
        init=args.init,
        radius=args.radius,
        seed=args.seed,
        forget_bias=1.0 if args.cell == "lstm" else None,
    )
    opt = optim.make(args.optimizer, model.params, args.lr)
    curriculum = Curriculum(args.curriculum, args.seq_len, args.steps // 2) if args.curriculum else None
    bptt = "full" if args.truncate is None else (args.truncate, args.truncate2 or args.truncate)
    history = train(
        model,
        task,
        opt,
        args.steps,
        batch_size=args.batch,
        seq_len=args.seq_len,
        bptt=bptt,
        clip=args.clip,
        curriculum=curriculum,
        seed=args.seed,
        out=args.out,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
    )
    test = evaluate(model, task, args.seq_len)
    out = Path(args.out)
    plots.training_curves(
        history, out / "training.png", f"{args.task}, {args.cell}, T = {args.seq_len}, {bptt}"
    )
    result = {
        "task": args.task,
        "test_loss": test,
        "baseline": history["baseline"],
        "final_train_loss": history["loss"][-1],
        "steps": args.steps,
        "files": [str(out / n) for n in ("checkpoint.npz", "history.json", "training.png")],
    }
    if task.loss == "cross_entropy":
        result["test_bits_per_step"] = test / np.log(2)
    if isinstance(task, tasks.CharText):
        result["sample"] = task.sample_text(model, 300, temperature=0.8, seed=args.seed)
    if args.json:
        print(json.dumps(plain(result), indent=2))
    else:
        print(f"test loss {test:.5f} (baseline {history['baseline']:.5f})")
        if "sample" in result:
            print(
                f"{test / np.log(2):.3f} bits per character; a sample at temperature 0.8:\n{result['sample']}"
            )
        print("wrote " + ", ".join(result["files"]))
    return 0


def cmd_calc(args: argparse.Namespace) -> int:
    from . import calculator as C

    if args.weights is None and (args.input is None or args.hidden is None):
        raise ValueError("give --input and --hidden (the model's sizes), or --weights CHECKPOINT")
    r = C.calc(
        args.input,
        args.hidden,
        args.output,
        args.seq_len,
        args.batch,
        args.truncate,
        cell=args.cell,
        activation=args.activation,
        num_layers=args.layers,
        dtype=args.dtype,
        radius=args.radius,
        init=args.init,
        weights=args.weights,
        samples=args.samples,
        loss=args.loss,
        seed=args.seed,
    )
    measured: dict[str, Any] | None = None
    if args.measure:
        model = (
            C._model_from_weights(args.weights)
            if args.weights
            else C.RNN(
                args.input,
                args.hidden,
                args.output,
                args.layers,
                args.cell,
                args.activation,
                init=args.init,
                dtype=args.dtype,
                radius=args.radius,
                seed=args.seed,
            )
        )
        T, B, k = args.seq_len, args.batch, args.truncate
        full = C.measure(model, T, B, None, args.loss, args.seed)
        rows = [
            (
                "Peak memory, full BPTT",
                C.human_bytes(C.estimated_peak(r, False)),
                C.human_bytes(full["peak_bytes"]),
            ),
        ]
        per_seq = r["time_per_epoch_s"] / r["config"]["batches_per_epoch"]
        measured = {"full": full}
        if k and k < T:
            trunc = C.measure(model, T, B, k, args.loss, args.seed)
            measured["truncated"] = trunc
            rows.append(
                (
                    "Peak memory, truncated",
                    C.human_bytes(C.estimated_peak(r, True)),
                    C.human_bytes(trunc["peak_bytes"]),
                )
            )
            rows.append(
                (
                    "Time per sequence",
                    C.human_seconds(per_seq),
                    C.human_seconds(trunc["seconds_per_sequence"]),
                )
            )
        else:
            rows.append(
                ("Time per sequence", C.human_seconds(per_seq), C.human_seconds(full["seconds_per_sequence"]))
            )
        measured["rows"] = rows
        r["measured"] = {key: val for key, val in measured.items() if key != "rows"}
        r["measured"]["estimated_peak_bytes"] = {
            "full": C.estimated_peak(r, False),
            "truncated": C.estimated_peak(r, True),
        }
    if args.json:
        print(json.dumps(plain(r), indent=2))
    else:
        print(C.format_table(r, measured))
    return 0


def experiments_dir() -> Path:
    """The experiments/ folder of this checkout (or $MINIRNN_EXPERIMENTS)."""
    env = os.environ.get("MINIRNN_EXPERIMENTS")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parent.parent / "experiments", Path.cwd() / "experiments"]
    for c in candidates:
        if c.is_dir() and any(c.glob("*.py")):
            return c
    raise SystemExit(
        "minirnn experiments: no experiments/ folder found; run it from a minirnn checkout "
        "or set MINIRNN_EXPERIMENTS to the folder"
    )


def list_experiments(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_") and p.stem != "__init__")


def cmd_experiments(args: argparse.Namespace) -> int:
    folder = experiments_dir()
    available = list_experiments(folder)
    if args.list:
        print("\n".join(available))
        return 0
    names = args.names or available
    unknown = [n for n in names if n not in available]
    if unknown:
        print(
            f"minirnn experiments: unknown {', '.join(unknown)}; expected some of {', '.join(available)}",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out) if args.out else folder / "out"
    results, crashed = [], []
    start = time.perf_counter()
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ...", flush=True)
        t0 = time.perf_counter()
        cmd = [sys.executable, str(folder / f"{name}.py"), "--out", str(out), "--seed", str(args.seed)]
        if args.quick:
            cmd.append("--quick")
        proc = subprocess.run(cmd, check=False)
        took = time.perf_counter() - t0
        result_file = out / f"{name}.json"
        if proc.returncode not in (0, 1) or not result_file.exists():
            crashed.append(name)
            print(f"      {name} crashed (exit {proc.returncode}) after {took:.1f} s", flush=True)
            continue
        results.append(json.loads(result_file.read_text()))
        print(f"      done in {took:.1f} s", flush=True)
    from . import report

    path = report.write(out, names)
    failed = [r["name"] for r in results if not r.get("pass")]
    print(
        f"\n{len(results) - len(failed)} passed, {len(failed)} failed, {len(crashed)} crashed "
        f"in {time.perf_counter() - start:.0f} s; report: {path}"
    )
    return 1 if failed or crashed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minirnn", description="Recurrent networks with handwritten BPTT.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("summary", help="parameter table of a model (seeds' counting, both conventions)")
    _model_args(p)
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("gradcheck", help="compare BPTT with finite differences on a random model")
    _model_args(p)
    p.add_argument("--seq-len", type=_positive, default=8, metavar="T")
    p.add_argument("--batch", type=_positive, default=2, metavar="B")
    p.add_argument(
        "--max-checks", type=_positive, default=None, help="entries checked per array (all by default)"
    )
    p.add_argument("--tol", type=float, default=1e-7, help="relative error tolerance (default 1e-7)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_gradcheck)

    p = sub.add_parser("calc", help="the BPTT calculator: parameters, memory, FLOPs, risks, truncation, time")
    p.add_argument("--input", type=_positive, default=None, metavar="I")
    p.add_argument("--hidden", type=_positive, default=None, metavar="H")
    p.add_argument("--output", type=_positive, default=None, metavar="P")
    p.add_argument("--seq-len", type=_positive, default=100, metavar="T")
    p.add_argument("--batch", type=_positive, default=32, metavar="B")
    p.add_argument("--truncate", type=_positive, default=None, metavar="K")
    _cell_args(p)
    p.add_argument("--layers", type=_positive, default=1, metavar="L")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--radius", type=float, default=None, help="rescale W_hh to this spectral radius")
    p.add_argument("--init", default="pytorch")
    p.add_argument(
        "--weights", default=None, metavar="CHECKPOINT", help="a model file or training checkpoint"
    )
    p.add_argument("--samples", type=_positive, default=10_000, metavar="N", help="sequences per epoch")
    p.add_argument("--loss", default="mse", choices=["mse", "cross_entropy"])
    p.add_argument("--measure", action="store_true", help="also run forward+BPTT and measure memory and time")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_calc)

    p = sub.add_parser("train", help="train a model on a task, with checkpoints and a plot")
    p.add_argument("--task", default="adding", choices=["adding", "copy", "sine", "text"])
    p.add_argument(
        "--text", default=None, metavar="PATH", help="UTF-8 text for --task text (default: stdlib docstrings)"
    )
    _cell_args(p)
    p.add_argument("--hidden", type=_positive, default=64, metavar="H")
    p.add_argument("--layers", type=_positive, default=1, metavar="L")
    p.add_argument("--init", default="pytorch")
    p.add_argument("--radius", type=float, default=None)
    p.add_argument("--seq-len", type=_positive, default=50, metavar="T")
    p.add_argument(
        "--curriculum", type=_positive, default=None, metavar="T0", help="grow T from T0 over half the steps"
    )
    p.add_argument("--batch", type=_positive, default=32, metavar="B")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument(
        "--optimizer", default="adam", choices=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]
    )
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--truncate", type=_positive, default=None, metavar="K1", help="truncated BPTT block length"
    )
    p.add_argument(
        "--truncate2", type=_positive, default=None, metavar="K2", help="truncated BPTT reach (default K1)"
    )
    p.add_argument("--clip", type=float, default=None, help="clip gradients to this global norm")
    p.add_argument("--checkpoint-every", type=_positive, default=None, metavar="N")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--out", default="run", help="output folder (default ./run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)

    for name, func, helptext in [
        ("trace", cmd_trace, "gradient-flow pictures and numbers for a random model"),
        ("step", cmd_step, "print the backward pass one time step per line"),
    ]:
        p = sub.add_parser(name, help=helptext)
        _cell_args(p)
        p.add_argument("--hidden", type=_positive, default=64 if name == "trace" else 8, metavar="H")
        p.add_argument("--input", type=_positive, default=4, metavar="I")
        p.add_argument("--output", type=_positive, default=None if name == "trace" else 1, metavar="P")
        p.add_argument("--seq-len", type=_positive, default=200 if name == "trace" else 10, metavar="T")
        p.add_argument("--batch", type=_positive, default=4 if name == "trace" else 1, metavar="B")
        p.add_argument("--init", default="normal", help="initializer (default normal: W_hh ~ N(0, 1/H))")
        p.add_argument("--radius", type=float, default=1.0, help="spectral radius of W_hh (default 1.0)")
        p.add_argument("--seed", type=int, default=0)
        if name == "trace":
            p.add_argument("--max-lag", type=_positive, default=None, metavar="K")
            p.add_argument("--out", default="trace", help="output folder (default ./trace)")
            p.add_argument("--json", action="store_true")
        else:
            p.add_argument("--no-pause", action="store_true", help="do not wait for Enter between steps")
        p.set_defaults(func=func)

    p = sub.add_parser("experiments", help="run the experiments (all, or those named) and write the report")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--quick", action="store_true", help="the small, fast version of each")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output folder (default experiments/out)")
    p.set_defaults(func=cmd_experiments)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, TypeError) as e:
        print(f"minirnn {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
