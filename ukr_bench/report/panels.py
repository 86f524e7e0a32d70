"""Small multiples: one panel per dtype and layout, one legend per figure.

A figure that puts every series on one axis (22 lines in four colours) cannot be read at a
glance. Here each panel holds the series of one dtype and one layout (a handful of lines),
each backend keeps its colour in every figure, the gradient kind is the line style and the
device kind the marker, and the figure has one legend with no duplicate entries. A panel's
reference lines (a bound, machine epsilon) carry their own labels, listed once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ukr_bench.extras import pyplot
from ukr_bench.report import style

FORMATS = ("png", "svg")
#: The gradient kind is the line style in every small-multiple figure.
GRADIENT_STYLES: dict[str, Any] = {"autodiff": "-", "manual": "--"}
#: Where one panel's rows come from: (row values, column values) of ``ok``'s columns.
Panel = tuple[str, str]
Draw = Callable[[Any, pd.DataFrame, Panel], None]


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


def n_axis(ax: Any, ns: Iterable[Any]) -> None:
    """Log x axis ticked at the values measured (N, or D), labelled in plain numbers."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ticks = sorted({int(n) for n in ns})
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticklabels([str(n) for n in ticks], fontsize=7, rotation=45 if len(ticks) > 8 else 0)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def ratio_axis(ax: Any) -> None:
    """Log y axis for ratios, ticked 0.5, 1, 2, 5 and labelled in plain numbers, each once.

    ``%g`` of each tick: a fixed-decimals formatter prints 0.015 and 0.01 both as "0.01".
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def line(ax: Any, g: pd.DataFrame, key: Sequence[str], y: str, *, x: str = "n", **kw: Any) -> None:
    """One series of ``y`` against ``x``: its backend's colour, its gradient kind's line style,
    its device's marker.

    Unlabelled: the figure's legend names backends, gradient kinds and devices once each.
    """
    backend, _, gradient, _, device = key
    ax.plot(
        g[x], g[y], color=style.color(backend),
        linestyle=kw.pop("linestyle", GRADIENT_STYLES.get(gradient, ":")),
        marker=kw.pop("marker", style.DEVICE_MARKERS.get(style.device_kind(device), "^")),
        linewidth=1.4, markersize=4, label="_nolegend_", **kw,
    )  # fmt: skip


def panels_of(ok: pd.DataFrame, rows: str = "dtype", cols: str = "layout") -> list[list[Panel]]:
    """The grid of panels: a row per value of ``rows``, a column per value of ``cols``."""
    return [[(r, c) for c in sorted(ok[cols].unique())] for r in sorted(ok[rows].unique())]


def small_multiples(
    ok: pd.DataFrame,
    stem: Path,
    draw: Draw,
    *,
    title: str,
    ylabel: str,
    rows: str = "dtype",
    cols: str = "layout",
    logy: bool = True,
    ratio: bool = False,
    sharey: bool | str = "row",
    gradient_legend: bool = True,
    extra_legend: Sequence[tuple[str, dict[str, Any]]] = (),
    x: tuple[str, str] = ("n", "N (samples)"),
    titles: Callable[[Panel], str] | None = None,
    device_legend: bool = True,
) -> Path:
    """Draw ``draw(ax, rows of one panel, (row value, column value))`` on each panel of the
    grid, label the axes, add one legend, save; returns the PNG's path.

    ``extra_legend``: (label, ``Line2D`` keywords) entries for lines the panels draw unlabelled;
    ``gradient_legend``: whether line styles mean the gradient kind (not where ``draw`` restyles);
    ``x``: the column on the (log) x axis, ticked at its values, and its label; ``titles``: a
    panel's title (default ``row value, column value``); ``device_legend``: whether markers
    mean the device kind (not where ``draw`` gives them another meaning).
    """
    grid = panels_of(ok, rows, cols)
    n_rows, n_cols = len(grid), len(grid[0])
    fig, axes = pyplot().subplots(
        n_rows, n_cols, figsize=(4.4 * n_cols + 2.6, 3.3 * n_rows + 0.9), dpi=130,
        layout="constrained", sharex=True, sharey=sharey, squeeze=False,
    )  # fmt: skip
    for row_axes, row_panels in zip(axes, grid, strict=True):
        for ax, panel in zip(row_axes, row_panels, strict=True):
            sub = ok[(ok[rows] == panel[0]) & (ok[cols] == panel[1])]
            if sub.empty:
                ax.text(0.5, 0.5, "not measured", ha="center", va="center",
                        transform=ax.transAxes, fontsize=9, color="grey")  # fmt: skip
            else:
                draw(ax, sub, panel)
            if logy:
                ax.set_yscale("log")
                if ratio:
                    ratio_axis(ax)
            n_axis(ax, ok[x[0]])
            ax.set_title(titles(panel) if titles else f"{panel[0]}, {panel[1]}", fontsize=10)
            ax.grid(True, which="major", alpha=0.4)
    fig.suptitle(title, fontsize=11)
    fig.supxlabel(x[1], fontsize=10)
    fig.supylabel(ylabel, fontsize=10)
    handles = legend_handles(
        ok, axes.ravel(), extra_legend, gradients=gradient_legend, devices=device_legend
    )
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return save(fig, stem)


def legend_handles(
    ok: pd.DataFrame,
    axes: Iterable[Any],
    extra: Sequence[tuple[str, dict[str, Any]]] = (),
    *,
    gradients: bool = True,
    devices: bool = True,
) -> list[Any]:
    """One entry per backend (colour), per gradient kind (line style) and, where there are
    several and ``devices``, per device kind (marker); then each labelled line of the panels,
    once."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=style.color(b), linewidth=2.5, label=b)
               for b in sorted(ok["backend"].unique())]  # fmt: skip
    if gradients and "gradient" in ok.columns:
        handles += [Line2D([], [], color="grey", linestyle=GRADIENT_STYLES.get(k, ":"),
                           label=f"{k} gradient") for k in sorted(ok["gradient"].unique())]  # fmt: skip
    kinds = sorted({style.device_kind(d) for d in ok["device"].unique()})
    if devices and len(kinds) > 1:
        handles += [Line2D([], [], color="grey", linestyle="none",
                           marker=style.DEVICE_MARKERS.get(k, "^"), label=k) for k in kinds]  # fmt: skip
    handles += [Line2D([], [], label=label, **kw) for label, kw in extra]
    seen = {h.get_label() for h in handles}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in seen:
                seen.add(label)
                handles.append(h)
    return handles
