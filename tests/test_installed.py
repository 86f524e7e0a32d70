"""The suite's promise: every backend is exercised, so a missing one fails loudly, never skips.

(This test used to live in ``conftest.py``, which pytest never collects tests from.)
"""

from __future__ import annotations

from conftest import BACKENDS

import ukr_bench
from ukr_bench.interface import REGISTRY


def test_all_backends_installed() -> None:
    """Reference: the registry; every backend it knows must be installed and in ``BACKENDS``."""
    assert ukr_bench.available_backends() == BACKENDS
    assert sorted(REGISTRY) == BACKENDS
