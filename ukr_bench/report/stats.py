"""Signal or noise: when a report may say "faster", and which measurements it should not trust.

**Comparisons** (as asv's ``compare``): the raw timing samples of two configurations are
compared by a two-sided Mann-Whitney U test and a bootstrap confidence interval of the ratio of
their medians. One is called faster only when the difference is significant
(``p < ALPHA``) *and* the whole interval lies beyond ``THRESHOLD`` (a lead of at least 5 %);
otherwise the two tie. Samples within one configuration are consecutive calls, so they share the
machine's state of the moment: the test says whether the two medians differ in *this* run,
not whether they would in the next; across runs, :func:`consensus` keeps only what held in all.

**Plausibility flags**: a row whose numbers cannot both be right is flagged, shown, and kept out
of winners and fitted exponents: value + gradient significantly faster than the value alone, an IQR wider than
``MAX_IQR_FRACTION`` of the median, a time that falls as N doubles, a host memory reading of
zero where the computation needs more than ``MIN_VISIBLE_BYTES``, and per series a fitted
exponent outside ``EXPONENT_RANGE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

ALPHA = 0.01
THRESHOLD = 1.05
BOOTSTRAP = 2000
MAX_IQR_FRACTION = 0.5
EXPONENT_RANGE = (0.5, 3.5)  # value + gradient is O(N^2): outside this, the fit is not of the cost
MIN_VISIBLE_BYTES = 4 * 2**20  # a reading of 0 below this is the allocator's cache, not an error


@dataclass(frozen=True)
class Comparison:
    """``b`` against ``a``: ratio = median(b) / median(a) (> 1: a is faster), with its interval."""

    ratio: float
    low: float
    high: float
    p_value: float

    @property
    def a_faster(self) -> bool:
        return self.p_value < ALPHA and self.low > THRESHOLD

    @property
    def b_faster(self) -> bool:
        return self.p_value < ALPHA and self.high < 1 / THRESHOLD

    def __str__(self) -> str:
        return f"{self.ratio:.2f}x [{self.low:.2f}–{self.high:.2f}]"


def compare(a: Any, b: Any, *, seed: int = 0) -> Comparison:
    """Compare two samples of times (seconds); deterministic for a given ``seed``."""
    from scipy.stats import mannwhitneyu

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ratio = float(np.median(b) / np.median(a))
    if len(a) < 2 or len(b) < 2:
        return Comparison(ratio, 0.0, float("inf"), 1.0)
    rng = np.random.default_rng(seed)
    ma = np.median(rng.choice(a, size=(BOOTSTRAP, len(a))), axis=1)
    mb = np.median(rng.choice(b, size=(BOOTSTRAP, len(b))), axis=1)
    low, high = np.quantile(mb / ma, [0.025, 0.975])
    p = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return Comparison(ratio, float(low), float(high), p)


def samples_of(row: pd.Series, function: str = "value_and_grad") -> list[float]:
    """The raw timing samples of a row (empty when the results file kept none)."""
    samples = row.get("samples")
    if isinstance(samples, dict):
        return list(samples.get(function, []))
    return []


def _gradient_faster_than_value(row: pd.Series) -> bool:
    """Value + gradient significantly faster than the value alone (:func:`compare` on the two
    functions' raw samples), or, without samples, a ratio below ``1 / THRESHOLD``. A ratio just
    under 1 inside the noise is not implausible: a hand-derived gradient that forms the kernel
    in place can cost as little as a value that goes through the framework's softmax."""
    vg, value = samples_of(row), samples_of(row, "value")
    if len(vg) >= 2 and len(value) >= 2:
        return compare(value, vg).b_faster
    return bool(row["grad_ratio"] < 1 / THRESHOLD)


def flag_rows(ok: pd.DataFrame, *, memory: bool = False) -> pd.Series:
    """A reason per row (empty string: plausible), for rows with status ok.

    Timing flags by default (they exclude a row from winners and fits); ``memory=True``: the
    memory reading's flags instead (they only mark the reading).
    """
    from ukr_bench.report.figures import scaling_exponent, series
    from ukr_bench.schema import timing_column

    median = timing_column("value_and_grad", "median")
    iqr = timing_column("value_and_grad", "iqr")
    reasons: dict[Any, list[str]] = {i: [] for i in ok.index}
    for i, r in ok.iterrows():
        if memory:
            est, host = r.get("memory_estimate_bytes"), r.get("host_peak_bytes")
            if (
                str(r["device"]).startswith("cpu")
                and pd.notna(host)
                and host == 0
                and pd.notna(est)
                and est > MIN_VISIBLE_BYTES
            ):
                reasons[i].append("host memory reading of 0 for a computation that needs more")
            continue
        if pd.notna(r.get("grad_ratio")) and _gradient_faster_than_value(r):
            reasons[i].append(
                f"value + gradient faster than the value alone ({r['grad_ratio']:.2f})"
            )
        if pd.notna(r.get(iqr)) and r[iqr] > MAX_IQR_FRACTION * r[median]:
            reasons[i].append(f"IQR {r[iqr] / r[median]:.0%} of the median")
    if memory:
        return pd.Series({i: "; ".join(v) for i, v in reasons.items()}, dtype=object)
    for _, g in series(ok):  # series() sorts by N
        prev = None
        for i, r in g.iterrows():
            if prev is not None and r["n"] >= 2 * prev["n"] * 0.99 and r[median] < prev[median]:
                reasons[i].append(f"faster than at N={int(prev['n'])}")
            prev = r
        slope = scaling_exponent(g["n"], g[median])
        if slope is not None and not EXPONENT_RANGE[0] <= slope <= EXPONENT_RANGE[1]:
            for i in g.index:
                reasons[i].append(f"series' fitted exponent {slope:.2f}")
    return pd.Series({i: "; ".join(v) for i, v in reasons.items()}, dtype=object)


def consensus(
    tables: list[pd.DataFrame], on: list[str], column: str, names: list[str] | None = None
) -> pd.DataFrame:
    """Rows of ``tables`` (one per run, named by ``names``) keyed by ``on``: ``column`` where
    every run agrees, ``"tie (runs disagree: ...)"`` where they do not.

    A key some run lacks is no disagreement: that run says nothing about it. Its verdict names
    the run, ``"not measured in run b (a: jax)"``; a run that has the key with a missing value
    (measured, but nothing usable: failed or flagged) reads ``"no usable timing in run b"``.
    """
    names = names if names is not None else [f"run{k}" for k in range(len(tables))]
    if len(names) != len(tables):
        msg = f"names {names} must name each of the {len(tables)} tables"
        raise ValueError(msg)
    parts = [t.set_index(on)[column] for t in tables]
    merged = pd.concat(parts, axis=1, join="outer", keys=range(len(parts)))
    present = [set(p.index) for p in parts]

    def runs(which: list[str]) -> str:
        return ("run " if len(which) == 1 else "runs ") + ", ".join(which)

    def verdict(values: pd.Series) -> str:
        has = [values.name in keys for keys in present]
        absent = [n for n, h in zip(names, has, strict=True) if not h]
        unusable = [n for n, h, v in zip(names, has, values, strict=True) if h and pd.isna(v)]
        if absent or unusable:
            said = [f"{n}: {v}" for n, v in zip(names, values, strict=True) if pd.notna(v)]
            gaps = [f"not measured in {runs(absent)}"] if absent else []
            gaps += [f"no usable timing in {runs(unusable)}"] if unusable else []
            return "; ".join(gaps) + (f" ({', '.join(said)})" if said else "")
        seen = [str(v) for v in values]
        if len(set(seen)) == 1:
            return seen[0]
        return f"tie (runs disagree: {' / '.join(seen)})"

    return merged.apply(verdict, axis=1).rename(column).reset_index()
