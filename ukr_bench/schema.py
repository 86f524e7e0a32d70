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

Damaged files: a line of ``results.jsonl`` that holds no row (not JSON, as a run killed while
writing leaves its last line, or JSON that lacks a key field) is skipped with a
:class:`ResultsFileWarning` naming the file and line, never silently; a row whose field has the
wrong type or value (``"n": "lots"``) raises :class:`ResultsFileError` naming the file, line and
field, before anything downstream trips over it.

The CPU: ``meta.json`` records ``cpu_vendor``, ``cpu_family`` and ``cpu_simd`` beside
``cpu_model`` (:func:`describe_cpu`), since the same code on Intel and on AMD, or with and
without AVX-512, differs in time and in float32 rounding; :meth:`RunMeta.cpu` reads them back,
from older runs too.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ukr_bench.extras import require

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


# --------------------------------------------------------------------------- the CPU

#: SIMD features recorded (``/proc/cpuinfo`` names; py-cpuinfo's, which may lack the
#: underscores, match too), in the order shown. They decide the vector width and the fused
#: multiply-adds of the BLAS, XLA and oneDNN kernels, and so a CPU's times and float32 rounding.
SIMD_FLAGS: dict[str, str] = {
    "sse4_2": "SSE4.2",
    "avx": "AVX",
    "avx2": "AVX2",
    "fma": "FMA",
    "avx512f": "AVX-512F",
    "avx512_vnni": "AVX-512 VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "avx512_fp16": "AVX-512 FP16",
    "amx_tile": "AMX",
    "asimd": "NEON",
    "sve": "SVE",
    "sve2": "SVE2",
}
#: CPUID vendor strings, as a reader names the vendor.
CPU_VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "HygonGenuine": "Hygon"}
#: Product lines named in brand strings: with the vendor, a readable family.
_PRODUCT_LINES = ("Xeon", "Core", "Pentium", "Celeron", "Atom", "EPYC", "Ryzen", "Opteron")
NOT_RECORDED = "not recorded"


def _flag_key(flag: str) -> str:
    return flag.lower().replace("_", "").replace(".", "")


def describe_cpu(info: Mapping[str, Any], flags: Iterable[str] | None) -> dict[str, Any]:
    """``cpu_vendor``, ``cpu_family`` and ``cpu_simd`` of a CPU, from py-cpuinfo's record.

    ``info`` holds py-cpuinfo's ``vendor_id_raw``, ``brand_raw``, ``family`` and ``model``
    (any may be missing); ``flags`` the CPU's feature flags, or None where they are unknown
    (then ``cpu_simd`` is None: not recorded, which is not the same as none). ``cpu_family``
    reads like ``AMD EPYC (family 25, model 1)``: the vendor and product line for a person,
    the CPUID family and model for telling generations apart.
    """
    raw_vendor = info.get("vendor_id_raw") or None
    vendor = CPU_VENDORS.get(raw_vendor, raw_vendor) if raw_vendor else None
    brand = re.sub(r"\((?:R|TM)\)", " ", str(info.get("brand_raw") or ""), flags=re.IGNORECASE)
    line = next((w for w in brand.split() if w in _PRODUCT_LINES), None)
    family = " ".join(x for x in (vendor, line) if x) or brand.strip() or None
    if info.get("family") is not None:
        numbers = f"family {info['family']}, model {info.get('model', '?')}"
        family = f"{family} ({numbers})" if family else numbers
    simd = None
    if flags is not None:
        have = {_flag_key(f) for f in flags}
        simd = [name for name in SIMD_FLAGS if _flag_key(name) in have]
    return {"cpu_vendor": vendor, "cpu_family": family, "cpu_simd": simd}


