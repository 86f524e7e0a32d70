"""The mutation-testing record, generated from mutmut's own results (``nox -s mutate`` runs it).

    python benchmarks/mutation_summary.py [--mutants mutants] [--out results/mutation]

Reads mutmut 3's per-file records (``mutants/**/*.py.meta``: each mutant's exit code), maps the
codes to outcomes with mutmut's own table (``killed``, ``survived``, ``no tests``, ``timeout``,
...), and writes

* ``summary.json``: the counts per module and outcome, every surviving mutant's name and diff,
  and the code's version and the machine (:func:`ukr_bench.bench.machine.provenance` and
  :func:`~ukr_bench.bench.machine.machine_metadata`, as every benchmark run records them);
* ``report.md``: the same as tables, shown on the documentation site's findings pages.

Why each survivor is equivalent (or what would kill it) is reasoning, not measurement: it lives
in ``docs/mutation.md``, keyed by the survivor's name, and ``tests/test_mutation_record.py``
fails when a survivor of the committed record has no explanation there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: Outcomes in the order the tables show them; any other outcome mutmut reports follows.
OUTCOMES = ("killed", "survived", "no tests", "timeout", "suspicious", "skipped", "not checked")


def outcomes(meta_files: list[Path], status_by_exit_code: Mapping[Any, str]) -> dict[str, str]:
    """Each mutant's outcome, ``{name: outcome}``, from mutmut's ``.meta`` files."""
    found: dict[str, str] = {}
    for path in meta_files:
        codes = json.loads(path.read_text(encoding="utf-8"))["exit_code_by_key"]
        for name, code in codes.items():
            found[name] = status_by_exit_code[code]
    return found


def module_of(mutant: str) -> str:
    """``ukr_bench.optim.xǁIRpropǁstep__mutmut_3`` -> ``ukr_bench/optim.py``."""
    dotted = (
        mutant.split(".x\u01c1", maxsplit=1)[0]
        if ".x\u01c1" in mutant
        else mutant.rsplit(".", 1)[0]
    )
    return dotted.replace(".", "/") + ".py"


def summarise(found: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """Counts per module and outcome, plus ``score``: killed / (killed + survived), in %."""
    by_module: dict[str, Counter[str]] = {}
    for name, outcome in found.items():
        by_module.setdefault(module_of(name), Counter())[outcome] += 1
    table: dict[str, dict[str, int]] = {}
    for module in sorted(by_module):
        table[module] = dict(by_module[module])
    return table


def score(counts: Mapping[str, int]) -> float | None:
    """Killed over killed + survived, in %: the share of the mutants the tests reached."""
    tested = counts.get("killed", 0) + counts.get("survived", 0)
    return None if tested == 0 else 100.0 * counts.get("killed", 0) / tested


def diff(mutant: str, mutmut: str) -> str:
    """``mutmut show``'s diff of one mutant (run where ``mutants/`` is)."""
    out = subprocess.run([mutmut, "show", mutant], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def render(record: Mapping[str, Any]) -> str:
    """``report.md``: the per-module table and the survivors, from ``summary.json``'s record."""
    table: Mapping[str, Mapping[str, int]] = record["modules"]
    present = [o for o in OUTCOMES if any(o in c for c in table.values())]
    present += sorted({o for c in table.values() for o in c} - set(present))
    prov, machine = record["provenance"], record["machine"]
    dirty = " (uncommitted changes)" if prov.get("dirty") else ""
    lines = [
        "# Mutation testing: the last recorded run",
        "",
        (
            f"mutmut {record['mutmut']}, {record['finished']}, commit `{prov.get('commit')}`{dirty};"
            f" {machine.get('cpu_family') or machine.get('processor') or 'CPU not recorded'},"
            f" {machine.get('cpu_count', '?')} CPUs. Command: `{record['command']}`."
        ),
        "",
        (
            "Score: killed / (killed + survived). Mutants with no tests are in code no selected test"
            " reaches (see the protocol for which tests mutmut runs)."
        ),
        "",
        "| module | " + " | ".join(present) + " | score |",
        "|---|" + "---:|" * (len(present) + 1),
    ]
    totals: Counter[str] = Counter()
    for module, counts in table.items():
        totals.update(counts)
        s = score(counts)
        cells = " | ".join(str(counts.get(o, 0)) for o in present)
        lines.append(f"| `{module}` | {cells} | {'' if s is None else f'{s:.1f} %'} |")
    s = score(totals)
    cells = " | ".join(str(totals.get(o, 0)) for o in present)
    lines.append(f"| total | {cells} | {'' if s is None else f'{s:.1f} %'} |")
    survivors: Mapping[str, str] = record["survivors"]
    lines += ["", f"## The {len(survivors)} survivors", ""]
    if not survivors:
        lines.append("None.")
    for name, text in survivors.items():
        lines += [f"### `{name}`", "", "```diff", text or "(no diff recorded)", "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"), help="mutmut's folder")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "mutation")
    parser.add_argument("--mutmut", default="mutmut", help="the mutmut executable (for diffs)")
    parser.add_argument("--command", default="nox -s mutate", help="the command that ran it")
    args = parser.parse_args(argv)

    from importlib.metadata import version

    from mutmut.__main__ import status_by_exit_code

    from ukr_bench.bench.machine import machine_metadata, provenance

    metas = sorted(args.mutants.rglob("*.py.meta"))
    if not metas:
        parser.error(f"--mutants {args.mutants}: no mutmut results (*.py.meta) there")
    found = outcomes(metas, status_by_exit_code)
    survivors = sorted(name for name, o in found.items() if o == "survived")
    record = {
        "mutmut": version("mutmut"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": args.command,
        "provenance": provenance(),
        "machine": machine_metadata(),
        "modules": summarise(found),
        "survivors": {name: diff(name, args.mutmut) for name in survivors},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    (args.out / "report.md").write_text(render(record), encoding="utf-8")
    print(f"wrote {args.out / 'summary.json'} and report.md: {len(survivors)} survivors")


if __name__ == "__main__":
    main()
