"""Reports from small synthetic results: figures, tables, failures shown, runs compared."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ukr_bench.cli import main as cli_main
from ukr_bench.report import scaling_exponent, winners, write_report


def make_run(
    path: Path,
    ns=(100, 200, 400, 800),
    backends=("jax", "numpy", "torch"),
    slow: float = 1.0,
    extra_rows=(),
) -> Path:
    """A results directory whose times follow t = c_backend * N^2 exactly."""
    path.mkdir(parents=True)
    coef = {"jax": 1e-8, "numpy": 2e-8, "torch": 4e-8}
    rows = []
    for b in backends:
        for dtype in ("float32", "float64"):
            for n in ns:
                t = slow * coef[b] * n**2 * (0.5 if dtype == "float32" else 1.0)
                rows.append(
                    {
                        "backend": b,
                        "device": "cpu",
                        "dtype": dtype,
                        "n": n,
                        "status": "ok",
                        "value_median_s": t / 2,
                        "value_and_grad_median_s": t,
                        "value_and_grad_q1_s": 0.9 * t,
                        "value_and_grad_q3_s": 1.1 * t,
                        "value_and_grad_first_s": 10 * t + (0.3 if b == "jax" else 0.0),
                        "grad_ratio": 2.0,
                        "host_peak_bytes": 3 * 8 * n**2,
                        "device_peak_bytes": None,
                        "value_rel_error": 1e-7 if dtype == "float32" else 1e-16,
                        "grad_rel_error": 3e-7 if dtype == "float32" else 1e-15,
                        "samples": {"value_and_grad": [t, t]},
                    }
                )
    rows += list(extra_rows)
    (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    meta = {
        "config": {"data": "saddle", "latent_dim": 2, "sigma": 0.5, "threads": 2},
        "command": ["ukr-bench", "bench"],
        "machine": {"cpu_model": "Test CPU", "versions": {"numpy": "2"}, "gpus": []},
    }
    (path / "meta.json").write_text(json.dumps(meta))
    return path


FAILED = [
    {
        "backend": "torch",
        "device": "cpu",
        "dtype": "float64",
        "n": 1600,
        "status": "oom",
        "reason": "MemoryError: simulated",
    },
    {
        "backend": "torch",
        "device": "cpu",
        "dtype": "float64",
        "n": 3200,
        "status": "skipped",
        "reason": "oom at N=1600: larger N skipped",
    },
]


def test_single_run_report(tmp_path: Path) -> None:
    run = make_run(tmp_path / "cpu-run", extra_rows=FAILED)
    md_path = write_report([run])
    md = md_path.read_text()
    assert md_path == run / "report.md"
    for name in ("time", "speedup", "grad_ratio", "first_call", "memory", "precision"):
        assert (run / "figures" / f"{name}.png").stat().st_size > 10_000
        assert (run / "figures" / f"{name}.svg").exists()
        assert f"figures/{name}.png" in md
    assert "| float64 | cpu | 100–800 | jax | 2.00x |" in re.sub(r" +", " ", md)
    # failures appear with their reasons, never silently missing
    assert "MemoryError: simulated" in md
    assert "oom at N=1600: larger N skipped" in md
    assert "Test CPU" in md
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6  # self-contained
    assert "MemoryError: simulated" in html


def test_single_n_run(tmp_path: Path) -> None:
    run = make_run(tmp_path / "one", ns=(500,))
    md = re.sub(r" +", " ", write_report([run]).read_text())
    assert "| float64 | cpu | 500 | jax | 2.00x | 2.5 ms |" in md
    assert (run / "figures" / "time.png").exists()


def test_scaling_exponent_and_winners() -> None:
    n = np.array([100, 200, 400, 800, 1600])
    assert scaling_exponent(n, 3e-9 * n**2.0) == pytest.approx(2.0)
    assert scaling_exponent(np.array([100]), np.array([1.0])) is None
    import pandas as pd

    ok = pd.DataFrame(
        [
            {
                "backend": "a",
                "dtype": "float64",
                "device": "cpu",
                "n": 1,
                "value_and_grad_median_s": 1.0,
            },
            {
                "backend": "b",
                "dtype": "float64",
                "device": "cpu",
                "n": 1,
                "value_and_grad_median_s": 2.0,
            },
            {
                "backend": "a",
                "dtype": "float64",
                "device": "cpu",
                "n": 2,
                "value_and_grad_median_s": 3.0,
            },
            {
                "backend": "b",
                "dtype": "float64",
                "device": "cpu",
                "n": 2,
                "value_and_grad_median_s": 1.5,
            },
        ]
    )
    w = winners(ok)
    assert list(w["fastest"]) == ["a", "b"]
    assert list(w["lead over the next backend"]) == ["2.00x", "2.00x"]


def test_comparison_with_mismatched_configurations(tmp_path: Path) -> None:
    base = make_run(tmp_path / "before", ns=(100, 200, 400))
    slower = make_run(tmp_path / "after", ns=(200, 400, 800), backends=("jax", "numpy"), slow=2.0)
    md = re.sub(r" +", " ", write_report([base, slower], tmp_path / "cmp").read_text())
    assert "after / before" in md
    assert "| jax | cpu | float64 | 200 | 400 µs | 800 µs | 2.00 |" in md
    assert "| torch | cpu | float64 | 200 | 1.6 ms | absent | – |" in md
    # present in one run only: listed, with where they are
    mismatched = md.split("## Mismatched configurations")[1].split("##")[0]
    assert "| torch | cpu | float64 | 100 | before |" in mismatched
    assert "| jax | cpu | float32 | 800 | after |" in mismatched
    assert "| jax | cpu | float32 | 200 |" not in mismatched
    assert (tmp_path / "cmp" / "figures" / "compare_time.png").exists()


def test_missing_and_malformed_results(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_report([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"has no meta\.json"):
        write_report([tmp_path / "empty"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "meta.json").write_text("{}")
    with pytest.raises(ValueError, match="has no results yet"):
        write_report([bad])
    (bad / "results.jsonl").write_text('{"backend": "jax"}\n')
    with pytest.raises(
        ValueError,
        match=r"malformed: rows lack the column\(s\) \['device', 'dtype', 'n', 'status'\]",
    ):
        write_report([bad])
    with pytest.raises(ValueError, match="at least one"):
        write_report([])


def test_report_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "r")
    assert cli_main(["report", str(run)]) == 0
    assert "report.md" in capsys.readouterr().out
    assert cli_main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
