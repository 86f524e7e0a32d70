"""The report's figures, one function each: ``fig_<name>(ok, stem) -> PNG path | None``.

``ok`` holds a run's rows with status ok (flat columns of :mod:`ukr_bench.schema`); each figure
is saved as PNG (for the Markdown) and SVG (for papers) under ``stem``. None: nothing to draw.
Drawing only: what is drawn (series, exponents, ratios, memory, fits) is computed by
:mod:`~ukr_bench.report.analysis`; the panels and the legend by :mod:`~ukr_bench.report.panels`
(a panel per dtype and layout, each backend one colour, the gradient kind the line style).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ukr_bench.report import dims, style
from ukr_bench.report.analysis import (
    CHEAP_GRADIENT_BOUND,
    GRAD_RATIO_GOAL,
    VG_MEDIAN,
    autodiff_cost,
    bounds,
    fit_iterations,
    fit_optimizers,
    fit_rows,
    memory_shown,
    series,
    speedup,
)
from ukr_bench.report.panels import Panel, line, small_multiples
from ukr_bench.schema import fit_column, timing_column

#: A reference line drawn black and thin in every panel it applies to.
REFERENCE = {"color": "black", "linewidth": 0.9}


def _flagged(ax: Any, g: pd.DataFrame, y: str) -> None:
    """Red crosses on the points the plausibility checks flagged."""
    if "flag" in g.columns and (g["flag"].fillna("") != "").any():
        bad = g[g["flag"].fillna("") != ""]
        ax.plot(bad["n"], bad[y], "x", color="red", markersize=8, zorder=5, label="flagged")


def _hline(ax: Any, y: float, label: str, **kw: Any) -> None:
    ax.axhline(y, **(REFERENCE | kw), label=label)


def fig_time(ok: pd.DataFrame, stem: Path) -> Path:
    q1, q3 = timing_column("value_and_grad", "q1"), timing_column("value_and_grad", "q3")
    bound = bounds(ok)

    def draw(ax: Any, sub: pd.DataFrame, panel: Panel) -> None:
        for key, g in series(sub, gaps=True):
            line(ax, g, key, VG_MEDIAN)
            ax.fill_between(g["n"], g[q1], g[q3], color=style.color(key[0]), alpha=0.12,
                            linewidth=0)  # fmt: skip
            _flagged(ax, g, VG_MEDIAN)
        for _, b in bound[bound.dtype == panel[0]].groupby("device"):
            # a marker too: a run at one N has no line to draw
            ax.plot(b["n"], b["bound_s"], **REFERENCE, marker="_", markersize=10,
                    label="the per-pair bound")  # fmt: skip

    return small_multiples(
        ok, stem, draw,
        title="Value + gradient, steady state (median; band: IQR)",
        ylabel="time per call [s]",
    )  # fmt: skip


def fig_speedup(ok: pd.DataFrame, stem: Path) -> Path | None:
    data, name = speedup(ok), style.baseline_backend()
    if data is None:
        return None

    def draw(ax: Any, sub: pd.DataFrame, panel: Panel) -> None:
        for key, g in series(sub):
            line(ax, g, key, "speedup")
        _hline(ax, 1.0, f"1: as fast as {name}")

    return small_multiples(
        data, stem, draw, ratio=True,
        title=f"Speed relative to {name} (same layout, dtype and device; above 1: faster)",
        ylabel=f"{name} time / backend time",
    )  # fmt: skip


def column_figure(ok: pd.DataFrame, stem: Path, column: str, **kw: Any) -> Path:
    """One line per series of ``column`` against N, a panel per dtype and layout."""

    def draw(ax: Any, sub: pd.DataFrame, panel: Panel) -> None:
        for key, g in series(sub, gaps=True):
            line(ax, g, key, column)

    return small_multiples(ok, stem, draw, **kw)


def fig_grad_ratio(ok: pd.DataFrame, stem: Path) -> Path:
    def draw(ax: Any, sub: pd.DataFrame, panel: Panel) -> None:
        for key, g in series(sub, gaps=True):
            line(ax, g, key, "grad_ratio")
        _hline(ax, 1.0, "1: the gradient free")
        _hline(ax, GRAD_RATIO_GOAL, f"goal: {GRAD_RATIO_GOAL:g}", linestyle="--")
        _hline(ax, CHEAP_GRADIENT_BOUND,
               f"cheap-gradient bound: {CHEAP_GRADIENT_BOUND:g} (Griewank & Walther)",
               linestyle=":")  # fmt: skip

    return small_multiples(
        ok, stem, draw, logy=False,
        title="Cost of the gradient: (value + gradient) time / value time",
        ylabel="time ratio",
    )  # fmt: skip


def fig_autodiff_cost(ok: pd.DataFrame, stem: Path) -> Path | None:
    data = autodiff_cost(ok)
    if data.empty:
        return None

    def draw(ax: Any, sub: pd.DataFrame, panel: Panel) -> None:
        for (backend, device), g in sub.groupby(["backend", "device"], sort=True):
            err = np.vstack([g["ratio"] - g["low"], g["high"] - g["ratio"]])
            ax.errorbar(
                g["n"], g["ratio"], yerr=None if np.isnan(err).all() else err,
                color=style.color(str(backend)), capsize=2, linewidth=1.4, markersize=4,
                marker=style.DEVICE_MARKERS.get(style.device_kind(str(device)), "^"),
                label="_nolegend_",
            )  # fmt: skip
        _hline(ax, 1.0, "1: autodiff costs nothing extra")

    return small_multiples(
        data, stem, draw, ratio=True,
        title="What autodiff costs: autodiff / hand-derived value + gradient time "
        "(bars: 95 % bootstrap interval; above 1: autodiff slower)",
        ylabel="autodiff time / manual time",
    )  # fmt: skip


def fig_first_call(ok: pd.DataFrame, stem: Path) -> Path:
    return column_figure(
        ok, stem, timing_column("value_and_grad", "first"),
        title="First call of value + gradient (JAX: tracing + compilation)",
        ylabel="time [s]",
    )  # fmt: skip


def fig_memory(ok: pd.DataFrame, stem: Path) -> Path | None:
    mem = memory_shown(ok)  # readings that measure nothing are gaps
    if mem.peak.isna().all():
        return None

    def draw(ax: Any, sub: pd.DataFrame, panel: Panel) -> None:
        for key, g in series(sub, gaps=True):
            line(ax, g, key, "peak")
        n = np.array(sorted(mem["n"].unique()), dtype=float)
        ax.plot(n, n**2 * 8 / 2**20, **REFERENCE, linestyle=":",
                label="one N x N float64 array")  # fmt: skip

    return small_multiples(
        mem, stem, draw,
        title="Peak memory of value + gradient (device peak on a GPU, host RSS rise on the CPU)",
        ylabel="memory [MiB]",
    )  # fmt: skip


def fig_precision(ok: pd.DataFrame, stem: Path) -> Path | None:
    """float32's error of the value and the gradient: a row per quantity, a column per layout."""
    f32 = ok[ok.dtype == "float32"]
    if f32.empty:
        return None
    quantities = {"value E(Z)": "value_rel_error", "gradient dE/dZ": "grad_rel_error"}
    long = pd.concat(
        [f32.assign(quantity=q, error=f32[c].clip(lower=1e-17)) for q, c in quantities.items()]
    )  # log axis: an exact 0 is drawn at 1e-17

    def draw(ax: Any, sub: pd.DataFrame, panel: Panel) -> None:
        for key, g in series(sub):
            # one marker per backend: equal errors (identical value formulas) stay visible
            line(ax, g, key, "error", marker=style.backend_marker(key[0]))
        _hline(ax, float(np.finfo(np.float32).eps), "float32 machine epsilon", linestyle=":")

    return small_multiples(
        long, stem, draw, rows="quantity", sharey=True,
        title="What float32 loses: relative error against float64 NumPy on the same inputs",
        ylabel="relative error",
    )  # fmt: skip


