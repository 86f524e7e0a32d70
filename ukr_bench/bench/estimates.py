"""What a configuration is expected to cost before it runs: memory, and a lower bound on time.

* :func:`memory_estimate`: the bytes one value + gradient call needs, recorded with every row
  and compared with :func:`memory_limit` to skip what cannot fit;
* :func:`bound`: a lower bound on one call from the pair count, at the exp and GEMM rates
  :func:`pair_rates` measures on the backend's device (a row's ``bound_s``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from backends import REGISTRY
from ukr_bench.bench.config import SweepConfig
from ukr_bench.devices import parse_devices
from ukr_bench.interface import Backend
from ukr_bench.problem import BLOCK_BUFFERS, plan_layout
from ukr_bench.schema import ConfigKey, RunMeta
from ukr_bench.validation import check_dtype

#: Arrays of O(N (L + D)) a call holds, counted generously (the data, Z, their gradients...).
LINEAR_BUFFERS = 16
#: Memory :func:`memory_estimate` plans the blocked layout's blocks against when none is given.
DEFAULT_AVAILABLE_BYTES = 2**34


def memory_estimate(key: ConfigKey, cfg: SweepConfig, available: int | None = None) -> int:
    """Bytes value_and_grad is expected to need.

    Dense: the backend's N x N buffer count times N^2 (``BackendSpec.n2_buffers``). Blocked: the
    block rule of :func:`ukr_bench.problem.plan_layout` (every thread's block buffers), plus the
    O(N (L + D)) arrays, counted generously as :data:`LINEAR_BUFFERS` of them.
    """
    spec = REGISTRY[key.backend]
    itemsize = np.dtype(key.dtype).itemsize
    linear = LINEAR_BUFFERS * key.n * (cfg.latent_dim + 4) * itemsize
    if key.layout == "dense":
        return int(spec.n2_buffers(cfg.latent_dim) * key.n**2 * itemsize) + linear
    kind = parse_devices(key.device)[0]
    _, block = plan_layout(
        key.n, key.n, cfg.latent_dim, 3, check_dtype(key.dtype),
        available or DEFAULT_AVAILABLE_BYTES,
        layout="blocked", device_kind=kind, workers=cfg.threads,
    )  # fmt: skip
    workers = cfg.threads if kind == "cpu" else 1
    # Forced host devices share the host's memory: each holds its blocks and a replica.
    host_copies = key.devices if kind == "cpu" else 1
    return host_copies * (int(workers * BLOCK_BUFFERS * (block or 1) * key.n * itemsize) + linear)


def memory_limit(key: ConfigKey, cfg: SweepConfig, meta: RunMeta) -> int | None:
    """Bytes a configuration may use: a fraction of the host's (or the GPU's) memory."""
    kind, indices = parse_devices(key.device)
    index = indices[0]  # each device of a set holds its own share: the first one's size
    if kind == "cuda":
        gpus = meta.machine.get("gpus", [])
        if index < len(gpus):
            mib = float(gpus[index].get("memory.total", "0 MiB").split()[0])
            return int(cfg.memory_fraction * mib * 2**20)
        return None
    available = meta.machine.get("memory_available_bytes")
    return None if available is None else int(cfg.memory_fraction * available)


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
