"""Assembling reports: one run's sections, the comparison of several runs, and writing files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ukr_bench.report import across_d, analysis, figures, stats, style, tables
from ukr_bench.report.analysis import KEY, OK
from ukr_bench.report.render import Block, render_html, render_markdown
from ukr_bench.report.tables import cpu_said, gpus_said
from ukr_bench.schema import ConfigKey, RunMeta, load_results


def load_run(run_dir: Path | str) -> tuple[pd.DataFrame, RunMeta]:
    """A run's rows and metadata, checked for the columns a report needs.

    Lines of ``results.jsonl`` that hold no row are warned about (by :func:`load_results`) and
    kept in ``attrs["skipped_lines"]``, so that the report lists them; a file with no row
    at all is an error that says whether it was empty or unreadable.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        msg = f"results directory {run_dir} does not exist"
        raise FileNotFoundError(msg)
    df, meta = load_results(run_dir)
    skipped = list(df.attrs.get("skipped_lines", []))
    if df.empty and skipped:
        msg = (
            f"{run_dir}/results.jsonl holds no readable row: its {len(skipped)} line(s) were "
            f"all skipped, the first as {skipped[0].why}"
        )
        raise ValueError(msg)
    if df.empty:
        msg = f"{run_dir} has no results yet (results.jsonl is missing or empty)"
        raise ValueError(msg)
    if "reason" not in df.columns:
        df["reason"] = ""
    df["reason"] = df["reason"].fillna("")
    # Two rows for one configuration (a run written by two processes before runs were locked):
    # keep the last one appended, and say which configurations had more than one.
    dup = df.duplicated(KEY, keep="last")
    duplicates = sorted({str(ConfigKey.from_mapping(r)) for _, r in df[dup].iterrows()})
    df = df[~dup].reset_index(drop=True)
    df.attrs["duplicates"] = duplicates
    df.attrs["skipped_lines"] = skipped
    df["run"] = run_dir.name
    return df, meta


#: A run that timed each function for less than this many seconds (``min_time``: 0.05 s in
#: ``--quick``, 1 s by default) is a smoke run: it shows that every configuration runs, and its
#: few short samples rank nothing that a second run would repeat (three --quick runs named
#: three different winners at N = 64-256).
SMOKE_MIN_TIME = 0.1


def is_smoke(meta: RunMeta) -> bool:
    """Whether the run timed each function for less than :data:`SMOKE_MIN_TIME` seconds."""
    min_time = meta.config.get("min_time")
    return isinstance(min_time, int | float) and min_time < SMOKE_MIN_TIME


def smoke_banner(meta: RunMeta) -> list[Block]:
    """A warning at the top of a smoke run's report (:data:`SMOKE_MIN_TIME`), or nothing."""
    if not is_smoke(meta):
        return []
    cfg = meta.config
    return [
        Block(
            "text",
            f"**Smoke run.** Each function was timed for {cfg.get('min_time'):g} s (at least "
            f"{cfg.get('min_rounds', '?')} rounds): enough to show that every configuration "
            "runs, too little to rank them, so this report names no winners; rank frameworks "
            "with the default sweep, or with `--repeat-runs 3`.",
        )
    ]


def single_run_blocks(
    df: pd.DataFrame, meta: RunMeta, fig_dir: Path, *, prefix: str = "", draw: bool = True
) -> list[Block]:
    """One run's sections: summary, figures (``draw``; file names start with ``prefix``),
    medians and exponents, autodiff and gradient cost, float32, flags, and what did not run
    or read."""
    blocks = smoke_banner(meta) + across_d.blocks(
        df, fig_dir, prefix, draw=draw, winners=not is_smoke(meta)
    )  # several D: the section across them, before a part per D
    for said, part in tables.problem_parts(df[df.status == OK]):  # several D: a part per D
        if part.empty:
            continue
        blocks += [Block("h2", f"Problem {said}")] if said else []
        ok = part.copy()
        ok["flag"] = analysis.flag_rows(ok)
        memory_flags = analysis.flag_rows(ok, memory=True)
        clean = ok[ok.flag == ""]
        skipped = len(df.attrs.get("skipped_lines", []))
        blocks += _summary_blocks(ok, clean, memory_flags, skipped, winners=not is_smoke(meta))
        blocks += _figure_blocks(ok, fig_dir, prefix + tables.stem(said)) if draw else []
        blocks += _median_blocks(ok, clean)
        blocks += _autodiff_blocks(clean) + _gradient_cost_blocks(clean)
        blocks += _precision_blocks(ok, clean) + _flag_blocks(ok, memory_flags)
    return (
        blocks
        + _file_blocks(df)
        + _problem_blocks(df)
        + [
            Block("h2", "Machine and settings"),
            Block("table", tables.machine_table(meta), ""),
        ]
    )


