"""The per-pair lower bound at report time: the best rates of a run's device, each row's work.

Each benchmark worker is one framework's process, so it measures the exp, FMA and GEMM rates
its own framework reaches (``exp_rate``, ``flop_rate`` and ``info["bound"]["gemm_rate"]`` of
its rows; :mod:`ukr_bench.bench.bound`). The device can do at least the best of them, so the
report takes, per device and dtype, the largest of each rate any backend recorded
(:func:`machine_rates`), and bounds every row by its own layout's work per pair
(``exps_per_pair``, ``flops_per_pair`` and ``info["bound"]["matmul_flops_per_pair"]``) at
those rates, by :func:`ukr_bench.bound_model.pair_seconds` (:func:`row_bounds`). Rows written
before the rates were recorded have only their own ``bound_s``: where a cell has no row with
the new fields, its bound is the least ``bound_s``, as it was computed then.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ukr_bench.bound_model import on_host, pair_seconds

#: The rates of :func:`machine_rates`: (column, what it counts).
RATES = (("exp_rate", "exps/s"), ("fma_rate", "FMA flop/s"), ("gemm_rate", "GEMM flop/s"))
#: The key's columns of the problem besides N (D and L): cells of different values are apart.
PROBLEM = ("data_dim", "latent_dim")
#: The column :func:`with_bounds` adds.
BOUND = "pair_bound_s"


def _bound_info(ok: pd.DataFrame, field: str) -> pd.Series:
    """``info["bound"][field]`` of every row (NaN where a row has none)."""
    info = ok["info"] if "info" in ok.columns else pd.Series([None] * len(ok), index=ok.index)

    def get(i: Any) -> float:
        b = i.get("bound") if isinstance(i, dict) else None
        v = b.get(field) if isinstance(b, dict) else None
        return float(v) if isinstance(v, int | float) else np.nan

    return info.map(get).astype(float)


def _column(ok: pd.DataFrame, name: str) -> pd.Series:
    if name not in ok.columns:
        return pd.Series(np.nan, index=ok.index, dtype=float)
    return pd.to_numeric(ok[name], errors="coerce").astype(float)


def _rates_of_rows(ok: pd.DataFrame) -> pd.DataFrame:
    """device, dtype, backend and the three rates of every row (NaN where not recorded)."""
    return pd.DataFrame({
        "device": ok["device"], "dtype": ok["dtype"], "backend": ok["backend"],
        "exp_rate": _column(ok, "exp_rate"), "fma_rate": _column(ok, "flop_rate"),
        "gemm_rate": _bound_info(ok, "gemm_rate"),
    })  # fmt: skip


def machine_rates(ok: pd.DataFrame) -> pd.DataFrame:
    """The largest of each rate (:data:`RATES`) any backend recorded, per device and dtype.

    Columns: device, dtype, and per rate its value and ``<rate>_by`` (the backend that
    measured it); a rate no row recorded is NaN (its ``_by`` empty). Empty where no row has
    a rate.
    """
    columns = ["device", "dtype", *[c for r, _ in RATES for c in (r, f"{r}_by")]]
    rates = _rates_of_rows(ok) if not ok.empty else pd.DataFrame()
    names = [r for r, _ in RATES]
    if rates.empty or not rates[names].notna().to_numpy().any():
        return pd.DataFrame(columns=columns)
    out = []
    for (device, dtype), g in rates.groupby(["device", "dtype"], sort=True):
        rec: dict[str, Any] = {"device": device, "dtype": dtype}
        for r in names:
            known = g[g[r].notna()]
            best = known.loc[known[r].idxmax()] if len(known) else None
            rec[r] = np.nan if best is None else float(best[r])
            rec[f"{r}_by"] = "" if best is None else str(best["backend"])
        out.append(rec)
    return pd.DataFrame(out, columns=columns)


def row_bounds(ok: pd.DataFrame) -> pd.Series:
    """Every row's lower bound in seconds, N^2 times its work per pair at the best rates of its
    device and dtype (module docstring); NaN where the row lacks its work or the device a rate.
    Index: ``ok``'s."""
    if ok.empty:
        return pd.Series(dtype=float, index=ok.index)
    best = machine_rates(ok).set_index(["device", "dtype"])
    exps, flops = _column(ok, "exps_per_pair"), _column(ok, "flops_per_pair")
    matmul = _bound_info(ok, "matmul_flops_per_pair")
    out = pd.Series(np.nan, index=ok.index, dtype=float)
    for i, device, dtype, n in zip(ok.index, ok["device"], ok["dtype"], ok["n"], strict=True):
        work = (exps[i], flops[i] - matmul[i], matmul[i])
        if (device, dtype) not in best.index or not np.isfinite(work).all():
            continue
        r = best.loc[(device, dtype)]
        if not all(np.isfinite(r[name]) for name, _ in RATES):
            continue
        per_pair = pair_seconds(
            *work, exp_rate=r["exp_rate"], fma_rate=r["fma_rate"], gemm_rate=r["gemm_rate"],
            host=on_host(str(device)),
        )  # fmt: skip
        out[i] = float(n) ** 2 * per_pair
    return out


def with_bounds(ok: pd.DataFrame) -> pd.DataFrame:
    """``ok`` with the column :data:`BOUND`: :func:`row_bounds`."""
    return ok.assign(**{BOUND: row_bounds(ok)})


def bound_of(row: pd.Series, cell: pd.DataFrame) -> float:
    """The bound ``row``'s time is compared with: its own (:data:`BOUND`, from
    :func:`with_bounds`), else, for rows without the rates, the least ``bound_s`` of its
    ``cell`` (the rows of its dtype, device and N); NaN without either."""
    own = row.get(BOUND, np.nan)
    if own is not None and np.isfinite(own):
        return float(own)
    old = cell["bound_s"].dropna() if "bound_s" in cell.columns else pd.Series(dtype=float)
    return float(old.min()) if len(old) else np.nan


def bounds(ok: pd.DataFrame) -> pd.DataFrame:
    """The per-pair lower bound per dtype, device and N (and D and L where they vary,
    :data:`PROBLEM`): the least :func:`row_bounds` of the cell's rows (the layout that
    does the least work, at the best rates), else the least ``bound_s``. Columns: dtype,
    device, n, the varying problem columns, bound_s; empty where no row has a bound."""
    by = ["dtype", "device", "n", *[c for c in PROBLEM if c in ok and ok[c].nunique() > 1]]
    if ok.empty:
        return pd.DataFrame(columns=[*by, "bound_s"])
    new = row_bounds(ok)
    old = _column(ok, "bound_s")
    cells = ok[by].assign(new=new, old=old).groupby(by, sort=True)[["new", "old"]].min()
    cells["bound_s"] = cells["new"].where(cells["new"].notna(), cells["old"])
    return cells["bound_s"].dropna().reset_index()
