"""The timing protocol: how one configuration is measured, in one place.

* inputs go to the device before timing; a timed call is ``sync(f(Z, X))``, so it ends only when
  the device has finished (``block_until_ready`` / ``torch.cuda.synchronize``) and copies nothing;
* the function is compiled (JAX: ahead of time) apart from the first call, and both are recorded;
* ``warmup`` untimed calls, then timed rounds until ``min_time`` has passed and ``min_rounds``
  are done (at most ``max_rounds``), like pytest-benchmark's calibration;
* no compilation may happen while timing (a recompiling configuration is an error row);
* memory per configuration: the rise of the process's peak RSS over the first value + gradient
  call on the host (:class:`ukr_bench.system.PeakRSS`), the backend's own measure on a device;
* time-to-fit: ``UKR(...).fit(X)``'s computation, once per backend, dtype and N.

:func:`measure_case` measures one configuration; the worker (:mod:`ukr_bench.bench.worker`)
decides which configurations to measure and records what happens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from backends import REGISTRY
from ukr_bench.bench.bound import record_bound
from ukr_bench.bench.config import SweepConfig
from ukr_bench.bench.estimates import memory_estimate
from ukr_bench.data import problem_inputs
from ukr_bench.interface import Backend, get_backend, instrumented
from ukr_bench.problem import Params, relative_error
from ukr_bench.schema import TIMED_FUNCTIONS, ConfigKey, FitTiming, Row, Status, Timing
from ukr_bench.system import PeakRSS
from ukr_bench.training import fit

#: ``reference(key)``: NumPy's float64 value and gradient of ``key``'s problem (its N, D and L).
Reference = Callable[[ConfigKey], tuple[float, np.ndarray]]
#: ``measure(key, cfg, reference) -> Row`` with status ``ok``; raises on failure.
Measure = Callable[[ConfigKey, SweepConfig, Reference], Row]


def base_row(key: ConfigKey, cfg: SweepConfig, available: int | None = None) -> Row:
    """A row with the configuration and the problem filled in, nothing measured yet.

    ``available``: the memory the configuration may use, for the blocked layout's estimate.
    """
    return Row(
        key=key,
        data=cfg.data,
        sigma=cfg.sigma,
        lam=cfg.lam,
        loo=cfg.loo,
        threads=cfg.threads,
        memory_estimate_bytes=memory_estimate(key, cfg, available),
    )


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


def time_function(
    backend: Backend, fn: str, Zd: Any, Xd: Any, params: Params, cfg: SweepConfig,
    row: Row,
) -> Any:  # fmt: skip
    """Compile, call once and time ``fn``, recording into ``row``; return the first call's result.

    The first value + gradient call allocates fresh buffers, so the rise of peak RSS over it is
    the memory it needs (later calls reuse what the allocator keeps): recorded for it only.
    """
    hooks = instrumented(backend)
    t0 = time.perf_counter()
    f = backend.compile(fn, Zd, Xd, params)  # type: ignore[arg-type]
    t_compile = time.perf_counter() - t0
    hooks.reset_device_peak()
    with PeakRSS() as rss:
        out = backend.sync(f(Zd, Xd))
    t_first = time.perf_counter() - t0
    if fn == "value_and_grad":
        row.host_peak_bytes = rss.bytes
        row.device_peak_bytes = hooks.device_peak()
        if row.device_peak_bytes is not None:
            row.device_peak_method = hooks.device_peak_method
    compiles = hooks.compile_count()
    row.samples[fn] = time_calls(backend, f, Zd, Xd, cfg)
    if hooks.compile_count() != compiles:
        msg = f"{fn} recompiled {hooks.compile_count() - compiles} time(s) while being timed"
        raise RuntimeError(msg)
    row.timings[fn] = Timing.from_samples(row.samples[fn], first_s=t_first, compile_s=t_compile)
    return out


def fits_timed(key: ConfigKey, cfg: SweepConfig) -> bool:
    """Whether ``key``'s row gets the time-to-fit: once per backend, dtype and N.

    The estimator chooses its layout itself (auto, dense at these N), so the blocked rows would
    time the very same fits again; likewise only the backend's default gradient.
    """
    default = REGISTRY[key.backend].gradient_for(key.layout) if key.backend in REGISTRY else None
    return bool(
        cfg.fit_iters
        and key.n <= cfg.fit_max_n
        and key.layout == "dense"
        and key.gradient == default
    )


def measure_case(key: ConfigKey, cfg: SweepConfig, reference: Reference) -> Row:
    """Measure one configuration: timings, memory, precision, time-to-fit. Raises on failure.

    ``cfg`` is narrowed to the key's D and L first (:meth:`SweepConfig.for_key`), so that what
    reads the problem from it sees this configuration's.
    """
    cfg = cfg.for_key(key)
    row = base_row(key, cfg)
    backend = get_backend(
        key.backend, dtype=key.dtype, device=key.device, layout=key.layout, gradient=key.gradient
    )
    Z, X = problem_inputs(
        cfg.data, key.n, key.latent_dim, noise=cfg.noise, seed=cfg.seed, data_dim=key.data_dim
    )
    resolved, block = backend.resolve_layout(key.n, key.latent_dim, X.shape[1])
    row.info = backend.info() | {
        "resolved_layout": resolved,
        "block_rows": block,
        "gradient": backend.describe_gradient(resolved),  # e.g. "hand-derived (blocked custom_vjp)"
    }
    record_bound(row, key, backend)
    Zd, Xd = backend.asarray(Z), backend.asarray(X)
    backend.sync((Zd, Xd))
    # this configuration's compile is its own, never a cache hit
    instrumented(backend).clear_compile_caches()
    params = cfg.problem()
    outputs = {fn: time_function(backend, fn, Zd, Xd, params, cfg, row)
               for fn in TIMED_FUNCTIONS}  # fmt: skip
    row.grad_ratio = row.timings["value_and_grad"].median_s / row.timings["value"].median_s
    if fits_timed(key, cfg):
        row.fits = time_fits(key, cfg, X, row.samples)
    value, grad = (backend.to_numpy(a) for a in outputs["value_and_grad"])
    row.value = float(value)
    if key.n <= cfg.reference_max_n:
        ref_value, ref_grad = reference(key)
        row.value_rel_error = relative_error(value, ref_value)
        row.grad_rel_error = relative_error(grad, ref_grad)
    else:
        row.info["precision"] = f"not measured: N > --reference-max-n {cfg.reference_max_n}"
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
    fits = {}
    for opt in cfg.fit_optimizers:

        def run(opt: str = opt) -> int:
            result = fit(
                X, n_components=key.latent_dim, sigma=cfg.sigma, lam=cfg.lam, loo=cfg.loo,
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
