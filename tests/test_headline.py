"""The README's headline table: generated from the committed runs it names, winners only where
every run agrees, and a test that fails when the README holds anything else."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report_analysis import frame, row

from ukr_bench.cli import main
from ukr_bench.report import headline as hl

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_headline_is_what_its_committed_runs_give() -> None:
    """Reference: the committed runs the README's marker names, through the report code now."""
    want = hl.stale(ROOT / "README.md")
    assert want is None, (
        "README.md's headline differs from its runs; regenerate it with "
        "`ukr-bench report --readme README.md`. It should read:\n" + str(want)
    )


def _run(name: str, *rows: dict[str, object]) -> pd.DataFrame:
    df = frame(*rows)
    df["run"] = name
    return df


def _cell(backend: str, n: int, t: float, **kw: object) -> dict[str, object]:
    """A row whose time grows as N^2 (``t`` at N = 100), so no plausibility flag fires."""
    return row(backend, n, t * (n / 100) ** 2, **kw)


def test_a_winner_only_where_every_run_names_it() -> None:
    # n = 100: both runs find jax clearly fastest; n = 200: they disagree; n = 400: one run ties.
    a = _run("a", _cell("jax", 100, 1.0, bound_s=0.5), _cell("torch", 100, 2.0),
             _cell("jax", 200, 1.0), _cell("torch", 200, 2.0),
             _cell("jax", 400, 1.0), _cell("torch", 400, 1.01))  # fmt: skip
    b = _run("b", _cell("jax", 100, 1.0, bound_s=0.25), _cell("torch", 100, 2.0),
             _cell("jax", 200, 2.0), _cell("torch", 200, 1.0),
             _cell("jax", 400, 1.0), _cell("torch", 400, 1.5))  # fmt: skip
    cells = hl.cells([a, b]).set_index("N")
    assert cells.loc[100, "fastest"] == "jax"
    assert cells.loc[200, "fastest"] == "tie: jax, torch"
    assert cells.loc[400, "fastest"] == "tie: jax, torch"
    assert (cells["runs"] == 2).all()
    assert cells.loc[100, "x_bound"] == pytest.approx(3.0)  # the median of 2 and 4
    assert np.isnan(cells.loc[200, "x_bound"])


def test_consecutive_n_of_one_verdict_merge_and_run_counts_split() -> None:
    def pair(n: int, **kw: object) -> list[dict[str, object]]:
        return [_cell("jax", n, 1.0, **kw), _cell("torch", n, 2.0)]

    a = _run("a", *pair(100, bound_s=0.5), *pair(200, bound_s=1.0), *pair(400, bound_s=2.0))
    b = _run("b", *pair(100), *pair(200))
    table = hl.headline([a, b])
    assert table[["N", "fastest", "runs"]].to_dict("records") == [
        {"N": "100–200", "fastest": "jax", "runs": "2"},
        {"N": "400", "fastest": "jax", "runs": "1"},  # measured by one run: said so
    ]
    assert table["x bound"].tolist() == ["2.0–4.0", "8.0"]


def test_runs_across_d_merge_consecutive_d_at_each_n() -> None:
    """Several D: each row is a range of D at one N (the answer per D range), not a range of N."""

    def pair(n: int, d: int, fast: str, slow: str) -> list[dict[str, object]]:
        def one(backend: str, t: float) -> dict[str, object]:
            gradient = "manual" if backend == "numpy" else "autodiff"  # each one's default
            return _cell(backend, n, t, gradient=gradient, data_dim=d, latent_dim=2)

        return [one(fast, 1.0), one(slow, 2.0)]

    # N = 100: jax at D = 3 and 16, numpy from D = 64; N = 200: jax at every D.
    a = _run("a", *pair(100, 3, "jax", "numpy"), *pair(100, 16, "jax", "numpy"),
             *pair(100, 64, "numpy", "jax"), *pair(100, 256, "numpy", "jax"),
             *pair(200, 3, "jax", "numpy"), *pair(200, 64, "jax", "numpy"))  # fmt: skip
    table = hl.headline([a])
    assert list(table.columns) == ["device", "dtype", "N", "D", "fastest", "x bound", "runs"]
    assert table[["N", "D", "fastest"]].to_dict("records") == [
        {"N": 100, "D": "3–16", "fastest": "jax"},
        {"N": 100, "D": "64–256", "fastest": "numpy"},
        {"N": 200, "D": "3–64", "fastest": "jax"},
    ]


def test_a_readme_with_two_blocks_regenerates_each_from_its_own_runs(tmp_path: Path) -> None:
    readme = _readme_with_runs(tmp_path, "reference_h200", "reference_cpu")
    readme.write_text(
        f"# x\n\n{hl.START} results/reference_h200 -->\nstale\n{hl.END}\n\nmiddle\n\n"
        f"{hl.START} results/reference_cpu -->\nstale too\n{hl.END}\n\nafter\n"
    )
    assert hl.stale(readme) is not None
    assert hl.update_readme(readme)
    text = readme.read_text()
    first, second = text.split("middle")
    assert "| cuda" in first
    assert "| cpu" not in first
    assert "| cpu" in second
    assert "| cuda" not in second
    assert "stale" not in text
    assert text.endswith("\n\nafter\n")
    assert hl.stale(readme) is None
    with pytest.raises(ValueError, match="has 2 headline blocks"):
        hl.update_readme(readme, [tmp_path / "results" / "reference_cpu"])


