"""The report's tables, each a pandas DataFrame ready to render: numbers formatted, series named."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd

from ukr_bench.report import analysis, dims, rates, stats, style
from ukr_bench.report.analysis import KEY, VG_MEDIAN
from ukr_bench.schema import NOT_RECORDED, RunMeta, Status, simd_label


def fmt_time(t: float) -> str:
    if not np.isfinite(t):
        return "–"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if t >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t / 1e-9:.3g} ns"


def _span(values: list[float]) -> str:
    lo, hi = f"{min(values):.2f}", f"{max(values):.2f}"
    return f"{lo}x" if lo == hi else f"{lo}–{hi}x"


#: How a table heads the problem's columns.
PROBLEM_NAMES = {"data_dim": "D", "latent_dim": "L"}


def problem_parts(ok: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """``ok`` split by D and L where it has several (:func:`style.problems`), each part named
    (``D = 64, L = 2``); one part named ``""`` where it has one."""
    by = style.problems(ok)
    if not by:
        return [("", ok)]
    out = []
    for values, part in ok.groupby(by, sort=True):  # a list of keys: tuples of values
        said = ", ".join(f"{PROBLEM_NAMES[c]} = {v}" for c, v in zip(by, values, strict=True))
        out.append((said, part))
    return out


def stem(said: str) -> str:
    """``D64_L2_``: a file name's prefix for :func:`problem_parts`' ``D = 64, L = 2``."""
    return "".join(p.replace(" = ", "") + "_" for p in said.split(", ") if p)


def winners(ok: pd.DataFrame) -> pd.DataFrame:
    """:func:`analysis.winners_per_n`, consecutive N with the same verdict merged into one line."""
    per_n = analysis.winners_per_n(ok)
    if per_n.empty:
        return pd.DataFrame({"": ["no configuration passed the plausibility checks"]})
    out = []
    by = [c for c in style.PROBLEM if c in per_n.columns]  # one D and L per line
    for cell, g in per_n.groupby(["dtype", "device", *by], sort=True):
        dtype, device = cell[:2]
        problem = {PROBLEM_NAMES[c]: v for c, v in zip(by, cell[2:], strict=True)}
        rows = cast(list[dict[str, Any]], g.to_dict("records"))
        start = 0
        for i in range(1, len(rows) + 1):
            if i == len(rows) or rows[i]["fastest"] != rows[start]["fastest"]:
                chunk = rows[start:i]
                lo, hi = chunk[0]["N"], chunk[-1]["N"]
                ratios = [c["ratio"] for c in chunk if np.isfinite(c["ratio"])]
                tie = str(chunk[0]["fastest"]).startswith("tie")
                lead = (
                    chunk[0]["lead"]
                    if len(chunk) == 1
                    else ("–" if tie or not ratios else _span(ratios))
                )
                out.append(
                    {
                        "dtype": dtype,
                        "device": device,
                        **problem,
                        "N": f"{lo}" if lo == hi else f"{lo}–{hi}",
                        "fastest": chunk[0]["fastest"],
                        "lead over the next backend": lead,
                        "its time": ", ".join(fmt_time(c["time"]) for c in chunk),
                        "x bound": ", ".join(
                            f"{c['x_bound']:.1f}" if np.isfinite(c["x_bound"]) else "–"
                            for c in chunk
                        ),
                    }
                )
                start = i
    return pd.DataFrame(out)


#: How a report captions :func:`winners` and :func:`rates_table`.
WINNERS_CAPTION = (
    "Fastest backend for value + gradient in this run, by N range (lead: ratio of medians [95 % "
    "bootstrap interval]; x bound: its time over its own lower bound, the exps and flops per "
    "pair its layout does at the rates below)"
)
RATES_CAPTION = (
    "The bound's rates: the best any backend measured in this run per device and dtype, and "
    "which backend (exps fused with a sum, multiply-add chains and matrix products, on data "
    "in cache)"
)


#: The caption of a run from before the rates were recorded: its rows' ``bound_s`` is then the
#: bound of that code, which the report uses as it is.
LEGACY_WINNERS_CAPTION = (
    "Fastest backend for value + gradient in this run, by N range (lead: ratio of medians [95 % "
    "bootstrap interval]; x bound: its time over the per-pair lower bound measured in the same "
    "run, one exp and 5L + 4D + 6 flops per pair at the best exp and GEMM rates any backend "
    "reached)"
)


def rate_blocks(ok: pd.DataFrame) -> tuple[str, pd.DataFrame | None]:
    """The winners' caption and the :func:`rates_table` (None for a run whose rows recorded no
    rates: its caption then says what its bounds are)."""
    if rates.machine_rates(ok).empty:
        return LEGACY_WINNERS_CAPTION, None
    return WINNERS_CAPTION, rates_table(ok)


def rates_table(ok: pd.DataFrame) -> pd.DataFrame:
    """:func:`rates.machine_rates`: per device and dtype, each rate (3 digits) and the backend
    that measured it; one cell saying so where no row recorded one (older runs)."""
    best = rates.machine_rates(ok)
    if best.empty:
        return pd.DataFrame({"": ["no rates recorded (a run from before they were)"]})
    out = best[["device", "dtype"]].copy()
    for name, unit in rates.RATES:
        out[unit] = [
            "–" if not np.isfinite(v) else f"{v:.3g} ({by})"
            for v, by in zip(best[name], best[f"{name}_by"], strict=True)
        ]
    return out


def exponent_table(ok: pd.DataFrame) -> pd.DataFrame:
    """:func:`analysis.exponents` per series, named as the figures name it, 2 decimals."""
    fitted = analysis.exponents(ok).dropna(subset=["exponent"])
    if fitted.empty:
        return fitted
    names = [style.label(k) for k in fitted[list(style.SERIES)].itertuples(index=False)]
    return pd.DataFrame({"series": names, "exponent k": fitted["exponent"].map("{:.2f}".format)})


def one_device_shown(t: pd.DataFrame) -> pd.DataFrame:
    """``t`` without its ``devices`` column when every row ran on one device (the ``device``
    column names a set of several, ``cpu:0-3``, so tables of one-device runs stay as they were),
    and without ``data_dim`` and ``latent_dim`` where every row has the same (one problem)."""
    if "devices" in t.columns and (t["devices"] == 1).all():
        t = t.drop(columns="devices")
    same = [c for c in style.PROBLEM if c in t.columns and t[c].nunique(dropna=False) <= 1]
    return t.drop(columns=same)


def flags_table(ok: pd.DataFrame, flags: pd.Series) -> pd.DataFrame:
    """The flagged configurations with their reasons."""
    bad = ok.assign(flag=flags)[flags != ""]
    return one_device_shown(bad[[*KEY, "flag"]].sort_values(KEY).reset_index(drop=True))


def median_table(ok: pd.DataFrame) -> pd.DataFrame:
    """N x series: median value + gradient time."""
    t = ok.pivot_table(index="n", columns=list(style.SERIES), values=VG_MEDIAN)
    t.columns = [style.label(c) for c in t.columns]
    return t.map(fmt_time).rename_axis("N").reset_index()


def precision_table(ok: pd.DataFrame) -> pd.DataFrame:
    """float32 errors per series over all N: max of the value's, median and max of the gradient's."""
    f32 = ok[ok.dtype == "float32"]
    if f32.empty:
        return pd.DataFrame()
    t = f32.groupby([c for c in style.SERIES if c != "dtype"]).agg(
        value_error_max=("value_rel_error", "max"),
        grad_error_median=("grad_rel_error", "median"),
        grad_error_max=("grad_rel_error", "max"),
    )
    return t.map(lambda x: f"{x:.1e}").reset_index()


#: N of the autodiff-cost table (those the run has; else its largest N).
AUTODIFF_COST_NS = (1000, 8000)


def autodiff_cost_table(cost: pd.DataFrame) -> pd.DataFrame:
    """autodiff / manual time at N = 1000 and 8000 (:func:`analysis.autodiff_cost`), with intervals."""
    if cost.empty:
        return pd.DataFrame()
    ns = [n for n in AUTODIFF_COST_NS if n in set(cost["n"])] or [int(cost["n"].max())]
    t = cost[cost["n"].isin(ns)].copy()

    def cell(r: pd.Series) -> str:
        if np.isnan(r["low"]):
            return f"{r['ratio']:.2f}x"
        return f"{r['ratio']:.2f}x [{r['low']:.2f}–{r['high']:.2f}]"

    t["autodiff / manual"] = t.apply(cell, axis=1)
    t = t.rename(columns={"n": "N"})
    cols = ["backend", "layout", "dtype", "device", "N", "autodiff / manual"]
    return t[cols].sort_values(cols[:5]).reset_index(drop=True)


def grad_ratio_table(ok: pd.DataFrame, min_n: int = 1000) -> pd.DataFrame:
    """(value + gradient) / value time per series at N >= ``min_n``: one column per N, and the max."""
    big = ok[ok["n"] >= min_n]
    if big.empty or "grad_ratio" not in big.columns:
        return pd.DataFrame()
    t = big.pivot_table(index=list(style.SERIES), columns="n", values="grad_ratio")
    t.columns = [f"N={int(c)}" for c in t.columns]
    t["max"] = t.max(axis=1)
    return t.map(lambda x: "" if np.isnan(x) else f"{x:.2f}").reset_index()


def problems_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every row whose status is not ok, with its reason."""
    bad = df[df.status != Status.OK.value]
    return one_device_shown(bad[[*KEY, "status", "reason"]].sort_values(KEY).reset_index(drop=True))


