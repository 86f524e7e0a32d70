"""The user's own data for the benchmark: an N x D table in a ``.npy``, ``.csv`` or ``.parquet`` file.

``ukr-bench bench --data PATH`` measures every configuration on the rows of that file, so that
a researcher learns which framework is fastest for their N and D. What is done with the file:

* ``.npy``: a 2-D array of numbers (``np.load`` without pickles); its columns are named by
  index (``column 0``...).
* ``.csv``: read by pandas; a first line whose fields are all numbers is data, anything else
  is the header that names the columns.
* ``.parquet``: read by pandas (needs pyarrow: ``pip install pyarrow``).
* A column that is not numeric (text, dates) is an error naming it: UKR needs coordinates, and
  which columns to drop or encode is the user's choice, not the benchmark's.
* NaN or an infinity is an error naming the column and how many rows hold one: the objective
  of a row with NaN is NaN, and dropping rows would change N without saying so.
* A constant column is **kept, with a warning** naming it: it adds nothing to any distance but
  costs the same per pair as every other column (4 flops of the 5L + 4D + 6), so it is part of
  the D the user's data has, and the benchmark measures that data as given; drop it from the
  file where that was not meant.
* The N grid takes seeded subsamples (:func:`subsample`); an N above the file's rows is an
  error before the sweep starts (``SweepConfig`` checks it).

The run records the file's absolute path and SHA-256 (:func:`describe`) in ``meta.json``, and
the report names both; ``--resume`` refuses a file whose hash changed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ukr_bench.extras import require

#: The file types ``--data`` reads, by suffix.
SUFFIXES = (".npy", ".csv", ".parquet")


class ConstantColumnWarning(UserWarning):
    """A column of the user's data holds one value in every row: kept (see the module's text)."""


@dataclass(frozen=True)
class DataFile:
    """A loaded data file: ``X`` (rows x D, float64), its column names and SHA-256."""

    path: Path
    X: NDArray[np.float64]
    columns: tuple[str, ...]
    sha256: str


def is_data_file(data: str) -> bool:
    """Whether ``data`` names a file (by its suffix, :data:`SUFFIXES`) rather than a data set."""
    return Path(str(data)).suffix.lower() in SUFFIXES


def sha256(path: Path | str) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            h.update(chunk)
    return h.hexdigest()


_CACHE: dict[tuple[str, int, int], DataFile] = {}


def load(path: Path | str) -> DataFile:
    """The file's rows as float64, checked (module text); errors name the file and column.

    Loaded once per process and file version (path, size and modification time).
    """
    p = Path(path).resolve()
    if p.suffix.lower() not in SUFFIXES:
        msg = f"data: {path} is not a .npy, .csv or .parquet file"
        raise ValueError(msg)
    if not p.is_file():
        msg = f"data: no such file {path}"
        raise FileNotFoundError(msg)
    stat = p.stat()
    key = (str(p), stat.st_size, stat.st_mtime_ns)
    if key not in _CACHE:
        values, columns = _read(p)
        _CACHE[key] = DataFile(p, _checked(p, values, columns), tuple(columns), sha256(p))
    return _CACHE[key]


def _read(p: Path) -> tuple[Any, list[str]]:
    """The file's table: an array (``.npy``) or a pandas DataFrame, and its column names."""
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            a = np.load(p, allow_pickle=False)
        except ValueError as exc:
            msg = f"data: {p} does not hold an array of numbers ({exc})"
            raise ValueError(msg) from exc
        if a.ndim != 2:
            msg = f"data: {p} must hold an N x D array, got shape {a.shape}"
            raise ValueError(msg)
        if a.dtype.names is not None or not (
            np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_
        ) or np.issubdtype(a.dtype, np.complexfloating):  # fmt: skip
            msg = f"data: {p} must hold real numbers, got dtype {a.dtype}"
            raise ValueError(msg)
        return a, [f"column {j}" for j in range(a.shape[1])]
    pd = require("pandas", "bench", f"reading {p.name}")
    if suffix == ".parquet":
        if importlib.util.find_spec("pyarrow") is None:  # pandas' parquet engine
            msg = f"data: reading {p.name} (parquet) needs pyarrow: pip install pyarrow"
            raise ImportError(msg)
        df = pd.read_parquet(p)
    else:
        df = pd.read_csv(p)
        if all(_is_number(c) for c in df.columns):  # no header line: the first line is data
            df = pd.read_csv(p, header=None)
            df.columns = [f"column {j}" for j in range(df.shape[1])]
    return df, [str(c) for c in df.columns]


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True


def _checked(p: Path, table: Any, columns: list[str]) -> NDArray[np.float64]:
    """``table`` as a float64 array, or the error naming the first bad column."""
    if isinstance(table, np.ndarray):
        X = table.astype(np.float64)
    else:
        pd = require("pandas", "bench", f"reading {p.name}")
        for name, col in zip(columns, table.columns, strict=True):
            dtype = table[col].dtype
            if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
                msg = (
                    f"data: column {name!r} of {p} is not numeric (dtype {dtype}): drop it or "
                    "encode it as numbers"
                )
                raise ValueError(msg)
        X = table.to_numpy(dtype=np.float64)
    if X.shape[0] == 0 or X.shape[1] == 0:
        msg = f"data: {p} holds no data (shape {X.shape})"
        raise ValueError(msg)
    bad = ~np.isfinite(X)
    for j in np.flatnonzero(bad.any(axis=0)):
        what = "NaN" if np.isnan(X[:, j]).any() else "an infinity"
        msg = (
            f"data: column {columns[j]!r} of {p} holds {what} in {int(bad[:, j].sum())} of "
            f"{X.shape[0]} rows: remove or fill them"
        )
        raise ValueError(msg)
    constant = [columns[j] for j in np.flatnonzero((X[:1] == X).all(axis=0))]
    if constant:
        warnings.warn(
            f"data: {p}: column(s) {constant} hold one value in every row; kept (they cost "
            "what any column costs and add nothing to a distance)",
            ConstantColumnWarning,
            stacklevel=3,
        )
    return X


def subsample(
    path: Path | str, n: int, *, seed: int = 0, data_dim: int | None = None
) -> NDArray[np.float64]:
    """``n`` rows of the file (n x D, float64, in the file's order): all of them when ``n`` is
    the file's row count, otherwise drawn without replacement by ``numpy.random.default_rng(
    seed)``. An ``n`` above the row count, or a ``data_dim`` that is not the file's D, is an
    error naming it."""
    f = load(path)
    rows, dim = f.X.shape
    if n > rows:
        msg = f"n must be <= the {rows} rows of {f.path}, got {n}"
        raise ValueError(msg)
    if data_dim is not None and data_dim != dim:
        msg = f"data_dim must be the {dim} columns of {f.path}, got {data_dim}"
        raise ValueError(msg)
    if n == rows:
        return f.X.copy()
    idx = np.sort(np.random.default_rng(seed).choice(rows, size=n, replace=False))
    return f.X[idx]


def describe(path: Path | str) -> dict[str, Any]:
    """What a run records of its data file: ``path`` (absolute), ``sha256``, ``rows``,
    ``columns`` (D) and ``names`` (the column names)."""
    f = load(path)
    return {
        "path": str(f.path),
        "sha256": f.sha256,
        "rows": int(f.X.shape[0]),
        "columns": int(f.X.shape[1]),
        "names": list(f.columns),
    }
