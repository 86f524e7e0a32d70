"""The report's figures, one function each: ``fig_<name>(ok, stem) -> PNG path | None``.

``ok`` holds a run's rows with status ok (flat columns of :mod:`ukr_bench.schema`); each figure
is saved as PNG (for the Markdown) and SVG (for papers) under ``stem``. None: nothing to draw.
Drawing only: what is drawn (series, exponents, ratios, memory, fits) is computed by
:mod:`~ukr_bench.report.analysis`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from ukr_bench.extras import pyplot
from ukr_bench.report import style
from ukr_bench.report.analysis import (
    CHEAP_GRADIENT_BOUND,
    GRAD_RATIO_GOAL,
    VG_MEDIAN,
    Series,
    autodiff_cost,
    bounds,
    exponents,
    fit_iterations,
    fit_optimizers,
    fit_rows,
    memory_shown,
    series,
    speedup,
)
from ukr_bench.schema import fit_column, timing_column

FORMATS = ("png", "svg")


def save(fig: Any, stem: Path) -> Path:
    """Save PNG and SVG; returns the PNG's path."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    # No dates, fixed ids: regenerating a report leaves committed figures unchanged.
    with pyplot().rc_context({"svg.hashsalt": "ukr-bench"}):
        for fmt in FORMATS:
            fig.savefig(
                stem.with_suffix(f".{fmt}"), metadata={"Date": None} if fmt == "svg" else None
            )
    pyplot().close(fig)
    return stem.with_suffix(".png")


