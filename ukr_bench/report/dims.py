"""Across the data's dimension D: the time at fixed N against D, the winners per (N, D) and the
crossovers, computed apart from how they are drawn or printed.

DataFrames in, DataFrames out, as :mod:`~ukr_bench.report.analysis`: ``ok`` holds a run's
unflagged rows with status ok (flat columns of :mod:`ukr_bench.schema`, ``data_dim`` among
them). Only a run of more than one D has anything here (:func:`has_several_d`); a run of one D
(every committed run before the D axis) reads as it did.

**Which N the figure draws** (:func:`fixed_n`): per dtype and device, the largest N at which
every D of that dtype and device has a row; a time against D at one N compares equal numbers
of pairs, and the largest such N is the one nearest the asymptotic cost.

**A crossover** (:func:`crossovers`): per dtype, device and N, the two leading configurations
are the one with the least median at the smallest D (*A*) and the one with the least median at
the largest D (*B*). Where they differ, the order of their medians flips at the smallest D from
which *B*'s median stays below *A*'s at every larger D (``flip_d``). *B* is called faster from
the smallest D (``from_d``) at and beyond ``flip_d`` from which it is significantly faster at
every larger D by :func:`stats.compare`'s rule (Mann-Whitney p < ``ALPHA`` and the bootstrap
interval of the ratio beyond ``THRESHOLD``); where there is no such D, the flip is a tie.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ukr_bench.report import analysis, stats, style
from ukr_bench.report.analysis import VG_MEDIAN

#: The column of the data's dimension D (``ConfigKey.data_dim``).
D = "data_dim"
#: The column of the latent dimension L: rows of different L are never compared across D.
L = "latent_dim"
#: What :func:`crossovers` calls each cell: B faster from a D, a flip inside the noise, no flip.
CROSSOVER, TIE, SAME = "crossover", "tie", "same"
#: What :func:`crossovers` calls a cell whose leader at the smallest D has no row at the largest.
UNMEASURED = "unmeasured"
CROSSOVER_COLUMNS = [
    "dtype", "device", "N", L, "kind", "slow", "fast", "d_min", "d_max", "flip_d", "from_d",
    "ratio", "low", "high", "ahead_below",
]  # fmt: skip


def has_several_d(ok: pd.DataFrame) -> bool:
    """Whether ``ok`` has rows of more than one D (the section across D applies)."""
    return D in style.problems(ok)


def _cells(ok: pd.DataFrame) -> list[str]:
    """The columns that keep cells apart besides D and N: dtype, device, and L where it has one."""
    return ["dtype", "device", *([L] if L in ok.columns else [])]


def name(row: Any) -> str:
    """A series' name as the winners table gives it: its label without dtype and device."""
    key = [str(row[c]) for c in style.SERIES]
    return style.label(key).removesuffix(f" {key[3]} {key[4]}")


def fixed_n(ok: pd.DataFrame) -> pd.DataFrame:
    """Per dtype and device (and L), the N the time-against-D figure draws: the largest N at
    which every D of those rows has at least one row (module docstring); where no N has every
    D, the largest of those that have the most. Columns: dtype, device, L (where ``ok`` has it),
    n, ds (how many D that N has), of (how many D the cell has)."""
    by = _cells(ok)
    out = []
    for cell, g in ok.groupby(by, sort=True):
        per_n = g.groupby("n")[D].nunique()
        best = per_n[per_n == per_n.max()]
        out.append([*cell, int(best.index.max()), int(per_n.max()), int(g[D].nunique())])
    return pd.DataFrame(out, columns=[*by, "n", "ds", "of"])


