"""The suite's promise: every backend is exercised, so a missing one fails loudly, never skips.

(This test used to live in ``conftest.py``, which pytest never collects tests from.) Optional
backends (KeOps: it compiles C++ at first use and is not installed by CI) are the exception:
their tests skip with the reason where they are missing.
"""

from __future__ import annotations

from conftest import BACKENDS, OPTIONAL_BACKENDS

import ukr_bench
from backends import REGISTRY


def test_all_backends_installed() -> None:
    """Reference: the registry; every required backend it knows must be installed."""
    required = [b for b in ukr_bench.available_backends() if b not in OPTIONAL_BACKENDS]
    assert required == BACKENDS
    assert sorted(REGISTRY) == sorted([*BACKENDS, *OPTIONAL_BACKENDS])


def test_dir_lists_the_public_api_only() -> None:
    """The lazily loaded estimator is listed; the module's own imports are not."""
    names = dir(ukr_bench)
    assert set(ukr_bench.__all__) <= set(names)
    assert {"UKR", "NotFittedError", "value_and_grad"} <= set(names)
    assert not {"typing", "Any", "TYPE_CHECKING"} & set(names)