def _figure_blocks(ok: pd.DataFrame, fig_dir: Path, prefix: str) -> list[Block]:
    drawn = [(f(ok, fig_dir / f"{prefix}{name}"), cap) for f, name, cap in figures.FIGURES]
    return [Block("h2", "Figures")] + [
        Block("figure", path, cap) for path, cap in drawn if path is not None
    ]


def _median_blocks(ok: pd.DataFrame, clean: pd.DataFrame) -> list[Block]:
    blocks = [
        Block("h2", "Steady-state medians"),
        Block("table", tables.median_table(ok), "Median time of one value + gradient call"),
    ]
    exponents = tables.exponent_table(clean)
    if not exponents.empty:
        blocks.append(Block(
            "table", exponents,
            "Fitted exponent k of time ∝ N^k per series, over the upper half of its N (the "
            "cost is O(N^2): near 2 the time follows the arithmetic; below, fixed overheads "
            "still weigh)",
        ))  # fmt: skip
    return blocks


def _problem_blocks(df: pd.DataFrame) -> list[Block]:
    problems = tables.problems_table(df)
    return [Block("h2", "Skipped and failed configurations")] + (
        [Block("table", problems, "")]
        if not problems.empty
        else [Block("text", "None: every configuration ran.")]
    )


def _summary_blocks(
    ok: pd.DataFrame,
    clean: pd.DataFrame,
    memory_flags: pd.Series,
    n_skipped: int,
    *,
    winners: bool = True,
) -> list[Block]:
    """How many rows were measured and flagged, and (``winners``) the winners over the
    unflagged ones."""
    n_flagged = int((ok.flag != "").sum())
    n_memory = int((memory_flags != "").sum())
    skipped = f" ({n_skipped} line(s) of results.jsonl held no row and were skipped: see "
    unread = f"{skipped}Unreadable lines)" if n_skipped else ""
    counted = (
        f"{len(ok)} configurations measured{unread}; {n_flagged} timings flagged as "
        "implausible (listed below, drawn with a red cross, and left out of the winners and "
        f"of the fitted exponents), {n_memory} memory readings flagged (gaps in the memory "
        "figure)."
    )
    if not winners:
        return [Block("h2", "Summary"), Block("text", counted)]
    caption, rated = tables.rate_blocks(ok)
    return [
        Block("h2", "Summary"),
        Block(
            "text",
            f"{counted} A backend is called faster only where its lead is significant "
            f"(Mann-Whitney U, p < {stats.ALPHA}) and its 95 % interval lies beyond "
            f"{stats.THRESHOLD:.2f}x; otherwise the backends tie. One run's winners may not "
            "repeat in the next: the README's headline names a winner only where repeated "
            "runs agree.",
        ),
        Block("table", tables.winners(clean), caption),
        *([] if rated is None else [Block("table", rated, tables.RATES_CAPTION)]),
    ]


def _autodiff_blocks(clean: pd.DataFrame) -> list[Block]:
    cost = analysis.autodiff_cost(clean)
    if cost.empty:
        return []
    s = analysis.autodiff_summary(cost)
    return [
        Block("h2", "What autodiff costs"),
        Block(
            "table",
            tables.autodiff_cost_table(cost),
            "autodiff / hand-derived value + gradient time, same framework, layout, "
            "dtype and N (ratio of medians [95 % bootstrap interval]; 1: autodiff costs "
            f"nothing extra). Over every N: autodiff slower in {s.slower} of "
            f"{s.configurations} configurations (interval above 1), median ratio "
            f"{s.median:.2f}x, range {s.low:.2f}–{s.high:.2f}x.",
        ),
    ]


def _gradient_cost_blocks(clean: pd.DataFrame) -> list[Block]:
    ratios = tables.grad_ratio_table(clean, analysis.GRAD_RATIO_MIN_N)
    if ratios.empty:
        return []
    g = analysis.gradient_cost(clean)
    return [
        Block("h2", "The cheap-gradient principle"),
        Block(
            "table",
            ratios,
            f"(value + gradient) time / value time at N >= {analysis.GRAD_RATIO_MIN_N}. "
            f"Reverse mode needs at most {analysis.CHEAP_GRADIENT_BOUND:g} times the value's "
            "operations (Griewank & Walther 2008); the measured constant, the largest ratio of "
            f"any backend and gradient here, is {g.largest:.2f}; {g.within_goal} of "
            f"{g.configurations} configurations are within the goal of "
            f"{analysis.GRAD_RATIO_GOAL:g}. Above it, a gradient is bound by memory traffic "
            "rather than operations, or (checkpointed blocked autodiff) computes each block's "
            "forward twice; `benchmarks/gradient_profile.py` measures where the time and the "
            "bytes go per framework on the machine it runs on.",
        ),
    ]


