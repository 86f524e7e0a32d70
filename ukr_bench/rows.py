"""The records of a results file: a configuration's key, its status, its timings and its row.

Every row is identified by its :class:`ConfigKey`, the one configuration key of the suite:
backend, memory layout, how the gradient is obtained, dtype, device (set), N, and the problem's
dimensions D (``data_dim``) and L (``latent_dim``). A row's status is a :class:`Status`. On disk
a row is *flat*: the per-function timing statistics are columns named by :func:`timing_column`
(``value_and_grad_median_s``), the time-to-fit ones by :func:`fit_column`
(``fit_lbfgs_median_s``), so that ``results.csv`` and a pandas frame read naturally;
:class:`Row` converts between the typed record and that layout, and :func:`upgrade_row` brings
a row of any older schema version to this one. The files themselves are :mod:`ukr_bench.schema`'s.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ukr_bench.extras import require

SCHEMA_VERSION = 4

#: The functions whose steady state is timed, in the order the worker measures them.
TIMED_FUNCTIONS: tuple[str, ...] = ("value_and_grad", "value")
#: Statistics of one timed function (pytest-benchmark's ``Stats`` names), in seconds.
TIMING_STATS: tuple[str, ...] = ("median", "iqr", "q1", "q3", "min", "max", "mean", "stddev")


class Status(str, enum.Enum):
    """What became of one configuration."""

    OK = "ok"
    SKIPPED = "skipped"  # not run: estimated not to fit, or a smaller N already failed fatally
    ERROR = "error"  # an exception while measuring; larger N still run
    OOM = "oom"  # out of memory
    TIMEOUT = "timeout"  # ran past the sweep's timeout; the worker was killed
    CRASHED = "crashed"  # the worker died (e.g. killed by the kernel)

    @property
    def fatal(self) -> bool:
        """After this, larger N of the same series would only fail again, slower."""
        return self in (Status.OOM, Status.TIMEOUT, Status.CRASHED)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, order=True)
class ConfigKey:
    """The one identity of a configuration: what varies between the rows of a sweep.

    ``data_dim`` (D) and ``latent_dim`` (L) are the problem's dimensions: the data ``X`` is
    N x D, the latent points ``Z`` N x L. Their defaults are the saddle's (D = 3, L = 2).
    """

    backend: str
    layout: str
    gradient: str
    dtype: str
    device: str
    n: int
    #: Devices sharing each call (rows split between them); ``device`` names the set.
    devices: int = 1
    data_dim: int = 3
    latent_dim: int = 2

    #: Field names in order, as columns of a results frame.
    FIELDS: ClassVar[tuple[str, ...]] = (
        "backend",
        "layout",
        "gradient",
        "dtype",
        "device",
        "n",
        "devices",
        "data_dim",
        "latent_dim",
    )

    @property
    def series(self) -> tuple[str, str, str, str, str, int, int]:
        """Everything but N (and the device count): one line in a figure against N. Rows of
        different D or L are different series, never one line."""
        return (
            self.backend,
            self.layout,
            self.gradient,
            self.dtype,
            self.device,
            self.data_dim,
            self.latent_dim,
        )

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> ConfigKey:
        """From a flat row (upgraded: :func:`upgrade_row`) or any mapping of the key's fields;
        ``devices``, ``data_dim`` and ``latent_dim`` default to one device and the saddle's."""
        return cls(
            backend=m["backend"],
            layout=m["layout"],
            gradient=m["gradient"],
            dtype=m["dtype"],
            device=m["device"],
            n=int(m["n"]),
            devices=int(m.get("devices", 1)),
            data_dim=int(m.get("data_dim", 3)),
            latent_dim=int(m.get("latent_dim", 2)),
        )

    def __str__(self) -> str:
        name = series_label(self.series[:5])
        return f"{name} D={self.data_dim} L={self.latent_dim} N={self.n}"


def series_label(series: Iterable[str]) -> str:
    """``jax dense autodiff float32 cpu``: how figures and tables name a series."""
    return " ".join(str(s) for s in series)


def timing_column(function: str, stat: str) -> str:
    """Column of a timing statistic: ``timing_column("value", "median") == "value_median_s"``."""
    return f"{function}_{stat}" if stat == "rounds" else f"{function}_{stat}_s"


