"""Signal or noise: when a report may say "faster", and what several runs agree on.

**Comparisons** (as asv's ``compare``): the raw timing samples of two configurations are
compared by a two-sided Mann-Whitney U test and a bootstrap confidence interval of the ratio of
their medians. One is called faster only when the difference is significant
(``p < ALPHA``) *and* the whole interval lies beyond ``THRESHOLD`` (a lead of at least 5 %);
otherwise the two tie. Samples within one configuration are consecutive calls, so they share the
machine's state of the moment: the test says whether the two medians differ in *this* run,
not whether they would in the next; across runs, :func:`consensus` keeps only what held in all.

**Power laws**: :func:`scaling_exponent`, the fitted k of a time t = c N^k.

The plausibility flags that decide which rows a comparison may use are
:func:`ukr_bench.report.analysis.flag_rows`; this module knows nothing of the report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ukr_bench.extras import require

ALPHA = 0.01
THRESHOLD = 1.05
BOOTSTRAP = 2000


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
    mannwhitneyu = require("scipy.stats", "report", "the report's significance test").mannwhitneyu
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


def scaling_exponent(n: Iterable[float], t: Iterable[float]) -> float | None:
    """Slope of log t against log N over the upper half of the N range (the asymptotic regime).

    The least-squares fit of ``log t = k log N + c`` over the points with ``N >= median(N)``
    (t = c N^k gives k); None with fewer than two distinct N there.
    """
    n, t = np.asarray(n, dtype=float), np.asarray(t, dtype=float)
    if len(n) < 2:
        return None
    keep = n >= np.median(n)
    if keep.sum() < 2 or len(np.unique(n[keep])) < 2:
        return None
    return float(np.polyfit(np.log(n[keep]), np.log(t[keep]), 1)[0])
