"""Comparison reports from benchmark results: Markdown + self-contained HTML, matplotlib figures.

``write_report([run_dir])`` answers, for one run: which backend is fastest at which N and in
which precision, how the cost grows (fitted exponent), what the gradient costs relative to the
objective, the first call's (compile) cost, memory, and how much float32 loses. With two or more
runs it adds a side-by-side table of time ratios per configuration and an overlay figure;
configurations present in only some runs are listed, never dropped silently.

The report is a list of blocks (headings, text, tables, figures) rendered twice, to Markdown and
to HTML, so the two never disagree.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ukr_bench.harness import load_results

# One colour per backend in every figure; dtype is the line style, device the marker.
COLORS = {"jax": "#1f77b4", "numpy": "#444444", "torch": "#ff7f0e"}
EXTRA_COLORS = ["#2ca02c", "#d62728", "#9467bd", "#8c564b"]
LINESTYLES = {"float64": "-", "float32": "--"}
MARKERS = {"cpu": "o", "cuda": "s"}
BACKEND_MARKERS = {"jax": "o", "numpy": "s", "torch": "^"}
RUN_LINESTYLES = ["-", "--", ":", "-."]
KEY = ["backend", "device", "dtype", "n"]
FORMATS = ("png", "svg")


@dataclass
class Block:
    """One piece of a report: kind is "h2", "text", "table" or "figure"."""

    kind: str
    content: Any
    caption: str = ""


def _color(backend: str) -> str:
    if backend in COLORS:
        return COLORS[backend]
    return EXTRA_COLORS[hash(backend) % len(EXTRA_COLORS)]


def _device_kind(device: str) -> str:
    return device.split(":", maxsplit=1)[0]


def _label(backend: str, dtype: str, device: str) -> str:
    return f"{backend} {dtype} {device}"


# --------------------------------------------------------------------------- loading


def load_run(run_dir: Path | str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A run's rows and metadata, checked for the columns a report needs."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        msg = f"results directory {run_dir} does not exist"
        raise FileNotFoundError(msg)
    df, meta = load_results(run_dir)
    if df.empty:
        msg = f"{run_dir} has no results yet (results.jsonl is missing or empty)"
        raise ValueError(msg)
    missing = [c for c in [*KEY, "status"] if c not in df.columns]
    if missing:
        msg = f"{run_dir}/results.jsonl is malformed: rows lack the column(s) {missing}"
        raise ValueError(msg)
    if "reason" not in df.columns:
        df["reason"] = ""
    df["reason"] = df["reason"].fillna("")
    df["run"] = run_dir.name
    return df, meta


def scaling_exponent(n: np.ndarray, t: np.ndarray) -> float | None:
    """Slope of log t against log N over the upper half of the N range (the asymptotic regime)."""
    n, t = np.asarray(n, dtype=float), np.asarray(t, dtype=float)
    keep = n >= np.median(n)
    if keep.sum() < 2 or len(np.unique(n[keep])) < 2:
        return None
    return float(np.polyfit(np.log(n[keep]), np.log(t[keep]), 1)[0])


def _series(ok: pd.DataFrame) -> list[tuple[tuple[str, str, str], pd.DataFrame]]:
    return [
        (key, g.sort_values("n"))
        for key, g in ok.groupby(["backend", "dtype", "device"], sort=True)
    ]


# --------------------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, stem: Path) -> Path:
    """Save PNG (for the Markdown) and SVG (for papers); returns the PNG's path."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    # No dates, fixed ids: regenerating a report leaves committed figures unchanged.
    with _pyplot().rc_context({"svg.hashsalt": "ukr-bench"}):
        for fmt in FORMATS:
            fig.savefig(
                stem.with_suffix(f".{fmt}"), metadata={"Date": None} if fmt == "svg" else None
            )
    _pyplot().close(fig)
    return stem.with_suffix(".png")