def _precision_blocks(ok: pd.DataFrame, clean: pd.DataFrame) -> list[Block]:
    blocks = []
    prec = tables.precision_table(ok)
    if not prec.empty:
        blocks += [Block("table", prec, "float32 relative error against float64 NumPy, over all N")]
    dtypes = tables.dtype_table(clean)
    if not dtypes.empty:
        blocks += [
            Block(
                "table",
                dtypes,
                "What float32 saves: float32 / float64 median time per series over N, and "
                "the N where float32 is significantly slower (ratio [95 % interval]); on a "
                "CPU that names an anomaly of the series, not of the precision",
            )
        ]
    return blocks


def _flag_blocks(ok: pd.DataFrame, memory_flags: pd.Series) -> list[Block]:
    both = (ok.flag + "; " + memory_flags).str.strip("; ")
    if (ok.flag != "").any() or (memory_flags != "").any():
        return [Block("h2", "Plausibility flags"), Block("table", tables.flags_table(ok, both), "")]
    return [
        Block("h2", "Plausibility flags"),
        Block("text", "None: every measurement passed the plausibility checks."),
    ]


def _file_blocks(df: pd.DataFrame) -> list[Block]:
    """Duplicate rows and unreadable lines of the results file, where there were any."""
    blocks = []
    if df.attrs.get("duplicates"):
        blocks += [
            Block("h2", "Duplicate rows"),
            Block(
                "text",
                "These configurations have more than one row; the last one appended is shown: "
                + "; ".join(df.attrs["duplicates"]),
            ),
        ]
    if df.attrs.get("skipped_lines"):
        skipped = df.attrs["skipped_lines"]
        blocks += [
            Block("h2", "Unreadable lines"),
            Block(
                "table",
                pd.DataFrame({"line": [s.line for s in skipped], "why": [s.why for s in skipped]}),
                "Lines of results.jsonl that hold no row, left out of everything above (a "
                "configuration cut short by a kill is measured again by `ukr-bench bench "
                "--resume`)",
            ),
        ]
    return blocks


def machine_blocks(runs: list[str], metas: Sequence[RunMeta]) -> list[Block]:
    """Whether the runs compared ran on the same kind of machine, and a warning where not.

    The same code on Intel and on AMD, or with and without AVX-512, differs in time and in
    float32 error, and a GPU run's configurations are not a CPU run's: a ratio between such
    runs measures the machines as much as the code. CPUs differ where their model, vendor or
    family differ, or their SIMD features where both runs recorded them.
    """
    cpus = [m.cpu() for m in metas]
    simd = {frozenset(c["simd"]) for c in cpus if c["simd"] is not None}
    cpu_differ = len({(c["model"], c["vendor"], c["family"]) for c in cpus}) > 1 or len(simd) > 1
    gpus = [gpus_said(m) for m in metas]
    blocks = []
    if cpu_differ:
        said = "; ".join(f"`{r}`: {cpu_said(c)}" for r, c in zip(runs, cpus, strict=True))
        blocks.append(Block(
            "text",
            f"Warning: these runs ran on different CPUs ({said}). Their ratios measure the CPUs "
            "as much as the code, and their float32 errors differ too (other vector widths and "
            "fused multiply-adds round differently): to judge a change of code, compare runs "
            "made on one CPU.",
        ))  # fmt: skip
    if len(set(gpus)) > 1:
        said = "; ".join(f"`{r}`: {g}" for r, g in zip(runs, gpus, strict=True))
        blocks.append(Block(
            "text",
            f"Warning: these runs ran with different GPUs ({said}). A ratio between their GPU "
            "configurations measures the GPUs as much as the code, and what one run measured "
            "on a GPU has no counterpart in a run without it.",
        ))  # fmt: skip
    if not blocks:
        blocks.append(Block(
            "text",
            f"Every run was measured on the same kind of machine: {cpu_said(cpus[0])}, GPUs: "
            f"{gpus[0]}.",
        ))  # fmt: skip
    return blocks


