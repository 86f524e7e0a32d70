"""Dependencies by use: the core needs NumPy alone; each extra's entry point says what to install.

``nox -s core`` (run by ``nox -s tests``) checks the same with the wheel in an environment that
has NumPy alone; here the optional packages are made unimportable (``sys.modules[name] = None``)
in a fresh interpreter.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ukr_bench import extras
from ukr_bench.extras import EXTRAS, MissingExtraError, install_hint, pyplot, require, require_extra

ROOT = Path(__file__).resolve().parents[1]
#: Import names of the distributions the extras list, where they differ.
IMPORT_NAMES = {
    "scikit-learn": "sklearn",
    "pytest-benchmark": "pytest_benchmark",
    "py-cpuinfo2": "cpuinfo",
}


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python >= 3.11")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower()


def _resolved(table: dict[str, list[str]], extra: str) -> set[str]:
    """Import names of an extra's packages, self-references (``ukr-bench[report]``) followed."""
    names: set[str] = set()
    for req in table[extra]:
        if _name(req) == "ukr-bench":
            for inner in req[req.index("[") + 1 : req.index("]")].split(","):
                names |= _resolved(table, inner.strip())
        else:
            names.add(IMPORT_NAMES.get(_name(req), _name(req)))
    return names


def test_core_requires_numpy_alone() -> None:
    assert [_name(r) for r in _pyproject()["project"]["dependencies"]] == ["numpy"]


def test_extras_agree_with_pyproject() -> None:
    """:data:`ukr_bench.extras.EXTRAS` (what the errors name) is pyproject.toml's table."""
    table = _pyproject()["project"]["optional-dependencies"]
    assert set(table) == {*EXTRAS, "all", "test"}
    for extra, modules in EXTRAS.items():
        assert _resolved(table, extra) == set(modules), extra
    # all: not KeOps (it compiles C++ at first use) nor Triton (GPU kernels)
    outside = {"keops", "triton"}
    assert _resolved(table, "all") == set().union(*(EXTRAS[e] for e in EXTRAS if e not in outside))


def test_require_imports_or_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require("numpy", "report", "anything").__name__ == "numpy"
    # both: an earlier test may have imported sklearn.base, which import_module then reuses
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.base", None)
    with pytest.raises(MissingExtraError) as info:
        require("sklearn.base", "sklearn", "fitting")
    msg = str(info.value)
    assert msg.startswith("fitting needs scikit-learn (")
    assert msg.endswith(': pip install "ukr-bench[sklearn]"')
    assert isinstance(info.value, ImportError)
    assert (info.value.extra, info.value.name) == ("sklearn", "sklearn.base")


def test_require_extra_lists_every_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    require_extra("report", "the report")  # all installed here: nothing raised, nothing imported
    monkeypatch.setitem(sys.modules, "pandas", None)
    monkeypatch.setitem(sys.modules, "tabulate", None)
    with pytest.raises(
        MissingExtraError,
        match=re.escape(f"the report needs pandas, tabulate: {install_hint('report')}"),
    ):
        require_extra("report", "the report")


def test_pyplot_draws_to_files() -> None:
    plt = pyplot()
    assert plt.__name__ == "matplotlib.pyplot"
    assert plt.get_backend().lower() == "agg"
    assert extras.pyplot() is plt


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def test_core_works_without_any_optional_package() -> None:
    """tests/core_check.py with every optional package unimportable."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "core_check.py"), "--block"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    for extra in ("report", "bench", "sklearn"):
        assert install_hint(extra) in out.stdout


# One package missing at a time: (what cannot be imported, the entry point, the extra it names).
TIMING = "from ukr_bench.schema import Timing; Timing.from_samples([1.0], first_s=1, compile_s=0)"
SURFACE = "from ukr_bench.tutorial import surface_triangles; surface_triangles(None, np.eye(2), 1)"
ENTRY_POINTS = [
    ("pandas", "import ukr_bench.report", "report"),
    ("matplotlib", "import ukr_bench.report.figures", "report"),
    ("tabulate", "from ukr_bench.report import write_report", "report"),
    ("matplotlib", "from ukr_bench.tutorial import run_tutorial; run_tutorial(OUT)", "report"),
    ("scipy", SURFACE, "report"),
    ("pytest_benchmark", TIMING, "bench"),
    ("pandas", "from ukr_bench.schema import write_table; write_table(OUT)", "bench"),
    ("pandas", "from ukr_bench.schema import load_results; load_results(OUT)", "report"),
    ("sklearn", "ukr_bench.UKR", "sklearn"),
    ("sklearn", "from ukr_bench.estimator import UKR", "sklearn"),
    ("sklearn", "import ukr_bench.demo", "sklearn"),
    ("rich", "from ukr_bench.cli.show_backends import run; run(None)", "bench"),
    ("rich", "from ukr_bench.cli.agreement import run; run(None)", "bench"),
    ("rich", "from ukr_bench.cli.bench import run; run(None)", "bench"),  # before any sweep
]


@pytest.mark.parametrize(("blocked", "entry", "extra"), ENTRY_POINTS)
def test_entry_point_names_its_extra(tmp_path: Path, blocked: str, entry: str, extra: str) -> None:
    code = f"""
        import sys
        sys.modules[{blocked!r}] = None
        import numpy as np
        import ukr_bench
        from ukr_bench.extras import MissingExtraError
        OUT = {str(tmp_path)!r}
        v, g = ukr_bench.value_and_grad(np.eye(3), np.eye(3), backend="numpy")
        assert g.shape == (3, 3)
        try:
            {entry}
        except MissingExtraError as e:
            print(e.extra, "|", e)
        else:
            print("nothing raised")
    """
    out = _run(code)
    assert out.returncode == 0, out.stderr
    got_extra, _, message = out.stdout.strip().partition(" | ")
    assert got_extra == extra, out.stdout
    assert message.endswith(install_hint(extra)), message
    assert not any(tmp_path.iterdir()), "files written before the error"