def _legend_outside(ax) -> None:
    """Legend to the right of the axes, so that it never hides data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _figure(
    plot, stem: Path, *, ns, title: str, ylabel: str, logy: bool = True, ratio: bool = False
) -> Path:
    """One panel against N: draw with ``plot(ax)``, label, save; returns the PNG's path."""
    fig, ax = _pyplot().subplots(figsize=(8, 4.6), dpi=130, layout="constrained")
    plot(ax)
    if logy:
        ax.set_yscale("log")
        if ratio:
            _ratio_axis(ax)
    _n_axis(ax, ns)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("N (samples)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", axis="y", alpha=0.12)
    _legend_outside(ax)
    return _save(fig, stem)


def _n_axis(ax, ns) -> None:
    """Log x axis ticked at the N values measured, labelled in plain numbers."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ns = sorted({int(n) for n in ns})
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(ns))
    ax.set_xticklabels([str(n) for n in ns], fontsize=8)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _ratio_axis(ax) -> None:
    """Log y axis for ratios, labelled 0.5, 1, 2 rather than 5x10^-1."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


def _line(
    ax, g: pd.DataFrame, key: tuple[str, str, str], y: str, *, label: str | None = None, **kw: Any
) -> None:
    backend, dtype, device = key
    ax.plot(
        g["n"],
        g[y],
        color=_color(backend),
        linestyle=kw.pop("linestyle", LINESTYLES.get(dtype, "-")),
        marker=MARKERS.get(_device_kind(device), "^"),
        markersize=4,
        label=label or _label(*key),
        **kw,
    )


def fig_time(ok: pd.DataFrame, stem: Path) -> Path:
    def plot(ax) -> None:
        for key, g in _series(ok):
            slope = scaling_exponent(g["n"], g["value_and_grad_median_s"])
            exponent = f" (∝ N^{slope:.2f})" if slope is not None else ""
            _line(ax, g, key, "value_and_grad_median_s", label=_label(*key) + exponent)
            ax.fill_between(
                g["n"],
                g["value_and_grad_q1_s"],
                g["value_and_grad_q3_s"],
                color=_color(key[0]),
                alpha=0.15,
                linewidth=0,
            )

    return _figure(
        plot,
        stem,
        title="Value + gradient, steady state (median; band: IQR)",
        ns=ok["n"],
        ylabel="time per call [s]",
    )


def fig_speedup(ok: pd.DataFrame, stem: Path) -> Path | None:
    base = ok[ok.backend == "numpy"].set_index(["dtype", "n"])["value_and_grad_median_s"]
    if base.empty:
        return None

    def plot(ax) -> None:
        for key, g in _series(ok):
            ref = base.reindex(list(zip(g["dtype"], g["n"], strict=True))).to_numpy()
            _line(
                ax, g.assign(speedup=ref / g["value_and_grad_median_s"].to_numpy()), key, "speedup"
            )
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.text(
            0.01,
            0.02,
            "above 1: faster than hand-derived NumPy",
            transform=ax.transAxes,
            fontsize=8,
        )

    return _figure(
        plot,
        stem,
        title="Speed relative to hand-derived NumPy (same dtype, value + gradient)",
        ns=ok["n"],
        ylabel="NumPy time / backend time",
        ratio=True,
    )


def _column_figure(
    ok: pd.DataFrame, stem: Path, column: str, *, hline: float | None = None, **kw: Any
) -> Path:
    """One line per backend x dtype x device of ``column`` against N."""

    def plot(ax) -> None:
        for key, g in _series(ok):
            _line(ax, g, key, column)
        if hline is not None:
            ax.axhline(hline, color="black", linewidth=0.8)

    return _figure(plot, stem, ns=ok["n"], **kw)


def fig_grad_ratio(ok: pd.DataFrame, stem: Path) -> Path:
    return _column_figure(
        ok,
        stem,
        "grad_ratio",
        hline=1.0,
        title="Cost of the gradient: (value + gradient) time / value time",
        ylabel="time ratio",
        logy=False,
    )


def fig_first_call(ok: pd.DataFrame, stem: Path) -> Path:
    return _column_figure(
        ok,
        stem,
        "value_and_grad_first_s",
        title="First call of value + gradient (JAX: tracing + compilation)",
        ylabel="time [s]",
    )


