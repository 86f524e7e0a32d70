"""``ukr-bench bench``: the sweep (backend x device x dtype x N x D x L), resumable, and its report."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from ukr_bench.bench.config import SweepConfig
from ukr_bench.bench.presets import PRESETS, preset
from ukr_bench.cli.options import Subparsers, add_sweep_options, flag, show, sweep_fields
from ukr_bench.extras import require_extra
from ukr_bench.problem import check_lam, check_sigma
from ukr_bench.validation import check_dtype


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark speed, memory and precision over N (writes a results directory)",
        description="Sweep backend x layout x gradient x device x dtype x N x D x L; rows are "
        "saved as each configuration finishes, and --resume finishes an interrupted run.",
    )
    add_sweep_options(p)
    presets = p.add_mutually_exclusive_group()
    presets.add_argument(
        "--quick", dest="preset", action="store_const", const="quick",
        help="smoke test: " + ", ".join(f"{flag(k)} {show(v)}" for k, v in PRESETS["quick"].items())
        + " (options given override it)",
    )  # fmt: skip
    presets.add_argument(
        "--preset", dest="preset", choices=sorted(PRESETS),
        help="a named set of options (options given override it): "
        + "; ".join(f"{name}: " + ", ".join(f"{flag(k)} {show(v)}" for k, v in opts.items())
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_extra("bench", "ukr-bench bench")  # before a sweep starts, not minutes into it
    from ukr_bench.bench import resume_sweep, run_sweep
    from ukr_bench.bench.rundir import default_run_dir
    from ukr_bench.report import write_report

    command = ["ukr-bench", "bench", *args.argv_rest]
    current: Path | None = Path(args.resume) if args.resume else None
    chosen = {
        name: getattr(args, name) for name in sweep_fields() if getattr(args, name) is not None
    }
    try:
        if args.resume:
            _check_resume(args, chosen)
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


def _check_resume(args: argparse.Namespace, chosen: dict[str, Any]) -> None:
    """``--resume`` repeats the stored configuration: refuse any option that would change it."""
    extra = {"--quick/--preset": args.preset, "--out": args.out, "--reference": args.reference,
             "--allow-dirty": args.allow_dirty,
             "--repeat-runs": args.repeat_runs != 1}  # fmt: skip
    if chosen or any(extra.values()):
        flags = [flag(name) for name in chosen] + [f for f, v in extra.items() if v]
        msg = (
            f"--resume repeats the run's own stored configuration; it cannot be combined "
            f"with {', '.join(flags)}: drop them, or start a new run with --out"
        )
        raise ValueError(msg)


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
    except (ValueError, TypeError) as exc:
        text = str(exc)
        field = re.match(r"\w+", text)
        if field is None or field.group() not in sweep_fields():
            raise
        raise type(exc)(flag(field.group()) + text[field.end() :]) from exc
    return cfg


def _check_gpus(devices: list[str]) -> None:
    """Fail before starting when a cuda device is asked for on a machine with no NVIDIA GPU."""
    from ukr_bench.bench.machine import gpus

    if any(d.startswith("cuda") for d in devices) and not gpus():
        msg = (
            f"devices: {devices} asks for cuda, but nvidia-smi lists no NVIDIA GPU on this machine"
        )
        raise ValueError(msg)
