"""Reports from synthetic runs whose answers are known: t = c_backend * N^2 exactly, so every
ratio, winner, lead and aggregate the report prints can be checked against the arithmetic."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ukr_bench.cli import main as cli_main
from ukr_bench.report import scaling_exponent, winners, write_report
from ukr_bench.report.analysis import speedup
from ukr_bench.report.build import load_run, smoke_banner
from ukr_bench.report.tables import dtype_table, precision_table
from ukr_bench.schema import (
    ConfigKey,
    FitTiming,
    ResultsFileWarning,
    Row,
    RunMeta,
    Status,
    Timing,
    read_meta,
    write_meta,
)

COEF = {"jax": 1e-8, "numpy": 2e-8, "torch": 4e-8}  # seconds per N^2: numpy/jax = 2, torch/jax = 4
GRADIENT = {"jax": "autodiff", "numpy": "manual", "torch": "autodiff"}


def timing(t: float) -> Timing:
    return Timing(first_s=10 * t, compile_s=0.0, median_s=t, iqr_s=0.2 * t, q1_s=0.9 * t,
                  q3_s=1.1 * t, min_s=0.8 * t, max_s=1.3 * t, mean_s=t, stddev_s=0.1 * t,
                  rounds=2)  # fmt: skip


def ok_row(backend: str, dtype: str, n: int, t: float) -> Row:
    key = ConfigKey(backend, "dense", GRADIENT[backend], dtype, "cpu", n)
    return Row(
        key=key, data="saddle", sigma=0.5, lam=0.0, loo=True, threads=2,
        timings={"value_and_grad": timing(t), "value": timing(t / 2)}, grad_ratio=2.0,
        host_peak_bytes=3 * 8 * n**2,
        memory_estimate_bytes=int(3.5 * 8 * n**2),
        value_rel_error=1e-7 if dtype == "float32" else 1e-16,
        # the gradient error grows with N, so median and max over N differ
        grad_rel_error=(n / 100) * 1e-7 if dtype == "float32" else 1e-15,
        fits={"gd": FitTiming(100 * t, 20, 5 * t)},
        # 10 samples spread +-2 % around t: enough for a significant 2x lead, not for a 1 % one
        samples={"value_and_grad": list(t * (1 + np.linspace(-0.02, 0.02, 10)))},
    )  # fmt: skip


def failed_row(backend: str, n: int, status: Status, reason: str) -> Row:
    key = ConfigKey(backend, "dense", GRADIENT[backend], "float64", "cpu", n)
    return Row(key=key, data="saddle", sigma=0.5, lam=0.0, loo=True, threads=2,
               status=status, reason=reason)  # fmt: skip


def make_run(
    path: Path,
    ns=(100, 200, 400, 800),
    backends=("jax", "numpy", "torch"),
    slow: float = 1.0,
    extra_rows=(),
) -> Path:
    """A results directory whose times follow t = c_backend * N^2 (float32 half of float64)."""
    path.mkdir(parents=True)
    rows = [
        ok_row(b, dtype, n, slow * COEF[b] * n**2 * (0.5 if dtype == "float32" else 1.0))
        for b in backends
        for dtype in ("float32", "float64")
        for n in ns
    ]
    rows += list(extra_rows)
    (path / "results.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in rows))
    meta = RunMeta(
        config={"data": "saddle", "latent_dim": 2, "sigma": 0.5, "threads": 2},
        command=["ukr-bench", "bench"],
        provenance={"version": "0.1.0", "commit": "abc123", "dirty": True},
        machine={"cpu_model": "Test CPU", "versions": {"numpy": "2"}, "gpus": []},
    )
    write_meta(path, meta)
    return path


# One row of every failure status, each with its own reason.
FAILED = [
    failed_row("torch", 1600, Status.OOM, "MemoryError: simulated"),
    failed_row("torch", 3200, Status.SKIPPED, "oom at N=1600: larger N skipped"),
    failed_row("jax", 1600, Status.TIMEOUT, "no result within 600 s; worker killed"),
    failed_row(
        "jax", 3200, Status.CRASHED, "worker was killed by SIGKILL during this configuration"
    ),
    failed_row("numpy", 1600, Status.ERROR, "ValueError: boom"),
]


def flat(md: str) -> str:
    return re.sub(r" +", " ", md)


def test_single_run_report(tmp_path: Path) -> None:
    run = make_run(tmp_path / "cpu-run", extra_rows=FAILED)
    md_path = write_report([run])
    md = flat(md_path.read_text())
    assert md_path == run / "report.md"
    for name in ("time", "speedup", "grad_ratio", "first_call", "memory", "fit", "precision"):
        assert (run / "figures" / f"{name}.png").stat().st_size > 10_000
        assert (run / "figures" / f"{name}.svg").exists()
        assert f"figures/{name}.png" in md
    # the winner and its lead are the arithmetic: numpy is 2x jax at every N
    assert "| float64 | cpu | 100–800 | jax | 2.00x | 100 µs, 400 µs, 1.6 ms, 6.4 ms |" in md
    assert "| float32 | cpu | 100–800 | jax | 2.00x | 50 µs, 200 µs, 800 µs, 3.2 ms |" in md
    assert "0 timings flagged as implausible" in md
    # every failure appears with its status and reason, never silently missing
    problems = md.split("## Skipped and failed configurations")[1].split("##")[0]
    for row in FAILED:
        assert f"| {row.key.backend} |" in problems
        assert f"| {row.key.n} | {row.status.value} | {row.reason} |" in problems
    assert "Test CPU" in md
    assert "abc123 (uncommitted changes" in md
    html = (run / "report.html").read_text()
    assert html.count('<img src="figures/') == 7  # linked, not embedded
    assert "MemoryError: simulated" in html
    assert "ValueError: boom" in html


def test_speedup_is_baseline_time_over_backend_time(tmp_path: Path) -> None:
    df, _ = load_run(make_run(tmp_path / "r"))
    s = speedup(df[df.status == "ok"])
    assert s is not None
    by = s.groupby("backend")["speedup"]
    assert by.min()["jax"] == pytest.approx(2.0)  # jax is twice as fast as numpy
    assert by.max()["jax"] == pytest.approx(2.0)
    assert by.min()["numpy"] == pytest.approx(1.0)
    assert by.max()["torch"] == pytest.approx(0.5)  # torch twice as slow
    assert speedup(df[df.backend != "numpy"]) is None  # no baseline, no figure


def test_precision_table_aggregates_over_n(tmp_path: Path) -> None:
    df, _ = load_run(make_run(tmp_path / "r", ns=(100, 200, 400)))
    t = precision_table(df).set_index("backend")
    # gradient errors 1e-7, 2e-7, 4e-7 over N: median 2e-7, max 4e-7
    assert t.loc["jax", "grad_error_median"] == "2.0e-07"
    assert t.loc["jax", "grad_error_max"] == "4.0e-07"
    assert t.loc["torch", "value_error_max"] == "1.0e-07"


def test_single_n_run(tmp_path: Path) -> None:
    run = make_run(tmp_path / "one", ns=(500,))
    md = flat(write_report([run]).read_text())
    # one N: the lead with its bootstrap interval (the samples of both spread by +-2 %)
    assert re.search(
        r"\| float64 \| cpu \| 500 \| jax \| 2\.00x \[1\.9\d–2\.0\d\] \| 2\.5 ms \|", md
    )
    assert (run / "figures" / "time.png").exists()


def test_scaling_exponent_and_winners() -> None:
    n = np.array([100, 200, 400, 800, 1600])
    assert scaling_exponent(n, 3e-9 * n**2.0) == pytest.approx(2.0)
    assert scaling_exponent(n, 5e-9 * n**1.5) == pytest.approx(1.5)
    assert scaling_exponent(np.array([100]), np.array([1.0])) is None

    def r(backend: str, n: int, t: float) -> dict:
        return ok_row(backend, "float64", n, t).to_json()

    ok = pd.DataFrame([r("jax", 1, 1.0), r("numpy", 1, 2.0), r("jax", 2, 3.0), r("numpy", 2, 1.5)])
    w = winners(ok)
    assert list(w["fastest"]) == ["jax", "numpy"]
    assert [s.split(" ")[0] for s in w["lead over the next backend"]] == ["2.00x", "2.00x"]


def test_a_lead_inside_the_noise_is_a_tie() -> None:
    """Medians 3 % apart with samples spread +-20 %: not significant, so no winner is named."""
    from ukr_bench.report.stats import compare

    rng = np.random.default_rng(0)

    def r(backend: str, t: float, spread: float) -> dict:
        row = ok_row(backend, "float64", 1000, t).to_json()
        samples = t * (1 + spread * rng.uniform(-1, 1, 30))
        row["samples"] = {"value_and_grad": list(samples)}
        row["value_and_grad_median_s"] = float(np.median(samples))
        return row

    noisy = pd.DataFrame([r("jax", 1.00, 0.2), r("numpy", 1.03, 0.2), r("torch", 2.0, 0.01)])
    (verdict,) = winners(noisy).to_dict("records")
    assert verdict["fastest"] == "tie: jax, numpy"
    lead = verdict["lead over the next backend"]
    low, high = (float(x) for x in re.findall(r"\[(.*)–(.*)\]", lead)[0])
    assert low < 1.0 < high  # the interval of the ratio straddles 1
    # the same medians with tight samples: significant, but a 3 % lead is under the 5 % threshold
    tight = pd.DataFrame([r("jax", 1.00, 0.001), r("numpy", 1.03, 0.001)])
    assert winners(tight)["fastest"].tolist() == ["tie: jax, numpy"]
    c = compare([1.0] * 5 + [1.001] * 5, [1.03] * 5 + [1.031] * 5)
    assert c.p_value < 0.01
    assert not c.a_faster  # significant, yet within the stated threshold
    # and a clear 2x lead is called
    clear = pd.DataFrame([r("jax", 1.0, 0.01), r("numpy", 2.0, 0.01)])
    assert winners(clear)["fastest"].tolist() == ["jax"]


def test_implausible_rows_are_flagged_shown_and_kept_out_of_winners(tmp_path: Path) -> None:
    from ukr_bench.report.analysis import flag_rows

    run = make_run(tmp_path / "r", ns=(100, 200, 400, 800))
    lines = (run / "results.jsonl").read_text().splitlines()
    rows = [json.loads(x) for x in lines]
    for row in rows:
        if row["backend"] == "jax" and row["dtype"] == "float64" and row["n"] == 400:
            row["grad_ratio"] = 0.5  # value + gradient faster than the value alone
        if row["backend"] == "jax" and row["dtype"] == "float32" and row["n"] == 800:
            row["value_and_grad_median_s"] = 1e-6  # faster than at N = 400
        if row["backend"] == "torch" and row["dtype"] == "float64" and row["n"] == 100:
            row["value_and_grad_iqr_s"] = row["value_and_grad_median_s"]  # IQR 100 % of median
        if row["backend"] == "numpy" and row["dtype"] == "float64" and row["n"] == 800:
            row["host_peak_bytes"] = 0  # the allocator's cache
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    df, _ = load_run(run)
    flags = flag_rows(df)
    flagged = {(r.backend, r.dtype, r.n) for r in df[flags != ""].itertuples()}
    assert ("jax", "float64", 400) in flagged
    assert ("jax", "float32", 800) in flagged
    assert ("torch", "float64", 100) in flagged
    memory = flag_rows(df, memory=True)
    assert {(r.backend, r.n) for r in df[memory != ""].itertuples()} == {("numpy", 800)}
    md = flat(write_report([run]).read_text())
    # 3 planted, and the other 3 rows of jax float32, whose fitted exponent the fall made absurd
    assert "6 timings flagged as implausible" in md
    assert "series' fitted exponent" in md
    assert "1 memory readings flagged" in md
    table = md.split("## Plausibility flags")[1].split("##")[0]
    assert "value + gradient faster than the value alone (0.50)" in table
    assert "faster than at N=400" in table
    assert "IQR 100% of the median" in table
    assert "host memory reading of 0" in table
    # the flagged jax float64 N=400 is not a winner: numpy is the fastest plausible one there
    assert "| float64 | cpu | 400 | numpy |" in md


def test_memory_readings_of_zero_are_gaps(tmp_path: Path) -> None:
    from ukr_bench.report.analysis import peak_memory

    df, _ = load_run(make_run(tmp_path / "r", ns=(100, 200)))
    df.loc[0, "host_peak_bytes"] = 0
    df.loc[1, "device"] = "cuda:0"  # a device row: its host RSS is never used for it
    peak = peak_memory(df)["peak"]
    assert peak.iloc[0] == 0  # fig_memory draws it as a gap (NaN), never at 0 on a log axis
    assert np.isnan(peak.iloc[1])
    assert peak.iloc[2] == pytest.approx(3 * 8 * df.loc[2, "n"] ** 2 / 2**20)


def test_runs_that_disagree_tie_in_the_comparison(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", ns=(100, 200), backends=("jax", "numpy"))
    b = make_run(tmp_path / "b", ns=(100, 200), backends=("jax", "numpy"))
    rows = [json.loads(x) for x in (b / "results.jsonl").read_text().splitlines()]
    for row in rows:  # in run b, numpy wins at N = 200 float64 (jax 10x slower there)
        if row["backend"] == "jax" and row["n"] == 200 and row["dtype"] == "float64":
            row["value_and_grad_median_s"] *= 10
            row["samples"]["value_and_grad"] = [10 * s for s in row["samples"]["value_and_grad"]]
    (b / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    md = flat(write_report([a, b], tmp_path / "cmp").read_text())
    assert "| float64 | cpu | 100 | jax |" in md
    assert "| float64 | cpu | 200 | tie (runs disagree: jax / numpy) |" in md


def test_duplicate_rows_are_reported_and_counted_once(tmp_path: Path) -> None:
    dup = ok_row("jax", "float64", 100, 5e-4)  # a second jax float64 N=100 row, appended last
    run = make_run(tmp_path / "r", extra_rows=[dup])
    df, _ = load_run(run)
    assert len(df[(df.backend == "jax") & (df.dtype == "float64") & (df.n == 100)]) == 1
    assert df.attrs["duplicates"] == ["jax dense autodiff float64 cpu D=3 L=2 N=100"]
    md = write_report([run]).read_text()
    assert "## Duplicate rows" in md
    assert "jax dense autodiff float64 cpu D=3 L=2 N=100" in md
    # the last row appended is the one kept: numpy (2e-4 s) now wins at N = 100
    assert "| float64 | cpu | 100–200 | numpy |" in flat(
        md
    )  # jax at N=200 is flagged: faster than at 100


def test_comparison_with_mismatched_configurations(tmp_path: Path) -> None:
    base = make_run(tmp_path / "before", ns=(100, 200, 400))
    slower = make_run(tmp_path / "after", ns=(200, 400, 800), backends=("jax", "numpy"), slow=2.0)
    md = flat(write_report([base, slower], tmp_path / "cmp").read_text())
    assert "after / before" in md
    variation = md.split("## Run-to-run variation")[1].split("##")[0]
    assert "| jax | dense | autodiff | float64 | cpu | 2.00x | 2.00x |" in variation
    assert "| jax | dense | autodiff | float64 | cpu | 200 | 400 µs | 800 µs | 2.00 |" in md
    assert "| torch | dense | autodiff | float64 | cpu | 200 | 1.6 ms | absent | – |" in md
    # present in one run only: listed, with where they are
    mismatched = md.split("## Mismatched configurations")[1].split("##")[0]
    assert "| torch | dense | autodiff | float64 | cpu | 100 | before |" in mismatched
    assert "| jax | dense | autodiff | float32 | cpu | 800 | after |" in mismatched
    assert "| jax | dense | autodiff | float32 | cpu | 200 |" not in mismatched
    assert (tmp_path / "cmp" / "figures" / "compare_time.png").exists()


def test_a_version_1_run_still_loads(tmp_path: Path) -> None:
    """Runs written before the schema module (no version, no layout/gradient) upgrade on read."""
    run = tmp_path / "v1"
    run.mkdir()
    row = {"backend": "numpy", "device": "cpu", "dtype": "float64", "n": 8, "status": "ok",
           "value_and_grad_median_s": 1e-3, "value_median_s": 5e-4}  # fmt: skip
    (run / "results.jsonl").write_text(json.dumps(row) + "\n")
    meta = {"config": {}, "git": {"id": "abc", "dirty": False, "project": "/home/someone/ukr"}}
    (run / "meta.json").write_text(json.dumps(meta))
    df, m = load_run(run)
    assert (df.iloc[0]["layout"], df.iloc[0]["gradient"]) == ("dense", "manual")
    assert m.provenance == {"commit": "abc", "dirty": False}
    assert "/home/someone" not in json.dumps(m.to_json())


def test_committed_reference_runs_load() -> None:
    root = Path(__file__).resolve().parent.parent / "results"
    runs = [p.parent for p in root.glob("*/results.jsonl")]
    assert runs, "no committed reference run found"
    for run in runs:
        df, meta = load_run(run)
        assert set(df.status) <= {s.value for s in Status}
        assert not df.duplicated(list(ConfigKey.FIELDS)).any()
        assert meta.config


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
    with (
        pytest.warns(
            ResultsFileWarning,
            match=r"line 1: not a row \(no field 'dtype', 'device', 'n', 'status'\)",
        ),
        pytest.raises(ValueError, match=r"holds no readable row: its 1 line\(s\) were all skipped"),
    ):
        write_report([bad])
    (bad / "results.jsonl").write_text('{"backend": "jax", "schema_version": 99}\n')
    with pytest.raises(ValueError, match="line 1: row has schema_version 99, newer than this"):
        write_report([bad])
    with pytest.raises(ValueError, match="at least one"):
        write_report([])


def test_report_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "r")
    assert cli_main(["report", str(run)]) == 0
    assert "report.md" in capsys.readouterr().out
    assert cli_main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_run_whose_every_timing_is_flagged_still_reports(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", ns=(100, 200), backends=("numpy",))
    rows = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
    for row in rows:
        row["grad_ratio"] = 0.5  # every row implausible
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    md = write_report([run]).read_text()
    assert "4 timings flagged as implausible" in md
    assert "no configuration passed the plausibility checks" in md


def test_dtype_table_names_where_float32_is_slower(tmp_path: Path) -> None:
    """float32 is half of float64 everywhere in the synthetic run except numpy at N = 200,
    where it is made 2x *slower* (the issue's anomaly): exactly that configuration is listed,
    with its ratio, and the report shows the table."""
    slow32 = ok_row("numpy", "float32", 200, 2 * COEF["numpy"] * 200**2)
    run = make_run(tmp_path / "run", extra_rows=[slow32])
    df, _ = load_run(run)  # the extra row replaces numpy float32 N = 200 (the last one wins)
    t = dtype_table(df[df.status == "ok"]).set_index("series")
    assert list(t.index) == ["jax cpu", "numpy cpu", "torch cpu"]
    assert t.loc["numpy cpu", "float32 slower at N"].startswith("200 (2.00x [")
    assert t.loc["numpy cpu", "float32 / float64 time"] == "0.50–2.00x"
    assert t.loc["jax cpu", "float32 slower at N"] == ""
    assert t.loc["jax cpu", "float32 / float64 time"] == "0.50x"
    write_report([run], tmp_path / "out")
    assert "float32 slower at N" in (tmp_path / "out" / "report.md").read_text()


def test_a_gradient_ratio_just_under_one_inside_the_noise_is_not_flagged() -> None:
    """With both functions' samples, 'value + gradient faster than the value' needs the test:
    a 0.98 ratio from overlapping samples is plausible (no flag), a 0.8 one from separated
    samples is not."""
    from ukr_bench.report.analysis import flag_rows

    t = 1e-3
    spread = 1 + np.linspace(-0.05, 0.05, 11)
    rows = []
    for n, ratio in ((100, 0.98), (200, 0.8)):
        row = ok_row("torch", "float32", n, t * n / 100).to_json()
        vg = t * n / 100
        row["samples"] = {"value_and_grad": list(vg * spread), "value": list(vg / ratio * spread)}
        row["grad_ratio"] = ratio
        rows.append(row)
    df = pd.DataFrame(rows)
    flags = flag_rows(df).tolist()
    assert "value alone" not in flags[0]
    assert "value + gradient faster than the value alone (0.80)" in flags[1]


def test_a_smoke_run_says_so_and_names_no_winners(tmp_path: Path) -> None:
    run = make_run(tmp_path / "quick")
    meta = read_meta(run)
    assert smoke_banner(meta) == []  # no timing protocol recorded: no claim either way
    write_meta(run, dataclasses.replace(meta, config={**meta.config, "min_time": 0.05}))
    md = write_report([run]).read_text()
    assert "**Smoke run.** Each function was timed for 0.05 s" in md
    assert md.index("Smoke run") < md.index("Figures")
    assert "Fastest backend" not in md
    assert "names no winners" in md
    write_meta(run, dataclasses.replace(meta, config={**meta.config, "min_time": 1.0}))
    md = write_report([run]).read_text()
    assert "Smoke run" not in md
    assert "Fastest backend for value + gradient in this run" in md
    assert "Fitted exponent k of time" in md
