"""ukr-bench: Unsupervised Kernel Regression in JAX, PyTorch and hand-derived NumPy.

The objective is defined in :mod:`ukr_bench.problem`; :func:`value_and_grad` computes it with
any installed backend. Everything here needs NumPy alone, but ``UKR`` and ``NotFittedError``
(scikit-learn's), loaded on first use: the estimator needs the ``sklearn`` extra. The report,
the benchmark and each framework are extras too (:mod:`ukr_bench.extras`).
"""

import typing

from ukr_bench.data import DATASETS, make_dataset
from ukr_bench.interface import (
    Backend,
    BackendNotInstalledError,
    DeviceUnavailableError,
    available_backends,
    get_backend,
    value_and_grad,
)
from ukr_bench.problem import Params, relative_error

if typing.TYPE_CHECKING:  # for type checkers; at run time __getattr__ below loads them on first use
    from ukr_bench.estimator import UKR, NotFittedError

__all__ = [
    "DATASETS",
    "UKR",
    "Backend",
    "BackendNotInstalledError",
    "DeviceUnavailableError",
    "NotFittedError",
    "Params",
    "available_backends",
    "get_backend",
    "make_dataset",
    "relative_error",
    "value_and_grad",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> typing.Any:
    # PEP 562: import the estimator (and scikit-learn) only when it is asked for; without
    # scikit-learn this raises ukr_bench.extras.MissingExtraError, which says what to install.
    if name in ("UKR", "NotFittedError"):
        from ukr_bench import estimator

        return getattr(estimator, name)
    msg = f"module 'ukr_bench' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    """The public names (the lazily loaded estimator among them), not the module's helpers."""
    return sorted([*__all__, "__version__"])
