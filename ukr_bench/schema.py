"""The results schema: what a benchmark run writes, in one place.

A run directory holds

* ``results.jsonl``: one :class:`Row` per configuration, one JSON object per line, appended and
  fsynced as each configuration finishes (a kill loses at most the line being written);
* ``results.csv``: the same rows without nested fields (raw samples, settings), for pandas;
* ``meta.json``: the :class:`RunMeta` record (the sweep's configuration, machine, provenance);
* ``inflight.json`` while a configuration is being measured (for the supervising process).

Every row is a :class:`~ukr_bench.rows.Row` keyed by its :class:`~ukr_bench.rows.ConfigKey`
(:mod:`ukr_bench.rows`, which also upgrades rows of older schema versions); the CPU's
description is :mod:`ukr_bench.cpu`'s. Both are re-exported here, so that ``from
ukr_bench.schema import Row, describe_cpu`` names the whole schema in one place.

Versions: rows and meta carry :data:`SCHEMA_VERSION`. Version 1 (before this module) had no
``layout``/``gradient`` fields and no version; version 3 added ``devices``; version 4 put the
data's dimension D (``data_dim``) and the latent one L (``latent_dim``) in the key.
:func:`upgrade_row` fills in what an older row lacks, so the committed reference runs keep
loading.

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
import json
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ukr_bench.cpu import CPU_VENDORS, NOT_RECORDED, SIMD_FLAGS, describe_cpu, simd_label
from ukr_bench.extras import require
from ukr_bench.rows import (
    REQUIRED_FIELDS,
    SCHEMA_VERSION,
    TIMED_FUNCTIONS,
    TIMING_STATS,
    ConfigKey,
    FitTiming,
    Row,
    Status,
    Timing,
    expected,
    fit_column,
    is_int,
    series_label,
    timing_column,
    upgrade_row,
)

__all__ = [
    "CPU_VENDORS",
    "INFLIGHT_FILE",
    "META_FILE",
    "NOT_RECORDED",
    "REQUIRED_FIELDS",
    "RESULTS_FILE",
    "SCHEMA_VERSION",
    "SIMD_FLAGS",
    "TABLE_FILE",
    "TIMED_FUNCTIONS",
    "TIMING_STATS",
    "ConfigKey",
    "FitTiming",
    "ResultsFileError",
    "ResultsFileWarning",
    "Row",
    "RunMeta",
    "SkippedLine",
    "Status",
    "Timing",
    "append_row",
    "describe_cpu",
    "done_keys",
    "fit_column",
    "load_results",
    "read_meta",
    "read_raw_rows",
    "read_rows",
    "series_label",
    "simd_label",
    "skipped_lines",
    "timing_column",
    "upgrade_row",
    "write_meta",
    "write_table",
]

RESULTS_FILE = "results.jsonl"
TABLE_FILE = "results.csv"
META_FILE = "meta.json"
INFLIGHT_FILE = "inflight.json"


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
    #: The user's data file (``--data PATH``): path, sha256, rows, columns, names
    #: (:func:`ukr_bench.data_files.describe`); None for a built-in data set.
    data_file: dict[str, Any] | None = None
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
        if not is_int(raw.get("schema_version", 1)):
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
            wanted = expected(name, value)
            if wanted is not None:
                msg = f"{where}: field {name!r} must be {wanted}, got {_shown(value)}"
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
