"""The results schema: what a benchmark run writes, in one place.

A run directory holds

* ``results.jsonl``: one :class:`Row` per configuration, one JSON object per line, appended and
  fsynced as each configuration finishes (a kill loses at most the line being written);
* ``results.csv``: the same rows without nested fields (raw samples, settings), for pandas;
* ``meta.json``: the :class:`RunMeta` record (the sweep's configuration, machine, provenance);
* ``inflight.json`` while a configuration is being measured (for the supervising process).

Every row is identified by its :class:`ConfigKey`, the one configuration key of the suite:
backend, memory layout, how the gradient is obtained, dtype, device (set) and N. A row's status
is a :class:`Status`. On disk a row is *flat*: the per-function timing statistics are columns
named by :func:`timing_column` (``value_and_grad_median_s``), the time-to-fit ones by
:func:`fit_column` (``fit_lbfgs_median_s``), so that ``results.csv`` and a pandas frame read
naturally; :class:`Row` converts between the typed record and that layout.

Versions: rows and meta carry :data:`SCHEMA_VERSION`. Version 1 (before this module) had no
``layout``/``gradient`` fields and no version; :func:`upgrade_row` fills them in, so the
committed reference runs keep loading. Version 3 added ``devices`` (how many devices shared each
call, rows split between them; the ``device`` field then names the set, ``cpu:0-3``); older rows
ran on one device, and :func:`upgrade_row` says so.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

SCHEMA_VERSION = 3

RESULTS_FILE = "results.jsonl"
TABLE_FILE = "results.csv"
META_FILE = "meta.json"
INFLIGHT_FILE = "inflight.json"

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
    """The one identity of a configuration: what varies between the rows of a sweep."""

    backend: str
    layout: str
    gradient: str
    dtype: str
    device: str
    n: int
    #: Devices sharing each call (rows split between them); ``device`` names the set.
    devices: int = 1

    #: Field names in order, as columns of a results frame.
    FIELDS: ClassVar[tuple[str, ...]] = (
        "backend",
        "layout",
        "gradient",
        "dtype",
        "device",
        "n",
        "devices",
    )

    @property
    def series(self) -> tuple[str, str, str, str, str]:
        """Everything but N: one line in a figure against N."""
        return (self.backend, self.layout, self.gradient, self.dtype, self.device)

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> ConfigKey:
        return cls(
            backend=m["backend"],
            layout=m["layout"],
            gradient=m["gradient"],
            dtype=m["dtype"],
            device=m["device"],
            n=int(m["n"]),
            devices=int(m.get("devices", 1)),
        )

    def __str__(self) -> str:
        return f"{series_label(self.series)} N={self.n}"


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
        from pytest_benchmark.stats import Stats

        stats = Stats()
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
    data: str
    latent_dim: int
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
    bound_s: float | None = None  # a lower bound on value + gradient (see ukr_bench.bench.worker)
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


def upgrade_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A row of any schema version in the current layout (a new dict; ``raw`` is untouched).

    Version 1 rows (no ``schema_version``) were all dense, and each backend had one way to
    obtain its gradient: NumPy's by hand, the others by autodiff. Rows before version 3 ran on
    one device.
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
    r["schema_version"] = SCHEMA_VERSION
    return r


@dataclass
class RunMeta:
    """A run's ``meta.json``: what was swept, where, with which code."""

    config: dict[str, Any] = field(default_factory=dict)  # ``ukr_bench.bench.SweepConfig``
    command: list[str] = field(default_factory=list)
    date: str = ""  # UTC, ISO 8601
    provenance: dict[str, Any] = field(default_factory=dict)  # version and commit of ukr-bench
    machine: dict[str, Any] = field(default_factory=dict)
    thread_env: dict[str, dict[str, str]] = field(default_factory=dict)  # per backend
    resumed: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. why some values were removed
    reference: bool = False  # made as a reference run (refused on a dirty tree unless allowed)
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RunMeta:
        r = dict(raw)
        if r.get("schema_version", 1) == 1:
            # Version 1 kept pytest-benchmark's commit info under "git" (with an absolute path).
            git = dict(r.pop("git", None) or {})
            git.pop("project", None)
            r.setdefault("provenance", {"commit": git.get("id"), "dirty": git.get("dirty")})
            env = r.get("thread_env") or {}
            if env and all(isinstance(v, str) for v in env.values()):
                r["thread_env"] = {"all": env}
            r.pop("harness", None)
            r["schema_version"] = SCHEMA_VERSION
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in r.items() if k in names})

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- files


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (Path, Status)):
        return str(obj)
    msg = f"cannot serialise {type(obj).__name__}"
    raise TypeError(msg)


