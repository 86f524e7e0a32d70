"""Shared fixtures. Hypothesis runs derandomised in CI so a failure reproduces."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

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


# -- devices: the agreement tests also run on CUDA where jax or torch sees a device ----------

DEVICES = ["cpu", "cuda"]


def cuda_device_count(backend: str) -> int:
    """How many CUDA devices ``backend``'s framework sees (numpy: 0), asked of the framework.

    Not nvidia-smi: a GPU that the installed framework cannot use (a CPU-only jaxlib or torch
    wheel, a driver too old for it) counts as none, as it does for ``get_backend``.
    """
    if backend == "jax":
        import jax

        try:
            return len(jax.devices("cuda"))
        except RuntimeError:  # "Unknown backend cuda" without a CUDA jaxlib
            return 0
    if backend == "torch":
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    return 0


@functools.cache
def cuda_device_counts() -> dict[str, int]:
    """:func:`cuda_device_count` of every backend, asked once per test session."""
    return {b: cuda_device_count(b) for b in BACKENDS}


def device_backends(device: str, counts: dict[str, int] | None = None) -> list[str]:
    """The backends that run on ``device``: all on "cpu"; on "cuda" those that see a device."""
    if device == "cpu":
        return list(BACKENDS)
    counts = cuda_device_counts() if counts is None else counts
    return [b for b in BACKENDS if counts.get(b, 0) > 0]


def cuda_skip_reason(counts: dict[str, int]) -> str:
    seen = ", ".join(f"{b}: {n}" for b, n in counts.items() if b != "numpy")
    return f"no CUDA device visible to jax or torch (devices seen: {seen})"


@pytest.fixture(scope="session", params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """ "cpu", and "cuda" where jax or torch sees a CUDA device (skipped, with why, elsewhere).

    Session-scoped so that hypothesis tests can use it. A test that takes it runs its
    backends from :func:`device_backends`.
    """
    if request.param == "cuda" and not device_backends("cuda"):
        pytest.skip(cuda_skip_reason(cuda_device_counts()))
    return request.param