def fit_column(optimizer: str, what: str) -> str:
    """Column of a time-to-fit field: ``median_s``, ``iters`` or ``per_iter_s``."""
    return f"fit_{optimizer}_{what}"


@dataclass(frozen=True)
class Timing:
    """Steady-state statistics of one timed function, plus its first call."""

    first_s: float  # the first call, compilation included
    compile_s: float  # JAX: lower().compile(); eager frameworks: binding only
    median_s: float
    iqr_s: float
    q1_s: float
    q3_s: float
    min_s: float
    max_s: float
    mean_s: float
    stddev_s: float
    rounds: int

    @classmethod
    def from_samples(cls, samples: list[float], *, first_s: float, compile_s: float) -> Timing:
        """Statistics of ``samples`` (seconds) by pytest-benchmark's ``Stats``."""
        stats = require("pytest_benchmark.stats", "bench", "Timing.from_samples").Stats()
        for s in samples:
            stats.update(s)
        values = {f"{name}_s": float(getattr(stats, name)) for name in TIMING_STATS}
        return cls(first_s=first_s, compile_s=compile_s, rounds=int(stats.rounds), **values)


@dataclass(frozen=True)
class FitTiming:
    """Time to fit: ``UKR(...).fit(X)`` with a fixed iteration budget of one optimiser."""

    median_s: float
    iters: int  # iterations done (L-BFGS may stop early)
    per_iter_s: float


@dataclass
class Row:
    """One configuration's result. Fields after ``status`` are None where not measured."""

    key: ConfigKey
    # The problem (the same for every row of a sweep; repeated so that a row stands alone).
    data: str  # a data set's name, or the path of the user's file
    sigma: float
    lam: float
    loo: bool
    threads: int
    status: Status = Status.OK
    reason: str = ""
    memory_estimate_bytes: int | None = None
    timings: dict[str, Timing] = field(default_factory=dict)
    grad_ratio: float | None = None  # value_and_grad median / value median
    host_peak_bytes: int | None = None  # rise of peak RSS over the first value_and_grad call
    device_peak_bytes: int | None = None
    device_peak_method: str | None = None
    value: float | None = None  # E(Z) as this backend computed it
    value_rel_error: float | None = None  # against float64 NumPy on the same inputs
    grad_rel_error: float | None = None
    bound_s: float | None = None  # a lower bound on value + gradient (see ukr_bench.bench.bound)
    # What bound_s rests on (ukr_bench.bench.bound): the device's measured rates and the work
    # the configuration's layout does per ordered pair of points.
    exp_rate: float | None = None  # exps per second
    flop_rate: float | None = None  # flops per second
    exps_per_pair: float | None = None
    flops_per_pair: float | None = None
    fits: dict[str, FitTiming] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # the backend's versions and settings
    settings: dict[str, Any] = field(default_factory=dict)  # the worker process's settings
    finished: str | None = None  # UTC, ISO 8601
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        """The flat on-disk record."""
        out: dict[str, Any] = dataclasses.asdict(self.key)
        for f in dataclasses.fields(self):
            if f.name in ("key", "timings", "fits"):
                continue
            value = getattr(self, f.name)
            out[f.name] = value.value if isinstance(value, Status) else value
        for fn, t in self.timings.items():
            for name, value in dataclasses.asdict(t).items():
                out[timing_column(fn, name.removesuffix("_s"))] = value
        for opt, fit in self.fits.items():
            for name, value in dataclasses.asdict(fit).items():
                out[fit_column(opt, name)] = value
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Row:
        """The typed record of a flat row of any schema version (see :func:`upgrade_row`)."""
        r = upgrade_row(raw)
        timings = {
            fn: Timing(
                **{
                    f.name: r[timing_column(fn, f.name.removesuffix("_s"))]
                    for f in dataclasses.fields(Timing)
                }
            )
            for fn in TIMED_FUNCTIONS
            if r.get(timing_column(fn, "median")) is not None
        }
        fits = {
            col[len("fit_") : -len("_median_s")]: FitTiming(
                r[col],
                r[col.replace("_median_s", "_iters")],
                r[col.replace("_median_s", "_per_iter_s")],
            )
            for col in r
            if col.startswith("fit_") and col.endswith("_median_s") and r[col] is not None
        }
        names = {f.name for f in dataclasses.fields(cls)} - {"key", "timings", "fits"}
        kwargs = {k: r[k] for k in names if k in r}
        kwargs["status"] = Status(r["status"])
        return cls(key=ConfigKey.from_mapping(r), timings=timings, fits=fits, **kwargs)


