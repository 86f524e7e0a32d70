"""The report's analysis on synthetic frames whose answers are known: t = c N^k gives exponent
k, times in a fixed ratio give that ratio, and each plausibility flag is planted once.

These call :mod:`ukr_bench.report.analysis` directly, without writing or drawing a report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ukr_bench.report.analysis import (
    MIN_VISIBLE_BYTES,
    autodiff_cost,
    autodiff_summary,
    bounds,
    exponents,
    fit_iterations,
    fit_optimizers,
    fit_rows,
    flag_rows,
    gradient_cost,
    memory_shown,
    mismatched,
    peak_memory,
    run_spread,
    run_table,
    run_winners,
    scaling_exponent,
    series,
    speedup,
    winners_per_n,
)
from ukr_bench.report.style import SERIES

MEDIAN = "value_and_grad_median_s"
NS = (100, 200, 400, 800)


def row(
    backend: str = "jax",
    n: int = 100,
    t: float = 1.0,
    *,
    gradient: str = "autodiff",
    dtype: str = "float64",
    device: str = "cpu",
    layout: str = "dense",
    spread: float | None = 0.01,
    **extra: object,
) -> dict[str, object]:
    """One ok row of value + gradient time ``t``; ``spread``: 10 samples within +-spread of t
    (None: no samples)."""
    samples = (
        {"value_and_grad": list(t * (1 + np.linspace(-spread, spread, 10)))}
        if spread is not None
        else {}
    )
    return {
        "backend": backend, "layout": layout, "gradient": gradient, "dtype": dtype,
        "device": device, "n": n, "devices": 1, "status": "ok", MEDIAN: t,
        "value_and_grad_iqr_s": 0.1 * t, "grad_ratio": 2.0, "samples": samples,
    } | extra  # fmt: skip


def frame(*rows: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def power_law(backend: str, c: float, k: float, **kw: object) -> list[dict[str, object]]:
    return [row(backend, n, c * n**k, **kw) for n in NS]


# --------------------------------------------------------------------------- exponents


def test_scaling_exponent_of_a_power_law_is_its_power() -> None:
    n = np.array(NS, dtype=float)
    assert scaling_exponent(n, 3e-9 * n**2) == pytest.approx(2.0)
    assert scaling_exponent(n, 7.0 * n**0.5) == pytest.approx(0.5)
    # only the upper half of N counts: linear at small N, cubic from the median N up
    t = np.where(n < 400, n, n**3 / 400**2)
    assert scaling_exponent(n, t) == pytest.approx(3.0)


def test_scaling_exponent_needs_two_distinct_n_in_the_upper_half() -> None:
    assert scaling_exponent([100], [1.0]) is None
    assert scaling_exponent([100, 100, 100], [1.0, 2.0, 3.0]) is None
    assert scaling_exponent([100, 200], [1.0, 4.0]) is None  # the upper half: N = 200 alone
    assert scaling_exponent([100, 200, 400], [1.0, 4.0, 16.0]) == pytest.approx(2.0)


def test_exponents_per_series_leave_flagged_rows_out() -> None:
    ok = frame(*power_law("jax", 1e-8, 2.0), *power_law("numpy", 1e-6, 1.5))
    ok["flag"] = ""
    ok.loc[3, [MEDIAN, "flag"]] = (1e-9, "planted")  # jax at N = 800: absurd, but flagged
    e = exponents(ok).set_index("backend")["exponent"]
    assert e["jax"] == pytest.approx(2.0)  # fitted over N = 200, 400 (800 is flagged)
    assert e["numpy"] == pytest.approx(1.5)
    assert list(exponents(ok).columns) == [*SERIES, "exponent"]


def test_exponents_without_flags_use_the_rows_with_a_median() -> None:
    ok = frame(*power_law("jax", 1e-8, 2.0), row("jax", 1600, np.nan), row("torch", 100, 1.0))
    e = exponents(ok).set_index("backend")["exponent"]
    assert e["jax"] == pytest.approx(2.0)
    assert np.isnan(e["torch"])  # one N: no exponent


def test_series_sorts_by_key_and_n_and_fills_gaps() -> None:
    ok = frame(row("numpy", 200), row("jax", 400), row("jax", 100), row("numpy", 100))
    (jax_key, jax), (numpy_key, _) = series(ok)
    assert (jax_key[0], numpy_key[0]) == ("jax", "numpy")
    assert list(jax["n"]) == [100, 400]
    gapped = dict(series(ok, gaps=True))
    assert list(gapped[jax_key]["n"]) == [100, 200, 400]
    assert np.isnan(gapped[jax_key][MEDIAN].iloc[1])  # jax has no N = 200: a gap
    assert list(gapped[numpy_key]["n"]) == [100, 200, 400]


def test_bounds_are_the_least_per_dtype_device_and_n() -> None:
    ok = frame(row("jax", 100, bound_s=2.0), row("numpy", 100, bound_s=1.0),
               row("jax", 200, bound_s=4.0), row("jax", 100, dtype="float32", bound_s=0.5))  # fmt: skip
    b = bounds(ok).set_index(["dtype", "device", "n"])["bound_s"]
    assert b.to_dict() == {("float32", "cpu", 100): 0.5, ("float64", "cpu", 100): 1.0,
                           ("float64", "cpu", 200): 4.0}  # fmt: skip
    assert bounds(frame(row())).empty
    assert bounds(frame(row(bound_s=np.nan))).empty


# --------------------------------------------------------------------------- ratios


def test_speedup_is_baseline_time_over_row_time_of_the_same_configuration() -> None:
    ok = frame(row("numpy", 100, 2.0, gradient="manual"), row("jax", 100, 1.0),
               row("torch", 100, 8.0), row("jax", 200, 1.0))  # fmt: skip
    s = speedup(ok)
    assert s is not None
    assert list(s["speedup"][:3]) == [1.0, 2.0, 0.25]
    assert np.isnan(s["speedup"].iloc[3])  # numpy has no N = 200
    by_jax = speedup(ok, baseline="jax")
    assert by_jax is not None
    assert list(by_jax["speedup"][:3]) == [0.5, 1.0, 0.125]
    assert speedup(ok[ok.backend != "numpy"]) is None


def test_autodiff_cost_is_autodiff_over_manual_time() -> None:
    ok = frame(
        *[row("jax", n, 1.5e-8 * n**2, gradient="autodiff") for n in NS],
        *[row("jax", n, 1e-8 * n**2, gradient="manual") for n in NS],
        row("torch", 100, 1.0),  # one kind only: no ratio
    )
    cost = autodiff_cost(ok)
    assert list(cost.columns) == ["backend", "layout", "dtype", "device", "n", "ratio", "low",
                                  "high", "p"]  # fmt: skip
    assert list(cost["n"]) == list(NS)
    assert np.allclose(cost["ratio"], 1.5)
    # samples +-1 %: the interval holds 1.5, lies above 1, and the difference is significant
    assert ((cost["low"] <= 1.5) & (cost["high"] >= 1.5) & (cost["low"] > 1.4)).all()
    assert (cost["p"] < 0.01).all()
    s = autodiff_summary(cost)
    assert (s.slower, s.configurations) == (4, 4)
    assert (s.median, s.low, s.high) == pytest.approx((1.5, 1.5, 1.5))


def test_autodiff_cost_without_samples_has_no_interval() -> None:
    ok = frame(row("jax", 100, 3.0, spread=None),
               row("jax", 100, 2.0, gradient="manual", spread=None))  # fmt: skip
    (c,) = autodiff_cost(ok).to_dict("records")
    assert c["ratio"] == pytest.approx(1.5)
    assert np.isnan([c["low"], c["high"], c["p"]]).all()
    assert autodiff_summary(autodiff_cost(ok)).slower == 0  # NaN is not above 1
    assert autodiff_cost(frame(row())).empty


def test_gradient_cost_counts_the_ratios_within_the_goal_from_n_1000() -> None:
    ok = frame(row(n=500, grad_ratio=9.0), row(n=1000, grad_ratio=2.5),
               row(n=2000, grad_ratio=3.0), row(n=4000, grad_ratio=3.5))  # fmt: skip
    g = gradient_cost(ok)
    assert (g.largest, g.within_goal, g.configurations) == (3.5, 2, 3)  # N = 500 left out


# --------------------------------------------------------------------------- memory and fits


def test_peak_memory_takes_the_host_reading_on_a_cpu_and_the_device_one_on_a_gpu() -> None:
    mib = 2**20
    ok = frame(row(host_peak_bytes=3 * mib, device_peak_bytes=np.nan),
               row(device="cuda:0", host_peak_bytes=500 * mib, device_peak_bytes=7 * mib),
               row(host_peak_bytes=0.5 * mib, device_peak_bytes=np.nan),
               row(host_peak_bytes=0, device_peak_bytes=np.nan))  # fmt: skip
    assert list(peak_memory(ok)["peak"]) == [3.0, 7.0, 0.5, 0.0]
    shown = memory_shown(ok)["peak"]
    assert list(shown[:2]) == [3.0, 7.0]
    assert shown[2:].isna().all()  # under 1 MiB on the host, and 0: gaps
    assert peak_memory(frame(row()))["peak"].isna().all()  # no reading recorded


def test_fit_rows_and_iterations() -> None:
    ok = frame(row(n=100, fit_gd_median_s=1.0, fit_gd_iters=20, fit_lbfgs_median_s=np.nan,
                   fit_lbfgs_iters=np.nan),
               row(n=200, fit_gd_median_s=2.0, fit_gd_iters=20, fit_lbfgs_median_s=3.0,
                   fit_lbfgs_iters=7),
               row(n=400, fit_gd_median_s=np.nan, fit_gd_iters=np.nan,
                   fit_lbfgs_median_s=np.nan, fit_lbfgs_iters=np.nan))  # fmt: skip
    assert fit_optimizers(ok) == ["gd", "lbfgs"]
    assert list(fit_rows(ok)["n"]) == [100, 200]
    assert fit_iterations(fit_rows(ok), "gd") == (20, 20)
    assert fit_iterations(fit_rows(ok), "lbfgs") == (7, 7)
    assert fit_optimizers(frame(row())) == []
    assert fit_rows(frame(row())).empty


# --------------------------------------------------------------------------- flags


def test_each_timing_flag_names_its_reason_and_keeps_the_index() -> None:
    rows = power_law("jax", 1e-8, 2.0, spread=None)
    rows[1] |= {"grad_ratio": 0.5}  # value + gradient faster than the value, no samples
    rows[2] |= {"value_and_grad_iqr_s": 0.8 * float(rows[2][MEDIAN])}
    ok = frame(*rows, *power_law("numpy", 1e-8, 2.0, spread=None))
    ok.index = [10 * i for i in range(len(ok))]
    flags = flag_rows(ok)
    assert list(flags.index) == list(ok.index)
    assert flags[10] == "value + gradient faster than the value alone (0.50)"
    assert flags[20] == "IQR 80% of the median"
    assert (flags[[0, 30, 40, 50, 60, 70]] == "").all()


def test_a_fall_as_n_doubles_and_an_absurd_exponent_are_flagged() -> None:
    t = [1.0, 4.0, 3.0, 12.0]  # falls at N = 400; exponent over 400, 800: 2 (plausible)
    ok = frame(*[row("jax", n, x) for n, x in zip(NS, t, strict=True)],
               *power_law("torch", 1e-12, 5.0))  # fmt: skip
    flags = flag_rows(ok)
    assert list(flags[:4]) == ["", "", "faster than at N=200", ""]
    assert (flags[4:] == "series' fitted exponent 5.00").all()


def test_memory_flags_only_name_a_zero_host_reading_of_a_large_computation() -> None:
    big = 2 * MIN_VISIBLE_BYTES
    ok = frame(row(host_peak_bytes=0, memory_estimate_bytes=big),
               row(host_peak_bytes=0, memory_estimate_bytes=MIN_VISIBLE_BYTES // 2),
               row(device="cuda:0", host_peak_bytes=0, memory_estimate_bytes=big),
               row(host_peak_bytes=10, memory_estimate_bytes=big, grad_ratio=0.1))  # fmt: skip
    memory = flag_rows(ok, memory=True)
    assert list(memory) == ["host memory reading of 0 for a computation that needs more", "",
                            "", ""]  # fmt: skip
    assert flag_rows(ok)[3].startswith("value + gradient faster")  # a timing flag, not memory


def test_flags_of_no_rows() -> None:
    empty = frame(row()).iloc[0:0]
    assert flag_rows(empty).empty
    assert flag_rows(empty, memory=True).empty


# --------------------------------------------------------------------------- winners


def test_winners_per_n_name_the_fastest_its_lead_and_its_distance_to_the_bound() -> None:
    ok = frame(row("jax", 100, 1.0, bound_s=0.25), row("numpy", 100, 2.0, gradient="manual"),
               row("torch", 100, 4.0), row("jax", 200, 1.0), row("torch", 200, 1.01))  # fmt: skip
    w = winners_per_n(ok).set_index("N")
    assert list(w.columns) == [
        "dtype",
        "device",
        "fastest",
        "tied",
        "lead",
        "ratio",
        "time",
        "x_bound",
    ]
    assert w.loc[100, "fastest"] == "jax"
    assert w.loc[100, "ratio"] == pytest.approx(2.0)  # over the runner-up, numpy
    assert w.loc[100, "lead"].startswith("2.00x [")
    assert w.loc[100, "x_bound"] == pytest.approx(4.0)
    assert w.loc[200, "fastest"] == "tie: jax, torch"  # a 1 % lead is under the threshold
    assert (w.loc[100, "tied"], w.loc[200, "tied"]) == (("jax",), ("jax", "torch"))
    assert np.isnan(w.loc[200, "x_bound"])
    (alone,) = winners_per_n(frame(row())).to_dict("records")
    assert (alone["lead"], alone["fastest"]) == ("only backend", "jax")


def test_run_winners_have_no_verdict_where_nothing_was_usable() -> None:
    failed = row("jax", 400) | {"status": "oom", MEDIAN: np.nan}
    df = frame(row("jax", 100, 1.0), row("numpy", 100, 2.0, gradient="manual"), failed)
    w = run_winners(df).set_index("N")["fastest"]
    assert w[100] == "jax"
    assert pd.isna(w[400])


# --------------------------------------------------------------------------- several runs


def test_run_table_spread_and_mismatched_configurations() -> None:
    a = frame(row("jax", 100, 1.0), row("jax", 200, 4.0), row("numpy", 100, 2.0))
    b = frame(row("jax", 100, 1.5), row("jax", 200, 2.0), row("jax", 400, 8.0))
    b.loc[1, "status"] = "timeout"
    table = run_table([a, b], ["a", "b"])
    assert len(table) == 4  # every configuration of either run
    jax100 = table.xs(("jax", 100), level=["backend", "n"]).iloc[0]
    assert (jax100["a"], jax100["b"], jax100["b status"]) == (1.0, 1.5, "ok")
    jax200 = table.xs(("jax", 200), level=["backend", "n"]).iloc[0]
    assert np.isnan(jax200["b"])  # timed out: no median
    assert jax200["b status"] == "timeout"
    spread = run_spread(table, ["a", "b"])
    # only jax N = 100 is measured in both: spread 1.5
    assert spread.loc[("jax", "dense", "autodiff", "float64", "cpu")].tolist() == [1.5, 1.5]
    missing = mismatched(table, ["a", "b"]).set_index(["backend", "n"])["present in"]
    assert missing.to_dict() == {("jax", 400): "b", ("numpy", 100): "a"}
