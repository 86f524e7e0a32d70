"""The core with NumPy alone, and the error each extra's entry point gives without its packages.

Run as a script, not collected by pytest (no ``test_`` prefix):

* ``python core_check.py --block``: first marks every optional package unimportable
  (``sys.modules[name] = None``), so that it runs in any environment (tests/test_extras.py);
* ``python core_check.py --installed``: checks that none is installed and that ``ukr_bench`` is
  an installed copy, not a checkout (``nox -s core``: the wheel in a fresh NumPy-only venv).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Every optional package's import name (pyproject.toml's extras; none is needed by the core).
OPTIONAL = (
    "pandas", "matplotlib", "scipy", "tabulate", "rich", "pytest_benchmark", "threadpoolctl",
    "cpuinfo", "sklearn", "jax", "torch", "pykeops",
)  # fmt: skip


def expect_missing(extra: str, call: Callable[[], Any]) -> None:
    """``call()`` raises MissingExtraError naming the pip command for ``extra``; print it."""
    from ukr_bench.extras import MissingExtraError, install_hint

    error: MissingExtraError | None = None
    try:
        call()
    except MissingExtraError as exc:
        error = exc
    assert error is not None, f"expected a MissingExtraError naming the {extra!r} extra"
    assert error.extra == extra, (extra, error)
    assert install_hint(extra) in str(error), error
    print(f"{extra}: {error}")


def main(mode: str) -> None:
    if mode == "--block":
        for name in OPTIONAL:
            sys.modules[name] = None  # type: ignore[assignment]  # how Python marks it unimportable
    else:
        present = [name for name in OPTIONAL if importlib.util.find_spec(name) is not None]
        assert not present, f"optional packages installed beside the core: {present}"
    import numpy as np

    import ukr_bench

    if mode == "--installed":
        assert "site-packages" in Path(ukr_bench.__file__).parts, ukr_bench.__file__
    rng = np.random.default_rng(0)
    Z, X = rng.normal(size=(20, 2)), rng.normal(size=(20, 3))
    value, grad = ukr_bench.value_and_grad(Z, X, backend="numpy", sigma=1.0, lam=0.1)
    assert np.isfinite(value), value
    assert grad.shape == Z.shape, grad.shape
    assert ukr_bench.available_backends() == ["numpy"], ukr_bench.available_backends()
    print(f"core: value_and_grad with NumPy alone: E = {value:.6f}")

    from ukr_bench.schema import Timing, write_table

    out = Path(tempfile.mkdtemp())
    expect_missing("report", lambda: importlib.import_module("ukr_bench.report"))
    expect_missing(
        "report", lambda: importlib.import_module("ukr_bench.tutorial").run_tutorial(out)
    )
    expect_missing("bench", lambda: Timing.from_samples([1.0, 2.0], first_s=1.0, compile_s=0.0))
    expect_missing("bench", lambda: write_table(out))
    expect_missing("sklearn", lambda: ukr_bench.UKR)
    expect_missing("sklearn", lambda: importlib.import_module("ukr_bench.demo"))
    assert not any(out.iterdir()), "an entry point wrote files before saying what is missing"


if __name__ == "__main__":
    if sys.argv[1:] not in (["--block"], ["--installed"]):
        sys.exit(f"usage: {sys.argv[0]} --block | --installed")
    main(sys.argv[1])
