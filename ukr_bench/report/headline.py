"""The README's headline: which backend is fastest at which N, generated from committed runs.

One table answers "which framework, at which N, on CPU and GPU". Each cell (device, dtype, N)
names a winner only where every run that measured the cell names the same one, significantly
faster than each other series within that run (:func:`analysis.winners_per_n`); elsewhere it
is a tie of every series some run put first or tied with the first. Repeated runs of one
sweep (``ukr-bench bench --repeat-runs K``, fresh processes each) are what make a winner worth
naming: run-to-run variation is larger than the spread within a run.

The table sits in the README between two markers; the first names the runs it came from, so
``ukr-bench report --readme README.md`` regenerates it and a test fails when it differs. A
README may hold several such blocks: one for the saddle (D = 3) over N, one for runs across
the data's dimension D, whose rows give the answer per range of D.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from ukr_bench.report import analysis, style
from ukr_bench.report.analysis import OK
from ukr_bench.report.build import SMOKE_MIN_TIME, load_run
from ukr_bench.report.tables import PROBLEM_NAMES, cpu_said, gpus_said
from ukr_bench.schema import RunMeta

#: The start marker, with the runs (paths relative to the README) after ``from:``.
START = "<!-- headline from:"
#: The end marker.
END = "<!-- end of headline -->"
_BLOCK = re.compile(
    re.escape(START) + r"(?P<runs>[^>]*)-->\n(?P<body>.*?)" + re.escape(END), re.DOTALL
)


def cells(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The verdict per device, dtype and N over runs (one frame each, as :func:`load_run`).

    Columns: device, dtype, N, fastest (a series' name, or ``tie: a, b, ...``: the union of
    what the runs tied or disagreed on), runs (how many runs measured the cell usably), x_bound
    (the median over those runs of the fastest time over the machine's bound). Runs of several
    D or L (:func:`style.problems`) get a cell per D and L, and columns ``D``, ``L`` before N.
    """
    by = style.problems(pd.concat(list(frames))) if frames else []
    shown = [PROBLEM_NAMES[c] for c in by]
    verdicts: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for df in frames:
        ok = df[df.status == OK]
        ok = ok[analysis.flag_rows(ok) == ""] if not ok.empty else ok
        for r in cast(list[dict[str, Any]], analysis.winners_per_n(ok, by).to_dict("records")):
            cell = (r["device"], r["dtype"], *(int(r[c]) for c in by), int(r["N"]))
            verdicts.setdefault(cell, []).append(r)
    out = []
    for (device, dtype, *problem, n), runs in sorted(verdicts.items()):
        names = sorted({name for r in runs for name in r["tied"]})
        agreed = len(names) == 1
        out.append({
            "device": device, "dtype": dtype, **dict(zip(shown, problem, strict=True)), "N": n,
            "fastest": names[0] if agreed else "tie: " + ", ".join(names),
            "runs": len(runs),
            "x_bound": float(np.nanmedian([r["x_bound"] for r in runs]))
            if any(np.isfinite(r["x_bound"]) for r in runs) else np.nan,
        })  # fmt: skip
    return pd.DataFrame(out, columns=["device", "dtype", *shown, "N", "fastest", "runs", "x_bound"])


