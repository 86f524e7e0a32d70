"""The ``ukr-bench`` command line.

Each command checks its options before it starts, and a bad one ends in a one-line error that
names the option as typed (``--sigma``, ``--latent-dim``), exit status 2: the functions behind
the commands name their own parameters (``sigma``, ``n_samples``), which the user never typed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from backends import REGISTRY
from ukr_bench.bench.config import PRESETS, SweepConfig, preset
from ukr_bench.bench.sweep import DirtyTreeError, RunLockedError
from ukr_bench.data import DATASETS, problem_inputs
from ukr_bench.interface import DeviceUnavailableError, available_backends, value_and_grad
from ukr_bench.problem import (
    DTYPES,
    check_dtype,
    check_int,
    check_lam,
    check_nonnegative_float,
    check_positive_float,
    check_sigma,
    relative_error,
)
from ukr_bench.schema import ResultsFileWarning


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

    loo = not args.no_loo
    if loo:
        _check_n(args.n, 2, "leave-one-out needs another sample to predict from")
    _check_n(args.n, 1, "the objective needs a sample")
    check_int("--latent-dim", args.latent_dim, 1)
    check_nonnegative_float("--noise", args.noise)
    check_int("--seed", args.seed, 0)
    for dtype in DTYPES:  # every backend runs in both: the narrower float32 range decides
        check_sigma(args.sigma, dtype, name="--sigma")
        check_lam(args.lam, dtype, name="--lam")
    Z, X = problem_inputs(args.data, args.n, args.latent_dim, noise=args.noise, seed=args.seed)
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
    from ukr_bench.bench import resume_sweep, run_sweep
    from ukr_bench.bench.sweep import default_run_dir
    from ukr_bench.report import write_report

    command = ["ukr-bench", "bench", *args.argv_rest]
    current: Path | None = Path(args.resume) if args.resume else None
    chosen = {
        name: getattr(args, name) for name in _sweep_fields() if getattr(args, name) is not None
    }
    try:
        if args.resume:
            extra = {"--quick/--preset": args.preset, "--out": args.out, "--reference": args.reference,
                     "--allow-dirty": args.allow_dirty,
                     "--repeat-runs": args.repeat_runs != 1}  # fmt: skip
            if chosen or any(extra.values()):
                flags = [_flag(name) for name in chosen] + [f for f, v in extra.items() if v]
                msg = (
                    f"--resume repeats the run's own stored configuration; it cannot be combined "
                    f"with {', '.join(flags)}: drop them, or start a new run with --out"
                )
                raise ValueError(msg)
            runs = [resume_sweep(args.resume, progress=not args.no_progress, command=command)]
        else:
            if args.repeat_runs < 1:
                msg = f"--repeat-runs must be an integer >= 1, got {args.repeat_runs}"
                raise ValueError(msg)
            cfg = _sweep_config(args.preset, chosen)
            _check_gpus(cfg.devices)
            base = Path(args.out) if args.out else default_run_dir(cfg)
            # K runs, each in fresh worker processes, one after the other on the same machine.
            targets = [base] if args.repeat_runs == 1 else [
                base / f"run{k + 1}" for k in range(args.repeat_runs)
            ]  # fmt: skip
            runs = []
            for target in targets:
                current = target
                runs.append(run_sweep(
                    cfg, target, progress=not args.no_progress, command=command,
                    reference=args.reference, allow_dirty=args.allow_dirty,
                ))  # fmt: skip
    except KeyboardInterrupt:
        where = current or "<the run directory>"
        print(f"\ninterrupted: finished rows are saved; finish with ukr-bench bench --resume {where}",
              file=sys.stderr)  # fmt: skip
        return 130
    for run_dir in runs:
        print(f"results: {run_dir}")
        if not args.no_report:
            print(f"report: {write_report([run_dir])}")
    if len(runs) > 1 and not args.no_report:
        print(f"run-to-run comparison: {write_report(runs, Path(runs[0]).parent / 'comparison')}")
    return 0


def _sweep_config(name: str | None, chosen: dict[str, Any]) -> SweepConfig:
    """The sweep's configuration; its errors name the option (``--n``), not the field (``ns``).

    :class:`ukr_bench.bench.config.SweepConfig` starts each message with the field's name. Its
    sigma and lam are checked in float64 there; here also in each of its dtypes (float32's
    range is narrower), before a worker starts.
    """
    try:
        cfg = preset(name, **chosen)
        for dtype in map(check_dtype, cfg.dtypes):
            check_sigma(cfg.sigma, dtype, name="sigma")
            check_lam(cfg.lam, dtype, name="lam")
    except ValueError as exc:
        text = str(exc)
        field = re.match(r"\w+", text)
        if field is None or field.group() not in _sweep_fields():
            raise
        raise ValueError(_flag(field.group()) + text[field.end() :]) from exc
    return cfg


def _cmd_report(args: argparse.Namespace) -> int:
    from ukr_bench.report import write_report

    for run_dir in map(Path, args.run_dirs):
        if not run_dir.exists():
            msg = f"RUN_DIR {run_dir} does not exist: give a results directory of ukr-bench bench"
            raise ValueError(msg)
        if not run_dir.is_dir():
            msg = (
                f"RUN_DIR {run_dir} is a file, not a results directory: give the directory "
                f"that ukr-bench bench wrote (with meta.json and results.jsonl)"
            )
            raise ValueError(msg)
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        msg = f"--out {args.out} is a file: the report needs a directory to write into"
        raise ValueError(msg)
    print(f"report: {write_report(args.run_dirs, args.out)}")
    return 0


def _check_gpus(devices: list[str]) -> None:
    """Fail before starting when a cuda device is asked for on a machine with no NVIDIA GPU."""
    from ukr_bench.bench.machine import gpus

    if any(d.startswith("cuda") for d in devices) and not gpus():
        msg = (
            f"devices: {devices} asks for cuda, but nvidia-smi lists no NVIDIA GPU on this machine"
        )
        raise ValueError(msg)


def _check_n(n: int, minimum: int, why: str) -> None:
    if n < minimum:
        msg = f"--n must be an integer >= {minimum} ({why}), got {n}"
        raise ValueError(msg)


def _cmd_demo(args: argparse.Namespace) -> int:
    """Fit the noisy saddle on each backend, print fit times and errors, draw the figures."""
    # Options of the other mode are refused, not ignored: `demo --eta 0` ran the whole saddle
    # demo and overwrote its figures. They default to None so that "given" can be told.
    other = _TUTORIAL_ONLY if not args.tutorial else _DEMO_ONLY
    given = [flag for flag, dest in other.items() if _given(getattr(args, dest))]
    if given:
        mode = "--tutorial only" if not args.tutorial else "the saddle demo, not --tutorial"
        msg = f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to {mode}"
        raise ValueError(msg)
    if args.tutorial:
        from ukr_bench.tutorial import EPOCHS, ETA_TUTORIAL, run_tutorial

        epochs = EPOCHS if args.epochs is None else check_int("--epochs", args.epochs, 0)
        eta = ETA_TUTORIAL if args.eta is None else check_positive_float("--eta", args.eta)
        run_tutorial(
            args.out, backends=args.backends, epochs=epochs, eta_tutorial=eta, gif=not args.no_gif
        )
        return 0
    from ukr_bench.demo import MIN_SAMPLES, run_demo

    n = DEMO_N if args.n is None else args.n
    _check_n(n, MIN_SAMPLES, "the fits of L = 2 latent dimensions with leave-one-out need 3")
    run_demo(args.out, backends=args.backends, n_samples=n, digits=not args.no_digits)
    return 0


def _given(value: object) -> bool:
    """Whether an option was given: argparse leaves None (values) or False (switches).

    By identity: ``--eta 0`` is given, and ``0.0 == False``.
    """
    return value is not None and value is not False


#: ``demo`` without ``--tutorial``: N of the saddle.
DEMO_N = 500
#: Options of one ``demo`` mode (flag: argparse dest), refused in the other.
_TUTORIAL_ONLY = {"--epochs": "epochs", "--eta": "eta", "--no-gif": "no_gif"}
_DEMO_ONLY = {"--n": "n", "--no-digits": "no_digits"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ukr-bench", description="Unsupervised Kernel Regression across array frameworks."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("backends", help="list backends and whether they are installed")
    p.set_defaults(func=_cmd_backends)

    p = sub.add_parser(
        "agreement",
        help="print each backend's float32/float64 error against float64 NumPy",
        description="On the benchmark's problem (ukr_bench.data.problem_inputs): the data set's "
        "first N points and latent points Z ~ N(0, I), seeded.",
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
        "finishes, and --resume finishes an interrupted run.",
    )
    _add_sweep_options(p)
    presets = p.add_mutually_exclusive_group()
    presets.add_argument(
        "--quick", dest="preset", action="store_const", const="quick",
        help="smoke test: " + ", ".join(f"{_flag(k)} {_show(v)}" for k, v in PRESETS["quick"].items())
        + " (options given override it)",
    )  # fmt: skip
    presets.add_argument(
        "--preset", dest="preset", choices=sorted(PRESETS),
        help="a named set of options (options given override it): "
        + "; ".join(f"{name}: " + ", ".join(f"{_flag(k)} {_show(v)}" for k, v in opts.items())
                    for name, opts in PRESETS.items()),
    )  # fmt: skip
    p.add_argument("--out", help="results directory (default: results/<UTC time>_<host>_<devices>)")
    p.add_argument(
        "--resume", metavar="RUN_DIR", help="finish an interrupted run, as it was configured"
    )
    p.add_argument(
        "--reference", action="store_true",
        help="a run to commit as a reference: refused if the checkout has uncommitted changes",
    )  # fmt: skip
    p.add_argument(
        "--allow-dirty", action="store_true",
        help="with --reference: run anyway on uncommitted changes (the report says so)",
    )  # fmt: skip
    p.add_argument(
        "--repeat-runs", type=int, default=1, metavar="K",
        help="run the whole sweep K times (OUT/run1 ... OUT/runK, fresh processes each) and "
        "compare them: winners only where all runs agree (default: 1)",
    )  # fmt: skip
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
    p.add_argument("--n", type=int, help=f"saddle samples N (default {DEMO_N})")
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
    p.add_argument("--epochs", type=int, help="--tutorial: epochs (default 300)")
    p.add_argument(
        "--eta",
        type=float,
        help="--tutorial: step on the tutorial's sum E_tut = N x E (default 1.0, i.e. N on E)",
    )
    p.add_argument("--no-gif", action="store_true", help="--tutorial: skip the animated GIF")
    p.set_defaults(func=_cmd_demo)
    return parser


def _sweep_fields() -> dict[str, Any]:
    from ukr_bench.bench.config import SweepConfig

    return {f.name: f for f in dataclasses.fields(SweepConfig)}


def _flag(name: str) -> str:
    return _sweep_fields()[name].metadata.get("flag", "--" + name.replace("_", "-"))


def _show(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _add_sweep_options(p: argparse.ArgumentParser) -> None:
    """One option per SweepConfig field: its flag, type and help (with the default) from the field."""
    from ukr_bench.bench.config import SweepConfig

    defaults = SweepConfig(backends=["numpy"])  # the defaults, without asking what is installed
    for name, f in _sweep_fields().items():
        default = getattr(defaults, name)
        help_text = f.metadata["help"]
        if name != "backends" and "default" not in help_text:
            help_text += f" (default: {_show(default)})"
        kw: dict[str, Any] = {"dest": name, "default": None, "help": help_text}
        if isinstance(default, bool):
            kw["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, list):
            kw |= {"nargs": "+", "type": type(default[0]) if default else str}
        else:
            kw["type"] = type(default)
        p.add_argument(_flag(name), **kw)


@contextlib.contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """Within it, a :class:`ResultsFileWarning` prints as one line, ``ukr-bench CMD: warning:``,
    instead of Python's two (the warning's source file and line, then the source text)."""
    shown = warnings.showwarning

    def show(message: Any, category: type[Warning], *rest: Any, **kw: Any) -> None:
        if issubclass(category, ResultsFileWarning):
            print(f"ukr-bench {command}: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, *rest, **kw)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv_rest = list(sys.argv[2:] if argv is None else argv[1:])
    try:
        with _one_line_warnings(args.command):
            return args.func(args)
    except (
        ValueError, ImportError, OSError, DeviceUnavailableError, RunLockedError, DirtyTreeError
    ) as exc:  # fmt: skip
        print(f"ukr-bench {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