def fig_fit(ok: pd.DataFrame, stem: Path) -> Path | None:
    """Time-to-fit: a row per optimiser, a column per dtype."""
    opts, fits = fit_optimizers(ok), fit_rows(ok)
    if fits.empty:
        return None
    long = pd.concat([
        fits.assign(optimizer=f"{o} ({_iterations(fits, o)} iterations)",
                    fit=fits[fit_column(o, "median_s")]) for o in opts
    ]).dropna(subset=["fit"])  # fmt: skip

    def draw(ax: Any, sub: pd.DataFrame, panel: Panel) -> None:
        for key, g in series(sub):
            line(ax, g, key, "fit")

    return small_multiples(
        long, stem, draw, rows="optimizer", cols="dtype", sharey=True,
        title="Training cost: UKR(...).fit(X) per optimiser (median)",
        ylabel="time to fit [s]",
    )  # fmt: skip


def _iterations(fits: pd.DataFrame, optimizer: str) -> str:
    lo, hi = fit_iterations(fits, optimizer)
    return f"{lo}–{hi}" if lo != hi else f"{hi}"


def fig_overlay(all_ok: pd.DataFrame, runs: list[str], stem: Path) -> Path:
    """Every run's value + gradient time (line style: the run), a panel per dtype and layout."""
    styles = {
        run: style.RUN_LINESTYLES[i % len(style.RUN_LINESTYLES)] for i, run in enumerate(runs)
    }

    def draw(ax: Any, sub: pd.DataFrame, panel: Panel) -> None:
        for run in runs:
            for key, g in series(sub[sub.run == run]):
                line(ax, g, key, VG_MEDIAN, linestyle=styles[run],
                     marker="o" if key[2] == "autodiff" else "s")  # fmt: skip

    return small_multiples(
        all_ok, stem, draw, gradient_legend=False,
        title="Value + gradient across runs (line style: the run)",
        ylabel="time per call [s]",
        extra_legend=[
            *((f"run {run}", {"color": "grey", "linestyle": s}) for run, s in styles.items()),
            ("autodiff gradient", {"color": "grey", "linestyle": "none", "marker": "o"}),
            ("manual gradient", {"color": "grey", "linestyle": "none", "marker": "s"}),
        ],
    )  # fmt: skip