def headline(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """:func:`cells` with neighbouring cells of one verdict (and run count) merged into a range.

    Runs of one D merge consecutive N. Runs of several D merge consecutive D at each N instead,
    so that each row states the answer for a range of D: the question such runs answer.
    """
    per_n = cells(frames)
    dims = [c for c in PROBLEM_NAMES.values() if c in per_n.columns]
    along = "D" if "D" in dims else "N"
    fixed = ["device", "dtype", *(c for c in [*dims, "N"] if c != along)]
    out = []
    for key, g in per_n.groupby(fixed, sort=True):
        rows = g.sort_values(along).to_dict("records")
        start = 0
        for i in range(1, len(rows) + 1):
            same = i < len(rows) and all(rows[i][k] == rows[start][k] for k in ("fastest", "runs"))
            if same:
                continue
            chunk = rows[start:i]
            lo, hi = chunk[0][along], chunk[-1][along]
            shown = sorted({f"{c['x_bound']:.1f}" for c in chunk if np.isfinite(c["x_bound"])},
                           key=float)  # fmt: skip
            out.append({
                **dict(zip(fixed, key, strict=True)),
                along: f"{lo}" if lo == hi else f"{lo}–{hi}",
                "fastest": chunk[0]["fastest"],
                "x bound": "–" if not shown else "–".join(dict.fromkeys([shown[0], shown[-1]])),
                "runs": str(chunk[0]["runs"]),
            })  # fmt: skip
            start = i
    return pd.DataFrame(out, columns=[*fixed, along, "fastest", "x bound", "runs"])


def float32_accuracy(frames: Sequence[pd.DataFrame]) -> str:
    """One sentence: the float32 gradients' relative error against float64 NumPy in the runs."""
    ok = pd.concat([df[(df.status == OK) & (df.dtype == "float32")] for df in frames])
    err = ok["grad_rel_error"].dropna() if "grad_rel_error" in ok.columns else pd.Series()
    if err.empty:
        return "These runs recorded no float32 gradient error."
    return (
        f"float32 gradients agree with float64 NumPy to a relative error of {err.median():.1e} "
        f"(median over every float32 configuration of these runs; largest {err.max():.1e})."
    )


def _machines(frames: Sequence[pd.DataFrame], metas: Sequence[RunMeta]) -> list[str]:
    """Per device kind, the machine and the runs that measured it."""
    lines = []
    for device in sorted({d for df in frames for d in df.device.unique()}):
        runs = [(str(df["run"].iloc[0]), m) for df, m in zip(frames, metas, strict=True)
                if (df.device == device).any()]  # fmt: skip
        meta = runs[0][1]
        where = cpu_said(meta.cpu()) if device == "cpu" else gpus_said(meta)
        names = ", ".join(f"`{r}`" for r, _ in runs)
        lines.append(f"{device}: {where}; {len(runs)} run{'s' * (len(runs) > 1)} ({names}).")
    return lines


def render_headline(run_dirs: Sequence[Path | str]) -> str:
    """The headline's Markdown (a table and its notes) from these runs; smoke runs refused."""
    loaded = [load_run(d) for d in run_dirs]
    for d, (_, meta) in zip(run_dirs, loaded, strict=True):
        min_time = meta.config.get("min_time")
        if isinstance(min_time, (int, float)) and min_time < SMOKE_MIN_TIME:
            msg = f"{d} is a smoke run (min_time {min_time} s): it names no winners"
            raise ValueError(msg)
    frames = [df for df, _ in loaded]
    table = headline(frames)
    per = "device, dtype, N and range of D" if "D" in table.columns else "device, dtype and N"
    notes = [
        (
            f"Fastest value + gradient per {per} (`x bound`: its time over the "
            "machine's bound; `runs`: how many runs measured it). A name only where every run "
            "found it significantly fastest; a tie lists every series some run put first or "
            "could not separate from the first. A series is named by its backend, `blocked` "
            "for the row-blocked layout (else dense), and `manual` or `autodiff` where the "
            "gradient is not the backend's default (autodiff; NumPy's is hand-derived)."
        ),
        float32_accuracy(frames),
        *_machines(frames, [m for _, m in loaded]),
    ]
    return table.to_markdown(index=False) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def _blocks(path: Path) -> list[re.Match[str]]:
    """The headline blocks of the file ``path``; an error naming the markers where it has none."""
    blocks = list(_BLOCK.finditer(path.read_text()))
    if not blocks:
        msg = f"{path} has no headline block: add the lines '{START} RUN_DIR ... -->' and '{END}'"
        raise ValueError(msg)
    return blocks


def update_readme(readme: Path | str, run_dirs: Sequence[Path | str] | None = None) -> bool:
    """Regenerate the headline blocks of ``readme``, each from the runs its start marker names
    (relative to the README), and return whether the file changed.

    A README may hold several blocks (runs of the saddle at D = 3, runs across D), each with
    its own runs. ``run_dirs`` replaces the runs of a README's only block.
    """
    path = Path(readme)
    text = path.read_text()
    blocks = _blocks(path)
    if run_dirs is not None and len(blocks) > 1:
        msg = (
            f"{path} has {len(blocks)} headline blocks: name each block's runs in its marker "
            f"('{START} RUN_DIR ... -->') and regenerate them all without RUN_DIR"
        )
        raise ValueError(msg)
    given = None
    if run_dirs is not None:
        base = path.parent.resolve()
        given = [Path(d).resolve().relative_to(base).as_posix() for d in run_dirs]
    new, end = [], 0
    for block in blocks:
        names = block["runs"].split() if given is None else given
        if not names:
            msg = f"{path}'s headline marker names no run: '{START} RUN_DIR ... -->'"
            raise ValueError(msg)
        body = render_headline([path.parent / n for n in names])
        new += [text[end : block.start()], f"{START} {' '.join(names)} -->\n{body}{END}"]
        end = block.end()
    written = "".join(new) + text[end:]
    path.write_text(written)
    return written != text


def stale(readme: Path | str) -> str | None:
    """None if each headline block of ``readme`` is what its runs give now, else the first
    block that differs, as it should read."""
    path = Path(readme)
    blocks = list(_BLOCK.finditer(path.read_text()))
    if not blocks:
        return "no headline block"
    for block in blocks:
        want = render_headline([path.parent / n for n in block["runs"].split()])
        if block["body"] != want:
            return want
    return None
