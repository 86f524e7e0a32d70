"""The report's figures, one function each: ``fig_<name>(ok, stem) -> PNG path | None``.

``ok`` holds a run's rows with status ok (flat columns of :mod:`ukr_bench.schema`); each figure
is saved as PNG (for the Markdown) and SVG (for papers) under ``stem``. None: nothing to draw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from ukr_bench.report import stats, style
from ukr_bench.schema import fit_column, timing_column

FORMATS = ("png", "svg")
VG_MEDIAN = timing_column("value_and_grad", "median")

Series = tuple[str, str, str, str, str]


def series(ok: pd.DataFrame, *, gaps: bool = False) -> list[tuple[Series, pd.DataFrame]]:
    """Rows grouped into lines against N, sorted by N.

    ``gaps``: every line gets a row (all NaN) at each N of ``ok`` it lacks, so that matplotlib
    breaks the line there instead of drawing straight across a missing measurement.
    """
    all_n = sorted(ok["n"].unique())
    out = []
    for key, group in ok.groupby(list(style.SERIES), sort=True):
        g = group.sort_values("n")
        if gaps:
            g = g.set_index("n").reindex(all_n).rename_axis("n").reset_index()
        out.append((cast(Series, key), g))
    return out


def scaling_exponent(n: Iterable[float], t: Iterable[float]) -> float | None:
    """Slope of log t against log N over the upper half of the N range (the asymptotic regime)."""
    n, t = np.asarray(n, dtype=float), np.asarray(t, dtype=float)
    if len(n) < 2:
        return None
    keep = n >= np.median(n)
    if keep.sum() < 2 or len(np.unique(n[keep])) < 2:
        return None
    return float(np.polyfit(np.log(n[keep]), np.log(t[keep]), 1)[0])


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, stem: Path) -> Path:
    """Save PNG and SVG; returns the PNG's path."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    # No dates, fixed ids: regenerating a report leaves committed figures unchanged.
    with _pyplot().rc_context({"svg.hashsalt": "ukr-bench"}):
        for fmt in FORMATS:
            fig.savefig(
                stem.with_suffix(f".{fmt}"), metadata={"Date": None} if fmt == "svg" else None
            )
    _pyplot().close(fig)
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
    fig, ax = _pyplot().subplots(figsize=(10.5, height), dpi=130, layout="constrained")
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

    def plot(ax: Any) -> None:
        for key, g in series(ok, gaps=True):
            clean = g[g["flag"] == ""] if "flag" in g.columns else g.dropna(subset=[VG_MEDIAN])
            slope = scaling_exponent(clean["n"], clean[VG_MEDIAN])
            exponent = f" (∝ N^{slope:.2f})" if slope is not None else ""
            line(ax, g, key, VG_MEDIAN, label=style.label(key) + exponent)
            ax.fill_between(
                g["n"], g[q1], g[q3], color=style.color(key[0]), alpha=0.15, linewidth=0
            )
            if "flag" in g.columns and (g["flag"].fillna("") != "").any():
                bad = g[g["flag"].fillna("") != ""]
                ax.plot(bad["n"], bad[VG_MEDIAN], "x", color="red", markersize=9, zorder=5)

        if "bound_s" in ok.columns and ok["bound_s"].notna().any():
            best = ok.groupby(["dtype", "device", "n"])["bound_s"].min().reset_index()
            for (dtype, device), b in best.groupby(["dtype", "device"]):
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


def speedup(ok: pd.DataFrame) -> pd.DataFrame | None:
    """``ok`` with a column ``speedup``: the baseline backend's median value + gradient time over
    this row's, same layout, dtype, device and N (the baseline: the registry's). None without a
    baseline."""
    name = style.baseline_backend()
    base = ok[ok.backend == name].set_index(["layout", "dtype", "device", "n"])[VG_MEDIAN]
    if base.empty:
        return None
    idx = list(zip(ok["layout"], ok["dtype"], ok["device"], ok["n"], strict=True))
    return ok.assign(speedup=base.reindex(idx).to_numpy() / ok[VG_MEDIAN].to_numpy())


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


#: The cheap-gradient principle (Griewank & Walther, *Evaluating Derivatives*, 2008, sec. 4.6):
#: reverse mode evaluates value + gradient in at most this many times the operations of the
#: value alone (5 with their memory traffic counted), whatever the number of inputs.
CHEAP_GRADIENT_BOUND = 4.0
#: The goal of issue 12 for every backend and gradient at N >= 1000.
GRAD_RATIO_GOAL = 3.0


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


def autodiff_cost(ok: pd.DataFrame) -> pd.DataFrame:
    """autodiff / manual value + gradient time, per backend, layout, dtype, device and N.

    Only where a run has both kinds. ``ratio``: of the median times (1: autodiff costs nothing
    extra); ``low``, ``high``: the 95 % bootstrap interval of that ratio from the raw samples
    and ``p`` the Mann-Whitney p-value (:func:`stats.compare`; NaN without samples).
    """
    keys = ["backend", "layout", "dtype", "device", "n"]
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


def peak_memory(ok: pd.DataFrame) -> pd.DataFrame:
    """``ok`` with ``peak`` (MiB): the device's peak for a device configuration, the rise of the
    host's peak RSS for a host one; NaN where not measured (never the other kind's number: the
    host RSS of a GPU run measures the framework's start-up, not the computation)."""
    on_host = ok["device"].map(style.device_kind) == "cpu"
    host = ok["host_peak_bytes"] if "host_peak_bytes" in ok.columns else np.nan
    device = ok["device_peak_bytes"] if "device_peak_bytes" in ok.columns else np.nan
    peak = pd.Series(np.where(on_host, host, device), index=ok.index, dtype=float)
    return ok.assign(peak=peak / 2**20)


HOST_RESOLUTION_MIB = 1.0


def fig_memory(ok: pd.DataFrame, stem: Path) -> Path | None:
    mem = peak_memory(ok)
    # A host reading under 1 MiB is the allocator reusing cached memory (or a page or two), not
    # what the computation needs: drawn as a gap, never as a point on a log axis.
    on_host = mem["device"].map(style.device_kind) == "cpu"
    mem.loc[~(mem.peak > 0) | (on_host & (mem.peak < HOST_RESOLUTION_MIB)), "peak"] = np.nan
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
    fig, axes = _pyplot().subplots(
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


def fit_optimizers(df: pd.DataFrame) -> list[str]:
    """Optimisers whose time-to-fit the rows hold (from the schema's fit columns)."""
    prefix, suffix = fit_column("", "median_s").split("_median_s")[0], "_median_s"
    return [
        c[len(prefix) : -len(suffix)]
        for c in df.columns
        if c.startswith(prefix) and c.endswith(suffix)
    ]


def fig_fit(ok: pd.DataFrame, stem: Path) -> Path | None:
    """Time-to-fit per optimiser (one panel each)."""
    opts = fit_optimizers(ok)
    medians = [fit_column(o, "median_s") for o in opts]
    fits = ok.dropna(subset=medians, how="all") if opts else ok.iloc[0:0]
    if fits.empty:
        return None
    fig, axes = _pyplot().subplots(
        1, len(opts), figsize=(4 * len(opts) + 2, 4.2), dpi=130, layout="constrained",
        sharey=True, squeeze=False,
    )  # fmt: skip
    for ax, opt in zip(axes[0], opts, strict=True):
        col = fit_column(opt, "median_s")
        for key, g in series(fits.dropna(subset=[col])):
            line(ax, g, key, col)
        iters = fits[fit_column(opt, "iters")].dropna()
        lo, hi = int(iters.min()), int(iters.max())
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