def test_float32_accuracy_is_read_from_the_runs() -> None:
    runs = [_run("a", row("jax", 100, dtype="float32", grad_rel_error=2e-7),
                 row("torch", 100, dtype="float32", grad_rel_error=6e-7),
                 row("jax", 100, dtype="float64", grad_rel_error=1e-3))]  # fmt: skip
    said = hl.float32_accuracy(runs)
    assert "4.0e-07" in said  # median of the float32 rows only
    assert "6.0e-07" in said
    assert "no float32" in hl.float32_accuracy([_run("a", row("jax", 100))])


def _readme_with_runs(tmp_path: Path, *runs: str) -> Path:
    for r in runs:
        shutil.copytree(ROOT / "results" / r, tmp_path / "results" / r,
                        ignore=shutil.ignore_patterns("figures", "*.html", "*.log"))  # fmt: skip
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n\n{hl.START} -->\nstale\n{hl.END}\n\nafter\n")
    return readme


def test_update_readme_writes_between_the_markers_only(tmp_path: Path) -> None:
    readme = _readme_with_runs(tmp_path, "reference_h200")
    assert hl.update_readme(readme, [tmp_path / "results" / "reference_h200"])
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n\n")
    assert text.endswith("\n\nafter\n")
    assert f"{hl.START} results/reference_h200 -->" in text
    assert "| cuda" in text
    assert "stale" not in text
    assert hl.stale(readme) is None
    assert not hl.update_readme(readme)  # from the marker's runs: unchanged


def test_cli_readme_and_its_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = _readme_with_runs(tmp_path, "reference_h200")
    run = str(tmp_path / "results" / "reference_h200")
    assert main(["report", "--readme", str(readme), run]) == 0
    assert "headline updated" in capsys.readouterr().out
    for argv, said in [
        (["report", "--readme", str(readme), "--out", str(tmp_path)], "--out does not apply"),
        (["report", "--readme", str(tmp_path / "nope.md")], "is not a file"),
        (["report", "--readme", str(readme), str(tmp_path / "nope")], "does not exist"),
        (["report"], "RUN_DIR: give at least one"),
    ]:
        assert main(argv) == 2
        assert said in capsys.readouterr().err
    readme.write_text("no markers\n")
    assert main(["report", "--readme", str(readme)]) == 2
    assert "has no headline block" in capsys.readouterr().err
    readme.write_text(f"{hl.START} -->\n{hl.END}\n")
    assert main(["report", "--readme", str(readme)]) == 2
    assert "names no run" in capsys.readouterr().err


def test_a_smoke_run_names_no_winners(tmp_path: Path) -> None:
    readme = _readme_with_runs(tmp_path, "reference_h200")
    meta = tmp_path / "results" / "reference_h200" / "meta.json"
    meta.write_text(meta.read_text().replace('"min_time": 0.5', '"min_time": 0.05'))
    with pytest.raises(ValueError, match="smoke run"):
        hl.update_readme(readme, [tmp_path / "results" / "reference_h200"])


def test_the_readme_python_runs() -> None:
    """The README's Python block, as a user would paste it (its claims are its outputs)."""
    text = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert blocks, "README.md has no Python example"
    for code in blocks:
        scope: dict[str, object] = {}
        exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the project's own README
    assert scope["grad"].shape == (500, 2)  # type: ignore[attr-defined]
    assert scope["Z_fit"].shape == (500, 2)  # type: ignore[attr-defined]


def test_the_findings_index_shows_the_readme_headline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The site's findings index repeats each README headline block, linked to its runs' pages."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("gen_pages", ROOT / "docs" / "gen_pages.py")
    assert spec is not None
    assert spec.loader is not None
    gen_pages = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gen_pages", gen_pages)  # its dataclasses look it up
    monkeypatch.setattr(sys, "argv", ["gen_pages.py", "--check"])  # it runs on import: a dry run
    spec.loader.exec_module(gen_pages)
    marked = f"{hl.START} results/a results/b -->\nbody\n{hl.END}"  # the same markers
    assert gen_pages.HEADLINE_BLOCK.fullmatch(marked)["runs"].split() == ["results/a", "results/b"]
    shown = "\n".join(gen_pages.headline_lines())
    text = (ROOT / "README.md").read_text()
    blocks = list(hl._BLOCK.finditer(text))
    assert blocks
    assert [b.span() for b in gen_pages.HEADLINE_BLOCK.finditer(text)] == [b.span() for b in blocks]
    for block in blocks:
        assert block["body"].rstrip("\n") in shown
        for run in block["runs"].split():
            assert f"({Path(run).name}.md)" in shown