def at_fixed_n(ok: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``ok`` at :func:`fixed_n`'s N of their dtype and device (and L)."""
    chosen = fixed_n(ok)
    return ok.merge(chosen[[*_cells(ok), "n"]], on=[*_cells(ok), "n"], how="inner")


def bounds_by_d(ok: pd.DataFrame) -> pd.DataFrame:
    """The per-pair lower bound (:func:`analysis.bounds`, at the best rates of the whole run) at
    :func:`fixed_n`'s N, per dtype, device, L and D: the least bound of the cell's layouts.
    Columns: dtype, device, n, data_dim, latent_dim (where ``ok`` has it), bound_s; empty
    where no row has a bound. ``ok`` has rows of several D."""
    columns = ["dtype", "device", "n", D, *([L] if L in ok.columns else []), "bound_s"]
    b = analysis.bounds(ok)
    if b.empty:
        return pd.DataFrame(columns=columns)
    if L in ok.columns and L not in b.columns:  # one L: analysis.bounds leaves it out
        b[L] = ok[L].iloc[0]
    chosen = fixed_n(ok)[[*_cells(ok), "n"]]
    return b.merge(chosen, on=[*_cells(ok), "n"])[columns].sort_values(columns[:-1])


def winners_by_d(ok: pd.DataFrame) -> pd.DataFrame:
    """:func:`analysis.winners_per_n` per dtype, device, N and D (and L where it varies): the
    fastest series or a tie by the report's significance rule, its time and its time over its
    bound. Columns: as :func:`analysis.winners_per_n`'s, with ``data_dim`` (and ``latent_dim``)
    after N."""
    return analysis.winners_per_n(ok, [D, *([L] if L in style.problems(ok) else [])])


def _pair(g: pd.DataFrame, slow: str, fast: str, d: int) -> tuple[pd.Series, pd.Series] | None:
    rows = g[g[D] == d]
    a, b = rows[rows["_name"] == slow], rows[rows["_name"] == fast]
    return (a.iloc[0], b.iloc[0]) if len(a) and len(b) else None


def _crossover(g: pd.DataFrame) -> dict[str, Any] | None:
    """One cell's :func:`crossovers` record (one dtype, device, L and N); None where the cell
    has fewer than two D."""
    ds = sorted(int(d) for d in g[D].unique())
    if len(ds) < 2:
        return None
    first = g[g[D] == ds[0]].sort_values(VG_MEDIAN).iloc[0]
    last = g[g[D] == ds[-1]].sort_values(VG_MEDIAN).iloc[0]
    slow, fast = str(first["_name"]), str(last["_name"])
    rec: dict[str, Any] = {"slow": slow, "fast": fast, "d_min": ds[0], "d_max": ds[-1],
                           "flip_d": np.nan, "from_d": np.nan, "ratio": np.nan,
                           "low": np.nan, "high": np.nan, "ahead_below": ()}  # fmt: skip
    if slow == fast:
        return rec | {"kind": SAME}
    both = [(d, p) for d in ds if (p := _pair(g, slow, fast, d)) is not None]
    # c.b_faster: ``fast`` significantly faster than ``slow`` at that D
    compared = [(d, a, b, stats.compare(stats.samples_of(a), stats.samples_of(b)))
                for d, (a, b) in both]  # fmt: skip
    if not compared or compared[-1][0] != ds[-1]:  # nothing says whether their order flipped
        return rec | {"kind": UNMEASURED}
    flip = len(compared)
    while flip > 0 and compared[flip - 1][2][VG_MEDIAN] < compared[flip - 1][1][VG_MEDIAN]:
        flip -= 1
    flip = min(flip, len(compared) - 1)  # equal medians at the largest D: a tie from there
    since = len(compared)
    while since > flip and compared[since - 1][3].b_faster:
        since -= 1
    shown = compared[since] if since < len(compared) else compared[flip]
    ratio = shown[3]  # median(fast) / median(slow): below 1 where ``fast`` leads
    ahead = tuple(d for d, _, _, c in compared[:flip] if c.a_faster)
    return rec | {
        "kind": CROSSOVER if since < len(compared) else TIE,
        "flip_d": compared[flip][0],
        "from_d": compared[since][0] if since < len(compared) else np.nan,
        "ratio": 1 / ratio.ratio, "low": 1 / ratio.high, "high": 1 / ratio.low,
        "ahead_below": ahead,
    }  # fmt: skip


def crossovers(ok: pd.DataFrame) -> pd.DataFrame:
    """Per dtype, device, N (and L): the two leading configurations and where their order flips
    across D (module docstring). Columns (:data:`CROSSOVER_COLUMNS`): dtype, device, N,
    latent_dim; kind (:data:`CROSSOVER`, :data:`TIE`, :data:`SAME`: the same series leads
    at the smallest and the largest D, or :data:`UNMEASURED`: the leader at the smallest D has
    no row at the largest); slow and fast (the series leading at the smallest and
    at the largest D); d_min, d_max; flip_d (where the medians' order flips and stays flipped);
    from_d (where ``fast`` is significantly faster from, at every larger D; NaN for a tie);
    ratio, low, high (median(slow) / median(fast) with its 95 % interval at from_d, or at
    flip_d for a tie); ahead_below (the D below flip_d where ``slow`` is significantly faster).
    Cells with fewer than two D are left out."""
    if ok.empty:
        return pd.DataFrame(columns=CROSSOVER_COLUMNS)
    named = ok.assign(_name=[name(r) for _, r in ok.iterrows()])
    by = [*_cells(ok), "n"]
    out = []
    for cell, g in named.groupby(by, sort=True):
        rec = _crossover(g)
        if rec is not None:
            key = dict(zip(by, cell, strict=True))
            n = int(key.pop("n"))
            out.append(key | {"N": n} | rec)
    return pd.DataFrame(out, columns=CROSSOVER_COLUMNS)
