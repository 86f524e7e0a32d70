"""What a sweep measures: :class:`SweepConfig`, its validation and its plan (presets:
:mod:`ukr_bench.bench.presets`).

A sweep is the product backend x layout x gradient x dtype x device (x devices count) x N x D
x L on one data set (a built-in one, in ``data_dims`` dimensions where it is synthetic, or the
user's file), with the problem's sigma, lam and loo fixed. The configuration is stored in the run's ``meta.json``, so that
``--resume`` repeats exactly it. Each field's ``metadata["help"]`` is the one description of the
option: the command line's ``ukr-bench bench`` options and their help are generated from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from backends import GRADIENT_KINDS, REGISTRY
from ukr_bench import data_files
from ukr_bench.data import DATASETS, DIGITS_SIZE, EMBEDDABLE, NATIVE_DIMS
from ukr_bench.devices import parse_device
from ukr_bench.extras import require
from ukr_bench.interface import available_backends
from ukr_bench.optim import OPTIMIZERS
from ukr_bench.problem import LAYOUTS, Params
from ukr_bench.schema import ConfigKey
from ukr_bench.system import usable_cpus
from ukr_bench.validation import (
    DTYPES,
    check_bool,
    check_dtype,
    check_int,
    check_nonnegative_float,
    check_positive_float,
)

DEFAULT_NS = (125, 250, 500, 1000, 2000, 4000, 8000)


def _help(text: str, **extra: Any) -> dict[str, Any]:
    """A field's metadata: its command-line help (``flag`` overrides ``--field-name``)."""
    return {"help": text, **extra}


