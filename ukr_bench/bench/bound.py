"""A lower bound on one value + gradient call: its pairs at the device's measured rates.

:func:`pair_rates` measures the exp and arithmetic rates on the backend's device;
:func:`bound` turns a configuration's pair count into seconds (a row's ``bound_s``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ukr_bench.bench.config import SweepConfig
from ukr_bench.interface import Backend
from ukr_bench.schema import ConfigKey


def flops_per_pair(latent_dim: int, data_dim: int) -> int:
    """Floating-point operations per pair of points in one value + gradient, besides its exp.

    The squared distance (3 per latent dimension), scale, max-subtract and normalise (3),
    Y = R X and the residual products e.x_m (2 D each), the softmax backward (3) and the
    latent products B Z (2 per latent dimension).
    """
    return 5 * latent_dim + 4 * data_dim + 6


_RATES: dict[tuple[str, str, str], tuple[float, float]] = {}


def _best_of_5(backend: Backend, f: Callable[[], Any]) -> float:
    """The shortest of 5 synchronised calls of ``f``, after one untimed call."""
    backend.sync(f())
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        backend.sync(f())
        times.append(time.perf_counter() - t0)
    return min(times)


def pair_rates(backend: Backend) -> tuple[float, float]:
    """(exp per second, flop per second) this backend reaches on its device and dtype.

    Measured once per worker and (backend, dtype, device), with the backend's own array
    namespace: ``exp`` of 2^22 elements and a 1024 x 1024 matrix product (its GEMM rate, the
    fastest way that device does arithmetic), each the best of 5 synchronised calls.
    """
    key = (backend.name, backend.dtype, backend.device)
    if key in _RATES:
        return _RATES[key]
    rng = np.random.default_rng(0)
    with backend.context():
        a = backend.asarray(-rng.random((1024, 4096)).astype(backend.dtype))
        m = backend.asarray(rng.random((1024, 1024)).astype(backend.dtype))
        xp = backend.xp
        exp_rate = a.shape[0] * a.shape[1] / _best_of_5(backend, lambda: xp.exp(a))
        flop_rate = 2 * 1024**3 / _best_of_5(backend, lambda: m @ m)
    _RATES[key] = (exp_rate, flop_rate)
    return _RATES[key]


def bound(key: ConfigKey, cfg: SweepConfig, data_dim: int, rates: tuple[float, float]) -> float:
    """A lower bound on one value + gradient: N^2 pairs, each one exp at the measured exp rate
    and :func:`flops_per_pair` operations at the measured GEMM rate (no memory traffic)."""
    exp_rate, flop_rate = rates
    per_pair = 1.0 / exp_rate + flops_per_pair(cfg.latent_dim, data_dim) / flop_rate
    return float(key.n) ** 2 * per_pair
