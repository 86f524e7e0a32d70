"""The worker: measures one backend's configurations in its own process, appending rows.

``python -m ukr_bench.bench RUN_DIR BACKEND`` is the worker process; the sweep
(:mod:`ukr_bench.bench.sweep`) starts one per backend (and N). Here: the loop over the
configurations, the process's settings (CPU pinning, the backend's own), its warm-up, the
in-flight marker the sweep watches, and the watchdog that ends the worker with its sweep. How
one configuration is measured is :mod:`ukr_bench.bench.timing`; which are skipped and how a
failure is recorded, :mod:`ukr_bench.bench.policy`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ukr_bench import interface
from ukr_bench.bench.config import SweepConfig
from ukr_bench.bench.estimates import memory_limit
from ukr_bench.bench.policy import record_failure, skip_reason
from ukr_bench.bench.timing import Measure, Reference, base_row, measure_case
from ukr_bench.data import problem_inputs
from ukr_bench.schema import INFLIGHT_FILE, ConfigKey, Row, Status, append_row, read_meta, read_rows
from ukr_bench.system import pin_to_cpus

PARENT_ENV = "UKR_BENCH_SWEEP_PID"  # tells a worker which process it must not outlive
#: The N values this worker measures (comma-separated; unset: all): the sweep's turn, see
#: ``SweepConfig.rounds``.
NS_ENV = "UKR_BENCH_WORKER_NS"
#: N of the untimed call each kind of configuration gets before the worker's first timing.
PROCESS_WARMUP_N = 8


def configure_process(backend: str, threads: int) -> dict[str, Any]:
    """Pin this process to ``threads`` CPUs, apply the backend's settings, and record them."""
    settings: dict[str, Any] = {"threads": threads}
    pinned = pin_to_cpus(threads)
    if pinned is not None:
        settings["cpu_affinity"] = pinned
    settings |= interface.instrumented_class(backend).configure_process(threads)
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_info

        settings["blas"] = [
            {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for p in threadpool_info()
        ]
    return settings


def _write_inflight(run_dir: Path, row: Row) -> None:
    record = row.to_json() | {"started": time.time(), "pid": os.getpid()}
    (run_dir / INFLIGHT_FILE).write_text(json.dumps(record))


def worker_ns() -> set[int] | None:
    """The N values :data:`NS_ENV` gives this worker, or None (every N)."""
    raw = os.environ.get(NS_ENV)
    return None if raw is None else {int(n) for n in raw.split(",")}


def warm_up(key: ConfigKey, cfg: SweepConfig) -> None:
    """One untimed value + gradient at N = :data:`PROCESS_WARMUP_N` of ``key``'s kind.

    Made once per kind (layout, gradient, dtype, device, D, L: JAX compiles per shape) in a worker, just before the first
    configuration of that kind is measured and inside its in-flight window: a framework's
    one-time start-up (thread pools, allocator, JAX's compiler) then never lands in the first
    call of whichever configuration a worker happens to measure first, now that a sweep starts
    a worker per N, and a crash here (KeOps generating code, say) is that configuration's
    crash, as before. Exceptions are left to the configuration itself to raise again.
    """
    n = max(PROCESS_WARMUP_N, key.latent_dim + 2)
    Z, X = problem_inputs(
        cfg.data, n, key.latent_dim, noise=cfg.noise, seed=cfg.seed, data_dim=key.data_dim
    )
    with contextlib.suppress(Exception):
        interface.value_and_grad(
            Z, X, backend=key.backend, sigma=cfg.sigma, lam=cfg.lam, loo=cfg.loo,
            dtype=key.dtype, device=key.device, layout=key.layout, gradient=key.gradient,
        )  # fmt: skip


def references(cfg: SweepConfig) -> Reference:
    """NumPy's float64 value and gradient of each (N, D, L) of ``cfg``'s problem, computed once
    each."""
    done: dict[tuple[int, int, int], tuple[float, np.ndarray]] = {}

    def reference(key: ConfigKey) -> tuple[float, np.ndarray]:
        problem = (key.n, key.data_dim, key.latent_dim)
        if problem not in done:
            Z, X = problem_inputs(
                cfg.data, key.n, key.latent_dim, noise=cfg.noise, seed=cfg.seed,
                data_dim=key.data_dim,
            )  # fmt: skip
            done[problem] = interface.value_and_grad(
                Z, X, backend="numpy", sigma=cfg.sigma, lam=cfg.lam, loo=cfg.loo
            )
        return done[problem]

    return reference


def _measure(measure: Measure, key: ConfigKey, cfg: SweepConfig, ref: Reference, row: Row) -> Row:
    """``measure``'s row, or ``row`` with the failure recorded (the sweep goes on)."""
    try:
        return measure(key, cfg, ref)
    except Exception as exc:  # noqa: BLE001 - recorded, and the sweep goes on
        traceback.print_exc()
        return record_failure(row, exc)


def run_worker(
    run_dir: Path | str,
    backend: str,
    *,
    measure: Measure = measure_case,
    ns: set[int] | None = None,
) -> None:
    """Measure every unfinished configuration of ``backend`` in this process, appending rows.

    ``ns``: only configurations with these N (default: :func:`worker_ns`, all if unset).
    ``measure`` does the measuring (tests pass a faulty one); everything around it (skipping,
    recording failures, the in-flight marker the sweep watches) is the same for any ``measure``.
    """
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    cfg = SweepConfig.from_dict(meta.config)
    ns = worker_ns() if ns is None else ns
    mine = [k for k in cfg.plan() if k.backend == backend and (ns is None or k.n in ns)]
    reference = references(cfg)
    settings = configure_process(backend, cfg.threads)  # once: the whole process shares them
    warmed: set[tuple[str, str, str, str, int, int]] = set()
    for key in mine:
        rows = read_rows(run_dir)
        if key in {r.key for r in rows}:
            continue
        limit = memory_limit(key, cfg, meta)
        row = base_row(key, cfg, limit)
        reason = skip_reason(key, rows, cfg, row.memory_estimate_bytes, limit)
        if reason is not None:
            row.status, row.reason = Status.SKIPPED, reason
        else:
            _write_inflight(run_dir, row)
            kind = (key.layout, key.gradient, key.dtype, key.device, key.data_dim, key.latent_dim)
            if kind not in warmed:
                warm_up(key, cfg)
                warmed.add(kind)
            row = _measure(measure, key, cfg, reference, row)
        row.settings = settings
        row.finished = datetime.now(timezone.utc).isoformat()
        append_row(run_dir, row)
        (run_dir / INFLIGHT_FILE).unlink(missing_ok=True)


def watch_parent() -> None:
    """In a worker: die with the sweep that started it (called once, at the worker's start).

    Linux: the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``); if the parent
    is already gone (it died before this call), exit now. Everywhere: a daemon thread exits the
    process when the pipe on stdin from the parent closes.
    """
    parent = os.environ.get(PARENT_ENV)
    if parent is None:
        return  # not started by a sweep (tests, a user running a worker by hand)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    if os.getppid() != int(parent):
        os._exit(3)

    def wait_for_eof() -> None:
        # os.read on the descriptor, not sys.stdin: a daemon thread blocked inside a buffered
        # reader's lock aborts the interpreter's shutdown.
        with contextlib.suppress(OSError):
            while os.read(0, 4096):
                pass
        os._exit(3)

    threading.Thread(target=wait_for_eof, daemon=True, name="parent-watch").start()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ukr_bench.bench RUN_DIR BACKEND``: the per-backend worker process."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m ukr_bench.bench RUN_DIR BACKEND", file=sys.stderr)
        return 2
    watch_parent()
    run_worker(Path(args[0]), args[1])
    return 0