def comparison_blocks(
    frames: list[pd.DataFrame], fig_dir: Path, metas: Sequence[RunMeta] | None = None
) -> list[Block]:
    """The comparison of several runs (the first is the baseline); ``metas``, one per run,
    adds whether they ran on the same kind of machine (:func:`machine_blocks`)."""
    runs = [str(f["run"].iloc[0]) for f in frames]
    if len(set(runs)) != len(runs):
        msg = f"runs to compare must have distinct directory names, got {runs}"
        raise ValueError(msg)
    table = analysis.run_table(frames, runs)
    base = runs[0]
    by = style.problems(pd.concat(frames))  # several D or L: a verdict and a figure for each
    winners = [analysis.run_winners(f, by) for f in frames]
    agreed = stats.consensus(winners, ["dtype", "device", "N", *by], "fastest", names=runs)
    overlays = [
        Block("figure", figures.fig_overlay(part, runs, fig_dir / f"compare_{tables.stem(said)}time"),
              f"Value + gradient time of every run, overlaid{', ' + said if said else ''}.")
        for said, part in tables.problem_parts(pd.concat([f[f.status == OK] for f in frames]))
    ]  # fmt: skip
    return [
        Block("h2", "Runs compared"),
        Block("text", f"Baseline: `{base}`. Ratios above 1 mean slower than the baseline."),
        *(machine_blocks(runs, metas) if metas is not None else []),
        *overlays,
        Block(
            "table",
            agreed,
            "Fastest backend at each N in every run (a tie where the runs disagree, or where "
            "any run found no significant lead; a run that did not measure an N, or has no "
            "usable timing there, is named)",
        ),
        Block(
            "table",
            _run_table_shown(table, runs),
            "Median value + gradient time per configuration, and the ratio to the baseline",
        ),
        *_variation_blocks(table, runs),
        *_mismatched_blocks(table, runs),
    ]


def _run_table_shown(table: pd.DataFrame, runs: list[str]) -> pd.DataFrame:
    """:func:`analysis.run_table` printed: each run's median (or its status), the ratios."""
    shown = tables.one_device_shown(table.reset_index()[KEY].copy())
    for run in runs:
        status = table[f"{run} status"].to_numpy()
        shown[run] = np.where(status == OK, table[run].map(tables.fmt_time).to_numpy(), status)
    for run in runs[1:]:
        ratio = (table[run] / table[runs[0]]).to_numpy()
        shown[f"{run} / {runs[0]}"] = [f"{r:.2f}" if np.isfinite(r) else "–" for r in ratio]
    return shown


def _variation_blocks(table: pd.DataFrame, runs: list[str]) -> list[Block]:
    variation = (
        analysis.run_spread(table, runs)
        .map(lambda x: f"{x:.2f}x")
        .rename(columns={"median": "median over N", "max": "largest"})
        .reset_index()
    )
    return [
        Block("h2", "Run-to-run variation"),
        Block(
            "text",
            "The slowest run's median over the fastest run's, per configuration present in "
            "every run: how far one run's numbers can be trusted to repeat (1.00x: identical). "
            "Leads smaller than this are not conclusions.",
        ),
        Block("table", variation, "Spread of the median across runs, per series")
        if not variation.empty
        else Block("text", "No configuration is present in every run."),
    ]


def _mismatched_blocks(table: pd.DataFrame, runs: list[str]) -> list[Block]:
    missing = analysis.mismatched(table, runs)
    return [
        Block("h2", "Mismatched configurations"),
        Block("text", "None: every configuration is present in every run.")
        if missing.empty
        else Block(
            "table", tables.one_device_shown(missing), "Configurations that not every run has"
        ),
    ]


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
    if out is not None:
        out_dir = Path(out)
    else:
        out_dir = first if len(run_dirs) == 1 else first.parent / "comparison"
    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir = out_dir / "figures"
    if len(loaded) == 1:
        ((df, meta),) = loaded
        title = f"UKR benchmark: {first.name}"
        blocks = single_run_blocks(df, meta, fig_dir)
    else:
        title = "UKR benchmark comparison: " + " vs ".join(Path(d).name for d in run_dirs)
        blocks = comparison_blocks([df for df, _ in loaded], fig_dir, [meta for _, meta in loaded])
        for df, meta in loaded:
            blocks.append(Block("h2", f"Run `{df['run'].iloc[0]}`"))
            blocks += single_run_blocks(df, meta, fig_dir, draw=False)
    md_path = out_dir / "report.md"
    md_path.write_text(render_markdown(title, blocks, out_dir))
    (out_dir / "report.html").write_text(render_html(title, blocks, out_dir))
    return md_path
