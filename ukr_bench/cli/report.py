"""``ukr-bench report``: report.md and report.html, with figures, from results directories;
with ``--readme``, the README's headline table instead."""

from __future__ import annotations

import argparse
from pathlib import Path

from ukr_bench.cli.options import Subparsers


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "report",
        help="write report.md/report.html with figures from one or more results directories",
    )
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR")
    p.add_argument(
        "--out", help="where to write (default: the run itself, or comparison/ beside the first)"
    )
    p.add_argument(
        "--readme", metavar="FILE",
        help="instead of a report, regenerate FILE's headline table (between its markers) from "
        "the RUN_DIRs, or from the runs its marker names when none is given",
    )  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ukr_bench.report import write_report

    if args.readme is not None:
        return _readme(args)
    if not args.run_dirs:
        msg = "RUN_DIR: give at least one results directory (or --readme FILE)"
        raise ValueError(msg)
    _check_run_dirs(args.run_dirs)
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        msg = f"--out {args.out} is a file: the report needs a directory to write into"
        raise ValueError(msg)
    print(f"report: {write_report(args.run_dirs, args.out)}")
    return 0


def _readme(args: argparse.Namespace) -> int:
    from ukr_bench.report.headline import update_readme

    if args.out is not None:
        msg = "--out does not apply with --readme: the table is written into the README itself"
        raise ValueError(msg)
    if not Path(args.readme).is_file():
        msg = f"--readme {args.readme} is not a file"
        raise ValueError(msg)
    _check_run_dirs(args.run_dirs)
    changed = update_readme(args.readme, args.run_dirs or None)
    print(f"{args.readme}: headline {'updated' if changed else 'unchanged'}")
    return 0


def _check_run_dirs(run_dirs: list[str]) -> None:
    """Refuse a RUN_DIR that is missing or a file, naming it."""
    for run_dir in map(Path, run_dirs):
        if not run_dir.exists():
            msg = f"RUN_DIR {run_dir} does not exist: give a results directory of ukr-bench bench"
            raise ValueError(msg)
        if not run_dir.is_dir():
            msg = (
                f"RUN_DIR {run_dir} is a file, not a results directory: give the directory "
                f"that ukr-bench bench wrote (with meta.json and results.jsonl)"
            )
            raise ValueError(msg)