def legend_outside(ax: Any) -> None:
    """Legend to the right of the axes, so that it never hides data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def n_axis(ax: Any, ns: Iterable[Any]) -> None:
    """Log x axis ticked at the N values measured, labelled in plain numbers."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ticks = sorted({int(n) for n in ns})
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticklabels([str(n) for n in ticks], fontsize=8)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _ratio_axis(ax: Any) -> None:
    """Log y axis for ratios, labelled 0.5, 1, 2 rather than 5x10^-1."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


def figure(
    plot: Callable[[Any], None],
    stem: Path,
    *,
    ns: Iterable[Any],
    title: str,
    ylabel: str,
    logy: bool = True,
    ratio: bool = False,
    legend_entries: int = 0,
) -> Path:
    """One panel against N: draw with ``plot(ax)``, label, save; returns the PNG's path.

    ``legend_entries``: a long legend makes the figure taller, so the axes keep their size.
    """
    height = max(5.2, 0.19 * legend_entries + 1.0)
    fig, ax = pyplot().subplots(figsize=(10.5, height), dpi=130, layout="constrained")
    plot(ax)
    if logy:
        ax.set_yscale("log")
        if ratio:
            _ratio_axis(ax)
    n_axis(ax, ns)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("N (samples)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", axis="y", alpha=0.12)
    legend_outside(ax)
    return save(fig, stem)


def line(
    ax: Any, g: pd.DataFrame, key: Series, y: str, *, label: str | None = None, **kw: Any
) -> None:
    backend, layout, _, dtype, device = key
    ax.plot(
        g["n"],
        g[y],
        color=style.color(backend),
        # the non-default gradient (jax, torch: hand-derived) drawn thick, told apart
        linewidth=kw.pop("linewidth", 2.4 if style.is_alternative_gradient(key) else 1.3),
        linestyle=kw.pop("linestyle", style.LINESTYLES.get(dtype, "-")),
        marker=style.DEVICE_MARKERS.get(style.device_kind(device), "^"),
        # the blocked layout hollow, the dense one filled: same backend colour, told apart
        fillstyle="none" if layout == "blocked" else "full",
        markersize=5 if layout == "blocked" else 4,
        label=label or style.label(key),
        **kw,
    )


def fig_time(ok: pd.DataFrame, stem: Path) -> Path:
    q1, q3 = timing_column("value_and_grad", "q1"), timing_column("value_and_grad", "q3")

    fitted = exponents(ok).set_index(list(style.SERIES))["exponent"]

    def plot(ax: Any) -> None:
        for key, g in series(ok, gaps=True):
            slope = fitted.get(key, np.nan)
            exponent = f" (∝ N^{slope:.2f})" if pd.notna(slope) else ""
            line(ax, g, key, VG_MEDIAN, label=style.label(key) + exponent)
            ax.fill_between(
                g["n"], g[q1], g[q3], color=style.color(key[0]), alpha=0.15, linewidth=0
            )
            if "flag" in g.columns and (g["flag"].fillna("") != "").any():
                bad = g[g["flag"].fillna("") != ""]
                ax.plot(bad["n"], bad[VG_MEDIAN], "x", color="red", markersize=9, zorder=5)

        for (dtype, device), b in bounds(ok).groupby(["dtype", "device"]):
            # a marker too: a run at one N has no line to draw
            ax.plot(b["n"], b["bound_s"], color="black", linewidth=1.0, marker="_",
                    markersize=12, linestyle=style.LINESTYLES.get(str(dtype), "-"),
                    label=f"bound {dtype} {device}")  # fmt: skip

    return figure(
        plot,
        stem,
        title="Value + gradient, steady state (median; band: IQR; black: the per-pair bound)",
        ns=ok["n"],
        ylabel="time per call [s]",
    )


def fig_speedup(ok: pd.DataFrame, stem: Path) -> Path | None:
    data, name = speedup(ok), style.baseline_backend()
    if data is None:
        return None

    def plot(ax: Any) -> None:
        for key, g in series(data):
            line(ax, g, key, "speedup")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.text(0.01, 0.02, f"above 1: faster than {name}", transform=ax.transAxes, fontsize=8)

    return figure(
        plot,
        stem,
        title=f"Speed relative to {name} (same layout, dtype and device, value + gradient)",
        ns=ok["n"],
        ylabel=f"{name} time / backend time",
        ratio=True,
    )


def column_figure(
    ok: pd.DataFrame, stem: Path, column: str, *, hline: float | None = None, **kw: Any
) -> Path:
    """One line per series of ``column`` against N."""

    def plot(ax: Any) -> None:
        for key, g in series(ok, gaps=True):
            line(ax, g, key, column)
        if hline is not None:
            ax.axhline(hline, color="black", linewidth=0.8)

    return figure(plot, stem, ns=ok["n"], **kw)


def fig_grad_ratio(ok: pd.DataFrame, stem: Path) -> Path:
    def plot(ax: Any) -> None:
        for key, g in series(ok, gaps=True):
            line(ax, g, key, "grad_ratio")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.axhline(GRAD_RATIO_GOAL, color="black", linewidth=0.8, linestyle="--")
        ax.axhline(CHEAP_GRADIENT_BOUND, color="black", linewidth=0.8, linestyle=":")
        ax.text(0.01, GRAD_RATIO_GOAL, " goal: 3", transform=ax.get_yaxis_transform(),
                fontsize=8, va="bottom")  # fmt: skip
        ax.text(0.01, CHEAP_GRADIENT_BOUND, " cheap-gradient bound: 4 (Griewank & Walther)",
                transform=ax.get_yaxis_transform(), fontsize=8, va="bottom")  # fmt: skip

    return figure(
        plot,
        stem,
        ns=ok["n"],
        title="Cost of the gradient: (value + gradient) time / value time",
        ylabel="time ratio",
        logy=False,
        legend_entries=len(series(ok)),
    )


def fig_autodiff_cost(ok: pd.DataFrame, stem: Path) -> Path | None:
    data = autodiff_cost(ok)
    if data.empty:
        return None
    groups = list(data.groupby(["backend", "layout", "dtype", "device"], sort=True))

    def plot(ax: Any) -> None:
        for (backend, layout, dtype, device), g in groups:
            key = cast(Series, (backend, layout, "autodiff", dtype, device))
            err = np.vstack([g["ratio"] - g["low"], g["high"] - g["ratio"]])
            ax.errorbar(
                g["n"], g["ratio"], yerr=None if np.isnan(err).all() else err,
                color=style.color(str(backend)), capsize=2, linewidth=1.2,
                linestyle=style.LINESTYLES.get(str(dtype), "-"),
                marker=style.DEVICE_MARKERS.get(style.device_kind(str(device)), "^"),
                fillstyle="none" if layout == "blocked" else "full", markersize=5,
                label=style.label(key).replace(" autodiff", ""),
            )  # fmt: skip
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.text(0.01, 0.02, "above 1: autodiff slower than the hand-derived gradient",
                transform=ax.transAxes, fontsize=8)  # fmt: skip

    return figure(
        plot,
        stem,
        ns=data["n"],
        title="What autodiff costs: autodiff / hand-derived value + gradient time (bars: 95 % bootstrap interval)",
        ylabel="autodiff time / manual time",
        ratio=True,
        legend_entries=len(groups),
    )


def fig_first_call(ok: pd.DataFrame, stem: Path) -> Path:
    return column_figure(
        ok,
        stem,
        timing_column("value_and_grad", "first"),
        title="First call of value + gradient (JAX: tracing + compilation)",
        ylabel="time [s]",
    )


def fig_memory(ok: pd.DataFrame, stem: Path) -> Path | None:
    mem = memory_shown(ok)  # readings that measure nothing are gaps
    if mem.peak.isna().all():
        return None

    def plot(ax: Any) -> None:
        for key, g in series(mem, gaps=True):
            line(ax, g, key, "peak")
        n = np.array(sorted(mem["n"].unique()), dtype=float)
        ax.plot(n, n**2 * 8 / 2**20, color="black", linewidth=0.8, linestyle=":",
                label="one N x N float64 array")  # fmt: skip

    return figure(
        plot,
        stem,
        title="Peak memory of value + gradient (device peak on a GPU, host RSS rise on the CPU)",
        ns=mem["n"],
        ylabel="memory [MiB]",
    )


def fig_precision(ok: pd.DataFrame, stem: Path) -> Path | None:
    f32 = ok[ok.dtype == "float32"]
    if f32.empty:
        return None
    fig, axes = pyplot().subplots(
        1, 2, figsize=(10, 4.2), dpi=130, layout="constrained", sharey=True
    )
    for ax, col, what in zip(
        axes, ["value_rel_error", "grad_rel_error"], ["value E(Z)", "gradient dE/dZ"], strict=True
    ):
        for key, g in series(f32):
            ax.plot(
                g["n"],
                g[col].clip(lower=1e-17),  # log axis: an exact 0 is drawn at 1e-17
                color=style.color(key[0]),
                # one marker per backend: equal errors (e.g. identical value formulas) stay visible
                marker=style.backend_marker(key[0]),
                # hand-derived hollow, autodiff filled: the two gradients of one backend apart
                fillstyle="full" if key[2] == "autodiff" else "none",
                linestyle="-" if style.device_kind(key[4]) == "cpu" else "--",
                markersize=4,
                label=style.label(key).replace(" float32", ""),
            )
        ax.axhline(np.finfo(np.float32).eps, color="black", linewidth=0.8, linestyle=":",
                   label="float32 machine epsilon")  # fmt: skip
        ax.set(yscale="log", xlabel="N (samples)", title=f"float32 error of the {what}")
        n_axis(ax, f32["n"])
        ax.grid(True, alpha=0.4)
    axes[0].set_ylabel("relative error against float64 NumPy")
    legend_outside(axes[1])
    return save(fig, stem)


def fig_fit(ok: pd.DataFrame, stem: Path) -> Path | None:
    """Time-to-fit per optimiser (one panel each)."""
    opts, fits = fit_optimizers(ok), fit_rows(ok)
    if fits.empty:
        return None
    fig, axes = pyplot().subplots(
        1, len(opts), figsize=(4 * len(opts) + 2, 4.2), dpi=130, layout="constrained",
        sharey=True, squeeze=False,
    )  # fmt: skip
    for ax, opt in zip(axes[0], opts, strict=True):
        col = fit_column(opt, "median_s")
        for key, g in series(fits.dropna(subset=[col])):
            line(ax, g, key, col)
        lo, hi = fit_iterations(fits, opt)
        done = f"{lo}–{hi}" if lo != hi else f"{hi}"
        ax.set(yscale="log", xlabel="N (samples)", title=f"{opt}: {done} iterations")
        n_axis(ax, fits["n"])
        ax.grid(True, alpha=0.4)
    axes[0][0].set_ylabel("time to fit [s]")
    legend_outside(axes[0][-1])
    fig.suptitle("Training cost: UKR(...).fit(X) per optimiser (median)", fontsize=11)
    return save(fig, stem)


def fig_overlay(all_ok: pd.DataFrame, runs: list[str], stem: Path) -> Path:
    def plot(ax: Any) -> None:
        for i, run in enumerate(runs):
            for key, g in series(all_ok[all_ok.run == run]):
                line(
                    ax, g, key, VG_MEDIAN, label=f"{style.label(key)} [{run}]",
                    linestyle=style.RUN_LINESTYLES[i % len(style.RUN_LINESTYLES)],
                )  # fmt: skip

    entries = sum(len(series(all_ok[all_ok.run == run])) for run in runs)
    return figure(
        plot,
        stem,
        legend_entries=entries,
        title="Value + gradient across runs (line style: run)",
        ns=all_ok["n"],
        ylabel="time per call [s]",
    )


#: The single-run figures in report order: (draw, file stem, caption).
FIGURES: tuple[tuple[Callable[[pd.DataFrame, Path], Path | None], str, str], ...] = (
    (
        fig_time,
        "time",
        "Steady-state time of value + gradient against N (log-log); the legend gives the fitted exponent over the upper half of N.",
    ),
    (
        fig_speedup,
        "speedup",
        "Speed relative to the hand-derived baseline in the same precision.",
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