# --------------------------------------------------------------------------- checks

#: Fields without which a line is not a row (after :func:`upgrade_row` filled in older ones).
REQUIRED_FIELDS: tuple[str, ...] = (*ConfigKey.FIELDS, "status")
_TEXT = frozenset({"backend", "layout", "gradient", "dtype", "device"})
_OPTIONAL_TEXT = frozenset({"data", "reason", "device_peak_method", "finished"})
_COUNTS = frozenset({"n", "devices", "data_dim", "latent_dim"})
_INTEGERS = frozenset({"threads", "memory_estimate_bytes", "host_peak_bytes", "device_peak_bytes"})
_NUMBERS = frozenset({"sigma", "lam", "grad_ratio", "value", "value_rel_error", "grad_rel_error"})
_MAPPINGS = frozenset({"info", "settings"})


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def expected(name: str, v: Any) -> str | None:
    """What field ``name`` of a row must be, where ``v`` is not that; None where it is.

    Fields this version does not know are not checked: a reader must not trip over them.
    """
    if name in _TEXT:
        return None if isinstance(v, str) and v else "a non-empty string"
    if name == "status":
        ok = isinstance(v, str) and v in {s.value for s in Status}
        return None if ok else "one of " + ", ".join(s.value for s in Status)
    if name in _COUNTS:
        return None if is_int(v) and v >= 1 else "a positive integer"
    if v is None:  # every other field is None where it was not measured
        return None
    if name in _OPTIONAL_TEXT:
        return None if isinstance(v, str) else "a string or null"
    if name in _INTEGERS or name.endswith(("_rounds", "_iters")):
        return None if is_int(v) else "an integer or null"
    if name in _NUMBERS or name.endswith("_s"):  # every timing column is in seconds
        return None if is_number(v) else "a number or null"
    if name == "loo":
        return None if isinstance(v, bool) else "true, false or null"
    if name in _MAPPINGS:
        return None if isinstance(v, dict) else "an object"
    if name == "samples":
        ok = isinstance(v, dict) and all(
            isinstance(x, list) and all(is_number(t) for t in x) for x in v.values()
        )
        return None if ok else "an object of lists of numbers (seconds)"
    return None


#: D of each data set the suite had before version 4 (rows name their data set in ``data``).
LEGACY_DATA_DIMS = {"saddle": 3, "s_curve": 3, "swiss_roll": 3, "spiral": 2, "digits": 64}


def upgrade_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A row of any schema version in the current layout (a new dict; ``raw`` is untouched).

    Version 1 rows (no ``schema_version``) were all dense, and each backend had one way to
    obtain its gradient: NumPy's by hand, the others by autodiff. Rows before version 3 ran on
    one device. Rows before version 4 kept L as a field of their own (``latent_dim``, now in
    the key) and measured a built-in data set in its own dimension: D from the set ``data``
    names (:data:`LEGACY_DATA_DIMS`; the saddle's 3 where a row names none).
    """
    r = dict(raw)
    version = r.get("schema_version", 1)
    if version > SCHEMA_VERSION:
        msg = (
            f"row has schema_version {version}, newer than this ukr-bench understands "
            f"({SCHEMA_VERSION}): upgrade ukr-bench to read it"
        )
        raise ValueError(msg)
    if version == 1:
        r.setdefault("layout", "dense")
        if "gradient" not in r and "backend" in r:
            r["gradient"] = "manual" if r["backend"] == "numpy" else "autodiff"
        r.setdefault("device_peak_method", None)
    if version < 3:
        r.setdefault("devices", 1)
    if version < 4:
        if "data_dim" not in r:
            r["data_dim"] = LEGACY_DATA_DIMS.get(r.get("data") or "saddle", 3)
        if r.get("latent_dim") is None:
            r["latent_dim"] = 2
    r["schema_version"] = SCHEMA_VERSION
    return r