def _dims_said(cfg: dict[str, Any]) -> str:
    """``D=3, 64, L=2``: the dimensions a run swept (runs before the D axis: L alone, D the
    data set's own)."""
    dims = cfg.get("data_dims") or []
    ls = cfg.get("latent_dims") or [cfg.get("latent_dim")]
    said = f"D={', '.join(map(str, dims))}, " if dims else ""
    return said + f"L={', '.join(map(str, ls))}"


def _data_file_said(meta: RunMeta) -> dict[str, str]:
    """The user's data file, where the run measured one: its path, SHA-256 and size."""
    f = meta.data_file
    if not f:
        return {}
    return {
        "data file": f"{f.get('path')} (SHA-256 {f.get('sha256')}; {f.get('rows')} rows x "
        f"{f.get('columns')} columns)"
    }


def cpu_said(cpu: dict[str, Any]) -> str:
    """``Intel(R) Xeon(R) Processor (Intel Xeon (family 6, model 207); SIMD: AVX, AVX2)``."""
    model = cpu["model"] or f"CPU model {NOT_RECORDED}"
    family = cpu["family"] or f"family {NOT_RECORDED}"
    return f"{model} ({family}; SIMD: {simd_label(cpu['simd'])})"


def gpus_said(meta: RunMeta) -> str:
    return ", ".join(str(g.get("name")) for g in meta.machine.get("gpus") or []) or "none"


