"""ukr-bench: Unsupervised Kernel Regression in JAX, PyTorch and hand-derived NumPy.

The objective is defined in :mod:`ukr_bench.problem`; :func:`value_and_grad` computes it with
any installed backend.
"""

from ukr_bench.data import DATASETS, make_dataset
from ukr_bench.estimator import UKR, NotFittedError
from ukr_bench.interface import (
    Backend,
    BackendNotInstalledError,
    DeviceUnavailableError,
    available_backends,
    get_backend,
    value_and_grad,
)
from ukr_bench.problem import Params, relative_error

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