def fig_memory(ok: pd.DataFrame, stem: Path) -> Path | None:
    mem = ok.assign(
        peak=ok[["host_peak_bytes", "device_peak_bytes"]].max(axis=1, skipna=True) / 2**20
    )
    mem = mem[mem.peak > 0]
    if mem.empty:
        return None

    def plot(ax) -> None:
        for key, g in _series(mem):
            _line(ax, g, key, "peak")
        n = np.array(sorted(mem["n"].unique()), dtype=float)
        ax.plot(
            n,
            n**2 * 8 / 2**20,
            color="black",
            linewidth=0.8,
            linestyle=":",
            label="one N x N float64 array",
        )

    return _figure(
        plot,
        stem,
        title="Peak memory of value + gradient (host RSS rise or device peak)",
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
        for key, g in _series(f32):
            ax.plot(
                g["n"],
                g[col].clip(lower=1e-17),
                color=_color(key[0]),
                # one marker per backend: equal errors (e.g. identical value formulas) stay visible
                marker=BACKEND_MARKERS.get(key[0], "D"),
                fillstyle="none",
                linestyle="-" if _device_kind(key[2]) == "cpu" else "--",
                markersize=4,
                label=f"{key[0]} {key[2]}",
            )
        ax.axhline(
            np.finfo(np.float32).eps,
            color="black",
            linewidth=0.8,
            linestyle=":",
            label="float32 machine epsilon",
        )
        ax.set(yscale="log", xlabel="N (samples)", title=f"float32 error of the {what}")
        _n_axis(ax, f32["n"])
        ax.grid(True, alpha=0.4)
    axes[0].set_ylabel("relative error against float64 NumPy")
    _legend_outside(axes[1])
    return _save(fig, stem)


def fig_fit(ok: pd.DataFrame, stem: Path) -> Path | None:
    """Time-to-fit per optimiser (one panel each), as the harness's ``fit_<opt>_median_s``."""
    opts = [
        c[len("fit_") : -len("_median_s")]
        for c in ok.columns
        if c.startswith("fit_") and c.endswith("_median_s")
    ]
    fits = (
        ok.dropna(subset=[f"fit_{o}_median_s" for o in opts], how="all") if opts else ok.iloc[0:0]
    )
    if fits.empty:
        return None
    fig, axes = _pyplot().subplots(
        1,
        len(opts),
        figsize=(4 * len(opts) + 2, 4.2),
        dpi=130,
        layout="constrained",
        sharey=True,
        squeeze=False,
    )
    for ax, opt in zip(axes[0], opts, strict=True):
        for key, g in _series(fits.dropna(subset=[f"fit_{opt}_median_s"])):
            _line(ax, g, key, f"fit_{opt}_median_s")
        iters = fits[f"fit_{opt}_iters"].dropna()
        done = (
            f"{int(iters.min())}–{int(iters.max())}"
            if iters.min() != iters.max()
            else f"{int(iters.max())}"
        )
        ax.set(yscale="log", xlabel="N (samples)", title=f"{opt}: {done} iterations")
        _n_axis(ax, fits["n"])
        ax.grid(True, alpha=0.4)
    axes[0][0].set_ylabel("time to fit [s]")
    _legend_outside(axes[0][-1])
    fig.suptitle("Training cost: UKR(...).fit(X) per optimiser (median)", fontsize=11)
    return _save(fig, stem)


def fig_overlay(all_ok: pd.DataFrame, runs: list[str], stem: Path) -> Path:
    def plot(ax) -> None:
        for i, run in enumerate(runs):
            for key, g in _series(all_ok[all_ok.run == run]):
                _line(
                    ax,
                    g,
                    key,
                    "value_and_grad_median_s",
                    label=f"{_label(*key)} [{run}]",
                    linestyle=RUN_LINESTYLES[i % len(RUN_LINESTYLES)],
                )

    return _figure(
        plot,
        stem,
        title="Value + gradient across runs (line style: run)",
        ns=all_ok["n"],
        ylabel="time per call [s]",
    )


# --------------------------------------------------------------------------- tables


def _fmt_time(t: float) -> str:
    if not np.isfinite(t):
        return "–"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if t >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t / 1e-9:.3g} ns"


