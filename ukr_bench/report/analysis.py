"""What a run's numbers say, computed apart from how they are drawn or printed.

DataFrames in, DataFrames out, nothing drawn (no matplotlib here) and nothing formatted but
names: :mod:`~ukr_bench.report.figures` draws what these functions return,
:mod:`~ukr_bench.report.tables` prints it, :mod:`~ukr_bench.report.build` assembles both.
Input frames hold a run's rows with status ok (the flat columns of :mod:`ukr_bench.schema`:
the configuration key ``backend, layout, gradient, dtype, device, n``, and timing columns such
as ``value_and_grad_median_s``). A *series* is the rows of one
``backend, layout, gradient, dtype, device`` (:data:`style.SERIES`) and D and L against N:
rows of different D or L are never one series, cell or ratio (:func:`style.problems`).

**Plausibility flags** (:func:`flag_rows`): a row whose numbers cannot both be right is
flagged, shown, and kept out of winners and fitted exponents: value + gradient significantly
faster than the value alone, an IQR wider than ``MAX_IQR_FRACTION`` of the median, a time that
falls as N doubles, a host memory reading of zero where the computation needs more than
``MIN_VISIBLE_BYTES``, and per series a fitted exponent outside ``EXPONENT_RANGE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from ukr_bench.report import rates, stats, style
from ukr_bench.report.stats import scaling_exponent
from ukr_bench.schema import ConfigKey, Status, fit_column, timing_column

VG_MEDIAN = timing_column("value_and_grad", "median")
VG_IQR = timing_column("value_and_grad", "iqr")
KEY = list(ConfigKey.FIELDS)
OK = Status.OK.value

#: A series' key: backend, layout, gradient, dtype, device.
Series = tuple[str, str, str, str, str]

#: The cheap-gradient principle (Griewank & Walther, *Evaluating Derivatives*, 2008, sec. 4.6):
#: reverse mode evaluates value + gradient in at most this many times the operations of the
#: value alone (5 with their memory traffic counted), whatever the number of inputs.
CHEAP_GRADIENT_BOUND = 4.0
#: The goal of issue 12 for every backend and gradient at N >= ``GRAD_RATIO_MIN_N``.
GRAD_RATIO_GOAL = 3.0
GRAD_RATIO_MIN_N = 1000
#: A host memory reading under this many MiB is the allocator reusing cached memory (or a page
#: or two), not what the computation needs.
HOST_RESOLUTION_MIB = 1.0
MAX_IQR_FRACTION = 0.5
EXPONENT_RANGE = (0.5, 3.5)  # value + gradient is O(N^2): outside this, the fit is not of the cost
MIN_VISIBLE_BYTES = 4 * 2**20  # a reading of 0 below this is the allocator's cache, not an error


# --------------------------------------------------------------------------- series and exponents


def series(ok: pd.DataFrame, *, gaps: bool = False) -> list[tuple[Series, pd.DataFrame]]:
    """Rows grouped into series (sorted by key), each sorted by N.

    ``gaps``: every series gets a row (all NaN) at each N of ``ok`` it lacks, so that a line
    drawn through it breaks there instead of going straight across a missing measurement.
    Different D or L: different series of one :data:`Series` name (figures draw one D at a time).
    """
    all_n = sorted(ok["n"].unique())
    out = []
    for key, group in ok.groupby([*style.SERIES, *style.problems(ok)], sort=True):
        g = group.sort_values("n")
        if gaps:
            g = g.set_index("n").reindex(all_n).rename_axis("n").reset_index()
        out.append((cast(Series, key[: len(style.SERIES)]), g))
    return out


#: The per-pair lower bound per cell (:func:`ukr_bench.report.rates.bounds`).
bounds = rates.bounds


def exponents(ok: pd.DataFrame) -> pd.DataFrame:
    """The fitted exponent of each series' median value + gradient time (:func:`scaling_exponent`).

    Fitted over the rows not flagged (``flag == ""``) where ``ok`` has a ``flag`` column, else
    over the rows with a median. Columns: the series' (:data:`style.SERIES`) and ``exponent``
    (NaN: too few N to fit).
    """
    rows = []
    for key, g in series(ok):
        clean = g[g["flag"] == ""] if "flag" in g.columns else g.dropna(subset=[VG_MEDIAN])
        slope = scaling_exponent(clean["n"], clean[VG_MEDIAN])
        rows.append([*key, np.nan if slope is None else slope])
    return pd.DataFrame(rows, columns=[*style.SERIES, "exponent"])


# --------------------------------------------------------------------------- ratios


def speedup(ok: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame | None:
    """``ok`` with a column ``speedup`` = t_baseline / t_row of the median value + gradient time,
    the baseline backend's row of the same layout, dtype, device and N (NaN where it has none).

    ``baseline``: a backend name, by default the registry's declared baseline
    (:func:`style.baseline_backend`). None where no row is the baseline's.
    """
    name = baseline if baseline is not None else style.baseline_backend()
    on = ["layout", "dtype", "device", "n", *style.problems(ok)]
    base = ok[ok.backend == name].set_index(on)[VG_MEDIAN]
    if base.empty:
        return None
    idx = list(zip(*(ok[c] for c in on), strict=True))
    return ok.assign(speedup=base.reindex(idx).to_numpy() / ok[VG_MEDIAN].to_numpy())


def autodiff_cost(ok: pd.DataFrame) -> pd.DataFrame:
    """autodiff / manual value + gradient time, per backend, layout, dtype, device and N.

    Only where a run has both kinds. ``ratio`` = t_autodiff / t_manual of the median times
    (1: autodiff costs nothing extra); ``low``, ``high``: the 95 % bootstrap interval of that
    ratio from the raw samples and ``p`` the Mann-Whitney p-value (:func:`stats.compare`; NaN
    without samples). Columns: backend, layout, dtype, device, n, ratio, low, high, p.
    """
    keys = ["backend", "layout", "dtype", "device", "n", *style.problems(ok)]
    out = []
    for key, g in ok.groupby(keys, sort=True):
        kinds = g.drop_duplicates("gradient").set_index("gradient")
        if not {"autodiff", "manual"} <= set(kinds.index):
            continue
        auto, manual = kinds.loc["autodiff"], kinds.loc["manual"]
        ratio = float(auto[VG_MEDIAN]) / float(manual[VG_MEDIAN])
        a, m = stats.samples_of(auto), stats.samples_of(manual)
        c = stats.compare(m, a) if len(a) > 1 and len(m) > 1 else None
        out.append(
            dict(zip(keys, key, strict=True))
            | {
                "ratio": ratio,
                "low": np.nan if c is None else c.low,
                "high": np.nan if c is None else c.high,
                "p": np.nan if c is None else c.p_value,
            }
        )
    return pd.DataFrame(out, columns=[*keys, "ratio", "low", "high", "p"])


@dataclass(frozen=True)
class AutodiffSummary:
    """Over every row of :func:`autodiff_cost`: how many have their interval above 1 (autodiff
    significantly slower), of how many, and the median, least and largest ratio."""

    slower: int
    configurations: int
    median: float
    low: float
    high: float


def autodiff_summary(cost: pd.DataFrame) -> AutodiffSummary:
    """:class:`AutodiffSummary` of a non-empty :func:`autodiff_cost` frame."""
    ratio = cost["ratio"]
    return AutodiffSummary(
        int((cost["low"] > 1.0).sum()), len(cost), ratio.median(), ratio.min(), ratio.max()
    )


@dataclass(frozen=True)
class GradientCost:
    """``grad_ratio`` = t(value + gradient) / t(value) over the rows at N >= ``GRAD_RATIO_MIN_N``:
    the largest (the measured constant of the cheap-gradient principle), how many are within
    ``GRAD_RATIO_GOAL``, of how many."""

    largest: float
    within_goal: int
    configurations: int


def gradient_cost(ok: pd.DataFrame) -> GradientCost:
    """:class:`GradientCost` of the rows of ``ok`` (which has a ``grad_ratio`` column)."""
    big = ok[ok["n"] >= GRAD_RATIO_MIN_N]["grad_ratio"]
    return GradientCost(big.max(), int((big <= GRAD_RATIO_GOAL).sum()), len(big))


# --------------------------------------------------------------------------- memory and fits


def peak_memory(ok: pd.DataFrame) -> pd.DataFrame:
    """``ok`` with ``peak`` (MiB = bytes / 2^20): the device's peak for a device configuration,
    the rise of the host's peak RSS for a host one; NaN where not measured (never the other
    kind's number: the host RSS of a GPU run measures the framework's start-up, not the
    computation)."""
    on_host = ok["device"].map(style.device_kind) == "cpu"
    host = ok["host_peak_bytes"] if "host_peak_bytes" in ok.columns else np.nan
    device = ok["device_peak_bytes"] if "device_peak_bytes" in ok.columns else np.nan
    peak = pd.Series(np.where(on_host, host, device), index=ok.index, dtype=float)
    return ok.assign(peak=peak / 2**20)


def memory_shown(ok: pd.DataFrame) -> pd.DataFrame:
    """:func:`peak_memory` with the readings that measure nothing set to NaN (a gap, never a
    point on a log axis): those not above 0, and host readings under ``HOST_RESOLUTION_MIB``."""
    mem = peak_memory(ok)
    on_host = mem["device"].map(style.device_kind) == "cpu"
    mem.loc[~(mem.peak > 0) | (on_host & (mem.peak < HOST_RESOLUTION_MIB)), "peak"] = np.nan
    return mem


def fit_optimizers(df: pd.DataFrame) -> list[str]:
    """Optimisers whose time-to-fit the rows hold (from the schema's fit columns)."""
    prefix, suffix = fit_column("", "median_s").split("_median_s")[0], "_median_s"
    return [
        c[len(prefix) : -len(suffix)]
        for c in df.columns
        if c.startswith(prefix) and c.endswith(suffix)
    ]


def fit_rows(ok: pd.DataFrame) -> pd.DataFrame:
    """The rows with a time-to-fit of any optimiser (none where the run fitted nothing)."""
    medians = [fit_column(o, "median_s") for o in fit_optimizers(ok)]
    return ok.dropna(subset=medians, how="all") if medians else ok.iloc[0:0]


def fit_iterations(fits: pd.DataFrame, optimizer: str) -> tuple[int, int]:
    """The least and largest number of iterations ``optimizer`` ran over ``fits``."""
    iters = fits[fit_column(optimizer, "iters")].dropna()
    return int(iters.min()), int(iters.max())


# --------------------------------------------------------------------------- flags


def _gradient_faster_than_value(row: pd.Series) -> bool:
    """Value + gradient significantly faster than the value alone (:func:`stats.compare` on the
    two functions' raw samples), or, without samples, a ratio below ``1 / THRESHOLD``. A ratio
    just under 1 inside the noise is not implausible: a hand-derived gradient that forms the
    kernel in place can cost as little as a value that goes through the framework's softmax."""
    vg, value = stats.samples_of(row), stats.samples_of(row, "value")
    if len(vg) >= 2 and len(value) >= 2:
        return stats.compare(value, vg).b_faster
    return bool(row["grad_ratio"] < 1 / stats.THRESHOLD)


def _memory_reasons(r: pd.Series) -> list[str]:
    est, host = r.get("memory_estimate_bytes"), r.get("host_peak_bytes")
    if (
        str(r["device"]).startswith("cpu")
        and pd.notna(host)
        and host == 0
        and pd.notna(est)
        and est > MIN_VISIBLE_BYTES
    ):
        return ["host memory reading of 0 for a computation that needs more"]
    return []


def _timing_reasons(r: pd.Series) -> list[str]:
    out = []
    if pd.notna(r.get("grad_ratio")) and _gradient_faster_than_value(r):
        out.append(f"value + gradient faster than the value alone ({r['grad_ratio']:.2f})")
    if pd.notna(r.get(VG_IQR)) and r[VG_IQR] > MAX_IQR_FRACTION * r[VG_MEDIAN]:
        out.append(f"IQR {r[VG_IQR] / r[VG_MEDIAN]:.0%} of the median")
    return out


def _series_reasons(g: pd.DataFrame) -> list[tuple[Any, str]]:
    """(row index, reason) of one series sorted by N: a fall as N doubles, an absurd exponent."""
    out, prev = [], None
    for i, r in g.iterrows():
        if prev is not None and r["n"] >= 2 * prev["n"] * 0.99 and r[VG_MEDIAN] < prev[VG_MEDIAN]:
            out.append((i, f"faster than at N={int(prev['n'])}"))
        prev = r
    slope = scaling_exponent(g["n"], g[VG_MEDIAN])
    if slope is not None and not EXPONENT_RANGE[0] <= slope <= EXPONENT_RANGE[1]:
        out += [(i, f"series' fitted exponent {slope:.2f}") for i in g.index]
    return out


def flag_rows(ok: pd.DataFrame, *, memory: bool = False) -> pd.Series:
    """A reason per row of ``ok`` (index kept; empty string: plausible), reasons joined by "; ".

    Timing flags by default (they exclude a row from winners and fits); ``memory=True``: the
    memory reading's flags instead (they only mark the reading).
    """
    reasons: dict[Any, list[str]] = {i: [] for i in ok.index}
    for i, r in ok.iterrows():
        reasons[i] += _memory_reasons(r) if memory else _timing_reasons(r)
    if not memory:
        for _, g in series(ok):
            for i, why in _series_reasons(g):
                reasons[i].append(why)
    return pd.Series({i: "; ".join(v) for i, v in reasons.items()}, dtype=object)


# --------------------------------------------------------------------------- winners


def winners_per_n(ok: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """The fastest series for value + gradient per dtype, device and N, or a tie.

    The fastest by median is compared with every other series by :func:`stats.compare` on the
    raw samples; those it does not beat significantly tie with it. Columns: dtype, device, N,
    fastest (a name, or ``tie: a, b``), tied (the names of ``fastest``, a tuple: one, or all
    that tie), lead (over the runner-up, with its 95 % interval), ratio (that lead's), time (the
    fastest's median), x_bound (its time over :func:`rates.bound_of`); after N, a cell per value
    of the problem's columns ``by`` (default :func:`style.problems`).
    """
    by = style.problems(ok) if by is None else by
    ok = rates.with_bounds(ok)
    out = []
    for cell, group in ok.groupby(["dtype", "device", "n", *by], sort=True):
        dtype, device, n = cell[:3]
        g = group.sort_values(VG_MEDIAN)
        names = [style.label(s).removesuffix(f" {dtype} {device}") for s in
                 g[list(style.SERIES)].itertuples(index=False)]  # fmt: skip
        first = g.iloc[0]
        # its own layout's work at the best rates any backend measured on its device
        x_bound = float(first[VG_MEDIAN]) / rates.bound_of(first, g)
        tied, lead = [names[0]], None
        for name, (_, other) in zip(names[1:], g.iloc[1:].iterrows(), strict=True):
            c = stats.compare(stats.samples_of(first), stats.samples_of(other))
            lead = lead or c
            if not c.a_faster:
                tied.append(name)
        out.append(
            {
                "dtype": dtype,
                "device": device,
                "N": int(cast(int, n)),
                **{c: int(cast(int, v)) for c, v in zip(by, cell[3:], strict=True)},
                "fastest": names[0] if len(tied) == 1 else "tie: " + ", ".join(sorted(tied)),
                "tied": tuple(sorted(tied)),
                "lead": "only backend" if lead is None else str(lead),
                "ratio": np.nan if lead is None else lead.ratio,
                "time": float(first[VG_MEDIAN]),
                "x_bound": x_bound,
            }
        )
    columns = ["dtype", "device", "N", *by, "fastest", "tied", "lead", "ratio", "time", "x_bound"]
    return pd.DataFrame(out, columns=columns)


def run_winners(df: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """One run's verdict per dtype, device and N it has rows for (any status): ``fastest`` of
    :func:`winners_per_n` over its unflagged ok rows, NaN where none was usable (failed or
    flagged), so that :func:`stats.consensus` tells that apart from a cell never measured.
    Columns: dtype, device, N, ``by`` (default :func:`style.problems`), fastest."""
    by = style.problems(df) if by is None else by
    cell = ["dtype", "device", "N", *by]
    ok = df[df.status == OK].copy()
    ok = ok[flag_rows(ok) == ""] if not ok.empty else ok
    won = winners_per_n(ok, by)[[*cell, "fastest"]]
    tried = df[["dtype", "device", "n", *by]].drop_duplicates().rename(columns={"n": "N"})
    return tried.astype({"N": int}).merge(won, how="left", on=cell)


# --------------------------------------------------------------------------- several runs


def run_table(frames: list[pd.DataFrame], runs: list[str]) -> pd.DataFrame:
    """Every configuration of any run (index: the configuration key, sorted), with per run
    ``<run>``: its median value + gradient time (NaN unless status ok) and ``<run> status``
    (``absent`` where the run has no row for it)."""
    # a frame without D and L (made by hand) has the key's defaults, as older rows upgrade
    saddle: dict[str, Any] = {
        c: getattr(ConfigKey("", "", "", "", "", 1), c) for c in style.PROBLEM
    }
    keyed = [
        f.assign(**{c: d for c, d in saddle.items() if c not in f}).set_index(KEY) for f in frames
    ]
    all_keys = sorted(set().union(*(k.index for k in keyed)))
    table = pd.DataFrame(index=pd.MultiIndex.from_tuples(all_keys, names=KEY))
    for run, k in zip(runs, keyed, strict=True):
        table[run] = k[k.status == OK][VG_MEDIAN].reindex(table.index)
        table[f"{run} status"] = k["status"].reindex(table.index).fillna("absent")
    return table


def run_spread(table: pd.DataFrame, runs: list[str]) -> pd.DataFrame:
    """Run-to-run variation of :func:`run_table`: per configuration every run measured, spread
    = max / min of the runs' medians (1: identical); per series (index: :data:`style.SERIES`)
    its ``median`` and ``max`` over N."""
    medians = table[runs]
    spread = (medians.max(axis=1) / medians.min(axis=1)).where(medians.notna().all(axis=1))
    levels = [*style.SERIES, *style.problems(table.index.to_frame(index=False))]
    return spread.dropna().groupby(level=levels).agg(["median", "max"])


def mismatched(table: pd.DataFrame, runs: list[str]) -> pd.DataFrame:
    """The configurations of :func:`run_table` that some run lacks: the key's columns and
    ``present in``, the runs that have it, comma-separated."""
    statuses = table[[f"{r} status" for r in runs]]
    absent = (statuses == "absent").any(axis=1)
    out = table[absent].reset_index()[KEY]
    out["present in"] = [
        ", ".join(r for r, s in zip(runs, row, strict=True) if s != "absent")
        for row in statuses[absent].itertuples(index=False)
    ]
    return out