def read_rows(run_dir: Path | str) -> list[Row]:
    """Every finished row of a run; a last line cut short by a kill is ignored."""
    return [Row.from_json(r) for r in read_raw_rows(run_dir)]


def read_raw_rows(run_dir: Path | str) -> list[dict[str, Any]]:
    """The flat rows of ``results.jsonl``, upgraded to the current schema."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            continue  # only the line being written when the process died can be partial
        rows.append(upgrade_row(raw))
    return rows


def done_keys(run_dir: Path | str) -> set[ConfigKey]:
    """Keys of the configurations a run has finished (whatever their status)."""
    return {ConfigKey.from_mapping(r) for r in read_raw_rows(run_dir)}


def append_row(run_dir: Path | str, row: Row) -> None:
    """Append one row durably (written, flushed and fsynced before this returns)."""
    path = Path(run_dir) / RESULTS_FILE
    line = json.dumps(row.to_json(), default=_json_default) + "\n"
    try:
        _append(path, line)
    except OSError as exc:
        # A full disk leaves at most a partial last line, which readers skip and resume redoes.
        msg = (
            f"could not append a row to {path}: {exc.strerror or exc}; every earlier row is "
            f"intact, and once it can be written, `ukr-bench bench --resume {run_dir}` "
            "finishes the run"
        )
        raise OSError(exc.errno, msg) from exc


def _append(path: Path, line: str) -> None:
    with path.open("a+b") as f:
        if f.seek(0, os.SEEK_END):
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a partial last line (killed mid-write): leave it alone
                line = "\n" + line
        f.write(line.encode())
        f.flush()
        os.fsync(f.fileno())


def write_table(run_dir: Path | str) -> Path:
    """``results.csv``: one row per configuration, without nested fields (written atomically)."""
    import pandas as pd

    flat = [
        {k: v for k, v in r.items() if not isinstance(v, (dict, list))}
        for r in read_raw_rows(run_dir)
    ]
    path = Path(run_dir) / TABLE_FILE
    tmp = path.with_suffix(".tmp")
    pd.DataFrame(flat).to_csv(tmp, index=False)
    tmp.replace(path)  # atomic: a reader never sees half a table
    return path


def read_meta(run_dir: Path | str) -> RunMeta:
    """A run's metadata; errors name the file."""
    path = Path(run_dir) / META_FILE
    if not path.is_file():
        msg = f"{run_dir} is not a results directory: it has no {META_FILE}"
        raise FileNotFoundError(msg)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        msg = f"{path} is not valid JSON: {exc}"
        raise ValueError(msg) from exc
    if not isinstance(raw, dict):
        msg = f"{path} must hold a JSON object, got {type(raw).__name__}"
        raise ValueError(msg)  # noqa: TRY004 - a damaged file, not a caller's wrong type
    try:
        return RunMeta.from_json(raw)
    except TypeError as exc:
        msg = f"{path} is not a ukr-bench run's metadata: {exc}"
        raise ValueError(msg) from exc


def write_meta(run_dir: Path | str, meta: RunMeta) -> None:
    """Write ``meta.json`` atomically."""
    path = Path(run_dir) / META_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta.to_json(), indent=2, default=_json_default) + "\n")
    tmp.replace(path)


def load_results(run_dir: Path | str) -> tuple[Any, RunMeta]:
    """A run's rows as a pandas DataFrame (flat columns, raw samples in ``samples``) and meta."""
    import pandas as pd

    meta = read_meta(run_dir)
    return pd.DataFrame(read_raw_rows(run_dir)), meta