def machine_table(meta: RunMeta) -> pd.DataFrame:
    """The machine and settings of a run, one line each. The CPU is named by model, family and
    SIMD features: times and float32 errors of one code differ between Intel and AMD, and with
    and without AVX-512 ("not recorded" for runs made before these were recorded)."""
    m, cfg, prov = meta.machine, meta.config, meta.provenance
    cpu = meta.cpu()
    v = m.get("versions", {})
    commit = prov.get("commit") or prov.get("source", "unknown")
    if prov.get("dirty"):
        commit = f"{commit} (uncommitted changes: no commit reproduces this run exactly)"
    elif prov.get("commit") and prov.get("source") == "copy of a git checkout":
        commit = f"{commit} (a copy of that checkout, as named by whoever ran it)"
    if meta.reference:
        commit += "; made as a reference run"
    rows: dict[str, Any] = {
        "date": meta.date,
        "command": " ".join(meta.command),
        "ukr-bench": f"{prov.get('version', '?')}, commit {commit}",
        "CPU": f"{m.get('cpu_model')} ({m.get('cpus_usable')} of {m.get('cpu_count')} CPUs used)",
        "CPU family": cpu["family"] or NOT_RECORDED,
        "CPU SIMD features": simd_label(cpu["simd"]),
        "memory": f"{(m.get('memory_total_bytes') or 0) / 2**30:.1f} GiB",
        "GPUs": "; ".join(
            f"{g.get('name')} (driver {g.get('driver_version')}, {g.get('memory.total')})"
            for g in m.get("gpus", [])
        )
        or "none",
        "OS": m.get("os"),
        "versions": ", ".join(f"{k} {val}" for k, val in v.items() if val),
        "threads per backend": cfg.get("threads"),
        "order": "backends in turns at each N (a worker per backend and N)"
        if cfg.get("interleave")
        else "one backend after another (a worker per backend)",
        "problem": f"{cfg.get('data')} data, {_dims_said(cfg)}, sigma={cfg.get('sigma')}, "
        f"lam={cfg.get('lam')}, loo={cfg.get('loo')}, Z ~ N(0, I)",
        **_data_file_said(meta),
        "timing": f"warm-up {cfg.get('warmup')} calls, then >= {cfg.get('min_rounds')} rounds "
        f"and >= {cfg.get('min_time')} s per function",
    }
    rows |= {f"note {i + 1}": note for i, note in enumerate(meta.notes)}
    return pd.DataFrame({"": list(rows), "value": [str(x) for x in rows.values()]})


