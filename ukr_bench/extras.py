"""Optional packages by use: import one, or say which extra of ``ukr-bench`` installs it.

The core (:func:`ukr_bench.value_and_grad`, the backends' registry, :class:`~ukr_bench.Params`,
the data sets but ``digits``, :mod:`ukr_bench.training` by gradient descent or iRprop) needs
NumPy only. Everything else is an extra of ``pyproject.toml``, imported where it is used:

* ``report``: pandas, matplotlib, SciPy (significance tests, nearest neighbours) and tabulate
  (pandas' Markdown tables), for :mod:`ukr_bench.report`, the tutorial and the demo's figures;
* ``bench``: the report, rich, pytest-benchmark (its timing statistics), threadpoolctl and
  py-cpuinfo2, for the benchmark (``ukr-bench bench`` ends with its report);
* ``sklearn``: scikit-learn >= 1.6, SciPy (L-BFGS, ``transform``) and threadpoolctl
  (``n_jobs``), for :class:`ukr_bench.UKR`;
* ``data``: scikit-learn, for the ``digits`` data set; ``jax``, ``torch``, ``keops``: the
  backends (:mod:`backends` says what to install for each).

:func:`require` imports a module or raises :class:`MissingExtraError` naming the extra;
:func:`require_extra` checks a whole extra before a long job starts; :func:`pyplot` is
matplotlib's pyplot, drawing to files (the Agg backend) wherever it is used.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = [
    "EXTRAS",
    "MissingExtraError",
    "install_hint",
    "missing",
    "pyplot",
    "require",
    "require_extra",
]

#: Each extra's packages by import name (the ones ukr_bench imports; tests/test_extras.py checks
#: them against ``[project.optional-dependencies]`` of pyproject.toml).
_REPORT = ("pandas", "matplotlib", "scipy", "tabulate")
EXTRAS: dict[str, tuple[str, ...]] = {
    "report": _REPORT,
    "bench": (*_REPORT, "rich", "pytest_benchmark", "threadpoolctl", "cpuinfo"),
    "sklearn": ("sklearn", "scipy", "threadpoolctl"),
    "data": ("sklearn",),
    "jax": ("jax",),
    "torch": ("torch",),
    "keops": ("pykeops", "torch"),
    "triton": ("triton", "torch"),
}

#: Distribution names where they differ from the import name.
DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "pytest_benchmark": "pytest-benchmark",
    "cpuinfo": "py-cpuinfo2",
}


class MissingExtraError(ImportError):
    """An optional package is not installed; the message says which extra installs it."""

    def __init__(self, message: str, *, name: str, extra: str) -> None:
        super().__init__(message, name=name)
        self.extra = extra


def install_hint(*extras: str) -> str:
    """The pip command that installs ``extras`` (written as the backends' messages write it)."""
    return f'pip install "ukr-bench[{",".join(extras)}]"'


def _distribution(module: str) -> str:
    top = module.partition(".")[0]
    return DISTRIBUTIONS.get(top, top)


def missing(
    module: str, extra: str, purpose: str, exc: BaseException | None = None, *, package: str = ""
) -> MissingExtraError:
    """The error for ``purpose`` lacking ``module`` (of ``extra``); ``package`` names what is
    needed when it is more than the distribution (``"scikit-learn >= 1.6"``)."""
    why = f" ({exc})" if exc is not None else ""
    msg = f"{purpose} needs {package or _distribution(module)}{why}: {install_hint(extra)}"
    return MissingExtraError(msg, name=module, extra=extra)


def require(module: str, extra: str, purpose: str, *, package: str = "") -> ModuleType:
    """``importlib.import_module(module)``, or a :class:`MissingExtraError` that names the pip
    command installing ``extra`` and ``purpose`` (what needs the module)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing(module, extra, purpose, exc, package=package) from exc


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None  # None also where sys.modules says so
    except (ImportError, ValueError):
        return False


def require_extra(extra: str, purpose: str) -> None:
    """Raise a :class:`MissingExtraError` listing every package of ``extra`` that cannot be
    imported, before ``purpose`` (a long job, a whole subpackage) starts; nothing is imported."""
    absent = [m for m in EXTRAS[extra] if not _importable(m)]
    if absent:
        names = ", ".join(_distribution(m) for m in absent)
        msg = f"{purpose} needs {names}: {install_hint(extra)}"
        raise MissingExtraError(msg, name=absent[0], extra=extra)


def pyplot(purpose: str = "drawing figures") -> ModuleType:
    """``matplotlib.pyplot``, drawing to files (the Agg backend: no display needed)."""
    matplotlib = require("matplotlib", "report", purpose)
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")
