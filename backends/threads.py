"""Thread limits for the duration of a computation: ``n_jobs`` of :class:`ukr_bench.UKR`.

scikit-learn's convention for ``n_jobs``: ``None`` leaves every pool as it is (the libraries'
own defaults), ``-1`` means every CPU this process may run on, ``k >= 1`` means ``k`` threads,
and ``k <= -2`` means all CPUs but ``-k - 1`` (joblib's rule). :func:`limit_threads` applies
the limit on entry and restores every setting it changed on exit, also when the body raises:

* the BLAS and OpenMP pools of every loaded library (NumPy's and SciPy's BLAS, torch's and
  JAX's own copies where they have one): ``threadpoolctl.threadpool_limits``;
* torch's intra-op pool: ``torch.set_num_threads``, restored to ``torch.get_num_threads()``
  of the entry. torch is imported only where the backend is torch or KeOps (which runs on
  torch tensors), or torch is imported already; its inter-op pool can be sized only before
  its first parallel work, so it is left alone;
* JAX: XLA's CPU thread pool is sized once, when the first JAX computation starts, and no API
  resizes it. A CPU affinity mask is per thread: set on every thread of the process (as the
  harness's ``ukr_bench.system.pin_to_cpus`` does for a whole worker) it binds threads that
  are not XLA's too, and threads started meanwhile keep it after the others are restored, so
  it cannot be undone safely. ``n_jobs`` therefore does not bound XLA's pool: start Python
  under ``taskset``, or with ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`` for one thread,
  as the benchmark's workers do.

The pools belong to the process: fits that run at once in threads of one process share them,
and each restores, on exit, what it found on entry. NumPy's blocked layout runs its blocks on
its own worker threads, one per usable CPU (:func:`block_workers`); ``n_jobs`` bounds their
number too, in the context that runs the body (a context variable, so fits in other threads
are not affected).
"""

from __future__ import annotations

import contextlib
import importlib
import operator
import os
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from ukr_bench.extras import require
from ukr_bench.system import cpu_count

__all__ = ["TORCH_BACKENDS", "block_workers", "check_n_jobs", "limit_threads", "usable_cpu_count"]

#: The backends that compute with torch tensors, whose pool ``n_jobs`` sizes.
TORCH_BACKENDS = ("torch", "keops")


#: The most block workers NumPy's blocked layout starts in this context (None: no limit).
_BLOCK_WORKERS: ContextVar[int | None] = ContextVar("ukr_bench_block_workers", default=None)


def block_workers() -> int:
    """Threads NumPy's blocked layout runs its blocks on: one per usable CPU, and at most the
    ``n_jobs`` of an enclosing :func:`limit_threads`."""
    limit = _BLOCK_WORKERS.get()
    return cpu_count() if limit is None else max(1, min(cpu_count(), limit))


def usable_cpu_count() -> int:
    """How many CPUs this process may run on: its affinity mask where the OS has one."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def check_n_jobs(n_jobs: object, cpus: int | None = None) -> int | None:
    """The number of threads ``n_jobs`` asks for (None: no limit), or raise naming it.

    ``cpus`` is the number of usable CPUs (default :func:`usable_cpu_count`): ``-1`` is all of
    them, ``k <= -2`` is ``cpus + 1 + k``, which must be at least 1. Booleans and ``0`` are
    refused, as scikit-learn and joblib refuse ``n_jobs=0``.
    """
    if n_jobs is None:
        return None
    # Any integer, NumPy's too (parameter grids hold them); not a bool, nor a float.
    if isinstance(n_jobs, bool) or not hasattr(n_jobs, "__index__"):
        msg = f"n_jobs must be None or a nonzero integer, got {n_jobs!r}"
        raise TypeError(msg)
    k = operator.index(n_jobs)
    if k == 0:
        msg = "n_jobs must be None or a nonzero integer (-1: every CPU), got 0"
        raise ValueError(msg)
    if k > 0:
        return k
    cpus = usable_cpu_count() if cpus is None else cpus
    threads = cpus + 1 + k
    if threads < 1:
        msg = f"n_jobs={k} leaves no thread: it means {cpus} CPUs + 1 + ({k}) = {threads}"
        raise ValueError(msg)
    return threads


def _torch(backend: str) -> Any:
    """The torch module where it sizes the computation's pool, else None (never imported here
    for other backends: importing torch starts its pools and costs seconds)."""
    if "torch" in sys.modules:
        return sys.modules["torch"]
    if backend in TORCH_BACKENDS:
        # By name: the import stays out of the static import graph that the import-linter
        # contracts check (the suite's modules import this one, and never a framework).
        return importlib.import_module("torch")
    return None


@contextlib.contextmanager
def limit_threads(n_jobs: object, backend: str = "numpy") -> Iterator[int | None]:
    """Limit the BLAS, OpenMP and torch pools to ``n_jobs`` threads while the body runs.

    Yields the number of threads (None: nothing is limited and nothing imported). Validates
    ``n_jobs`` first (:func:`check_n_jobs`), so a bad value raises before any change. Needs
    ``threadpoolctl`` (the ``sklearn`` extra) for the BLAS and OpenMP pools; without it, an
    ``n_jobs`` other than None raises :class:`ukr_bench.extras.MissingExtraError`, naming it.
    """
    threads = check_n_jobs(n_jobs)
    if threads is None:
        yield None
        return
    threadpoolctl = require("threadpoolctl", "sklearn", "n_jobs (the BLAS and OpenMP pools)")
    torch = _torch(backend)
    before = None if torch is None else torch.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=threads):
        token = _BLOCK_WORKERS.set(threads)
        try:
            if torch is not None:
                torch.set_num_threads(threads)
            yield threads
        finally:
            _BLOCK_WORKERS.reset(token)
            if torch is not None:
                torch.set_num_threads(before)