def simd_label(simd: Iterable[str] | None) -> str:
    """``AVX, AVX2, FMA``: how a report names recorded SIMD features."""
    if simd is None:
        return NOT_RECORDED
    names = [SIMD_FLAGS.get(f, f) for f in simd]
    return ", ".join(names) if names else "none of " + ", ".join(SIMD_FLAGS.values())


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

    def cpu(self) -> dict[str, Any]:
        """The CPU the run was measured on: ``model``, ``vendor``, ``family`` and ``simd``,
        None where the run did not record it.

        Runs made before ``cpu_vendor``/``cpu_family``/``cpu_simd`` were recorded kept
        py-cpuinfo's vendor, family and model (under ``machine.machine.cpu``), so those are
        derived from it; their SIMD flags were dropped, so ``simd`` stays None.
        """
        m = self.machine
        derived = describe_cpu((m.get("machine") or {}).get("cpu") or {}, None)
        return {
            "model": m.get("cpu_model"),
            "vendor": m.get("cpu_vendor", derived["cpu_vendor"]),
            "family": m.get("cpu_family", derived["cpu_family"]),
            "simd": m.get("cpu_simd"),
        }


# --------------------------------------------------------------------------- files


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (Path, Status)):
        return str(obj)
    msg = f"cannot serialise {type(obj).__name__}"
    raise TypeError(msg)


class ResultsFileWarning(UserWarning):
    """A line of a results file that holds no row: skipped, and named by file and line."""


class ResultsFileError(ValueError):
    """A row of a results file that cannot be right: the message names the file, line and field."""


@dataclass(frozen=True)
class SkippedLine:
    """A line of ``results.jsonl`` that holds no row, and why."""

    path: Path
    line: int  # from 1, as an editor counts
    why: str

    def __str__(self) -> str:
        return f"{self.path}, line {self.line}: {self.why}: skipped"


#: Fields without which a line is not a row (after :func:`upgrade_row` filled in older ones).
REQUIRED_FIELDS: tuple[str, ...] = (*ConfigKey.FIELDS, "status")
_TEXT = frozenset({"backend", "layout", "gradient", "dtype", "device"})
_OPTIONAL_TEXT = frozenset({"data", "reason", "device_peak_method", "finished"})
_COUNTS = frozenset({"n", "devices"})
_INTEGERS = frozenset(
    {"latent_dim", "threads", "memory_estimate_bytes", "host_peak_bytes", "device_peak_bytes"}
)
_NUMBERS = frozenset({"sigma", "lam", "grad_ratio", "value", "value_rel_error", "grad_rel_error"})
_MAPPINGS = frozenset({"info", "settings"})


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _expected(name: str, v: Any) -> str | None:
    """What field ``name`` of a row must be, where ``v`` is not that; None where it is.

    Fields this version does not know are not checked: a reader must not trip over them.
    """
    if name in _TEXT:
        return None if isinstance(v, str) and v else "a non-empty string"
    if name == "status":
        ok = isinstance(v, str) and v in {s.value for s in Status}
        return None if ok else "one of " + ", ".join(s.value for s in Status)
    if name in _COUNTS:
        return None if _is_int(v) and v >= 1 else "a positive integer"
    if v is None:  # every other field is None where it was not measured
        return None
    if name in _OPTIONAL_TEXT:
        return None if isinstance(v, str) else "a string or null"
    if name in _INTEGERS or name.endswith(("_rounds", "_iters")):
        return None if _is_int(v) else "an integer or null"
    if name in _NUMBERS or name.endswith("_s"):  # every timing column is in seconds
        return None if _is_number(v) else "a number or null"
    if name == "loo":
        return None if isinstance(v, bool) else "true, false or null"
    if name in _MAPPINGS:
        return None if isinstance(v, dict) else "an object"
    if name == "samples":
        ok = isinstance(v, dict) and all(
            isinstance(x, list) and all(_is_number(t) for t in x) for x in v.values()
        )
        return None if ok else "an object of lists of numbers (seconds)"
    return None


