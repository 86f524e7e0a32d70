"""What several commands share: option checks that name the flag, and the sweep's options.

The functions behind the commands name their own parameters (``sigma``, ``n_samples``), which
the user never typed; these checks and :func:`flag` speak in the options as typed.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeAlias

from ukr_bench.bench.config import SweepConfig

#: The ``add_subparsers`` object each command module adds its parser to.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def check_n(n: int, minimum: int, why: str) -> None:
    """Refuse ``--n`` below ``minimum``, saying why that many samples are needed."""
    if n < minimum:
        msg = f"--n must be an integer >= {minimum} ({why}), got {n}"
        raise ValueError(msg)


def given(value: object) -> bool:
    """Whether an option was given: argparse leaves None (values) or False (switches).

    By identity: ``--eta 0`` is given, and ``0.0 == False``.
    """
    return value is not None and value is not False


def sweep_fields() -> dict[str, dataclasses.Field[Any]]:
    """The fields of :class:`SweepConfig`, by name: one ``bench`` option each."""
    return {f.name: f for f in dataclasses.fields(SweepConfig)}


def flag(name: str) -> str:
    """The option a :class:`SweepConfig` field is given with (``ns`` -> ``--n``)."""
    return sweep_fields()[name].metadata.get("flag", "--" + name.replace("_", "-"))


def show(value: Any) -> str:
    """A default as it would be typed (lists space-separated)."""
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def add_sweep_options(p: argparse.ArgumentParser) -> None:
    """One option per SweepConfig field: its flag, type and help (with the default) from the field."""
    defaults = SweepConfig(backends=["numpy"])  # the defaults, without asking what is installed
    for name, f in sweep_fields().items():
        default = getattr(defaults, name)
        help_text = f.metadata["help"]
        if name != "backends" and "default" not in help_text:
            help_text += f" (default: {show(default)})"
        kw: dict[str, Any] = {"dest": name, "default": None, "help": help_text}
        if isinstance(default, bool):
            kw["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, list):
            # an empty default says nothing of the items' type: the field's metadata does
            item = f.metadata.get("type") or (type(default[0]) if default else str)
            kw |= {"nargs": "+", "type": item}
        else:
            kw["type"] = type(default)
        p.add_argument(flag(name), **kw)
