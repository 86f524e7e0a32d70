"""``ukr-bench agreement``: every backend's value and gradient against float64 NumPy."""

from __future__ import annotations

import argparse

from backends import REGISTRY
from ukr_bench.cli.options import Subparsers, check_n
from ukr_bench.data import DATASETS, problem_inputs
from ukr_bench.extras import require
from ukr_bench.interface import available_backends, value_and_grad
from ukr_bench.problem import check_lam, check_sigma, relative_error
from ukr_bench.validation import DTYPES, check_int, check_nonnegative_float


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "agreement",
        help="print each backend's float32/float64 error against float64 NumPy",
        description="On the benchmark's problem (ukr_bench.data.problem_inputs): the data set's "
        "first N points and latent points Z ~ N(0, I), seeded.",
    )
    p.add_argument("--n", type=int, default=1000, help="number of samples N (default: 1000)")
    p.add_argument(
        "--data", choices=sorted(DATASETS), default="saddle", help="data set (default: saddle)"
    )
    p.add_argument(
        "--noise", type=float, default=0.0, help="noise std added to the data (default: 0)"
    )
    p.add_argument("--latent-dim", type=int, default=2, help="L (default: 2)")
    p.add_argument("--sigma", type=float, default=0.5, help="kernel bandwidth (default: 0.5)")
    p.add_argument(
        "--lam", type=float, default=0.0, help="weight of the prior lam ||z||^2 (default: 0)"
    )
    p.add_argument("--no-loo", action="store_true", help="turn leave-one-out off")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and of Z (default: 0)")
    p.add_argument(
        "--backends", nargs="+", choices=sorted(REGISTRY), help="default: every installed one"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Value and gradient of every backend and dtype against float64 NumPy, on one problem."""
    require("rich", "bench", "ukr-bench agreement (its table)")
    from rich.console import Console
    from rich.table import Table

    loo = not args.no_loo
    if loo:
        check_n(args.n, 2, "leave-one-out needs another sample to predict from")
    check_n(args.n, 1, "the objective needs a sample")
    check_int("--latent-dim", args.latent_dim, 1)
    check_nonnegative_float("--noise", args.noise)
    check_int("--seed", args.seed, 0)
    for dtype in DTYPES:  # every backend runs in both: the narrower float32 range decides
        check_sigma(args.sigma, dtype, name="--sigma")
        check_lam(args.lam, dtype, name="--lam")
    Z, X = problem_inputs(args.data, args.n, args.latent_dim, noise=args.noise, seed=args.seed)
    kw = {"sigma": args.sigma, "lam": args.lam, "loo": loo}
    ref_v, ref_g = value_and_grad(Z, X, backend="numpy", dtype="float64", **kw)
    table = Table(
        "backend",
        "dtype",
        "E(Z)",
        "value rel. error",
        "gradient rel. error",
        title=f"Agreement with float64 NumPy: {args.data}, N={args.n}, L={args.latent_dim}, "
        f"sigma={args.sigma}, lam={args.lam}, loo={loo}",
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
