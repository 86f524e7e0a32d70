"""The report across the data's dimension D, on synthetic frames whose answers are planted: a
crossover at D = 64, an order that never flips, a flip inside the noise; and one real sweep of
two D."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ukr_bench.bench import SweepConfig, run_sweep
from ukr_bench.report import across_d, dims, figures, panels, write_report
from ukr_bench.report.tables import winners_by_d_table

DS = (3, 16, 64, 256)
NS = (500, 1000)
#: Each row's bound, 1 ns per pair: its x bound is its time over N^2 ns.
PAIR_BOUND_S = 1e-9


def fake(backend: str, layout: str, dtype: str, d: int, n: int, t: float) -> dict[str, Any]:
    """An ok row of value + gradient time ``t`` with 10 samples within 1 % of it."""
    return {
        "backend": backend, "layout": layout, "dtype": dtype,
        "gradient": "manual" if backend == "numpy" else "autodiff",
        "device": "cpu", "n": n, "devices": 1, "data_dim": d, "latent_dim": 2, "status": "ok",
        "value_and_grad_median_s": t, "value_and_grad_iqr_s": 0.001 * t,
        "value_and_grad_q1_s": 0.99 * t, "value_and_grad_q3_s": 1.01 * t, "grad_ratio": 2.0,
        "samples": {"value_and_grad": list(t * (1 + np.linspace(-0.01, 0.01, 10)))},
        "bound_s": PAIR_BOUND_S * n**2, "reason": "", "run": "a",
    }  # fmt: skip


def run(numpy_over_jax: dict[int, float], dtypes: tuple[str, ...] = ("float64",)) -> pd.DataFrame:
    """jax blocked at t = N^2 (1 + D / 8) ns, numpy blocked at ``numpy_over_jax[D]`` times that,
    torch dense three times numpy, per dtype (float32 at half the time), N and D."""
    rows = []
    for dtype in dtypes:
        for n in NS:
            for d in DS:
                jax = PAIR_BOUND_S * n**2 * (1 + d / 8) * (1.0 if dtype == "float64" else 0.5)
                numpy = jax * numpy_over_jax[d]
                rows += [fake("jax", "blocked", dtype, d, n, jax),
                         fake("numpy", "blocked", dtype, d, n, numpy),
                         fake("torch", "dense", dtype, d, n, 3 * numpy)]  # fmt: skip
    return pd.DataFrame(rows)


#: numpy blocked slower than jax blocked at D = 3 and 16, faster (1.6x and more) from D = 64.
CROSSING = {3: 2.0, 16: 1.2, 64: 0.6, 256: 0.3}
#: numpy blocked slower at every D.
NEVER = {3: 2.0, 16: 2.0, 64: 1.5, 256: 1.5}
#: numpy blocked's median below jax's from D = 64, by 2 %: inside the 5 % threshold.
NOISE = {3: 2.0, 16: 1.5, 64: 0.98, 256: 0.98}


def test_a_crossover_planted_at_d_64_is_named_with_that_d() -> None:
    cross = dims.crossovers(run(CROSSING)).set_index("N")
    assert set(cross["kind"]) == {dims.CROSSOVER}
    assert (cross.loc[1000, "slow"], cross.loc[1000, "fast"]) == ("jax blocked", "numpy blocked")
    assert (cross.loc[1000, "flip_d"], cross.loc[1000, "from_d"]) == (64, 64)
    assert cross.loc[1000, "ratio"] == pytest.approx(1 / 0.6)  # median(jax) / median(numpy)
    assert cross.loc[1000, "low"] < cross.loc[1000, "ratio"] < cross.loc[1000, "high"]
    assert cross.loc[1000, "ahead_below"] == (3, 16)
    (said,) = across_d.crossover_sentences(dims.crossovers(run(CROSSING)))
    assert said.startswith(
        "numpy blocked is faster than jax blocked from D = 64 at N = 500 and 1000, float64: "
        "at D = 64 by 1.67x ["
    )
    assert said.endswith("; below, jax blocked is faster at D = 3 and 16.")


def test_no_crossover_sentence_where_the_order_never_flips() -> None:
    cross = dims.crossovers(run(NEVER))
    assert set(cross["kind"]) == {dims.SAME}
    assert set(cross["slow"]) == set(cross["fast"]) == {"jax blocked"}
    (said,) = across_d.crossover_sentences(cross)
    assert "faster than" not in said
    assert said.startswith("No crossover (N = 500 and 1000, float64): ")
    assert "least median at D = 3 has the least median at D = 256 too" in said
    (both,) = across_d.crossover_sentences(dims.crossovers(run(NEVER, ("float32", "float64"))))
    assert both.startswith("No crossover (N = 500 and 1000, float32 and float64): ")


def test_a_flip_inside_the_noise_is_a_tie_not_a_crossover() -> None:
    cross = dims.crossovers(run(NOISE))
    assert set(cross["kind"]) == {dims.TIE}
    assert set(cross["flip_d"]) == {64}
    assert cross["from_d"].isna().all()
    (said,) = across_d.crossover_sentences(cross)
    assert "they tie" in said
    assert "is faster than" not in said
    # the winners agree: a tie at D = 64 and 256, jax blocked alone below
    w = dims.winners_by_d(run(NOISE)).set_index(["N", "data_dim"])["fastest"]
    assert w[(1000, 3)] == "jax blocked"
    assert w[(1000, 64)] == w[(1000, 256)] == "tie: jax blocked, numpy blocked"


def test_no_verdict_where_the_first_leader_was_not_measured_at_the_largest_d() -> None:
    ok = run(CROSSING)
    ok = ok[~((ok.backend == "jax") & (ok.data_dim == 256))]  # e.g. out of memory
    cross = dims.crossovers(ok)
    assert set(cross["kind"]) == {dims.UNMEASURED}
    said = across_d.crossover_sentences(cross)
    assert said[0] == (
        "At N = 500, float64, jax blocked (the least median at D = 3) has no usable timing at "
        "D = 256: no crossover is named there."
    )
    assert not any("faster than" in s for s in said)


def test_a_lead_that_becomes_significant_later_is_named_from_there() -> None:
    # the medians flip at D = 64 inside the noise; numpy is significantly faster from D = 256
    cross = dims.crossovers(run({3: 2.0, 16: 1.5, 64: 0.98, 256: 0.5})).iloc[0]
    assert (cross["kind"], cross["flip_d"], cross["from_d"]) == (dims.CROSSOVER, 64, 256)
    (said, *_) = across_d.crossover_sentences(dims.crossovers(run({3: 2, 16: 1.5, 64: 0.98,
                                                                   256: 0.5})))  # fmt: skip
    assert "from D = 256" in said
    assert "order flips at D = 64, where they tie" in said


def test_the_winners_table_has_a_cell_per_n_and_d_with_its_x_bound() -> None:
    w = dims.winners_by_d(run(CROSSING))
    assert list(zip(w["N"], w["data_dim"], strict=True)) == [(n, d) for n in NS for d in DS]
    at = w.set_index(["N", "data_dim"])
    for d in DS:
        fastest = "jax blocked" if CROSSING[d] > 1 else "numpy blocked"
        assert at.loc[(1000, d), "fastest"] == fastest
        # the fastest's time over its bound of N^2 ns
        assert at.loc[(1000, d), "x_bound"] == pytest.approx((1 + d / 8) * min(1, CROSSING[d]))
    table = winners_by_d_table(w)
    assert list(table.columns) == ["dtype", "device", "N", "D = 3", "D = 16", "D = 64", "D = 256"]
    assert list(table["N"]) == list(NS)
    assert table.iloc[1]["D = 3"] == "jax blocked: 1.38 ms, 1.4x bound"
    assert table.iloc[1]["D = 64"] == "numpy blocked: 5.4 ms, 5.4x bound"


def test_the_figure_has_a_panel_per_dtype_at_the_largest_n_of_every_d(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok = run(CROSSING, ("float32", "float64"))
    ok = ok[~((ok.data_dim == 256) & (ok.n == 1000) & (ok.dtype == "float32"))]  # not measured
    drawn = []
    save = panels.save

    def keep(fig: Any, stem: Path) -> Path:
        drawn.append(fig)
        return save(fig, stem)

    monkeypatch.setattr(panels, "save", keep)
    path = figures.fig_time_by_d(ok, tmp_path / "time_by_d")
    assert path is not None
    assert path.exists()
    assert path.with_suffix(".svg").exists()
    (fig,) = drawn
    titles = [ax.get_title() for ax in fig.axes]
    # float32 lacks D = 256 at N = 1000: its panel is at N = 500, where every D was measured
    assert titles == ["float32, cpu, N = 500", "float64, cpu, N = 1000"]
    lines = [ln for ln in fig.axes[1].get_lines() if ln.get_label() == "_nolegend_"]
    assert len(lines) == 3  # jax blocked, numpy blocked, torch: one line each, across D
    assert all(list(ln.get_xdata()) == list(DS) for ln in lines)
    (bound,) = [ln for ln in fig.axes[1].get_lines() if ln.get_label() == "the per-pair bound"]
    assert list(bound.get_ydata()) == pytest.approx([PAIR_BOUND_S * 1000**2] * len(DS))
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(labels) == len(set(labels))
    assert {"blocked layout", "dense layout", "the per-pair bound"} <= set(labels)


def test_a_run_of_one_d_has_no_section_across_d(tmp_path: Path) -> None:
    one = run(CROSSING)
    one = one[one.data_dim == 64]
    assert not dims.has_several_d(one)
    assert across_d.blocks(one, tmp_path, "", draw=True, winners=True) == []
    assert not list(tmp_path.iterdir())  # and draws nothing
    several = across_d.blocks(run(CROSSING), tmp_path, "", draw=True, winners=True)
    assert [b.content for b in several if b.kind == "h2"] == [across_d.HEADING]
    assert [b.kind for b in several] == ["h2", "text", "figure", "table", "text"]
    # a smoke run: the figure, no winners and no crossovers
    smoke = across_d.blocks(run(CROSSING), tmp_path, "", draw=True, winners=False)
    assert [b.kind for b in smoke] == ["h2", "text", "figure"]


def test_a_sweep_of_two_d_reports_across_them(tmp_path: Path) -> None:
    cfg = SweepConfig(
        backends=["numpy"], dtypes=["float64"], layouts=["dense", "blocked"], ns=[8, 16],
        data_dims=[3, 8], min_rounds=3, min_time=0.1, warmup=1, max_rounds=5, fit_iters=0,
    )  # fmt: skip
    run_dir = run_sweep(cfg, tmp_path / "run", progress=False)
    md = write_report([run_dir]).read_text()
    assert md.count(f"## {across_d.HEADING}") == 1
    section = md.split(f"## {across_d.HEADING}")[1].split("## Problem D = 3")[0]
    assert "This run measured D = 3 and 8." in section
    assert "| D = 3 " in section
    assert "| D = 8 " in section
    assert "x bound" in section
    assert "figures/time_by_d.png" in section
    assert (run_dir / "figures" / "time_by_d.png").exists()
    assert "## Problem D = 8" in md