@dataclass
class SweepConfig:
    """What one benchmark run measures. Every field is validated on construction."""

    backends: list[str] = field(
        default_factory=available_backends,
        metadata=_help("backends to run (default: every installed one)"),
    )
    layouts: list[str] = field(
        default_factory=lambda: ["dense", "blocked"],
        metadata=_help(
            "memory layouts: dense (N x N arrays), blocked (row blocks), fused (GPU kernels; "
            "skipped on a CPU)"
        ),
    )
    gradients: list[str] = field(
        default_factory=lambda: list(GRADIENT_KINDS),
        metadata=_help(
            "how the gradient is obtained: autodiff, manual (hand-derived), auto (each backend's "
            "default for the layout); a backend runs those it implements (numpy: manual only)"
        ),
    )
    dtypes: list[str] = field(default_factory=lambda: list(DTYPES), metadata=_help("precisions"))
    devices: list[str] = field(
        default_factory=lambda: ["cpu"], metadata=_help("devices: cpu, cuda, cuda:<i>")
    )
    ns: list[int] = field(
        default_factory=lambda: list(DEFAULT_NS), metadata=_help("the N grid (samples)", flag="--n")
    )
    device_counts: list[int] = field(
        default_factory=lambda: [1],
        metadata=_help(
            "devices sharing each call (rows split; blocked layout; backends that run several "
            "devices in one process only: jax). On the CPU these are forced host devices on "
            "the same cores: overhead, not speed-up"
        ),
    )
    data: str = field(
        default="saddle",
        metadata=_help(
            f"data set: {', '.join(sorted(DATASETS))}, or the path of an N x D .npy, .csv or "
            ".parquet file of your own (the N grid takes seeded subsamples of its rows)"
        ),
    )
    data_dims: list[int] = field(
        default_factory=list,
        metadata=_help(
            "data dimensions D: a synthetic data set is embedded in each by a fixed random "
            "orthogonal map (its manifold and intrinsic dimension unchanged); default: the "
            "data's own D (3 for saddle, 64 for digits, a file's columns)",
            type=int,
        ),
    )
    noise: float = field(default=0.0, metadata=_help("noise std added to the data"))
    latent_dims: list[int] = field(
        default_factory=lambda: [2], metadata=_help("latent dimensions L")
    )
    sigma: float = field(default=0.5, metadata=_help("kernel bandwidth"))
    lam: float = field(default=0.0, metadata=_help("prior weight"))
    loo: bool = field(default=True, metadata=_help("leave-one-out"))
    seed: int = field(default=0, metadata=_help("seed of the data and of Z ~ N(0, I)"))
    min_rounds: int = field(
        default=5, metadata=_help("minimum timed rounds per function", flag="--repeats")
    )
    max_rounds: int = field(default=200, metadata=_help("maximum timed rounds per function"))
    min_time: float = field(
        default=1.0, metadata=_help("seconds of timed samples per function, rounds permitting")
    )
    warmup: int = field(default=2, metadata=_help("untimed calls before timing"))
    timeout: float = field(
        default=600.0, metadata=_help("seconds per configuration before its worker is killed")
    )
    memory_fraction: float = field(
        default=0.8, metadata=_help("share of the available memory a configuration may use")
    )
    max_call_seconds: float = field(
        default=10.0,
        metadata=_help(
            "skip larger N of a series once one value + gradient call is predicted to take "
            "longer (its time at the largest N measured, times (N / that N)^2); 0: no limit"
        ),
    )
    fit_optimizers: list[str] = field(
        default_factory=lambda: list(OPTIMIZERS), metadata=_help("optimisers timed in UKR.fit")
    )
    fit_iters: int = field(
        default=20, metadata=_help("iterations per timed fit (0: no time-to-fit)")
    )
    fit_rounds: int = field(default=3, metadata=_help("timed fits per optimiser"))
    fit_max_n: int = field(default=2000, metadata=_help("largest N whose time-to-fit is measured"))
    reference_max_n: int = field(
        default=50_000,
        metadata=_help(
            "largest N whose float32/float64 error against NumPy's float64 value and gradient is "
            "measured: that reference runs on the host, O(N^2) (about a minute at the default on "
            "2 cores); above it a row's errors are left empty, with the reason in its info"
        ),
    )
    threads: int = field(
        default_factory=lambda: len(usable_cpus()),
        metadata=_help("CPU threads for every backend (default: all)"),
    )
    interleave: bool = field(
        default=True,
        metadata=_help(
            "measure the backends in turns, one N at a time (a worker per backend and N), so "
            "that the machine's drift during the run falls on every backend alike at each N; "
            "--no-interleave: each backend's whole sweep in one worker, one backend after another"
        ),
    )

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SweepConfig:
        """From ``meta.json``'s ``config``; fields unknown to this version are an error."""
        names = {f.name for f in dataclasses.fields(cls)} | {"latent_dim"}
        unknown = sorted(set(values) - names)
        if unknown:
            msg = f"unknown sweep configuration field(s) {unknown}; known: {sorted(names)}"
            raise ValueError(msg)
        # Runs made before the gradient axis measured each backend's default gradient only,
        # and before interleaving one backend after another: --resume repeats exactly that.
        old_defaults: dict[str, Any] = {"gradients": ["auto"], "interleave": False}
        values = dict(values)
        if "latent_dim" in values:  # before the L axis: one L
            values.setdefault("latent_dims", [values.pop("latent_dim")])
        return cls(**(old_defaults | values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise naming the option for anything a sweep could not run.

        The policy of :mod:`ukr_bench.validation`: a TypeError for a value of the wrong type
        (``ns=[2.5]``, ``interleave="yes"``, a tuple for a list), a ValueError otherwise.
        """
        _check_nonempty_unique("backends", self.backends)
        for b in self.backends:
            if b not in REGISTRY:
                msg = f"backends: unknown backend {b!r}; known: {sorted(REGISTRY)}"
                raise ValueError(msg)
        _check_nonempty_unique("layouts", self.layouts)
        for layout in self.layouts:
            if layout not in LAYOUTS or layout == "auto":
                msg = f"layouts: every layout must be one of {list(LAYOUTS[:-1])}, got {layout!r}"
                raise ValueError(msg)
        _check_nonempty_unique("gradients", self.gradients)
        for gradient in self.gradients:
            if gradient not in ("auto", *GRADIENT_KINDS):
                msg = f"gradients: every gradient must be one of {['auto', *GRADIENT_KINDS]}, got {gradient!r}"
                raise ValueError(msg)
        _check_nonempty_unique("dtypes", self.dtypes)
        self.dtypes = [check_dtype(d) for d in self.dtypes]
        _check_nonempty_unique("devices", self.devices)
        for d in self.devices:
            parse_device(d)
        _check_nonempty_unique("device_counts", self.device_counts)
        # Python ints, stored: a NumPy integer would pass the check but not json.dumps (meta.json)
        self.device_counts = sorted(check_int("device_counts", k, 1) for k in self.device_counts)
        _check_nonempty_unique("ns", self.ns)
        smallest = 2 if check_bool("loo", self.loo) else 1
        self.ns = sorted(check_int("ns: every N", n, smallest) for n in self.ns)
        self._validate_data()
        _check_nonempty_unique("latent_dims", self.latent_dims)
        self.latent_dims = sorted(check_int("latent_dims: every L", q, 1) for q in self.latent_dims)
        Params(sigma=self.sigma, lam=self.lam, loo=self.loo)
        check_nonnegative_float("noise", self.noise)
        _check_nonempty_unique("fit_optimizers", self.fit_optimizers, allow_empty=True)
        for opt in self.fit_optimizers:
            if opt not in OPTIMIZERS:
                msg = f"fit_optimizers: unknown optimizer {opt!r}; known: {list(OPTIMIZERS)}"
                raise ValueError(msg)
        check_bool("interleave", self.interleave)
        for name in ("min_rounds", "max_rounds", "threads", "fit_rounds"):
            setattr(self, name, check_int(name, getattr(self, name), 1))
        if self.max_rounds < self.min_rounds:
            msg = f"max_rounds ({self.max_rounds}) must be >= min_rounds ({self.min_rounds})"
            raise ValueError(msg)
        if self.threads > len(usable_cpus()):
            msg = f"threads must be <= the {len(usable_cpus())} CPUs this process may use, got {self.threads}"
            raise ValueError(msg)
        for name in ("warmup", "fit_iters", "fit_max_n", "reference_max_n", "seed"):
            setattr(self, name, check_int(name, getattr(self, name), 0))
        check_nonnegative_float("min_time", self.min_time)
        check_positive_float("timeout", self.timeout)
        check_nonnegative_float("max_call_seconds", self.max_call_seconds)
        if not 0 < check_positive_float("memory_fraction", self.memory_fraction) <= 1:
            msg = f"memory_fraction must be in (0, 1], got {self.memory_fraction!r}"
            raise ValueError(msg)

    def _validate_data(self) -> None:
        """``data`` a data set or a readable file, ``data_dims`` D that it can have, and every
        N at most the data's rows (digits: :data:`~ukr_bench.data.DIGITS_SIZE`; a file: its
        rows)."""
        _check_nonempty_unique("data_dims", self.data_dims, allow_empty=True)
        self.data_dims = sorted(check_int("data_dims: every D", d, 1) for d in self.data_dims)
        if not isinstance(self.data, str):
            msg = f"data must be a data set's name or a file's path, got {self.data!r}"
            raise TypeError(msg)
        if data_files.is_data_file(self.data):
            f = data_files.load(self.data)
            self.data = str(f.path)  # absolute: workers and --resume find the same file
            rows, native = f.X.shape
            what = f"the {rows} rows of {f.path}"
        elif self.data in DATASETS:
            native, rows = NATIVE_DIMS[self.data], DIGITS_SIZE if self.data == "digits" else 0
            if self.data == "digits":  # before the sweep starts, not in every worker
                require("sklearn.datasets", "data", "data set 'digits'")
            what = f"the {DIGITS_SIZE} samples of data set 'digits'"
        else:
            msg = (
                f"data must be one of {sorted(DATASETS)} or the path of a .npy, .csv or "
                f".parquet file, got {self.data!r}"
            )
            raise ValueError(msg)
        if rows and self.ns and max(self.ns) > rows:
            msg = f"ns: every N must be <= {what}, got N = {max(self.ns)}"
            raise ValueError(msg)
        if self.data in EMBEDDABLE:
            low = [d for d in self.data_dims if d < native]
            if low:
                msg = (
                    f"data_dims: every D must be >= {native} for data set {self.data!r}, got {low}"
                )
                raise ValueError(msg)
        elif self.data_dims not in ([], [native]):
            msg = (
                f"data_dims: the data's D is fixed at {native} (only a synthetic data set, "
                f"{', '.join(sorted(EMBEDDABLE))}, is embedded in more), got {self.data_dims}"
            )
            raise ValueError(msg)

    def dims(self) -> list[int]:
        """The D values swept: ``data_dims``, or the data's own D where that is empty."""
        if self.data_dims:
            return list(self.data_dims)
        if data_files.is_data_file(self.data):
            return [int(data_files.load(self.data).X.shape[1])]
        return [NATIVE_DIMS[self.data]]

    @property
    def latent_dim(self) -> int:
        """L of a configuration of one L (:meth:`for_key`'s); an error where several are swept."""
        if len(self.latent_dims) != 1:
            msg = f"this sweep has several L ({self.latent_dims}): take the key's latent_dim"
            raise ValueError(msg)
        return self.latent_dims[0]

    def for_key(self, key: ConfigKey) -> SweepConfig:
        """This configuration narrowed to ``key``'s D and L (and N): what one row measured."""
        return dataclasses.replace(
            self, data_dims=[key.data_dim], latent_dims=[key.latent_dim], ns=[key.n]
        )

    def problem(self) -> Params:
        return Params(sigma=self.sigma, lam=self.lam, loo=self.loo)

    def plan(self) -> list[ConfigKey]:
        """Every configuration, grouped by backend (one worker each), N ascending within a series.

        Host-only backends get no GPU configurations; a backend gets only the layouts and
        gradients it implements (KeOps tiles by itself: blocked only; NumPy: manual only).
        Device counts above 1 run the blocked layout of backends that run several devices in
        one process, on the devices from ``dev``'s index on (``cpu`` x 4: ``cpu:0-3``), with its
        default (hand-derived, sharded) gradient; torch's one process per device is not
        planned (``benchmarks/scaling.py`` measures it).
        """
        dims = self.dims()
        return [
            ConfigKey(b, layout, gradient, dt, device_set(dev, k), n, k, d, q)
            for b in self.backends
            for dev in self.devices
            if not (REGISTRY[b].host_only and parse_device(dev)[0] != "cpu")
            for k in self.device_counts
            if k == 1 or REGISTRY[b].multi_device == "in_process"
            for layout in self.layouts
            if layout in REGISTRY[b].layouts and (k == 1 or layout == "blocked")
            for gradient in self.gradient_kinds(b, layout, k)
            for dt in self.dtypes
            for d in dims
            for q in self.latent_dims
            for n in self.ns
        ]

    def rounds(self) -> list[list[int]]:
        """The N values each worker measures, in turn: every backend runs a worker for the first
        group, then every backend for the next... (``interleave``: one N per group; otherwise
        one group of every N, one worker per backend)."""
        return [[n] for n in self.ns] if self.interleave else [list(self.ns)]

    def gradient_kinds(self, backend: str, layout: str, devices: int = 1) -> list[str]:
        """The gradients of ``backend`` in ``layout`` this sweep measures, in registry order;
        on several devices only the default one (the sharded objective is hand-derived)."""
        spec = REGISTRY[backend]
        wanted = {spec.gradient_for(layout) if g == "auto" else g for g in self.gradients}
        if devices > 1:
            wanted &= {spec.gradient_for(layout)}
        return [g for g in spec.gradients_in(layout) if g in wanted]

    def host_devices(self, backend: str) -> int:
        """How many CPU devices ``backend``'s worker must see (the largest planned cpu set)."""
        return max(
            (k.devices for k in self.plan() if k.backend == backend and k.device.startswith("cpu")),
            default=1,
        )


def device_set(device: str, count: int) -> str:
    """``count`` devices from ``device``'s index on: ``device_set("cuda:2", 2) == "cuda:2-3"``."""
    if count == 1:
        return device
    kind, index = parse_device(device)
    return f"{kind}:{index}-{index + count - 1}"


def _check_nonempty_unique(name: str, values: Sequence[Any], *, allow_empty: bool = False) -> None:
    if not isinstance(values, list):
        msg = f"{name} must be a{'' if allow_empty else ' non-empty'} list, got {values!r}"
        raise TypeError(msg)
    if not values and not allow_empty:
        msg = f"{name} must be a non-empty list, got {values!r}"
        raise ValueError(msg)
    if len(set(values)) != len(values):
        msg = f"{name} has duplicates: {values!r}"
        raise ValueError(msg)
