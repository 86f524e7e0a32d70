"""The report's section across the data's dimension D, for a run of more than one D: the time
against D at one N, the winners per (N, D) with their distance to the bound, and the crossovers
named (:mod:`~ukr_bench.report.dims` computes them). A run of one D has no such section."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ukr_bench.report import analysis, dims, figures, stats, tables
from ukr_bench.report.render import Block

HEADING = "Across the data's dimension"


def _listed(values: Sequence[Any]) -> str:
    """``3, 16 and 64``."""
    said = [str(v) for v in values]
    return said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]


def _where(r: pd.Series, several: dict[str, bool]) -> str:
    """``float64``, with the device and L where the run has several."""
    parts = [str(r["dtype"])]
    parts += [f"on {r['device']}"] if several["device"] else []
    parts += [f"L = {int(r[dims.L])}"] if several[dims.L] else []
    return ", ".join(parts)


def _lead(r: pd.Series) -> str:
    return f"{r['ratio']:.2f}x [{r['low']:.2f}–{r['high']:.2f}]"


def _sentence(g: pd.DataFrame, several: dict[str, bool]) -> str:
    """One sentence for the cells of ``g`` (same dtype, device, L, pair and D; N apart)."""
    r = g.iloc[0]
    ns = [int(n) for n in g["N"]]
    at_n = f"at N = {_listed(ns)}, {_where(r, several)}"
    if r["kind"] == dims.TIE:
        return (
            f"{r['fast']}'s median falls below {r['slow']}'s from D = {int(r['flip_d'])} "
            f"{at_n}, but {r['fast']} is significantly faster at no D from there on: they tie "
            f"({r['slow']} over {r['fast']} at D = {int(r['flip_d'])}: {_leads(g)})."
        )
    leads = _leads(g)
    said = (
        f"{r['fast']} is faster than {r['slow']} from D = {int(r['from_d'])} {at_n}: at "
        f"D = {int(r['from_d'])} by {leads}"
    )
    if r["flip_d"] < r["from_d"]:
        said += f"; their medians' order flips at D = {int(r['flip_d'])}, where they tie"
    if r["ahead_below"]:
        said += f"; below, {r['slow']} is faster at D = {_listed(list(r['ahead_below']))}"
    return said + "."


def _leads(g: pd.DataFrame) -> str:
    """``1.80x [1.78–1.82]``, or per N: ``1.80x [1.78–1.82] (N = 500), 1.75x [...] (N = 1000)``."""
    if len(g) == 1:
        return _lead(g.iloc[0])
    return ", ".join(f"{_lead(c)} (N = {int(c['N'])})" for _, c in g.iterrows())


def crossover_sentences(cross: pd.DataFrame) -> list[str]:
    """What :func:`dims.crossovers` found, in sentences: one per crossover or tie (N of one
    verdict merged), and one saying so where the order never flips."""
    if cross.empty:
        return []
    several = {c: cross[c].nunique(dropna=False) > 1 for c in ("device", dims.L)}
    flips = cross[cross["kind"].isin([dims.CROSSOVER, dims.TIE])]
    group = ["dtype", "device", dims.L, "kind", "slow", "fast", "flip_d", "from_d", "ahead_below"]
    out = [
        _sentence(g, several)
        for _, g in flips.fillna({dims.L: -1, "from_d": -1}).groupby(group, sort=False)
    ]
    out += [
        f"At N = {int(r['N'])}, {_where(r, several)}, {r['slow']} (the least median at "
        f"D = {int(r['d_min'])}) has no usable timing at D = {int(r['d_max'])}: no crossover "
        "is named there."
        for _, r in cross[cross["kind"] == dims.UNMEASURED].iterrows()
    ]
    same = cross[cross["kind"] == dims.SAME]
    if not same.empty:
        one = same["d_min"].nunique() == 1 and same["d_max"].nunique() == 1
        ends = (f"D = {int(same['d_min'].iloc[0])}", f"D = {int(same['d_max'].iloc[0])}")
        per_cell = {  # the cells of one list of N said together
            _where(g.iloc[0], several): f"N = {_listed([int(n) for n in g['N']])}"
            for _, g in same.groupby(["dtype", "device", dims.L], sort=True, dropna=False)
        }
        cells = "; ".join(
            f"{ns}, {_listed([w for w, n in per_cell.items() if n == ns])}"
            for ns in dict.fromkeys(per_cell.values())
        )
        smallest, largest = ends if one else ("its smallest D", "its largest D")
        out.append(
            f"No crossover {'elsewhere ' if out else ''}({cells}): the configuration with the "
            f"least median at {smallest} has the least median at {largest} too."
        )
    return out


def blocks(
    df: pd.DataFrame, fig_dir: Path, prefix: str, *, draw: bool, winners: bool
) -> list[Block]:
    """The section across D of one run's rows ``df`` (any status), or nothing for a run of one
    D. ``draw``: the figure too (file names start with ``prefix``); ``winners``: the winners
    table and the crossovers (not for a smoke run)."""
    ok = df[df.status == analysis.OK].copy()
    if ok.empty or not dims.has_several_d(ok):
        return []
    ok["flag"] = analysis.flag_rows(ok)
    clean = ok[ok.flag == ""]
    ds = sorted(int(d) for d in ok[dims.D].unique())
    chosen = dims.fixed_n(ok)
    out = [
        Block("h2", HEADING),
        Block(
            "text",
            f"This run measured D = {_listed(ds)}. The fastest configuration at each N and D is "
            "named by the rule of the summaries (Mann-Whitney U, p < "
            f"{stats.ALPHA}, and the 95 % interval beyond {stats.THRESHOLD:.2f}x; otherwise a "
            "tie), and a crossover only where the later leader is significantly faster by "
            "the same rule; both hold for this run alone.",
        ),
    ]
    if draw:
        path = figures.fig_time_by_d(ok, fig_dir / f"{prefix}time_by_d")
        at = "; ".join(
            f"{r['dtype']} on {r['device']}: N = {r['n']}"
            + (f" ({r['ds']} of {r['of']} D)" if r["ds"] < r["of"] else "")
            for _, r in chosen.iterrows()
        )
        out += [] if path is None else [Block(
            "figure", path,
            "Value + gradient time against D (log-log) at the largest N measured at every D "
            f"({at}), a panel per dtype; black: the per-pair bound at each D.",
        )]  # fmt: skip
    if not winners:
        return out
    per_d = dims.winners_by_d(clean)
    out.append(Block(
        "table", tables.winners_by_d_table(per_d),
        "Fastest configuration per N and D (or the tie), its median time and its time over "
        "its own per-pair bound at that D (x bound, as in the summaries)",
    ))  # fmt: skip
    said = crossover_sentences(dims.crossovers(clean))
    out += [Block("text", " ".join(said))] if said else []
    return out
