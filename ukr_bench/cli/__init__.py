"""The ``ukr-bench`` command line: one module per command, each adding its parser and its run.

Each command checks its options before it starts, and a bad one ends in a one-line error that
names the option as typed (``--sigma``, ``--latent-dim``), exit status 2: the functions behind
the commands name their own parameters (``sigma``, ``n_samples``), which the user never typed.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from ukr_bench.bench.rundir import DirtyTreeError, RunLockedError
from ukr_bench.cli import agreement, bench, demo, report, show_backends
from ukr_bench.interface import DeviceUnavailableError
from ukr_bench.schema import ResultsFileWarning

#: The commands, in the order ``--help`` lists them.
COMMANDS = (show_backends, agreement, bench, report, demo)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each sets ``func``, the function that runs it."""
    parser = argparse.ArgumentParser(
        prog="ukr-bench", description="Unsupervised Kernel Regression across array frameworks."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


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
    """Run ``ukr-bench ARGV``; its exit status (2: a bad option or input, said in one line)."""
    args = build_parser().parse_args(argv)
    args.argv_rest = list(sys.argv[2:] if argv is None else argv[1:])
    try:
        with _one_line_warnings(args.command):
            return int(args.func(args))
    except (
        ValueError, TypeError, ImportError, OSError, DeviceUnavailableError, RunLockedError,
        DirtyTreeError,
    ) as exc:  # fmt: skip
        print(f"ukr-bench {args.command}: error: {exc}", file=sys.stderr)
        return 2
