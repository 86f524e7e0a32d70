"""What a configuration is expected to need before it runs: memory.

:func:`memory_estimate` is the bytes one value + gradient call needs, recorded with every row
and compared with :func:`memory_limit` to skip what cannot fit. The lower bound on its time is
:mod:`ukr_bench.bench.bound`'s.
"""

from __future__ import annotations

import numpy as np

from backends import REGISTRY
from ukr_bench.bench.config import SweepConfig
from ukr_bench.devices import parse_devices
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
    block rule of :func:`ukr_bench.layouts.plan_layout` (every thread's block buffers), plus the
    O(N (L + D)) arrays, counted generously as :data:`LINEAR_BUFFERS` of them; L and D are the
    key's (``latent_dim``, ``data_dim``).
    """
    spec = REGISTRY[key.backend]
    itemsize = np.dtype(key.dtype).itemsize
    linear = LINEAR_BUFFERS * key.n * (key.latent_dim + key.data_dim + 1) * itemsize
    if key.layout == "dense":
        return int(spec.n2_buffers(key.latent_dim) * key.n**2 * itemsize) + linear
    if key.layout == "fused":  # per-row statistics only: O(N (L + D))
        return linear
    kind = parse_devices(key.device)[0]
    _, block = plan_layout(
        key.n, key.n, key.latent_dim, key.data_dim, check_dtype(key.dtype),
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