def _read_results(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[SkippedLine]]:
    """The rows of a results file with their line numbers (upgraded, checked), and the lines
    that hold none. Raises :class:`ResultsFileError` for a row with a wrong field."""
    if not path.exists():
        return [], []
    lines = path.read_bytes().split(b"\n")
    rows: list[tuple[int, dict[str, Any]]] = []
    skipped: list[SkippedLine] = []
    for lineno, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            raw = json.loads(text)
        except ValueError:  # not JSON, or not UTF-8
            if lineno == len(lines):  # no newline after it: the line being written at a kill
                why = "cut short (as a run killed while writing a row leaves its last line)"
            else:  # append_row starts a new line after a cut one, so a resumed run has these
                why = "not JSON (a row cut short by a kill, if the run was resumed after it)"
            skipped.append(SkippedLine(path, lineno, why))
            continue
        if not isinstance(raw, dict):
            skipped.append(
                SkippedLine(path, lineno, f"not a row (a JSON {type(raw).__name__}, not an object)")
            )
            continue
        where = f"{path}, line {lineno}"
        if not _is_int(raw.get("schema_version", 1)):
            shown = _shown(raw["schema_version"])
            msg = f"{where}: field 'schema_version' must be an integer, got {shown}"
            raise ResultsFileError(msg)
        try:
            row = upgrade_row(raw)
        except ValueError as exc:
            raise ResultsFileError(f"{where}: {exc}") from exc
        missing = [f for f in REQUIRED_FIELDS if f not in row]
        if missing:
            why = f"not a row (no field {', '.join(repr(f) for f in missing)})"
            skipped.append(SkippedLine(path, lineno, why))
            continue
        for name, value in row.items():
            expected = _expected(name, value)
            if expected is not None:
                msg = f"{where}: field {name!r} must be {expected}, got {_shown(value)}"
                raise ResultsFileError(msg)
        rows.append((lineno, row))
    return rows, skipped


def _shown(value: Any, limit: int = 60) -> str:
    """A field's value as the file has it (JSON), cut to ``limit`` characters."""
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _warn_skipped(skipped: Iterable[SkippedLine]) -> None:
    # Issued from here (not the caller) so that each line is shown once per process, however
    # often a sweep re-reads the file while it runs.
    for s in skipped:
        warnings.warn(str(s), ResultsFileWarning, stacklevel=1)


def read_rows(run_dir: Path | str) -> list[Row]:
    """Every row of a run, typed; lines that hold no row are skipped with a warning.

    Raises :class:`ResultsFileError` (naming the file, line and field) for a row that cannot be
    right, including one that lacks a field its typed record needs.
    """
    path = Path(run_dir) / RESULTS_FILE
    rows, skipped = _read_results(path)
    _warn_skipped(skipped)
    out = []
    for lineno, r in rows:
        try:
            out.append(Row.from_json(r))
        except KeyError as exc:
            msg = f"{path}, line {lineno}: row lacks field {exc}"
            raise ResultsFileError(msg) from exc
        except (TypeError, ValueError) as exc:
            msg = f"{path}, line {lineno}: not a valid row: {exc}"
            raise ResultsFileError(msg) from exc
    return out


def read_raw_rows(run_dir: Path | str) -> list[dict[str, Any]]:
    """The flat rows of ``results.jsonl``, upgraded to the current schema and checked.

    A line that holds no row is skipped with a :class:`ResultsFileWarning` naming the file and
    line (a half-written last line after a kill is expected, and only warned about); a row with
    a field of the wrong type or value raises :class:`ResultsFileError`.
    """
    rows, skipped = _read_results(Path(run_dir) / RESULTS_FILE)
    _warn_skipped(skipped)
    return [r for _, r in rows]


def skipped_lines(run_dir: Path | str) -> list[SkippedLine]:
    """The lines of a run's ``results.jsonl`` that hold no row (no warning issued)."""
    return _read_results(Path(run_dir) / RESULTS_FILE)[1]


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
        # A full disk leaves at most a partial last line, which readers skip with a warning
        # (ResultsFileWarning) and resume redoes.
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
    pd = require("pandas", "bench", "writing results.csv")

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
    """A run's rows as a pandas DataFrame (flat columns, raw samples in ``samples``) and meta.

    The lines skipped (:func:`read_raw_rows` warns about each) are in the frame's
    ``attrs["skipped_lines"]`` (:class:`SkippedLine`), so that a report can list them too.
    """
    pd = require("pandas", "report", "loading benchmark results")

    meta = read_meta(run_dir)
    rows, skipped = _read_results(Path(run_dir) / RESULTS_FILE)
    _warn_skipped(skipped)
    df = pd.DataFrame([r for _, r in rows])
    df.attrs["skipped_lines"] = skipped
    return df, meta
