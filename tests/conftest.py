"""Shared fixtures. Hypothesis runs derandomised in CI so a failure reproduces."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import ukr_bench

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

BACKENDS = ["jax", "numpy", "torch"]
# Optional backends: tested in their own files where installed (and compiling), never required.
OPTIONAL_BACKENDS = ["keops"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every backend; CI installs all three, so none is ever skipped there."""
    return request.param


def random_problem(
    n: int, l: int, d: int, *, seed: int = 0, z_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Latent points ~ N(0, z_scale^2) and data ~ N(0, 1), float64."""
    rng = np.random.default_rng(seed)
    return z_scale * rng.normal(size=(n, l)), rng.normal(size=(n, d))


def test_all_backends_installed() -> None:
    # The suite's promise is that every backend is exercised: fail loudly rather than skip.
    required = [b for b in ukr_bench.available_backends() if b not in OPTIONAL_BACKENDS]
    assert required == BACKENDS