def dtype_table(ok: pd.DataFrame) -> pd.DataFrame:
    """What float32 saves per series: float32 / float64 median time over N, and where it loses.

    On a CPU float32 halves the bytes moved and doubles the SIMD width, so it should never be
    slower than float64; a significant loss (:func:`stats.compare` on the raw samples) names a
    real anomaly of that series (a silent upcast, a slow kernel, subnormal arithmetic) and is
    listed in ``float32 slower at N``. Columns: the series without its dtype, the ratio's
    range over N, and the N where float32 is significantly slower (empty: nowhere).
    """
    rest = [c for c in style.SERIES if c != "dtype"]
    out = []
    for keys, g in ok.groupby(rest, sort=True):
        by_n = {dt: d.set_index("n") for dt, d in g.groupby("dtype")}
        if not {"float32", "float64"} <= set(by_n):
            continue
        f32, f64 = by_n["float32"], by_n["float64"]
        ns = sorted(set(f32.index) & set(f64.index))
        if not ns:
            continue
        ratios, slower = [], []
        for n in ns:
            c = stats.compare(stats.samples_of(f64.loc[n]), stats.samples_of(f32.loc[n]))
            ratios.append(float(f32.loc[n, VG_MEDIAN] / f64.loc[n, VG_MEDIAN]))
            if c.a_faster:  # float64 significantly faster than float32
                slower.append(f"{n} ({c})")
        named = dict(zip(rest, keys, strict=True)) | {"dtype": "float32"}
        out.append(
            {
                "series": style.label([str(named[c]) for c in style.SERIES]).replace(
                    " float32", ""
                ),
                "float32 / float64 time": _span(ratios),
                "float32 slower at N": ", ".join(slower),
            }
        )
    return pd.DataFrame(out, columns=["series", "float32 / float64 time", "float32 slower at N"])


def winners_by_d_table(per_d: pd.DataFrame) -> pd.DataFrame:
    """:func:`dims.winners_by_d` as a table across D: a line per dtype, device and N (and L),
    a column per D, each cell the fastest (or the tie), its time and its time over its bound
    (``jax blocked: 28.1 ms, 1.4x bound``; ``–`` where that D has no usable row)."""
    if per_d.empty:
        return pd.DataFrame({"": ["no configuration passed the plausibility checks"]})
    lines = ["dtype", "device", "N", *[c for c in ("latent_dim",) if c in per_d.columns]]

    def cell(r: pd.Series) -> str:
        bound = f", {r['x_bound']:.1f}x bound" if np.isfinite(r["x_bound"]) else ""
        return f"{r['fastest']}: {fmt_time(r['time'])}{bound}"

    shown = per_d.assign(cell=per_d.apply(cell, axis=1))
    t = shown.pivot(index=lines, columns=dims.D, values="cell").fillna("–")
    t.columns = [f"D = {int(d)}" for d in t.columns]
    return t.reset_index().rename(columns=PROBLEM_NAMES)
