"""``ukr-bench demo``: fit UKR on the noisy saddle and the digits, or the tutorial's setting."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

from backends import REGISTRY
from ukr_bench.cli.options import Subparsers, check_n, given
from ukr_bench.validation import check_int, check_positive_float

#: ``demo`` without ``--tutorial``: N of the saddle.
DEMO_N = 500
#: Options of one ``demo`` mode (flag: argparse dest), refused in the other.
_TUTORIAL_ONLY = {"--epochs": "epochs", "--eta": "eta", "--no-gif": "no_gif"}
_DEMO_ONLY = {"--n": "n", "--no-digits": "no_digits"}


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="fit UKR on the noisy saddle and the digits, draw figures")
    p.add_argument("--n", type=int, help=f"saddle samples N (default {DEMO_N})")
    p.add_argument(
        "--out",
        help="figure folder (default: a new ukr-bench-demo-<UTC time> in the current directory, "
        "so that a run inside a clone never overwrites the committed figures)",
    )
    p.add_argument("--backends", nargs="+", choices=sorted(REGISTRY))
    p.add_argument("--no-digits", action="store_true", help="skip the digits figure")
    p.add_argument(
        "--tutorial",
        action="store_true",
        help="instead: the lab tutorial's setting (N = 200 noiseless saddle points, sigma = 1, "
        "no leave-one-out, plain gradient descent from 1e-5-scale latents), every backend in "
        "float32 and float64",
    )
    p.add_argument("--epochs", type=int, help="--tutorial: epochs (default 300)")
    p.add_argument(
        "--eta",
        type=float,
        help="--tutorial: step on the tutorial's sum E_tut = N x E (default 1.0, i.e. N on E)",
    )
    p.add_argument("--no-gif", action="store_true", help="--tutorial: skip the animated GIF")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fit the noisy saddle on each backend, print fit times and errors, draw the figures."""
    # Options of the other mode are refused, not ignored: `demo --eta 0` ran the whole saddle
    # demo and overwrote its figures. They default to None so that "given" can be told.
    other = _TUTORIAL_ONLY if not args.tutorial else _DEMO_ONLY
    chosen = [option for option, dest in other.items() if given(getattr(args, dest))]
    if chosen:
        mode = "--tutorial only" if not args.tutorial else "the saddle demo, not --tutorial"
        msg = f"{', '.join(chosen)} {'applies' if len(chosen) == 1 else 'apply'} to {mode}"
        raise ValueError(msg)
    out = Path(args.out) if args.out else _fresh_dir()
    print(f"figures: {out}")
    if args.tutorial:
        from ukr_bench.tutorial import EPOCHS, ETA_TUTORIAL, run_tutorial

        epochs = EPOCHS if args.epochs is None else check_int("--epochs", args.epochs, 0)
        eta = ETA_TUTORIAL if args.eta is None else check_positive_float("--eta", args.eta)
        run_tutorial(
            out, backends=args.backends, epochs=epochs, eta_tutorial=eta, gif=not args.no_gif
        )
        return 0
    from ukr_bench.demo import MIN_SAMPLES, run_demo

    n = DEMO_N if args.n is None else args.n
    check_n(n, MIN_SAMPLES, "the fits of L = 2 latent dimensions with leave-one-out need 3")
    run_demo(out, backends=args.backends, n_samples=n, digits=not args.no_digits)
    return 0


def _fresh_dir() -> Path:
    """``ukr-bench-demo-<UTC time>``: a folder no earlier demo wrote."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path, k = Path(f"ukr-bench-demo-{stamp}"), 1
    while path.exists():
        k += 1
        path = Path(f"ukr-bench-demo-{stamp}-{k}")
    return path
