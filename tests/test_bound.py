"""The per-pair lower bound: each layout's work per pair, the formula, the measured rates and
the report's bound from the best rates any backend of a run measured.

Rates are only checked to be positive and finite (never a speed or a ratio of speeds); what
the rate hooks compute is checked against NumPy, within an error model, so that a hook doing
less (or other) work than its count says fails.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ukr_bench.bench.bound import (
    FORMS,
    Rates,
    bound,
    pair_rates,
    record_bound,
    work_per_pair,
)
from ukr_bench.bench.config import SweepConfig
from ukr_bench.bench.timing import base_row
from ukr_bench.bound_model import pair_seconds
from ukr_bench.interface import get_backend, instrumented
from ukr_bench.report import rates as report_rates
from ukr_bench.report.analysis import bounds, winners_per_n
from ukr_bench.report.tables import (
    LEGACY_WINNERS_CAPTION,
    WINNERS_CAPTION,
    rate_blocks,
    rates_table,
)
from ukr_bench.schema import ConfigKey

CFG = SweepConfig(backends=["numpy"], ns=[8], max_call_seconds=1.0)
RATES = Rates(exp=1e9, fma=2e10, gemm=1e11)


# --------------------------------------------------------------------------- work per pair


@pytest.mark.parametrize(
    ("backend", "layout", "gradient", "dtype", "form", "at_2_3"),
    [
        # (exps, elementwise, matmul) at L = 2, D = 3, as counted in bound.py's docstring
        ("numpy", "dense", "manual", "float64", "numpy dense", (1, 23, 12)),
        ("numpy", "blocked", "manual", "float32", "numpy blocked", (1, 19, 12)),
        ("numpy", "blocked", "manual", "float64", "numpy blocked gemm", (1, 1, 36)),
        ("jax", "blocked", "manual", "float64", "blocked manual", (1, 20, 12)),
        ("torch", "blocked", "manual", "float32", "blocked manual", (1, 20, 12)),
        ("jax", "dense", "manual", "float32", "jax dense manual", (1, 23, 12)),
        ("torch", "dense", "manual", "float32", "torch dense manual", (1, 22, 12)),
        ("jax", "dense", "autodiff", "float32", "jax dense autodiff", (1, 25, 12)),
        ("torch", "dense", "autodiff", "float64", "torch dense autodiff", (1, 23, 12)),
        ("jax", "blocked", "autodiff", "float32", "jax blocked autodiff", (2, 32, 18)),
        ("torch", "blocked", "autodiff", "float32", "torch blocked autodiff", (2, 33, 18)),
        ("jax", "fused", "manual", "float32", "jax fused", (3, 44, 0)),
        ("torch", "fused", "manual", "float32", "torch fused", (3, 46, 0)),
        ("keops", "blocked", "autodiff", "float32", "blocked manual", (1, 20, 12)),
    ],
)
def test_work_per_pair_of_each_layout(
    backend: str, layout: str, gradient: str, dtype: str, form: str, at_2_3: tuple[int, ...]
) -> None:
    w = work_per_pair(backend, layout, gradient, dtype, 2, 3)
    assert w.form == form
    assert (w.exps, w.elementwise, w.matmul) == at_2_3
    assert w.flops == at_2_3[1] + at_2_3[2]


def test_work_follows_the_data_dimension_where_the_code_does() -> None:
    # the matrix products grow with D (2 D each); the blocked forms' elementwise work does not
    small, large = (work_per_pair("jax", "blocked", "manual", "float32", 2, d) for d in (3, 64))
    assert large.matmul - small.matmul == 4 * (64 - 3)
    assert large.elementwise == small.elementwise
    # the fused kernels contract over D elementwise: 8 flops per data dimension and pair
    small, large = (work_per_pair("jax", "fused", "manual", "float32", 2, d) for d in (3, 64))
    assert large.elementwise - small.elementwise == 8 * (64 - 3)
    assert large.matmul == 0


def test_work_per_pair_rejects_bad_dimensions() -> None:
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        work_per_pair("jax", "blocked", "manual", "float32", 0, 3)
    with pytest.raises(ValueError, match="data_dim must be a positive integer"):
        work_per_pair("jax", "blocked", "manual", "float32", 2, 2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("module", "form"), [("jax_fused", "jax fused"), ("torch_fused", "torch fused")]
)
def test_the_fused_forms_are_the_kernels_own_counts(module: str, form: str) -> None:
    # find_spec, not importorskip: importing Triton itself before the torch backend would keep
    # it from choosing its interpreter on a machine without CUDA, for every later test.
    framework = "jax" if module == "jax_fused" else "triton"
    if importlib.util.find_spec(framework) is None:
        pytest.skip(f"{framework} is not installed")
    mod = importlib.import_module(f"backends.{module}")
    e = mod.EXPS_PER_PAIR
    for L, D in [(1, 1), (2, 3), (3, 10), (2, 64)]:
        flops = mod.flops_per_pair(L, D)
        assert FORMS[form](L, D) == (
            e["pass1"] + e["pass2_rows"] + e["pass2_columns"],
            flops["pass1"] + flops["pass2"],
            0,
        )


# --------------------------------------------------------------------------- the formula


def key(n: int, device: str = "cpu", layout: str = "dense") -> ConfigKey:
    return ConfigKey("numpy", layout, "manual", "float64", device, n)


def test_bound_adds_the_terms_on_the_host() -> None:
    w = work_per_pair("numpy", "dense", "manual", "float64", CFG.latent_dim, 3)
    one = bound(key(10), RATES)
    expected = 1 / RATES.exp + w.elementwise / RATES.fma + w.matmul / RATES.gemm
    assert one == pytest.approx(100 * expected, rel=1e-12)
    assert bound(key(20), RATES) == pytest.approx(4 * one, rel=1e-12)
    assert bound(key(10, "cpu:0-1"), RATES) == pytest.approx(one, rel=1e-12)


def test_bound_follows_the_keys_dimensions() -> None:
    """L and D come from the row's key: a sweep over D bounds each row at its own D."""
    k = key(10)
    for latent_dim, data_dim in ((2, 3), (2, 64), (5, 16)):
        kd = replace(k, latent_dim=latent_dim, data_dim=data_dim)
        w = work_per_pair("numpy", "dense", "manual", "float64", latent_dim, data_dim)
        expected = w.exps / RATES.exp + w.elementwise / RATES.fma + w.matmul / RATES.gemm
        assert bound(kd, RATES) == pytest.approx(100 * expected, rel=1e-12)
    assert bound(replace(k, data_dim=64), RATES) > bound(k, RATES)


