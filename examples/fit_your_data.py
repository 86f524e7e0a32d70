"""Fit UKR to your own data: a ``.csv`` or ``.npy`` file of N rows by D numeric columns.

Run::

    python examples/fit_your_data.py my_data.csv --out results_dir
    python examples/fit_your_data.py my_data.npy --n-components 2 --max-iter 300
    python examples/fit_your_data.py cells.csv --keep id --keep label   # copied, not fitted

A CSV's first line holds the column names (``--no-header`` if it has none). Every fitted column
must be numeric, without missing values, and not constant; otherwise the script stops and says
which column is wrong and why. Columns are standardised (mean 0, standard deviation 1) before
the fit, since UKR's reconstruction error adds the columns' squared errors: a column in larger
units would otherwise dominate it (``--no-standardize`` fits the values as they are).

Writes ``OUT/embedding.csv``: one row per input row, in the same order, with the ``--keep``
columns and then the latent coordinates ``ukr0``, ``ukr1``, ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import ukr_bench


class DataError(ValueError):
    """The input file cannot be fitted as it is; the message says what to change."""


def load_table(path: Path, *, header: bool = True) -> pd.DataFrame:
    """The file as a table: a CSV as pandas reads it, a ``.npy`` array as columns 0..D-1."""
    if not path.is_file():
        msg = f"{path}: no such file"
        raise DataError(msg)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = np.load(path, allow_pickle=False)
        if array.ndim != 2:
            msg = f"{path}: expected an N x D array, got shape {array.shape}"
            raise DataError(msg)
        return pd.DataFrame(array)
    if suffix in {".csv", ".txt"}:
        return pd.read_csv(path, header=0 if header else None)
    msg = f"{path}: expected a .csv or .npy file, got {suffix or 'no extension'}"
    raise DataError(msg)


def check_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The table as float64 columns, or a DataError naming the first column that is wrong.

    Rows are counted from 1 (the first data row, below a CSV's header line).
    """
    if table.shape[0] < 3 or table.shape[1] < 1:
        msg = f"need at least 3 rows and 1 column to fit, got {table.shape[0]} x {table.shape[1]}"
        raise DataError(msg)
    columns = {}
    for name, col in table.items():
        values = pd.to_numeric(col, errors="coerce")
        bad = values.isna() & col.notna()  # present, but not a number
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            msg = (
                f"column {name!r} is not numeric: row {row + 1} holds {col.iloc[row]!r}. "
                "Drop the column, encode it as numbers, or pass it with --keep"
            )
            raise DataError(msg)
        values = values.astype(np.float64)
        missing = ~np.isfinite(values.to_numpy())
        if missing.any():
            rows = np.flatnonzero(missing)
            msg = (
                f"column {name!r} has {rows.size} missing or infinite value(s) (NaN, empty, inf), "
                f"the first in row {rows[0] + 1}. Drop those rows or fill them in first"
            )
            raise DataError(msg)
        if values.nunique() == 1:
            msg = (
                f"column {name!r} is constant (every value is {float(values.iloc[0]):g}): "
                "it carries no information and cannot be standardised. Drop it"
            )
            raise DataError(msg)
        columns[name] = values
    return pd.DataFrame(columns)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a .csv (columns named on its first line) or .npy")
    parser.add_argument("--n", type=int, default=None, help="fit the first N rows (default: all)")
    parser.add_argument("--n-components", type=int, default=2, help="latent dimension (2)")
    parser.add_argument(
        "--max-iter", type=int, default=None, help="iterations (default: the estimator's)"
    )
    parser.add_argument("--lam", type=float, default=0.0, help="weight of the prior on Z (0)")
    parser.add_argument("--backend", default="numpy", help="numpy, jax or torch (numpy)")
    parser.add_argument("--keep", action="append", default=[], help="copy this column, unfitted")
    parser.add_argument("--no-header", action="store_true", help="the CSV has no header line")
    parser.add_argument("--no-standardize", action="store_true", help="fit the raw values")
    parser.add_argument("--out", type=Path, default=Path("example_output"), help="output folder")
    args = parser.parse_args(argv)

    table = load_table(args.path, header=not args.no_header)
    if args.n is not None:
        table = table.iloc[: args.n]
    if args.no_header or args.path.suffix.lower() == ".npy":
        table.columns = [str(c) for c in table.columns]
    unknown = [k for k in args.keep if k not in table.columns]
    if unknown:
        msg = f"--keep {unknown[0]!r}: no such column (the columns: {list(table.columns)})"
        raise DataError(msg)
    X = check_columns(table.drop(columns=args.keep))
    if not args.no_standardize:
        X = (X - X.mean()) / X.std(ddof=0)

    params = {"max_iter": args.max_iter} if args.max_iter is not None else {}
    model = ukr_bench.UKR(args.n_components, lam=args.lam, backend=args.backend, **params)
    Z = model.fit_transform(X)
    print(
        f"fitted {X.shape[0]} rows x {X.shape[1]} columns in {model.n_iter_} iterations: "
        f"E from {model.history_[0]:.4g} (PCA start) to {model.history_[-1]:.4g}"
    )

    out = table[args.keep].reset_index(drop=True)
    out = out.join(pd.DataFrame(Z, columns=model.get_feature_names_out()))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "embedding.csv"
    out.to_csv(path, index=False)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    try:
        main()
    except DataError as exc:
        raise SystemExit(f"error: {exc}") from None