def _span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}x" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}–{hi:.2f}x"


def _span(values: list[float]) -> str:
    lo, hi = f"{min(values):.2f}", f"{max(values):.2f}"
    return f"{lo}x" if lo == hi else f"{lo}–{hi}x"


def winners(ok: pd.DataFrame) -> pd.DataFrame:
    """Fastest backend for value + gradient per dtype/device, consecutive N with the same winner merged."""
    out = []
    for (dtype, device), g in ok.groupby(["dtype", "device"], sort=True):
        per_n = []
        for n, gn in g.groupby("n", sort=True):
            times = gn.set_index("backend")["value_and_grad_median_s"].sort_values()
            margin = times.iloc[1] / times.iloc[0] if len(times) > 1 else np.nan
            per_n.append((n, times.index[0], margin, times.iloc[0]))
        start = 0
        for i in range(1, len(per_n) + 1):
            if i == len(per_n) or per_n[i][1] != per_n[start][1]:
                chunk = per_n[start:i]
                lo, hi = chunk[0][0], chunk[-1][0]
                margins = [c[2] for c in chunk if np.isfinite(c[2])]
                out.append(
                    {
                        "dtype": dtype,
                        "device": device,
                        "N": f"{lo}" if lo == hi else f"{lo}–{hi}",
                        "fastest": chunk[0][1],
                        "lead over the next backend": _span(margins) if margins else "only backend",
                        "its time": ", ".join(_fmt_time(c[3]) for c in chunk),
                    }
                )
                start = i
    return pd.DataFrame(out)


def median_table(ok: pd.DataFrame) -> pd.DataFrame:
    """N x (backend, dtype, device): median value + gradient time."""
    t = ok.pivot_table(
        index="n", columns=["backend", "dtype", "device"], values="value_and_grad_median_s"
    )
    t.columns = [_label(*c) for c in t.columns]
    return t.map(_fmt_time).rename_axis("N").reset_index()


def precision_table(ok: pd.DataFrame) -> pd.DataFrame:
    f32 = ok[ok.dtype == "float32"]
    if f32.empty:
        return pd.DataFrame()
    t = f32.groupby(["backend", "device"]).agg(
        value_error_max=("value_rel_error", "max"),
        grad_error_median=("grad_rel_error", "median"),
        grad_error_max=("grad_rel_error", "max"),
    )
    return t.map(lambda x: f"{x:.1e}").reset_index()


def problems_table(df: pd.DataFrame) -> pd.DataFrame:
    bad = df[df.status != "ok"]
    return bad[[*KEY, "status", "reason"]].sort_values(KEY).reset_index(drop=True)


def machine_table(meta: dict[str, Any]) -> pd.DataFrame:
    m = meta.get("machine", {})
    v = m.get("versions", {})
    cfg = meta.get("config", {})
    rows = {
        "date": meta.get("date"),
        "command": " ".join(meta.get("command", [])),
        "git commit": (meta.get("git") or {}).get("id"),
        "CPU": f"{m.get('cpu_model')} ({m.get('cpus_usable')} of {m.get('cpu_count')} CPUs used)",
        "memory": f"{(m.get('memory_total_bytes') or 0) / 2**30:.1f} GiB",
        "GPUs": "; ".join(
            f"{g.get('name')} (driver {g.get('driver_version')}, {g.get('memory.total')})"
            for g in m.get("gpus", [])
        )
        or "none",
        "OS": m.get("os"),
        "versions": ", ".join(f"{k} {val}" for k, val in v.items() if val),
        "threads per backend": cfg.get("threads"),
        "problem": f"{cfg.get('data')} data, L={cfg.get('latent_dim')}, sigma={cfg.get('sigma')}, lam={cfg.get('lam')}, loo={cfg.get('loo')}, Z ~ N(0, I)",
        "timing": f"warm-up {cfg.get('warmup')} calls, then >= {cfg.get('min_rounds')} rounds and >= {cfg.get('min_time')} s per function",
    }
    return pd.DataFrame({"": list(rows), "value": [str(x) for x in rows.values()]})