def test_bound_on_a_gpu_is_the_larger_of_the_exps_and_the_flops() -> None:
    w = work_per_pair("numpy", "dense", "manual", "float64", CFG.latent_dim, 3)
    flops = w.elementwise / RATES.fma + w.matmul / RATES.gemm
    for exp_rate in (1e8, 1e12):  # exps slower, then faster, than the flops
        r = Rates(exp=exp_rate, fma=RATES.fma, gemm=RATES.gemm)
        got = bound(key(10, "cuda:0"), r)
        assert got == pytest.approx(100 * max(w.exps / exp_rate, flops), rel=1e-12)


def test_matrix_products_never_run_slower_than_elementwise_work() -> None:
    t = pair_seconds(0, 0, 10, exp_rate=1e9, fma_rate=1e10, gemm_rate=1e9, host=True)
    assert t == pytest.approx(1e-9)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_pair_seconds_names_a_bad_rate(bad: float) -> None:
    with pytest.raises(ValueError, match="fma_rate must be a positive finite number"):
        pair_seconds(1, 1, 1, exp_rate=1e9, fma_rate=bad, gemm_rate=1e9, host=True)


# --------------------------------------------------------------------------- the rates


def _backend(name: str, dtype: str):  # type: ignore[no-untyped-def]
    if name != "numpy":
        pytest.importorskip(name)
    return get_backend(name, dtype=dtype)


def _rel(dtype: str) -> float:
    return float(np.finfo(dtype).eps) / 2


