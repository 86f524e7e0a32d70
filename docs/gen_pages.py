"""The findings pages, generated at build time (mkdocs-gen-files) from the committed runs.

One page per committed run directory under ``results/`` that has a report (``reference_*`` and
``comparison_*``: their ``report.md``; ``scaling_cpu``: ``model.md`` and its figure;
``gradient_profile_cpu``: ``profile.md``), written to ``findings/<run>.md`` with the files the
report links to copied beside it, and ``findings/index.md`` listing them with each run's date,
machine and command from its ``meta.json``. Every word of a findings page comes from the run's
own files or from this script's fixed labels: nothing in them is typed by hand.

Run by ``mkdocs build``; ``python docs/gen_pages.py --check`` prints what it would write.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
OUT = "findings"

# Runs and the one Markdown file each is shown from, in the order the index lists kinds.
KINDS: tuple[tuple[str, str, str], ...] = (
    ("reference_*", "report.md", "Reference runs"),
    ("comparison_*", "report.md", "Comparisons across runs"),
    ("scaling_*", "model.md", "Several devices: measured scaling and the model"),
    ("gradient_profile_*", "profile.md", "Where the gradient's time goes"),
    ("mutation", "report.md", "Mutation testing of the core modules"),
)
# The demo's committed figures (``ukr-bench demo``), shown on the UKR and estimator pages.
DEMO_FIGURES = RESULTS / "figures"
# Figures a run directory holds that its Markdown does not link to, shown after it.
EXTRA_FIGURES = {"model.md": ["scaling.png"]}

# The README's headline block: ukr_bench.report.headline's START marker, its runs, the body,
# its END marker.
HEADLINE_BLOCK = re.compile(
    r"<!-- headline from:(?P<runs>[^>]*)-->\n(?P<body>.*?)<!-- end of headline -->", re.DOTALL
)
_LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")
_TITLE = re.compile(r"^#\s+(.*)$", re.MULTILINE)


@dataclass
class Page:
    run: str
    kind: str
    source: Path
    title: str
    text: str
    files: list[Path] = field(default_factory=list)  # run-relative paths to copy


def tracked(paths: list[Path]) -> set[Path] | None:
    """The ``paths`` git tracks, or None where there is no git checkout to ask."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--", *(str(p.relative_to(ROOT)) for p in paths)],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {ROOT / p for p in out.decode().split("\0") if p}


def find_sources() -> Iterator[tuple[str, Path]]:
    """(kind heading, source Markdown) of every committed run with a report."""
    candidates = [
        (heading, run / name)
        for pattern, name, heading in KINDS
        for run in sorted(RESULTS.glob(pattern))
        if (run / name).is_file()
    ]
    committed = tracked([src for _, src in candidates])
    for heading, src in candidates:
        if committed is None or src in committed:  # a run made here and not committed: left out
            yield heading, src


def rewrite_links(run_dir: Path, text: str, files: list[Path]) -> str:
    """Links to the run's own files point into ``findings/<run>/`` (the file is copied there);
    a link to anything else that does not resolve is replaced by its text."""

    def sub(m: re.Match[str]) -> str:
        label, target = m.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#", target):  # a URL or an anchor: as it is
            return m.group(0)
        path, _, anchor = target.partition("#")
        resolved = (run_dir / path).resolve()
        if resolved.is_file() and resolved.is_relative_to(run_dir.resolve()):
            rel = resolved.relative_to(run_dir.resolve())
            files.append(rel)
            return f"{label}({run_dir.name}/{rel.as_posix()}{'#' + anchor if anchor else ''})"
        return label.lstrip("!").removeprefix("[").removesuffix("]")

    return _LINK.sub(sub, text)


def load_page(heading: str, src: Path) -> Page:
    run_dir = src.parent
    text = src.read_text(encoding="utf-8")
    m = _TITLE.search(text)
    title = m.group(1).strip() if m else run_dir.name
    files: list[Path] = []
    text = rewrite_links(run_dir, text, files)
    for extra in EXTRA_FIGURES.get(src.name, []):
        if (run_dir / extra).is_file():
            files.append(Path(extra))
            text += f"\n\n![{run_dir.name}/{extra}]({run_dir.name}/{extra})\n"
    return Page(run_dir.name, heading, src, title, text, files)


def compared_runs(title: str) -> list[str]:
    """The runs a comparison report names in its title (``comparison: a vs b vs c``)."""
    _, _, names = title.partition(":")
    return [n.strip().strip("`") for n in names.split(" vs ")] if " vs " in names else []


def run_facts(run: str) -> dict[str, str] | None:
    """Date, machine, command and commit of a run, from its ``meta.json`` (None without one)."""
    run_dir = RESULTS / run
    if not (run_dir / "meta.json").is_file():
        return None
    from ukr_bench.schema import read_meta  # the schema's reader: older meta.json upgraded

    meta = read_meta(run_dir)
    m = meta.machine
    cpu = meta.cpu()
    gpus = sorted(
        {str(g.get("name", g)) if isinstance(g, dict) else str(g) for g in m.get("gpus") or []}
    )
    count = len(m.get("gpus") or [])
    machine = cpu.get("family") or cpu.get("model") or "CPU not recorded"
    cores = m.get("cpus_usable") or m.get("cpu_count")
    if cores:
        machine += f", {cores} cores"
    if gpus:
        machine += ", " + ", ".join(f"{count} x {g}" if count > 1 else g for g in gpus)
    prov = meta.provenance or {}
    commit = str(prov.get("commit") or "not recorded")[:12]
    if prov.get("dirty"):
        commit += " (uncommitted changes)"
    return {
        "date": meta.date[:10] if meta.date else "not recorded",
        "machine": machine,
        "command": " ".join(meta.command) or "not recorded",
        "commit": commit,
    }


