"""The mutation-testing record: generated from mutmut's results, every survivor explained.

``benchmarks/mutation_summary.py`` turns mutmut's ``.meta`` files into ``results/mutation/``;
``docs/mutation.md`` says why each survivor is equivalent. These tests need no mutmut: the
summary's pure functions run on a fabricated ``.meta`` file, and the committed record is
checked against the explanations and against its own rendering.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "results" / "mutation"
EXPLANATIONS = ROOT / "docs" / "mutation.md"
SEP = "\u01c1"  # mutmut's separator of class and method in a mutant's name


def _summary() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "mutation_summary", ROOT / "benchmarks" / "mutation_summary.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MS = _summary()
#: A subset of mutmut's table of exit codes (mutmut.__main__.status_by_exit_code).
STATUS = {1: "killed", 0: "survived", 33: "no tests", 36: "timeout", None: "not checked"}


def test_module_of_names_the_file() -> None:
    assert MS.module_of(f"ukr_bench.optim.x{SEP}IRprop{SEP}step__mutmut_3") == "ukr_bench/optim.py"
    assert MS.module_of("ukr_bench.problem.x_check_int__mutmut_2") == "ukr_bench/problem.py"
    method = f"backends.numpy_backend.x{SEP}NumpyBackend{SEP}predict__mutmut_1"
    assert MS.module_of(method) == "backends/numpy_backend.py"


def test_counts_and_score_from_meta_files(tmp_path: Path) -> None:
    codes = {
        f"ukr_bench.optim.x{SEP}IRprop{SEP}step__mutmut_1": 1,
        f"ukr_bench.optim.x{SEP}IRprop{SEP}step__mutmut_2": 0,
        f"ukr_bench.optim.x{SEP}IRprop{SEP}step__mutmut_3": 1,
        "ukr_bench.problem.x_check__mutmut_1": 33,
        "ukr_bench.problem.x_check__mutmut_2": 36,
    }
    meta = tmp_path / "optim.py.meta"
    meta.write_text(json.dumps({"exit_code_by_key": codes}), encoding="utf-8")
    found = MS.outcomes([meta], STATUS)
    table = MS.summarise(found)
    assert table == {
        "ukr_bench/optim.py": {"killed": 2, "survived": 1},
        "ukr_bench/problem.py": {"no tests": 1, "timeout": 1},
    }
    assert MS.score(table["ukr_bench/optim.py"]) == pytest.approx(200 / 3)
    assert MS.score(table["ukr_bench/problem.py"]) is None  # nothing reached by a test


def test_render_lists_every_survivor_and_the_totals() -> None:
    record = {
        "mutmut": "3.8.1",
        "finished": "2026-12-02T06:00:00+00:00",
        "command": "nox -s mutate",
        "provenance": {"commit": "abc", "dirty": False},
        "machine": {"cpu_family": "Intel Xeon", "cpu_count": 2},
        "modules": {"a.py": {"killed": 3, "survived": 1}, "b.py": {"killed": 1, "no tests": 2}},
        "survivors": {"a.x_f__mutmut_1": "- x\n+ y"},
    }
    text = MS.render(record)
    assert "| `a.py` | 3 | 1 | 0 | 75.0 % |" in text
    assert "| total | 4 | 1 | 2 | 80.0 % |" in text
    assert "### `a.x_f__mutmut_1`" in text
    assert "+ y" in text
    assert "commit `abc`;" in text
    assert "Intel Xeon, 2 CPUs" in text


def _record() -> dict[str, object]:
    path = RECORD / "summary.json"
    if not path.is_file():
        pytest.skip("no committed mutation record (nox -s mutate writes results/mutation/)")
    record: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return record


def test_committed_report_is_the_rendering_of_its_record() -> None:
    record = _record()
    assert (RECORD / "report.md").read_text(encoding="utf-8") == MS.render(record)


def test_every_survivor_is_explained_and_no_explanation_is_stale() -> None:
    """docs/mutation.md names each survivor of the record (in backticks) with its reason, and
    names no mutant that the record does not list as surviving."""
    survivors = set(_record()["survivors"])  # type: ignore[call-overload]
    text = EXPLANATIONS.read_text(encoding="utf-8")
    named = set(re.findall(r"`([\w.\u01c1]+__mutmut_\d+)`", text))
    assert survivors - named == set(), "survivors without an explanation in docs/mutation.md"
    assert named - survivors == set(), "docs/mutation.md explains mutants that no longer survive"