#: The layout's marker in the figure across D, where one panel holds every layout of a dtype.
LAYOUT_MARKERS = {"dense": "o", "blocked": "s", "fused": "^"}
#: Lines a panel of the figure across D holds at most before it is split by layout: more
#: cannot be told apart at a glance.
MAX_LINES = 6


def _across_panels(rows: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """``rows`` with the column ``across``: the device, with the layout where a dtype and
    device would hold more than :data:`MAX_LINES` series, and L where the run has several;
    and whether the panels are split by layout."""
    lines = rows.drop_duplicates(["dtype", "device", dims.L, "backend", "layout", "gradient"])
    split = bool((lines.groupby(["dtype", "device", dims.L]).size() > MAX_LINES).any())
    several_l = rows[dims.L].nunique() > 1
    across = rows["device"].astype(str)
    if split:
        across = across + ", " + rows["layout"].astype(str)
    if several_l:
        across = across + ", L = " + rows[dims.L].astype(str)
    return rows.assign(across=across), split


def fig_time_by_d(ok: pd.DataFrame, stem: Path) -> Path | None:
    """Value + gradient time against D at one N per dtype and device (:func:`dims.fixed_n`),
    a panel per dtype side by side (a row per device, and per layout where a panel would hold
    more than :data:`MAX_LINES` lines), each series a line, the per-pair bound per D."""
    ok = ok if dims.L in ok.columns else ok.assign(**{dims.L: 0})
    rows, split = _across_panels(dims.at_fixed_n(ok))
    if rows.empty:
        return None
    chosen = dims.fixed_n(ok).set_index(["dtype", "device", dims.L])
    bound = dims.bounds_by_d(ok)
    q1, q3 = timing_column("value_and_grad", "q1"), timing_column("value_and_grad", "q3")

    def draw(ax: Any, sub: pd.DataFrame, panel: Panel) -> None:
        for key, unsorted in sub.groupby([*style.SERIES, dims.L], sort=True):
            g = unsorted.sort_values(dims.D)
            series_key = [str(k) for k in key[: len(style.SERIES)]]
            line(ax, g, series_key, VG_MEDIAN, x=dims.D,
                 marker=LAYOUT_MARKERS.get(series_key[1], "D"))  # fmt: skip
            ax.fill_between(g[dims.D], g[q1], g[q3], color=style.color(series_key[0]),
                            alpha=0.12, linewidth=0)  # fmt: skip
            if "flag" in g.columns and (g["flag"].fillna("") != "").any():
                bad = g[g["flag"].fillna("") != ""]
                ax.plot(bad[dims.D], bad[VG_MEDIAN], "x", color="red", markersize=8,
                        zorder=5, label="flagged")  # fmt: skip
        first = sub.iloc[0]
        b = bound[(bound.dtype == first["dtype"]) & (bound.device == first["device"])
                  & (bound[dims.L] == first[dims.L])] if dims.L in bound else bound.iloc[0:0]  # fmt: skip
        ax.plot(b[dims.D], b["bound_s"], **REFERENCE, marker="_", markersize=10,
                label="the per-pair bound")  # fmt: skip

    def title(panel: Panel) -> str:
        sub = rows[(rows.across == panel[0]) & (rows.dtype == panel[1])]
        if sub.empty:
            return f"{panel[1]}, {panel[0]}"
        c = chosen.loc[(panel[1], sub["device"].iloc[0], sub[dims.L].iloc[0])]
        some = f" ({c['ds']} of {c['of']} D)" if c["ds"] < c["of"] else ""
        return f"{panel[1]}, {panel[0]}, N = {c['n']}{some}"

    layouts = sorted(rows["layout"].unique()) if not split else []
    return small_multiples(
        rows, stem, draw, rows="across", cols="dtype", titles=title, device_legend=False,
        x=(dims.D, "D (the data's dimension)"),
        title="Value + gradient against D at one N (median; band: IQR)",
        ylabel="time per call [s]",
        extra_legend=[(f"{lay} layout", {"color": "grey", "linestyle": "none",
                                         "marker": LAYOUT_MARKERS.get(lay, "D")}) for lay in layouts],
    )  # fmt: skip


#: The single-run figures in report order: (draw, file stem, caption).
FIGURES: tuple[tuple[Callable[[pd.DataFrame, Path], Path | None], str, str], ...] = (
    (
        fig_time,
        "time",
        "Steady-state time of value + gradient against N (log-log), a panel per dtype and layout (the fitted exponents are in the medians' table).",
    ),
    (
        fig_speedup,
        "speedup",
        "Speed relative to the hand-derived baseline in the same precision and layout.",
    ),
    (
        fig_autodiff_cost,
        "autodiff_cost",
        "What autodiff costs: each framework's autodiff value + gradient time over its hand-derived one, same layout, dtype and N (1: autodiff costs nothing extra).",
    ),
    (
        fig_grad_ratio,
        "grad_ratio",
        "What the gradient costs on top of the objective, against the cheap-gradient principle: reverse mode needs at most 4 times the operations of the value (Griewank & Walther 2008; dotted); dashed: this suite's goal of 3.",
    ),
    (
        fig_first_call,
        "first_call",
        "First call: JAX traces and compiles; eager frameworks pay their warm-up.",
    ),
    (
        fig_memory,
        "memory",
        "Peak memory of one value + gradient call: on a GPU the device's peak (each row records how: torch's max_memory_allocated, reset per configuration; JAX's compiled memory_analysis()), on the host the rise of the worker's peak RSS, drawn only from 1 MiB up (below, and for most blocked configurations, the allocator's cache absorbs the computation and RSS cannot resolve it). Missing values are gaps.",
    ),
    (
        fig_fit,
        "fit",
        "Time to fit: a fixed number of iterations of each optimiser from the same random start (the training cost next to the per-gradient cost).",
    ),
    (
        fig_precision,
        "precision",
        "What float32 loses: relative error of value and gradient against float64 NumPy on the same inputs.",
    ),
)