def header(page: Page) -> str:
    """What the page shows above the report: where it comes from and how the run was made."""
    rel = page.source.relative_to(ROOT).as_posix()
    lines = [f"*Generated from `{rel}` by `docs/gen_pages.py`.*", ""]
    facts = run_facts(page.run)
    if facts:
        lines += [
            f"- **Date**: {facts['date']}",
            f"- **Machine**: {facts['machine']}",
            f"- **Commit**: `{facts['commit']}`",
            f"- **Command**: `{facts['command']}`",
            "",
        ]
    runs = compared_runs(page.title)
    if runs:
        lines += ["Runs compared:", ""]
        for run in runs:
            target = (
                f"[`{run}`]({run}.md)" if (RESULTS / run / "report.md").is_file() else f"`{run}`"
            )
            f = run_facts(run)
            lines.append(f"- {target}" + (f": {f['date']}, {f['machine']}" if f else ""))
        lines.append("")
    return "\n".join(lines)


def page_text(page: Page) -> str:
    """The page: the report's own title, where it comes from, then the report as written."""
    body = _TITLE.sub("", page.text, count=1).lstrip("\n")
    return f"# {page.title}\n\n{header(page)}\n{body}"


def headline_lines() -> list[str]:
    """The README's headline tables, as ``ukr-bench report --readme`` generated them from the
    runs each one names (a test keeps them equal to what those runs give). Read with the
    markers of ``ukr_bench.report.headline`` (tests/test_headline.py checks they are the same)
    but without importing it: the docs environment has no pandas."""
    found = HEADLINE_BLOCK.finditer((ROOT / "README.md").read_text())
    blocks = [(b["runs"].split(), b["body"]) for b in found]
    if not blocks:
        return []
    lines = ["## Which framework: the headline", ""]
    for runs, body in blocks:
        names = ", ".join(f"[{Path(r).name}]({Path(r).name}.md)" for r in runs)
        lines += [f"From {names}:", "", body.rstrip("\n"), ""]
    return lines


def index_text(pages: list[Page]) -> str:
    lines = [
        "# Findings",
        "",
        (
            "One page per committed run under `results/`, generated when the site is built "
            "(`docs/gen_pages.py`) from the run's own report and `meta.json`: tables and figures "
            "as the report code wrote them, the machine the run was measured on and the command "
            "that made it. A single run's page states what that run measured; what held across "
            "runs is on the comparison pages."
        ),
        "",
        *headline_lines(),
    ]
    for _, _, heading in KINDS:
        group = [p for p in pages if p.kind == heading]
        if not group:
            continue
        lines += [f"## {heading}", "", "| page | date | machine | command |", "|---|---|---|---|"]
        for p in group:
            facts = run_facts(p.run)
            if facts is None:
                runs = compared_runs(p.title)
                dated = [f for f in (run_facts(r) for r in runs) if f]
                date = ", ".join(sorted({f["date"] for f in dated})) or "not recorded"
                machine = "; ".join(sorted({f["machine"] for f in dated})) or "not recorded"
                command = "compares " + ", ".join(f"`{r}`" for r in runs) if runs else "on the page"
            else:
                date, machine, command = facts["date"], facts["machine"], f"`{facts['command']}`"
            lines.append(f"| [{p.run}]({p.run}.md) | {date} | {machine} | {command} |")
        lines.append("")
    return "\n".join(lines)


def cli_text() -> str:
    """Every ``ukr-bench`` command's ``--help``, from the parser the command line itself uses."""
    import os

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal's width: fix it
    from ukr_bench.cli import build_parser

    parser = build_parser()
    lines = [
        "# Command line",
        "",
        (
            "`ukr-bench COMMAND --help`, for every command, as the installed command prints it "
            "(generated by `docs/gen_pages.py` from the parser itself; the sweep options' help comes "
            "from `ukr_bench.bench.config.SweepConfig`). `nox -s bench -- ...` and "
            "`nox -s report -- ...` pass the same options."
        ),
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
        "",
    ]
    sub = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    for name, command in sub.choices.items():
        lines += [
            f"## `ukr-bench {name}`",
            "",
            "```text",
            command.format_help().rstrip(),
            "```",
            "",
        ]
    return "\n".join(lines)


def build() -> list[tuple[str, str | Path]]:
    """What to write: (path under docs, Markdown text or the file to copy)."""
    pages = [load_page(heading, src) for heading, src in find_sources()]
    out: list[tuple[str, str | Path]] = [(f"{OUT}/index.md", index_text(pages))]
    out.append(("reference/cli.md", cli_text()))
    out.extend((f"figures/{f.name}", f) for f in sorted(DEMO_FIGURES.glob("*.png")))
    out.extend((f"figures/{f.name}", f) for f in sorted(DEMO_FIGURES.glob("*.gif")))
    for p in pages:
        out.append((f"{OUT}/{p.run}.md", page_text(p)))
        out.extend(
            (f"{OUT}/{p.run}/{f.as_posix()}", p.source.parent / f) for f in dict.fromkeys(p.files)
        )
    return out


def main() -> None:
    if "--check" in sys.argv:
        for path, what in build():
            print(path, "<-", what if isinstance(what, Path) else f"{len(what)} characters")
        return
    import mkdocs_gen_files

    for path, what in build():
        if isinstance(what, Path):
            with mkdocs_gen_files.open(path, "wb") as f:
                f.write(what.read_bytes())
        else:
            with mkdocs_gen_files.open(path, "w") as f:
                f.write(what)


main()
