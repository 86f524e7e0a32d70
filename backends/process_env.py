"""Each framework's worker-process environment, from the number of CPU threads (and host
devices) it is to use: what :class:`backends.BackendSpec` ``process_env`` and
``host_devices_env`` name. Thread pools are sized when a library loads, so these are set in the
environment of the worker before it starts.
"""

from __future__ import annotations

import os


def _blas_threads(threads: int) -> dict[str, str]:
    """OpenMP/OpenBLAS/MKL pools: sized when the library loads, so set in the environment."""
    return {k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def _xla_env(threads: int) -> dict[str, str]:
    """XLA's CPU client has no thread-count flag; one thread turns its pool off.

    ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` makes JAX allocate GPU memory on demand instead of
    grabbing 75 % of it at start-up, so device memory readings mean what the computation needs.
    """
    env = _blas_threads(threads)
    xla = os.environ.get("XLA_FLAGS", "")
    if threads == 1:
        xla = f"{xla} --xla_cpu_multi_thread_eigen=false".strip()
    env["XLA_FLAGS"] = xla
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return env


def _xla_host_devices(count: int) -> dict[str, str]:
    """JAX sees one CPU device unless forced, before it is imported, to see ``count``."""
    return {"XLA_FLAGS": f"--xla_force_host_platform_device_count={count}"}
