"""``ukr-bench report``: report.md and report.html, with figures, from results directories."""

from __future__ import annotations

import argparse
from pathlib import Path

from ukr_bench.cli.options import Subparsers


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "report",
        help="write report.md/report.html with figures from one or more results directories",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument(
        "--out", help="where to write (default: the run itself, or comparison/ beside the first)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
