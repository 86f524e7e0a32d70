"""The ``ukr-bench`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from ukr_bench.data import DATASETS, make_dataset
from ukr_bench.interface import REGISTRY, DeviceUnavailableError, available_backends, value_and_grad
from ukr_bench.problem import DTYPES, relative_error


def _cmd_backends(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table("backend", "installed", "install with")
    installed = set(available_backends())
    for name, spec in sorted(REGISTRY.items()):
        table.add_row(name, "yes" if name in installed else "no", escape(spec.install))
    Console().print(table)
    return 0


def _cmd_agreement(args: argparse.Namespace) -> int:
    """Value and gradient of every backend and dtype against float64 NumPy, on one problem."""
    from rich.console import Console
    from rich.table import Table

    X, _ = make_dataset(args.data, args.n, noise=args.noise, random_state=args.seed)
    # Latent points spread over about one bandwidth: the regime UKR trains in.
    Z = args.sigma * np.random.default_rng(args.seed + 1).normal(size=(args.n, args.latent_dim))
    kw = {"sigma": args.sigma, "lam": args.lam, "loo": not args.no_loo}
    ref_v, ref_g = value_and_grad(Z, X, backend="numpy", dtype="float64", **kw)
    table = Table(
        "backend",
        "dtype",
        "E(Z)",
        "value rel. error",
        "gradient rel. error",
        title=f"Agreement with float64 NumPy: {args.data}, N={args.n}, L={args.latent_dim}, "
        f"sigma={args.sigma}, lam={args.lam}, loo={kw['loo']}",
    )
    for backend in args.backends or available_backends():
        for dtype in DTYPES:
            v, g = value_and_grad(Z, X, backend=backend, dtype=dtype, **kw)
            table.add_row(
                backend,
                dtype,
                f"{v:.10g}",
                f"{relative_error(v, ref_v):.2e}",
                f"{relative_error(g, ref_g):.2e}",
            )
    Console().print(table)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ukr_bench.harness import SweepConfig, run_sweep

    command = ["ukr-bench", *sys.argv[1:]] if args.argv is None else ["ukr-bench", *args.argv]
    if args.resume:
        run_dir = run_sweep(
            out=args.resume, resume=True, progress=not args.no_progress, command=command
        )
    else:
        chosen = {
            "backends": args.backends,
            "dtypes": args.dtypes,
            "devices": args.devices,
            "ns": args.n,
            "data": args.data,
            "noise": args.noise,
            "latent_dim": args.latent_dim,
            "sigma": args.sigma,
            "lam": args.lam,
            "loo": not args.no_loo,
            "seed": args.seed,
            "min_rounds": args.repeats,
            "min_time": args.min_time,
            "warmup": args.warmup,
            "timeout": args.timeout,
            "threads": args.threads,
        }
        chosen = {k: v for k, v in chosen.items() if v is not None}
        cfg = SweepConfig.quick(**chosen) if args.quick else SweepConfig(**chosen)
        _check_gpus(cfg.devices)
        run_dir = run_sweep(cfg, args.out, progress=not args.no_progress, command=command)
    print(f"results: {run_dir}")
    if not args.no_report:
        from ukr_bench.report import write_report

        print(f"report: {write_report([Path(run_dir)])}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from ukr_bench.report import write_report

    print(f"report: {write_report(args.run_dirs, args.out)}")
    return 0


def _check_gpus(devices: list[str]) -> None:
    """Fail before starting when a cuda device is asked for on a machine with no NVIDIA GPU."""
    from ukr_bench.harness import _gpus

    if any(d.startswith("cuda") for d in devices) and not _gpus():
        msg = (
            f"devices: {devices} asks for cuda, but nvidia-smi lists no NVIDIA GPU on this machine"
        )
        raise ValueError(msg)


def _cmd_demo(args: argparse.Namespace) -> int:
    """Fit the noisy saddle on each backend, print fit times and errors, draw the figures."""
    if args.tutorial:
        from ukr_bench.tutorial import run_tutorial

        run_tutorial(
            args.out,
            backends=args.backends,
            epochs=args.epochs,
            eta_tutorial=args.eta,
            gif=not args.no_gif,
        )
        return 0
    from ukr_bench.demo import run_demo

    run_demo(args.out, backends=args.backends, n_samples=args.n, digits=not args.no_digits)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ukr-bench", description="Unsupervised Kernel Regression across array frameworks."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("backends", help="list backends and whether they are installed")
    p.set_defaults(func=_cmd_backends)

    p = sub.add_parser(
        "agreement", help="print each backend's float32/float64 error against float64 NumPy"
    )
    p.add_argument("--n", type=int, default=1000, help="number of samples N (default 1000)")
    p.add_argument("--data", choices=sorted(DATASETS), default="saddle")
    p.add_argument("--noise", type=float, default=0.0)
    p.add_argument("--latent-dim", type=int, default=2, help="L (default 2)")
    p.add_argument("--sigma", type=float, default=0.5)
    p.add_argument("--lam", type=float, default=0.0)
    p.add_argument("--no-loo", action="store_true", help="turn leave-one-out off")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backends", nargs="+", choices=sorted(REGISTRY))
    p.set_defaults(func=_cmd_agreement)

    p = sub.add_parser(
        "bench",
        help="benchmark speed, memory and precision over N (writes a results directory)",
        description="Sweep backend x device x dtype x N; rows are saved as each configuration "
        "finishes. Defaults: every installed backend, float32 and float64, cpu, "
        "N = 125 ... 8000, the saddle data set, L = 2, sigma = 0.5, lam = 0, loo.",
    )
    p.add_argument("--backends", nargs="+", help="default: every installed backend")
    p.add_argument("--dtypes", nargs="+", help="float32 and/or float64 (default both)")
    p.add_argument("--devices", nargs="+", help="cpu, cuda, cuda:<i> (default cpu)")
    p.add_argument("--n", nargs="+", type=int, help="the N grid (default 125 250 ... 8000)")
    p.add_argument("--data", help=f"data set: {', '.join(sorted(DATASETS))} (default saddle)")
    p.add_argument("--noise", type=float)
    p.add_argument("--latent-dim", type=int, help="L (default 2)")
    p.add_argument("--sigma", type=float, help="kernel bandwidth (default 0.5)")
    p.add_argument("--lam", type=float, help="prior weight (default 0)")
    p.add_argument("--no-loo", action="store_true", help="turn leave-one-out off")
    p.add_argument("--seed", type=int)
    p.add_argument("--repeats", type=int, help="minimum timed rounds per function (default 5)")
    p.add_argument("--min-time", type=float, help="seconds of timing per function (default 1)")
    p.add_argument("--warmup", type=int, help="untimed calls before timing (default 2)")
    p.add_argument("--timeout", type=float, help="seconds per configuration (default 600)")
    p.add_argument("--threads", type=int, help="CPU threads for every backend (default: all)")
    p.add_argument("--quick", action="store_true", help="smoke test: N = 64 128 256, few rounds")
    p.add_argument("--out", help="results directory (default results/<date>_<host>_<devices>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted run")
    p.add_argument("--no-report", action="store_true", help="do not write the report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser(
        "report",
        help="write report.md/report.html with figures from one or more results directories",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument(
        "--out", help="where to write (default: the run itself, or comparison/ beside the first)"
    )
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("demo", help="fit UKR on the noisy saddle and the digits, draw figures")
    p.add_argument("--n", type=int, default=500, help="saddle samples N (default 500)")
    p.add_argument("--out", default="results/figures", help="figure folder")
    p.add_argument("--backends", nargs="+", choices=sorted(REGISTRY))
    p.add_argument("--no-digits", action="store_true", help="skip the digits figure")
    p.add_argument(
        "--tutorial",
        action="store_true",
        help="instead: the lab tutorial's setting (N = 200 noiseless saddle points, sigma = 1, "
        "no leave-one-out, plain gradient descent from 1e-5-scale latents), every backend in "
        "float32 and float64",
    )
    p.add_argument("--epochs", type=int, default=300, help="--tutorial: epochs (default 300)")
    p.add_argument(
        "--eta",
        type=float,
        default=1.0,
        help="--tutorial: step on the tutorial's sum E_tut = N x E (default 1.0, i.e. N on E)",
    )
    p.add_argument("--no-gif", action="store_true", help="--tutorial: skip the animated GIF")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = None if argv is None else list(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, ImportError, OSError, DeviceUnavailableError) as exc:
        print(f"ukr-bench {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
