"""The benchmark harness: speed, memory and float32/float64 precision of each backend over N.

A sweep is the product backend x device x dtype x N on one data set, with sigma, lam, loo and L
fixed. For each configuration it records

* the first call's time (JAX: tracing + XLA compilation, timed on its own through the
  ahead-of-time ``lower().compile()`` path; torch/NumPy: the first eager pass) apart from
* steady-state times of the objective alone and of value + gradient (median, IQR, min, mean,
  rounds and the raw samples), and their ratio;
* peak host memory (the rise of the process's peak RSS over one call) and device memory;
* the value's and gradient's relative error against float64 NumPy on the same inputs.

How it keeps the measurement honest:

* inputs go to the device before timing; a timed call is ``sync(f(Z, X))``, so it ends only when
  the device has finished (``block_until_ready`` / ``torch.cuda.synchronize``) and copies nothing;
* each (backend, device, dtype, N) is warmed up before timing, and the harness checks that no
  compilation happened while timing (a recompiling configuration is reported as an error);
* every backend runs in its own worker process (JAX's x64 and GPU preallocation, torch's thread
  pools never meet), pinned to the same CPUs with the same thread settings, all recorded;
* rows are appended to ``results.jsonl`` as each configuration finishes, so a sweep killed at
  any moment keeps every finished row, and ``--resume`` completes it without redoing them;
* a configuration whose estimated memory does not fit is skipped with its reason; one that
  fails (out of memory, error, time-out, the worker killed) is recorded as such, the sweep goes
  on, and after an out-of-memory or time-out the larger N of that backend/device/dtype are
  skipped.

Why not pytest-benchmark's fixture: it writes its JSON only when the pytest session ends (a
killed sweep would lose everything) and has no notion of per-process backends, resuming or
skipping. The harness uses its pieces instead: :class:`pytest_benchmark.stats.Stats` for the
statistics (same field names as its JSON) and its machine-info and commit-info collectors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ukr_bench.data import DATASETS, make_dataset
from ukr_bench.estimator import OPTIMIZERS
from ukr_bench.interface import FUNCTIONS, REGISTRY, Backend, available_backends, get_backend
from ukr_bench.problem import (
    DTYPES,
    Params,
    check_dtype,
    check_nonnegative_float,
    check_positive_float,
    parse_device,
    relative_error,
)

DEFAULT_NS = (125, 250, 500, 1000, 2000, 4000, 8000)
QUICK_NS = (64, 128, 256)
RESULTS_FILE = "results.jsonl"
TABLE_FILE = "results.csv"
META_FILE = "meta.json"
INFLIGHT_FILE = "inflight.json"
# After these, larger N of the same backend/device/dtype would only fail again, slower.
FATAL_STATUSES = ("oom", "timeout", "crashed")
STATUSES = ("ok", "skipped", "error", *FATAL_STATUSES)


@dataclasses.dataclass
class SweepConfig:
    """What one benchmark run measures; stored in ``meta.json`` so that ``--resume`` repeats it."""

    backends: list[str] = dataclasses.field(default_factory=available_backends)
    dtypes: list[str] = dataclasses.field(default_factory=lambda: list(DTYPES))
    devices: list[str] = dataclasses.field(default_factory=lambda: ["cpu"])
    ns: list[int] = dataclasses.field(default_factory=lambda: list(DEFAULT_NS))
    data: str = "saddle"
    noise: float = 0.0
    latent_dim: int = 2
    sigma: float = 0.5
    lam: float = 0.0
    loo: bool = True
    seed: int = 0
    min_rounds: int = 5
    max_rounds: int = 200
    min_time: float = 1.0  # seconds of timed samples per function, rounds permitting
    warmup: int = 2
    timeout: float = 600.0  # seconds for one configuration before its worker is killed
    memory_fraction: float = 0.8  # of the memory available at the start
    # Time-to-fit: UKR(...).fit(X) with a fixed iteration count per optimiser, up to fit_max_n.
    fit_optimizers: list[str] = dataclasses.field(default_factory=lambda: ["gd", "rprop", "lbfgs"])
    fit_iters: int = 20
    fit_rounds: int = 3
    fit_max_n: int = 2000
    threads: int = dataclasses.field(default_factory=lambda: len(_cpus()))

    @classmethod
    def quick(cls, **overrides: Any) -> SweepConfig:
        """The smoke-test sweep: three small N, few rounds (well under two minutes)."""
        base = {
            "ns": list(QUICK_NS),
            "min_rounds": 3,
            "min_time": 0.05,
            "warmup": 1,
            "fit_iters": 5,
            "fit_rounds": 1,
        }
        return cls(**(base | overrides))

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise a ValueError naming the option for anything a sweep could not run."""
        _check_nonempty_unique("backends", self.backends)
        for b in self.backends:
            if b not in REGISTRY:
                msg = f"backends: unknown backend {b!r}; known: {sorted(REGISTRY)}"
                raise ValueError(msg)
        _check_nonempty_unique("dtypes", self.dtypes)
        self.dtypes = [check_dtype(d) for d in self.dtypes]
        _check_nonempty_unique("devices", self.devices)
        for d in self.devices:
            parse_device(d)
        _check_nonempty_unique("ns", self.ns)
        for n in self.ns:
            if isinstance(n, bool) or not isinstance(n, int) or n < (2 if self.loo else 1):
                msg = f"ns: every N must be an integer >= {2 if self.loo else 1} (loo={self.loo}), got {n!r}"
                raise ValueError(msg)
        self.ns = sorted(self.ns)
        if self.data not in DATASETS:
            msg = f"data must be one of {sorted(DATASETS)}, got {self.data!r}"
            raise ValueError(msg)
        Params(sigma=self.sigma, lam=self.lam, loo=self.loo)
        check_nonnegative_float("noise", self.noise)
        if not isinstance(self.fit_optimizers, list) or len(set(self.fit_optimizers)) != len(
            self.fit_optimizers
        ):
            msg = f"fit_optimizers must be a list without duplicates, got {self.fit_optimizers!r}"
            raise ValueError(msg)
        for opt in self.fit_optimizers:
            if opt not in OPTIMIZERS:
                msg = f"fit_optimizers: unknown optimizer {opt!r}; known: {list(OPTIMIZERS)}"
                raise ValueError(msg)
        for name in ("latent_dim", "min_rounds", "max_rounds", "threads", "fit_rounds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"{name} must be a positive integer, got {value!r}"
                raise ValueError(msg)
        if self.max_rounds < self.min_rounds:
            msg = f"max_rounds ({self.max_rounds}) must be >= min_rounds ({self.min_rounds})"
            raise ValueError(msg)
        if self.threads > len(_cpus()):
            msg = f"threads must be <= the {len(_cpus())} CPUs this process may use, got {self.threads}"
            raise ValueError(msg)
        for name in ("warmup", "fit_iters", "fit_max_n"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                msg = f"{name} must be an integer >= 0, got {value!r}"
                raise ValueError(msg)
        check_nonnegative_float("min_time", self.min_time)
        check_positive_float("timeout", self.timeout)
        if not 0 < check_positive_float("memory_fraction", self.memory_fraction) <= 1:
            msg = f"memory_fraction must be in (0, 1], got {self.memory_fraction!r}"
            raise ValueError(msg)

    def plan(self) -> list[Case]:
        """Every configuration, grouped by backend (one worker each), N ascending within a group."""
        return [
            Case(b, dev, dt, n)
            for b in self.backends
            for dev in self.devices
            for dt in self.dtypes
            for n in self.ns
            if not (b == "numpy" and not dev.startswith("cpu"))  # NumPy has no device to offer
        ]


def _check_nonempty_unique(name: str, values: Sequence[Any]) -> None:
    if not isinstance(values, list) or not values:
        msg = f"{name} must be a non-empty list, got {values!r}"
        raise ValueError(msg)
    if len(set(values)) != len(values):
        msg = f"{name} has duplicates: {values!r}"
        raise ValueError(msg)


@dataclasses.dataclass(frozen=True)
class Case:
    """One configuration of a sweep."""

    backend: str
    device: str
    dtype: str
    n: int

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.backend, self.device, self.dtype, self.n)

    @property
    def group(self) -> tuple[str, str, str]:
        return (self.backend, self.device, self.dtype)

    def __str__(self) -> str:
        return f"{self.backend} {self.device} {self.dtype} N={self.n}"


# --------------------------------------------------------------------------- results on disk


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    """Every finished row of a run; a last line cut short by a kill is ignored."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # only the line being written when the process died can be partial
    return rows


def _row_key(row: dict[str, Any]) -> tuple[str, str, str, int]:
    return (row["backend"], row["device"], row["dtype"], int(row["n"]))


def append_row(run_dir: Path, row: dict[str, Any]) -> None:
    """Append one row durably, then refresh the flat table beside it."""
    path = Path(run_dir) / RESULTS_FILE
    with path.open("a") as f:
        f.write(json.dumps(row, default=_json_default) + "\n")
        f.flush()
        os.fsync(f.fileno())
    write_table(run_dir)


def write_table(run_dir: Path) -> Path:
    """``results.csv``: one row per configuration, without the raw samples."""
    import pandas as pd

    rows = read_rows(run_dir)
    flat = [{k: v for k, v in r.items() if not isinstance(v, (dict, list))} for r in rows]
    path = Path(run_dir) / TABLE_FILE
    tmp = path.with_suffix(".tmp")
    pd.DataFrame(flat).to_csv(tmp, index=False)
    tmp.replace(path)  # atomic: a reader never sees half a table
    return path


def load_results(run_dir: Path | str) -> tuple[Any, dict[str, Any]]:
    """A run's rows as a pandas DataFrame (raw samples in column ``samples``) and its metadata."""
    import pandas as pd

    run_dir = Path(run_dir)
    meta_path = run_dir / META_FILE
    if not meta_path.is_file():
        msg = f"{run_dir} is not a results directory: it has no {META_FILE}"
        raise FileNotFoundError(msg)
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        msg = f"{meta_path} is not valid JSON: {exc}"
        raise ValueError(msg) from exc
    return pd.DataFrame(read_rows(run_dir)), meta


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    msg = f"cannot serialise {type(obj).__name__}"
    raise TypeError(msg)


# --------------------------------------------------------------------------- machine metadata


def _cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _meminfo(field: str) -> int | None:
    """A /proc/meminfo field in bytes, or None off Linux."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def _gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs as nvidia-smi reports them (name, driver, memory); [] where there is none."""
    query = "name,driver_version,memory.total"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [
        dict(zip(query.split(","), (p.strip() for p in line.split(",")), strict=False))
        for line in out.splitlines()
        if line.strip()
    ]


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in (
        "ukr-bench",
        "numpy",
        "scipy",
        "jax",
        "jaxlib",
        "torch",
        "pandas",
        "matplotlib",
        "pytest-benchmark",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def machine_metadata() -> dict[str, Any]:
    """CPU, memory, GPUs, OS, Python and library versions (no framework is imported)."""
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info

    machine = pytest_benchmark_generate_machine_info()
    machine.get("cpu", {}).pop("flags", None)  # hundreds of entries nobody reads
    return {
        "machine": machine,
        "cpu_model": machine.get("cpu", {}).get("brand_raw") or platform.processor(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(_cpus()),
        "memory_total_bytes": _meminfo("MemTotal"),
        "memory_available_bytes": _meminfo("MemAvailable"),
        "gpus": _gpus(),
        "os": platform.platform(),
        "versions": _versions(),
        "env": {
            k: os.environ.get(k)
            for k in (
                "OMP_NUM_THREADS",
                "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS",
                "XLA_FLAGS",
                "OPENBLAS_CORETYPE",
                "CUDA_VISIBLE_DEVICES",
                "XLA_PYTHON_CLIENT_PREALLOCATE",
            )
        },
    }


def _git_commit() -> dict[str, Any]:
    from pytest_benchmark.utils import get_commit_info

    here = Path(__file__).resolve().parent.parent
    try:
        return get_commit_info(str(here))
    except Exception as exc:  # noqa: BLE001 - metadata must never stop a run
        return {"id": None, "error": str(exc)}


# --------------------------------------------------------------------------- the worker


def thread_env(threads: int) -> dict[str, str]:
    """Environment that gives every framework ``threads`` threads; set before any import."""
    env = {k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    xla = os.environ.get("XLA_FLAGS", "")
    if threads == 1:  # XLA's CPU client has no thread-count flag; this turns its pool off
        xla = f"{xla} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
    env["XLA_FLAGS"] = xla
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # measure JAX's real peak, not a 75% pool
    return env


def _framework_settings(backend: str, threads: int) -> dict[str, Any]:
    """Pin the process to ``threads`` CPUs, apply framework settings, and record them."""
    settings: dict[str, Any] = {"threads": threads}
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, _cpus()[:threads])
        settings["cpu_affinity"] = _cpus()
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
        torch.set_float32_matmul_precision("highest")
        settings["torch_num_threads"] = torch.get_num_threads()
        settings["torch_float32_matmul_precision"] = torch.get_float32_matmul_precision()
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_info

        settings["blas"] = [
            {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for p in threadpool_info()
        ]
    return settings


class _PeakRSS:
    """The rise of this process's peak resident memory over a block (Linux: VmHWM, reset first)."""

    def __enter__(self) -> _PeakRSS:  # noqa: PYI034 - py3.10 has no typing.Self
        self.bytes: int | None = None
        self._base = None
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


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = f"{type(exc).__name__}: {exc}"
    return "OutOfMemory" in text or "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def _time_calls(
    backend: Backend, f: Callable[[Any, Any], Any], Z: Any, X: Any, cfg: SweepConfig
) -> list[float]:
    """Warm up, then time calls until ``min_time`` has passed and ``min_rounds`` are done.

    Like pytest-benchmark's calibration, the number of rounds follows from the time budget, so a
    slow first warm-up call (thread pools starting, allocator growing) cannot starve the sample.
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


def _time_fits(
    case: Case, cfg: SweepConfig, X: np.ndarray, samples: dict[str, list[float]]
) -> dict[str, Any]:
    """Time-to-fit of each optimiser: ``fit_iters`` iterations from the same random start.

    One untimed fit first (JAX compiles there), then ``fit_rounds`` timed fits; ``fit`` returns
    the embedding on the host, so each timed fit ends synchronised.
    """
    from ukr_bench.estimator import UKR

    row: dict[str, Any] = {}
    for opt in cfg.fit_optimizers:
        est = UKR(
            n_components=cfg.latent_dim, sigma=cfg.sigma, lam=cfg.lam, loo=cfg.loo,
            backend=case.backend, dtype=case.dtype, device=case.device,
            optimizer=opt, max_iter=cfg.fit_iters, init="random", random_state=cfg.seed,
        )  # fmt: skip
        est.fit(X)
        times = []
        for _ in range(cfg.fit_rounds):
            t0 = time.perf_counter()
            est.fit(X)
            times.append(time.perf_counter() - t0)
        samples[f"fit_{opt}"] = times
        row[f"fit_{opt}_median_s"] = float(np.median(times))
        row[f"fit_{opt}_iters"] = est.n_iter_  # L-BFGS may stop early: time per iteration below
        row[f"fit_{opt}_per_iter_s"] = row[f"fit_{opt}_median_s"] / max(est.n_iter_, 1)
    return row


def problem_inputs(cfg: SweepConfig, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Latent points Z ~ N(0, I_L) and the data set's first ``n`` points, float64 (seeded)."""
    X, _ = make_dataset(cfg.data, n, noise=cfg.noise, random_state=cfg.seed)
    Z = np.random.default_rng(cfg.seed + 1).normal(size=(n, cfg.latent_dim))
    return Z, X


def measure_case(
    case: Case, cfg: SweepConfig, reference: Callable[[int], tuple[float, np.ndarray]]
) -> dict[str, Any]:
    """Run one configuration and return its row (status ``ok``); raises on failure."""
    from pytest_benchmark.stats import Stats

    params = Params(sigma=cfg.sigma, lam=cfg.lam, loo=cfg.loo)
    backend = get_backend(case.backend, dtype=case.dtype, device=case.device)
    row: dict[str, Any] = {"info": backend.info()}
    Z, X = problem_inputs(cfg, case.n)
    Zd, Xd = backend.asarray(Z), backend.asarray(X)
    backend.sync((Zd, Xd))
    samples: dict[str, list[float]] = {}
    result = None
    # value_and_grad first: its first call allocates fresh buffers, so the rise of peak RSS over
    # it is the memory it needs (later calls reuse what the allocator keeps).
    for fn in reversed(FUNCTIONS):
        t0 = time.perf_counter()
        f = backend.compile(fn, Zd, Xd, params)
        t_compile = time.perf_counter() - t0
        backend.reset_device_peak()
        with _PeakRSS() as rss:
            out = backend.sync(f(Zd, Xd))
        row[f"{fn}_first_s"] = time.perf_counter() - t0
        row[f"{fn}_compile_s"] = t_compile
        if fn == "value_and_grad":
            result = out
            row["host_peak_bytes"] = rss.bytes
            row["device_peak_bytes"] = backend.device_peak()
        compiles = backend.compile_count()
        samples[fn] = _time_calls(backend, f, Zd, Xd, cfg)
        if backend.compile_count() != compiles:
            msg = f"{fn} recompiled {backend.compile_count() - compiles} time(s) while being timed"
            raise RuntimeError(msg)
        stats = Stats()
        for s in samples[fn]:
            stats.update(s)
        for field in ("median", "iqr", "q1", "q3", "min", "max", "mean", "stddev"):
            row[f"{fn}_{field}_s"] = getattr(stats, field)
        row[f"{fn}_rounds"] = stats.rounds
    row["grad_ratio"] = row["value_and_grad_median_s"] / row["value_median_s"]
    if cfg.fit_iters and case.n <= cfg.fit_max_n:
        row |= _time_fits(case, cfg, X, samples)
    row["samples"] = samples

    value, grad = (backend.to_numpy(a) for a in result)
    ref_value, ref_grad = reference(case.n)
    row["value"] = float(value)
    row["value_rel_error"] = relative_error(value, ref_value)
    row["grad_rel_error"] = relative_error(grad, ref_grad)
    row["status"] = "ok"
    return row


def _base_row(case: Case, cfg: SweepConfig) -> dict[str, Any]:
    return {
        "backend": case.backend,
        "device": case.device,
        "dtype": case.dtype,
        "n": case.n,
        "data": cfg.data,
        "latent_dim": cfg.latent_dim,
        "sigma": cfg.sigma,
        "lam": cfg.lam,
        "loo": cfg.loo,
        "threads": cfg.threads,
        "memory_estimate_bytes": memory_estimate(case, cfg),
    }


def memory_estimate(case: Case, cfg: SweepConfig) -> int:
    """Bytes value_and_grad is expected to need: the backend's N x N buffer count times N^2."""
    spec = REGISTRY[case.backend]
    itemsize = np.dtype(case.dtype).itemsize
    return int(spec.n2_buffers(cfg.latent_dim) * case.n**2 * itemsize)


def memory_limit(case: Case, cfg: SweepConfig, meta: dict[str, Any]) -> int | None:
    """Bytes a configuration may use: a fraction of the host's (or the GPU's) memory."""
    if case.device.startswith("cuda"):
        index = parse_device(case.device)[1]
        gpus = meta.get("machine", {}).get("gpus", [])
        if index < len(gpus):
            mib = float(gpus[index].get("memory.total", "0 MiB").split()[0])
            return int(cfg.memory_fraction * mib * 2**20)
        return None
    available = meta.get("machine", {}).get("memory_available_bytes")
    return None if available is None else int(cfg.memory_fraction * available)


def run_worker(run_dir: Path | str, backend: str) -> None:
    """Measure every unfinished configuration of ``backend`` in this process, appending rows."""
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / META_FILE).read_text())
    cfg = SweepConfig(**meta["config"])
    references: dict[int, tuple[float, np.ndarray]] = {}

    def reference(n: int) -> tuple[float, np.ndarray]:
        if n not in references:
            from ukr_bench.interface import value_and_grad

            Z, X = problem_inputs(cfg, n)
            references[n] = value_and_grad(
                Z, X, backend="numpy", sigma=cfg.sigma, lam=cfg.lam, loo=cfg.loo
            )
        return references[n]

    settings = _framework_settings(backend, cfg.threads)  # once: the whole process shares them
    for case in cfg.plan():
        if case.backend != backend:
            continue
        rows = read_rows(run_dir)
        if case.key in {_row_key(r) for r in rows}:
            continue
        row = _base_row(case, cfg) | {"settings": settings}
        failed = [
            r
            for r in rows
            if (r["backend"], r["device"], r["dtype"]) == case.group
            and r["status"] in FATAL_STATUSES
        ]
        limit = memory_limit(case, cfg, meta)
        if failed:
            first = min(failed, key=lambda r: r["n"])
            row |= {
                "status": "skipped",
                "reason": f"{first['status']} at N={first['n']}: larger N skipped",
            }
        elif limit is not None and row["memory_estimate_bytes"] > limit:
            row |= {
                "status": "skipped",
                "reason": f"estimated {row['memory_estimate_bytes'] / 2**30:.1f} GiB > limit {limit / 2**30:.1f} GiB",
            }
        else:
            (run_dir / INFLIGHT_FILE).write_text(
                json.dumps({**row, "started": time.time(), "pid": os.getpid()})
            )
            try:
                row |= measure_case(case, cfg, reference)
            except Exception as exc:  # noqa: BLE001 - recorded, and the sweep goes on
                status = "oom" if _is_oom(exc) else "error"
                row |= {"status": status, "reason": f"{type(exc).__name__}: {exc}"[:2000]}
                traceback.print_exc()
        row["finished"] = datetime.now(timezone.utc).isoformat()
        append_row(run_dir, row)
        (run_dir / INFLIGHT_FILE).unlink(missing_ok=True)


# --------------------------------------------------------------------------- the sweep


def _default_run_dir(cfg: SweepConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    devices = "-".join(sorted({d.split(":")[0] for d in cfg.devices}))
    return Path("results") / f"{stamp}_{platform.node() or 'host'}_{devices}"


def worker_command(run_dir: Path, backend: str) -> list[str]:
    return [sys.executable, "-m", "ukr_bench.harness", "worker", str(run_dir), backend]


def run_sweep(
    cfg: SweepConfig | None = None,
    out: Path | str | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    command: list[str] | None = None,
    worker_cmd: Callable[[Path, str], list[str]] = worker_command,
) -> Path:
    """Run (or, with ``resume``, finish) a sweep; returns its results directory.

    Each backend runs in a fresh worker process made by ``worker_cmd``. The parent watches the
    in-flight configuration: past ``cfg.timeout`` it kills the worker and records a time-out; a
    worker that dies (e.g. killed by the kernel for memory) is recorded as ``crashed``; then a
    new worker carries on with the rest.
    """
    if resume:
        if out is None:
            msg = "resume needs the results directory to finish"
            raise ValueError(msg)
        run_dir = Path(out)
        if not (run_dir / META_FILE).is_file():
            msg = f"cannot resume {run_dir}: it has no {META_FILE}"
            raise FileNotFoundError(msg)
        meta = json.loads((run_dir / META_FILE).read_text())
        cfg = SweepConfig(**meta["config"])
        meta.setdefault("resumed", []).append(
            {"date": datetime.now(timezone.utc).isoformat(), "command": command or sys.argv}
        )
    else:
        cfg = cfg or SweepConfig()
        run_dir = Path(out) if out is not None else _default_run_dir(cfg)
        if run_dir.exists() and any(run_dir.iterdir()):
            msg = f"{run_dir} exists and is not empty: choose another --out, or --resume it"
            raise FileExistsError(msg)
        missing = [b for b in cfg.backends if b not in available_backends()]
        if missing:
            msg = f"backends not installed: {missing}; " + "; ".join(
                REGISTRY[b].install for b in missing
            )
            raise ValueError(msg)
        run_dir.mkdir(parents=True, exist_ok=True)
        meta = {
            "config": dataclasses.asdict(cfg),
            "command": command or sys.argv,
            "date": datetime.now(timezone.utc).isoformat(),
            "git": _git_commit(),
            "machine": machine_metadata(),
            "thread_env": thread_env(cfg.threads),
            "harness": "ukr_bench.harness (pytest-benchmark Stats; see README)",
        }
    (run_dir / META_FILE).write_text(json.dumps(meta, indent=2, default=_json_default))
    plan = cfg.plan()
    with _progress(progress, len(plan)) as update:
        for backend in cfg.backends:
            _run_backend(run_dir, backend, cfg, plan, worker_cmd, update)
        update(len(read_rows(run_dir)), "done")
    write_table(run_dir)
    return run_dir


def _run_backend(
    run_dir: Path,
    backend: str,
    cfg: SweepConfig,
    plan: list[Case],
    worker_cmd: Callable[[Path, str], list[str]],
    update: Callable[[int, str], None],
) -> None:
    mine = [c for c in plan if c.backend == backend]
    env = os.environ | thread_env(cfg.threads)
    while True:
        done = {_row_key(r) for r in read_rows(run_dir)}
        todo = [c for c in mine if c.key not in done]
        if not todo:
            return
        (run_dir / INFLIGHT_FILE).unlink(missing_ok=True)
        log = (run_dir / f"worker-{backend}.log").open("a")
        proc = subprocess.Popen(
            worker_cmd(run_dir, backend), stdout=log, stderr=subprocess.STDOUT, env=env
        )
        timed_out = None
        results, seen_size, done_count = run_dir / RESULTS_FILE, -1, 0
        try:
            while proc.poll() is None:
                # Parse the results only when they grew: the worker is timing on these CPUs.
                size = results.stat().st_size if results.exists() else 0
                if size != seen_size:
                    seen_size, done_count = size, len(read_rows(run_dir))
                inflight = _inflight(run_dir)
                update(
                    done_count,
                    f"{backend} {inflight['device']} {inflight['dtype']} N={inflight['n']}"
                    if inflight
                    else backend,
                )
                if inflight and time.time() - inflight["started"] > cfg.timeout:
                    timed_out = inflight
                    proc.kill()
                    proc.wait()
                    break
                time.sleep(0.2)
        except BaseException:
            # Interrupted (Ctrl-C) or failing here: never leave a worker running on its own.
            # Its configuration in flight is not recorded, so --resume measures it again.
            proc.kill()
            proc.wait()
            raise
        finally:
            log.close()
        inflight = _inflight(run_dir)
        if timed_out is not None:
            _record_failure(
                run_dir, timed_out, "timeout", f"no result within {cfg.timeout:g} s; worker killed"
            )
        elif proc.returncode != 0:
            reason = _exit_reason(proc.returncode)
            if inflight is None:
                # Died outside any configuration (e.g. the framework failed to import).
                tail = _log_tail(run_dir / f"worker-{backend}.log")
                for c in todo:
                    _record_failure(
                        run_dir, {**_base_row(c, cfg)}, "error", f"worker failed: {reason}; {tail}"
                    )
                return
            _record_failure(
                run_dir, inflight, "crashed", f"worker {reason} during this configuration"
            )
        elif len({_row_key(r) for r in read_rows(run_dir)} & {c.key for c in todo}) == 0:
            msg = f"worker for {backend} exited cleanly without finishing any configuration"
            raise RuntimeError(msg)


def _inflight(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / INFLIGHT_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _record_failure(run_dir: Path, row: dict[str, Any], status: str, reason: str) -> None:
    row = {k: v for k, v in row.items() if k not in ("started", "pid")}
    append_row(
        run_dir,
        row
        | {"status": status, "reason": reason, "finished": datetime.now(timezone.utc).isoformat()},
    )
    (run_dir / INFLIGHT_FILE).unlink(missing_ok=True)


def _exit_reason(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (the kernel's out-of-memory killer sends this)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {code}"


def _log_tail(path: Path, lines: int = 5) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(path.read_text().strip().splitlines()[-lines:])
    return ""


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[int, str], None]]:
    """A rich progress bar (done/total, elapsed, time left), or nothing."""
    if not enabled:
        yield lambda done, what: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("starting", total=total)
        yield lambda done, what: bar.update(task, completed=done, description=what)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ukr_bench.harness worker RUN_DIR BACKEND``: the per-backend worker process."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] != "worker":
        print("usage: python -m ukr_bench.harness worker RUN_DIR BACKEND", file=sys.stderr)
        return 2
    run_worker(Path(args[1]), args[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "Case",
    "SweepConfig",
    "load_results",
    "machine_metadata",
    "read_rows",
    "run_sweep",
    "run_worker",
]
