"""``ukr-bench backends``: which backends are installed, and how to install the others."""

from __future__ import annotations

import argparse

from backends import REGISTRY
from ukr_bench.cli.options import Subparsers
from ukr_bench.extras import require
from ukr_bench.interface import available_backends


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("backends", help="list backends and whether they are installed")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require("rich", "bench", "ukr-bench backends (its table)")
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table("backend", "installed", "install with")
    installed = set(available_backends())
    for name, spec in sorted(REGISTRY.items()):
        table.add_row(name, "yes" if name in installed else "no", escape(spec.install))
    Console().print(table)
    return 0
