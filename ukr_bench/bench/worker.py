"""The worker: measures one backend's configurations in its own process, appending rows.

The timing protocol, in one place:

* inputs go to the device before timing; a timed call is ``sync(f(Z, X))``, so it ends only when
  the device has finished (``block_until_ready`` / ``torch.cuda.synchronize``) and copies nothing;
* the function is compiled (JAX: ahead of time) apart from the first call, and both are recorded;
* ``warmup`` untimed calls, then timed rounds until ``min_time`` has passed and ``min_rounds``
  are done (at most ``max_rounds``), like pytest-benchmark's calibration;
* no compilation may happen while timing (a recompiling configuration is an error row);
* memory per configuration: the rise of the process's peak RSS over the first value + gradient
  call on the host (VmHWM, reset first), the backend's own measure on a device.

``python -m ukr_bench.bench RUN_DIR BACKEND`` is the worker process; the sweep
(:mod:`ukr_bench.bench.sweep`) starts one per backend.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from backends import REGISTRY
from ukr_bench.bench.config import SweepConfig, usable_cpus
from ukr_bench.data import problem_inputs
from ukr_bench.interface import Backend, get_backend
from ukr_bench.problem import check_dtype, parse_devices, relative_error
from ukr_bench.schema import (
    INFLIGHT_FILE,
    TIMED_FUNCTIONS,
    ConfigKey,
    FitTiming,
    Row,
    RunMeta,
    Status,
    Timing,
    append_row,
    read_meta,
    read_rows,
)

PARENT_ENV = "UKR_BENCH_SWEEP_PID"  # tells a worker which process it must not outlive
#: The N values this worker measures (comma-separated; unset: all): the sweep's turn, see
#: ``SweepConfig.rounds``.
NS_ENV = "UKR_BENCH_WORKER_NS"
#: N of the untimed call each kind of configuration gets before the worker's first timing.
PROCESS_WARMUP_N = 8

Reference = Callable[[int], tuple[float, np.ndarray]]
#: ``measure(key, cfg, reference) -> Row`` with status ``ok``; raises on failure.
Measure = Callable[[ConfigKey, SweepConfig, Reference], Row]


class PeakRSS:
    """The rise of this process's peak resident memory over a block (Linux: VmHWM, reset first)."""

    def __enter__(self) -> PeakRSS:  # noqa: PYI034 - py3.10 has no typing.Self
        self.bytes: int | None = None
        self._base: int | None = None
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self._base = self._read("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._base is not None:
            peak = self._read("VmHWM")
            self.bytes = None if peak is None else max(peak - self._base, 0)

    @staticmethod
    def _read(field: str) -> int | None:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        return None


def time_calls(
    backend: Backend, f: Callable[[Any, Any], Any], Z: Any, X: Any, cfg: SweepConfig
) -> list[float]:
    """Warm up, then time ``sync(f(Z, X))`` until ``min_time`` and ``min_rounds`` are reached.

    The number of rounds follows from the time budget, so a slow first warm-up call (thread
    pools starting, an allocator growing) cannot starve the sample.
    """
    for _ in range(cfg.warmup):
        backend.sync(f(Z, X))
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < cfg.max_rounds and (
        len(samples) < cfg.min_rounds or time.perf_counter() - start < cfg.min_time
    ):
        t0 = time.perf_counter()
        backend.sync(f(Z, X))
        samples.append(time.perf_counter() - t0)
    return samples


def base_row(key: ConfigKey, cfg: SweepConfig, available: int | None = None) -> Row:
    """A row with the configuration and the problem filled in, nothing measured yet.

    ``available``: the memory the configuration may use, for the blocked layout's estimate.
    """
    return Row(
        key=key,
        data=cfg.data,
        latent_dim=cfg.latent_dim,
        sigma=cfg.sigma,
        lam=cfg.lam,
        loo=cfg.loo,
        threads=cfg.threads,
        memory_estimate_bytes=memory_estimate(key, cfg, available),
    )


def measure_case(key: ConfigKey, cfg: SweepConfig, reference: Reference) -> Row:
    """Measure one configuration: timings, memory, precision, time-to-fit. Raises on failure."""
    row = base_row(key, cfg)
    params = cfg.problem()
    backend = get_backend(
        key.backend, dtype=key.dtype, device=key.device, layout=key.layout, gradient=key.gradient
    )
    Z, X = problem_inputs(cfg.data, key.n, cfg.latent_dim, noise=cfg.noise, seed=cfg.seed)
    resolved, block = backend.resolve_layout(key.n, cfg.latent_dim, X.shape[1])
    row.info = backend.info() | {
        "resolved_layout": resolved,
        "block_rows": block,
        "gradient": backend.describe_gradient(resolved),  # e.g. "hand-derived (blocked custom_vjp)"
    }
    row.bound_s = bound(key, cfg, X.shape[1], pair_rates(backend))
    Zd, Xd = backend.asarray(Z), backend.asarray(X)
    backend.sync((Zd, Xd))
    backend.clear_compile_caches()  # this configuration's compile is its own, never a cache hit
    result = None
    # value_and_grad first: its first call allocates fresh buffers, so the rise of peak RSS over
    # it is the memory it needs (later calls reuse what the allocator keeps).
    for fn in TIMED_FUNCTIONS:
        t0 = time.perf_counter()
        f = backend.compile(fn, Zd, Xd, params)  # type: ignore[arg-type]
        t_compile = time.perf_counter() - t0
        backend.reset_device_peak()
        with PeakRSS() as rss:
            out = backend.sync(f(Zd, Xd))
        t_first = time.perf_counter() - t0
        if fn == "value_and_grad":
            result = out
            row.host_peak_bytes = rss.bytes
            row.device_peak_bytes = backend.device_peak()
            if row.device_peak_bytes is not None:
                row.device_peak_method = backend.device_peak_method
        compiles = backend.compile_count()
        row.samples[fn] = time_calls(backend, f, Zd, Xd, cfg)
        if backend.compile_count() != compiles:
            msg = f"{fn} recompiled {backend.compile_count() - compiles} time(s) while being timed"
            raise RuntimeError(msg)
        row.timings[fn] = Timing.from_samples(row.samples[fn], first_s=t_first, compile_s=t_compile)
    row.grad_ratio = row.timings["value_and_grad"].median_s / row.timings["value"].median_s
    # Time-to-fit once per backend, dtype and N: the estimator chooses its layout itself (auto,
    # dense at these N), so the blocked rows would time the very same fits again.
    # Likewise once per gradient: the estimator uses the backend's default one.
    default = REGISTRY[key.backend].gradient_for(key.layout) if key.backend in REGISTRY else None
    if (
        cfg.fit_iters
        and key.n <= cfg.fit_max_n
        and key.layout == "dense"
        and key.gradient == default
    ):
        row.fits = time_fits(key, cfg, X, row.samples)
    assert result is not None
    value, grad = (backend.to_numpy(a) for a in result)
    ref_value, ref_grad = reference(key.n)
    row.value = float(value)
    row.value_rel_error = relative_error(value, ref_value)
    row.grad_rel_error = relative_error(grad, ref_grad)
    row.status = Status.OK
    return row


def time_fits(
    key: ConfigKey, cfg: SweepConfig, X: np.ndarray, samples: dict[str, list[float]]
) -> dict[str, FitTiming]:
    """Time-to-fit of each optimiser: ``fit_iters`` iterations from the same random start.

    One untimed fit first (JAX compiles there), then ``fit_rounds`` timed fits. This is what
    ``UKR(...).fit(X)`` runs (:func:`ukr_bench.training.fit`, without scikit-learn's input
    checks); it returns the embedding on the host, so each timed fit ends synchronised.
    """
    from ukr_bench.training import fit

    fits = {}
    for opt in cfg.fit_optimizers:

        def run(opt: str = opt) -> int:
            result = fit(
                X, n_components=cfg.latent_dim, sigma=cfg.sigma, lam=cfg.lam, loo=cfg.loo,
                backend=key.backend, dtype=key.dtype, device=key.device,
                optimizer=opt, max_iter=cfg.fit_iters, init="random", random_state=cfg.seed,
            )  # fmt: skip
            return int(result.n_iter)

        run()
        times = []
        for _ in range(cfg.fit_rounds):
            t0 = time.perf_counter()
            n_iter = run()
            times.append(time.perf_counter() - t0)
        samples[f"fit_{opt}"] = times
        median = float(np.median(times))
        # L-BFGS may stop early: the time per iteration compares optimisers fairly.
        fits[opt] = FitTiming(median, n_iter, median / max(n_iter, 1))
    return fits


def memory_estimate(key: ConfigKey, cfg: SweepConfig, available: int | None = None) -> int:
    """Bytes value_and_grad is expected to need.

    Dense: the backend's N x N buffer count times N^2 (``BackendSpec.n2_buffers``). Blocked: the
    block rule of :func:`ukr_bench.problem.plan_layout` (every thread's block buffers), plus the
    O(N (L + D)) arrays, counted generously as 16 of them.
    """
    spec = REGISTRY[key.backend]
    itemsize = np.dtype(key.dtype).itemsize
    linear = 16 * key.n * (cfg.latent_dim + 4) * itemsize
    if key.layout == "dense":
        return int(spec.n2_buffers(cfg.latent_dim) * key.n**2 * itemsize) + linear
    from ukr_bench.problem import BLOCK_BUFFERS, plan_layout

    kind = parse_devices(key.device)[0]
    _, block = plan_layout(
        key.n, key.n, cfg.latent_dim, 3, check_dtype(key.dtype), available or 2**34,
        layout="blocked", device_kind=kind, workers=cfg.threads,
    )  # fmt: skip
    workers = cfg.threads if kind == "cpu" else 1
    # Forced host devices share the host's memory: each holds its blocks and a replica.
    host_copies = key.devices if kind == "cpu" else 1
    return host_copies * (int(workers * BLOCK_BUFFERS * (block or 1) * key.n * itemsize) + linear)


#: Floating-point operations per pair of points in one value + gradient, besides its exp:
#: the squared distance (3 per latent dimension), scale, max-subtract and normalise (3),
#: Y = R X and the residual products e.x_m (2 D each), the softmax backward (3) and the
#: latent products B Z (2 per latent dimension).
def flops_per_pair(latent_dim: int, data_dim: int) -> int:
    return 5 * latent_dim + 4 * data_dim + 6


_RATES: dict[tuple[str, str, str], tuple[float, float]] = {}


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

        def best(f: Callable[[], Any]) -> float:
            backend.sync(f())
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                backend.sync(f())
                times.append(time.perf_counter() - t0)
            return min(times)

        exp_rate = a.shape[0] * a.shape[1] / best(lambda: xp.exp(a))
        flop_rate = 2 * 1024**3 / best(lambda: m @ m)
    _RATES[key] = (exp_rate, flop_rate)
    return _RATES[key]


def bound(key: ConfigKey, cfg: SweepConfig, data_dim: int, rates: tuple[float, float]) -> float:
    """A lower bound on one value + gradient: N^2 pairs, each one exp at the measured exp rate
    and :func:`flops_per_pair` operations at the measured GEMM rate (no memory traffic)."""
    exp_rate, flop_rate = rates
    per_pair = 1.0 / exp_rate + flops_per_pair(cfg.latent_dim, data_dim) / flop_rate
    return float(key.n) ** 2 * per_pair


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


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = f"{type(exc).__name__}: {exc}"
    return "OutOfMemory" in text or "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def configure_process(backend: str, threads: int) -> dict[str, Any]:
    """Pin this process to ``threads`` CPUs, apply the backend's settings, and record them."""
    from ukr_bench.interface import backend_class

    settings: dict[str, Any] = {"threads": threads}
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, usable_cpus()[:threads])
        settings["cpu_affinity"] = usable_cpus()
    settings |= backend_class(backend).configure_process(threads)
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_info

        settings["blas"] = [
            {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for p in threadpool_info()
        ]
    return settings


def _write_inflight(run_dir: Path, row: Row) -> None:
    import json

    record = row.to_json() | {"started": time.time(), "pid": os.getpid()}
    (run_dir / INFLIGHT_FILE).write_text(json.dumps(record))


def predicted_call_seconds(key: ConfigKey, rows: list[Row], cfg: SweepConfig) -> str | None:
    """Why ``key`` is skipped for time, or None: the series' value + gradient median at its
    largest N measured, scaled by (N / that N)^2 (the cost is O(N^2)), beyond
    ``cfg.max_call_seconds``. Warm-up and the timed rounds cost several calls each, so one
    configuration predicted at a minute per call would hold the sweep for ten."""
    if not cfg.max_call_seconds:
        return None
    done = [
        r
        for r in rows
        if r.key.series == key.series
        and r.key.devices == key.devices
        and r.key.n < key.n
        and r.status == Status.OK
        and "value_and_grad" in r.timings
    ]
    if not done:
        return None
    last = max(done, key=lambda r: r.key.n)
    t = last.timings["value_and_grad"].median_s * (key.n / last.key.n) ** 2
    if t <= cfg.max_call_seconds:
        return None
    return (
        f"predicted {t:.3g} s per value + gradient call (O(N^2) from "
        f"{last.timings['value_and_grad'].median_s:.3g} s at N={last.key.n}) "
        f"> --max-call-seconds {cfg.max_call_seconds:g}"
    )


def worker_ns() -> set[int] | None:
    """The N values :data:`NS_ENV` gives this worker, or None (every N)."""
    raw = os.environ.get(NS_ENV)
    return None if raw is None else {int(n) for n in raw.split(",")}


def warm_up(key: ConfigKey, cfg: SweepConfig) -> None:
    """One untimed value + gradient at N = :data:`PROCESS_WARMUP_N` of ``key``'s kind.

    Made once per kind (layout, gradient, dtype, device) in a worker, just before the first
    configuration of that kind is measured and inside its in-flight window: a framework's
    one-time start-up (thread pools, allocator, JAX's compiler) then never lands in the first
    call of whichever configuration a worker happens to measure first, now that a sweep starts
    a worker per N, and a crash here (KeOps generating code, say) is that configuration's
    crash, as before. Exceptions are left to the configuration itself to raise again.
    """
    from ukr_bench.interface import value_and_grad

    n = max(PROCESS_WARMUP_N, cfg.latent_dim + 2)
    Z, X = problem_inputs(cfg.data, n, cfg.latent_dim, noise=cfg.noise, seed=cfg.seed)
    with contextlib.suppress(Exception):
        value_and_grad(
            Z, X, backend=key.backend, sigma=cfg.sigma, lam=cfg.lam, loo=cfg.loo,
            dtype=key.dtype, device=key.device, layout=key.layout, gradient=key.gradient,
        )  # fmt: skip


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
    references: dict[int, tuple[float, np.ndarray]] = {}

    def reference(n: int) -> tuple[float, np.ndarray]:
        if n not in references:
            from ukr_bench.interface import value_and_grad

            Z, X = problem_inputs(cfg.data, n, cfg.latent_dim, noise=cfg.noise, seed=cfg.seed)
            references[n] = value_and_grad(
                Z, X, backend="numpy", sigma=cfg.sigma, lam=cfg.lam, loo=cfg.loo
            )
        return references[n]

    settings = configure_process(backend, cfg.threads)  # once: the whole process shares them
    warmed: set[tuple[str, str, str, str]] = set()
    for key in mine:
        rows = read_rows(run_dir)
        if key in {r.key for r in rows}:
            continue
        limit = memory_limit(key, cfg, meta)
        row = base_row(key, cfg, limit)
        failed = [r for r in rows if r.key.series == key.series and r.status.fatal]
        if failed:
            first = min(failed, key=lambda r: r.key.n)
            row.status = Status.SKIPPED
            row.reason = f"{first.status} at N={first.key.n}: larger N skipped"
        elif limit is not None and (row.memory_estimate_bytes or 0) > limit:
            row.status = Status.SKIPPED
            row.reason = (
                f"estimated {(row.memory_estimate_bytes or 0) / 2**30:.1f} GiB "
                f"> limit {limit / 2**30:.1f} GiB"
            )
        elif (slow := predicted_call_seconds(key, rows, cfg)) is not None:
            row.status = Status.SKIPPED
            row.reason = slow
        else:
            _write_inflight(run_dir, row)
            kind = (key.layout, key.gradient, key.dtype, key.device)
            if kind not in warmed:
                warm_up(key, cfg)
                warmed.add(kind)
            try:
                row = measure(key, cfg, reference)
            except Exception as exc:  # noqa: BLE001 - recorded, and the sweep goes on
                row.status = Status.OOM if is_oom(exc) else Status.ERROR
                row.reason = f"{type(exc).__name__}: {exc}"[:2000]
                traceback.print_exc()
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
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    if os.getppid() != int(parent):
        os._exit(3)

    import threading

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