@pytest.mark.parametrize("name", ["numpy", "jax", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_rate_hooks_do_the_work_they_count(name: str, dtype: str) -> None:
    b = _backend(name, dtype)
    hooks = instrumented(b)
    a64 = -np.random.default_rng(1).random(1000)
    shifts, steps, chains = 4, 5, 3
    with b.context():
        a = b.asarray(a64.astype(dtype))
        got_exp = float(b.to_numpy(b.sync(hooks.exp_sum(a, shifts)())))
        fma = hooks.fma_chain(a, steps, chains)
        got_fma = b.to_numpy(b.sync(fma()))
        again = b.to_numpy(b.sync(fma()))  # a second call starts again from ``a``
        untouched = b.to_numpy(a)
        m64 = np.random.default_rng(2).random((8, 8))
        m = b.asarray(m64.astype(dtype))
        got_mm = b.to_numpy(b.sync(hooks.matmul(m, m)()))
    x = a64.astype(dtype).astype(np.float64)
    want_exp = sum(np.exp(x - k / shifts).sum() for k in range(shifts))
    # error model: each exp within a few ulps, a sum of 4000 positive terms within 4000 u
    assert got_exp == pytest.approx(want_exp, rel=(shifts * x.size + 8) * _rel(dtype))
    want_fma = np.zeros_like(x)
    for j in range(chains):
        xj = x + j / chains
        for _ in range(steps):
            xj = xj * 0.5 + 0.5
        want_fma += xj
    # each step rounds once or twice (a fused or a separate multiply-add); x / 2 + 1 / 2 halves
    # earlier errors, so each chain stays within 3 u of its value, and the sum of 3 positive
    # chains adds 2 u
    np.testing.assert_allclose(got_fma, want_fma, rtol=6 * _rel(dtype), atol=0)
    np.testing.assert_array_equal(again, got_fma)
    np.testing.assert_array_equal(untouched, a64.astype(dtype))
    # a product of 8 terms per entry, of entries in [0, 1): within 8 u of sum |a||b| (and 1 u of
    # rounding the inputs); TF32 would miss this by a thousandfold in float32
    mm = m64.astype(dtype).astype(np.float64)
    np.testing.assert_allclose(got_mm, mm @ mm, rtol=0, atol=10 * _rel(dtype) * (mm @ mm).max())


@pytest.mark.parametrize("name", ["numpy", "jax", "torch"])
def test_pair_rates_are_positive_and_finite(name: str) -> None:
    b = _backend(name, "float32")
    r = pair_rates(b)
    for rate in (r.exp, r.fma, r.gemm):
        assert math.isfinite(rate)
        assert rate > 0
    assert pair_rates(b) is r  # once per process and (backend, dtype, device)


def test_record_bound_writes_the_rates_the_work_and_the_bound() -> None:
    k = key(16, layout="blocked")
    row = base_row(k, CFG)
    b = get_backend("numpy", dtype="float64")
    record_bound(row, k, b)
    r, w = pair_rates(b), work_per_pair("numpy", "blocked", "manual", "float64", CFG.latent_dim, 3)
    assert (row.exp_rate, row.flop_rate) == (r.exp, r.fma)
    assert (row.exps_per_pair, row.flops_per_pair) == (w.exps, w.flops)
    assert row.info["bound"] == {"gemm_rate": r.gemm, "matmul_flops_per_pair": w.matmul,
                                 "form": "numpy blocked gemm"}  # fmt: skip
    assert row.bound_s == pytest.approx(bound(k, r), rel=1e-12)


# --------------------------------------------------------------------------- the report


def rec(backend: str, n: int, t: float, exp: float | None, fma: float | None, gemm: float | None,
        *, work: tuple[int, int, int] | None = (1, 20, 12), device: str = "cpu",
        dtype: str = "float64", bound_s: float | None = None) -> dict[str, object]:  # fmt: skip
    """An ok row of one series; ``work``: (exps, elementwise, matmul) per pair, None for a row
    written before the work was recorded."""
    out: dict[str, object] = {
        "backend": backend, "layout": "blocked", "gradient": "manual", "dtype": dtype,
        "device": device, "n": n, "devices": 1, "status": "ok",
        "value_and_grad_median_s": t, "value_and_grad_iqr_s": 0.01 * t,
        "samples": {"value_and_grad": list(t * (1 + np.linspace(-0.01, 0.01, 10)))},
        "bound_s": bound_s, "exp_rate": exp, "flop_rate": fma, "info": {},
    }  # fmt: skip
    if work is not None:
        out["exps_per_pair"], out["flops_per_pair"] = work[0], work[1] + work[2]
        out["info"] = {"bound": {"gemm_rate": gemm, "matmul_flops_per_pair": work[2]}}
    return out


def test_the_report_takes_each_rate_from_the_backend_that_measured_it_fastest() -> None:
    ok = pd.DataFrame([
        rec("jax", 100, 1.0, exp=2e9, fma=1e10, gemm=5e10),
        rec("torch", 100, 2.0, exp=1e9, fma=3e10, gemm=4e10, work=(2, 30, 18)),
        rec("jax", 100, 1.0, exp=1e8, fma=1e9, gemm=1e9, device="cuda"),
    ])  # fmt: skip
    best = report_rates.machine_rates(ok).set_index("device")
    assert best.loc["cpu", ["exp_rate", "fma_rate", "gemm_rate"]].tolist() == [2e9, 3e10, 5e10]
    assert best.loc["cpu", ["exp_rate_by", "fma_rate_by", "gemm_rate_by"]].tolist() == [
        "jax", "torch", "jax"]  # fmt: skip
    assert best.loc["cuda", "exp_rate"] == 1e8  # another device's rates are its own
    b = report_rates.row_bounds(ok)
    cpu = 1e4 * (1 / 2e9 + 20 / 3e10 + 12 / 5e10)
    assert b[0] == pytest.approx(cpu, rel=1e-12)
    assert b[1] == pytest.approx(1e4 * (2 / 2e9 + 30 / 3e10 + 18 / 5e10), rel=1e-12)
    assert b[2] == pytest.approx(1e4 * max(1 / 1e8, 20 / 1e9 + 12 / 1e9), rel=1e-12)
    # the figure's bound: the cell's least; a winner's x bound: its own layout's
    cells = bounds(ok).set_index(["device"])["bound_s"]
    assert cells["cpu"] == pytest.approx(cpu, rel=1e-12)
    w = winners_per_n(ok).set_index("device")
    assert w.loc["cpu", "x_bound"] == pytest.approx(1.0 / cpu, rel=1e-12)
    caption, table = rate_blocks(ok)
    assert caption == WINNERS_CAPTION
    assert table is not None
    table = table.set_index("device")
    assert table.loc["cpu", "exps/s"] == "2e+09 (jax)"
    assert table.loc["cpu", "FMA flop/s"] == "3e+10 (torch)"
    assert table.loc["cuda", "GEMM flop/s"] == "1e+09 (jax)"


def test_a_rate_no_backend_recorded_leaves_the_bound_to_bound_s() -> None:
    ok = pd.DataFrame([rec("jax", 100, 1.0, exp=2e9, fma=1e10, gemm=None, bound_s=0.5)])
    assert np.isnan(report_rates.row_bounds(ok)[0])
    assert bounds(ok)["bound_s"].tolist() == [0.5]
    assert rates_table(ok).loc[0, "GEMM flop/s"] == "–"


def test_old_rows_without_rates_report_their_bound_s() -> None:
    ok = pd.DataFrame([
        rec("jax", 100, 1.0, None, None, None, work=None, bound_s=0.25),
        rec("numpy", 100, 2.0, None, None, None, work=None, bound_s=0.5),
    ])  # fmt: skip
    assert report_rates.machine_rates(ok).empty
    assert str(rates_table(ok).iloc[0, 0]).startswith("no rates recorded")
    # such a run's report captions its winners with the bound its rows hold, and has no rates
    assert rate_blocks(ok) == (LEGACY_WINNERS_CAPTION, None)
    assert bounds(ok)["bound_s"].tolist() == [0.25]
    assert winners_per_n(ok)["x_bound"].tolist() == [pytest.approx(4.0)]
    bare = pd.DataFrame([rec("jax", 100, 1.0, None, None, None, work=None)]).drop(
        columns=["bound_s", "exp_rate", "flop_rate", "info"]
    )
    assert bounds(bare).empty
    assert np.isnan(winners_per_n(bare)["x_bound"].iloc[0])


def test_a_committed_run_reports_the_bound_it_recorded() -> None:
    from ukr_bench.report.build import load_run

    df, _ = load_run(Path(__file__).resolve().parents[1] / "results" / "reference_cpu")
    ok = df[df.status == "ok"]
    want = ok.groupby(["dtype", "device", "n"])["bound_s"].min()
    got = bounds(ok).set_index(["dtype", "device", "n"])["bound_s"]
    pd.testing.assert_series_equal(got, want, check_names=False)