# --------------------------------------------------------------------------- assembling


FIGURES = (
    (
        fig_time,
        "time",
        "Steady-state time of value + gradient against N (log-log); the legend gives the fitted exponent over the upper half of N.",
    ),
    (
        fig_speedup,
        "speedup",
        "Speed relative to the hand-derived NumPy baseline in the same precision.",
    ),
    (
        fig_grad_ratio,
        "grad_ratio",
        "What the gradient costs on top of the objective (reverse mode's theoretical bound is a small constant).",
    ),
    (
        fig_first_call,
        "first_call",
        "First call: JAX traces and compiles; eager frameworks pay their warm-up.",
    ),
    (
        fig_memory,
        "memory",
        "Peak memory of one value + gradient call (rise of the process's peak RSS on the host; allocator caches hide small N).",
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


def single_run_blocks(
    df: pd.DataFrame, meta: dict[str, Any], fig_dir: Path, *, prefix: str = ""
) -> list[Block]:
    ok = df[df.status == "ok"]
    blocks: list[Block] = []
    if not ok.empty:
        blocks += [
            Block("h2", "Summary"),
            Block("table", winners(ok), "Fastest backend for value + gradient, by N range"),
        ]
        figures = [(draw(ok, fig_dir / f"{prefix}{name}"), cap) for draw, name, cap in FIGURES]
        blocks += [Block("h2", "Figures")]
        blocks += [Block("figure", path, caption) for path, caption in figures if path is not None]
        blocks += [
            Block("h2", "Steady-state medians"),
            Block("table", median_table(ok), "Median time of one value + gradient call"),
        ]
        prec = precision_table(ok)
        if not prec.empty:
            blocks += [
                Block("table", prec, "float32 relative error against float64 NumPy, over all N")
            ]
    problems = problems_table(df)
    blocks += [Block("h2", "Skipped and failed configurations")]
    blocks += (
        [Block("table", problems, "")]
        if not problems.empty
        else [Block("text", "None: every configuration ran.")]
    )
    blocks += [Block("h2", "Machine and settings"), Block("table", machine_table(meta), "")]
    return blocks


def comparison_blocks(frames: list[pd.DataFrame], fig_dir: Path) -> list[Block]:
    runs = [f["run"].iloc[0] for f in frames]
    if len(set(runs)) != len(runs):
        msg = f"runs to compare must have distinct directory names, got {runs}"
        raise ValueError(msg)
    keyed = [f.set_index(KEY) for f in frames]
    all_keys = sorted(set().union(*(k.index for k in keyed)))
    table = pd.DataFrame(index=pd.MultiIndex.from_tuples(all_keys, names=KEY))
    base = runs[0]
    for run, k in zip(runs, keyed, strict=True):
        ok = k[k.status == "ok"]["value_and_grad_median_s"]
        table[run] = ok.reindex(table.index)
        table[f"{run} status"] = k["status"].reindex(table.index).fillna("absent")
    shown = table.reset_index()[KEY].copy()
    for run in runs:
        status = table[f"{run} status"].to_numpy()
        shown[run] = np.where(status == "ok", table[run].map(_fmt_time).to_numpy(), status)
    for run in runs[1:]:
        ratio = (table[run] / table[base]).to_numpy()
        shown[f"{run} / {base}"] = [f"{r:.2f}" if np.isfinite(r) else "–" for r in ratio]
    mismatched = table[
        (table[[f"{r} status" for r in runs]] == "absent").any(axis=1)
    ].reset_index()[KEY]
    all_ok = pd.concat([f[f.status == "ok"] for f in frames])
    blocks = [
        Block("h2", "Runs compared"),
        Block("text", f"Baseline: `{base}`. Ratios above 1 mean slower than the baseline."),
        Block(
            "figure",
            fig_overlay(all_ok, runs, fig_dir / "compare_time"),
            "Value + gradient time of every run, overlaid.",
        ),
        Block(
            "table",
            shown,
            "Median value + gradient time per configuration, and the ratio to the baseline",
        ),
        Block("h2", "Mismatched configurations"),
    ]
    if mismatched.empty:
        blocks.append(Block("text", "None: every configuration is present in every run."))
    else:
        present = {run: set(k.index) for run, k in zip(runs, keyed, strict=True)}
        mismatched["present in"] = [
            ", ".join(r for r in runs if tuple(row) in present[r])
            for row in mismatched[KEY].itertuples(index=False)
        ]
        blocks.append(Block("table", mismatched, "Configurations that not every run has"))
    return blocks


def write_report(run_dirs: Sequence[Path | str], out: Path | str | None = None) -> Path:
    """Write ``report.md`` and ``report.html`` (and figures) for one or more runs; returns the .md path.

    One run: the report goes into the run's directory unless ``out`` is given. Several runs: a
    per-run section each plus the comparison, into ``out`` (default: ``comparison/`` beside the
    first run).
    """
    if not run_dirs:
        msg = "run_dirs must name at least one results directory"
        raise ValueError(msg)
    loaded = [load_run(d) for d in run_dirs]
    first = Path(run_dirs[0])
    out_dir = (
        Path(out)
        if out is not None
        else (first if len(run_dirs) == 1 else first.parent / "comparison")
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir = out_dir / "figures"
    if len(loaded) == 1:
        ((df, meta),) = loaded
        title = f"UKR benchmark: {first.name}"
        blocks = single_run_blocks(df, meta, fig_dir)
    else:
        title = "UKR benchmark comparison: " + " vs ".join(Path(d).name for d in run_dirs)
        blocks = comparison_blocks([df for df, _ in loaded], fig_dir)
        for i, (df, meta) in enumerate(loaded):
            blocks.append(Block("h2", f"Run `{df['run'].iloc[0]}`"))
            blocks += [
                b
                for b in single_run_blocks(df, meta, fig_dir, prefix=f"run{i}_")
                if b.kind != "h2" or b.content != "Figures"
            ]
    md_path = out_dir / "report.md"
    md_path.write_text(render_markdown(title, blocks, out_dir))
    (out_dir / "report.html").write_text(render_html(title, blocks))
    return md_path


def render_markdown(title: str, blocks: list[Block], base: Path) -> str:
    parts = [f"# {title}", ""]
    for b in blocks:
        if b.kind == "h2":
            parts += [f"## {b.content}", ""]
        elif b.kind == "text":
            parts += [b.content, ""]
        elif b.kind == "table":
            if b.caption:
                parts += [f"**{b.caption}**", ""]
            parts += [b.content.to_markdown(index=False), ""]
        elif b.kind == "figure":
            rel = Path(b.content).relative_to(base).as_posix()
            parts += [
                f"![{b.caption}]({rel})",
                "",
                f"*{b.caption}* ([SVG]({Path(rel).with_suffix('.svg').as_posix()}))",
                "",
            ]
    return "\n".join(parts)


def render_html(title: str, blocks: list[Block]) -> str:
    """One self-contained page: tables inline, figures embedded as base64 PNG."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for b in blocks:
        if b.kind == "h2":
            body.append(f"<h2>{html.escape(str(b.content))}</h2>")
        elif b.kind == "text":
            body.append(f"<p>{html.escape(b.content).replace('`', '')}</p>")
        elif b.kind == "table":
            cap = f"<caption>{html.escape(b.caption)}</caption>" if b.caption else ""
            body.append(
                b.content.to_html(index=False, border=0, classes="t").replace(
                    '<table border="0" class="dataframe t">', f'<table class="t">{cap}', 1
                )
            )
        elif b.kind == "figure":
            data = base64.b64encode(Path(b.content).read_bytes()).decode()
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(b.caption)}"><figcaption>{html.escape(b.caption)}</figcaption></figure>'
            )
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table.t{border-collapse:collapse;margin:1em 0;font-size:13px}"
        ".t td,.t th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}"
        "caption{font-weight:bold;text-align:left;padding:4px 0}img{max-width:100%}"
        "figcaption{font-style:italic;font-size:13px}"
    )
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"
