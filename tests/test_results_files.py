"""Results that say which CPU they came from, and bad results files that never crash a report.

Issue 21, parts 2 and 3: the CPU's vendor, family and SIMD features are recorded and shown in
every machine table, a comparison warns when its runs ran on different CPUs (or GPUs); a line
of ``results.jsonl`` that holds no row is skipped with a warning naming the file and line (and
the report counts what was read), a field of the wrong type is a one-line error naming the file,
line and field, and a comparison says which run did not measure a configuration instead of
calling it a tie.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from test_report import flat, make_run

from ukr_bench.cli import main as cli_main
from ukr_bench.report import write_report
from ukr_bench.report.build import load_run, single_run_blocks
from ukr_bench.report.render import render_markdown
from ukr_bench.report.stats import consensus
from ukr_bench.report.tables import machine_table
from ukr_bench.schema import (
    SIMD_FLAGS,
    ResultsFileError,
    ResultsFileWarning,
    RunMeta,
    describe_cpu,
    done_keys,
    read_meta,
    read_raw_rows,
    read_rows,
    write_meta,
)

ROWS = 2 * 2 * 2  # make_run below: 2 backends x 2 dtypes x 2 N


def small_run(path: Path, **kw: object) -> Path:
    return make_run(path, ns=(100, 200), backends=("jax", "numpy"), **kw)  # type: ignore[arg-type]


def lines_of(run: Path) -> list[str]:
    return (run / "results.jsonl").read_text().splitlines()


def write_lines(run: Path, lines: list[str], *, newline_at_end: bool = True) -> None:
    (run / "results.jsonl").write_text("\n".join(lines) + ("\n" if newline_at_end else ""))


def summary_of(run: Path) -> str:
    """The single-run report's Markdown, without its figures (drawing them is slow)."""
    df, meta = load_run(run)
    return flat(render_markdown("r", single_run_blocks(df, meta, run, draw=False), run))


# --------------------------------------------------------------------------- lines with no row


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (
            "this is not json",
            r"not JSON \(a row cut short by a kill, if the run was resumed after it\)",
        ),
        (
            '{"foo": 1}',
            r"not a row \(no field 'backend', 'gradient', 'dtype', 'device', 'n', 'status'\)",
        ),
        ("[1, 2]", r"not a row \(a JSON list, not an object\)"),
    ],
)
def test_a_line_that_holds_no_row_is_warned_about_and_not_counted(
    tmp_path: Path, bad: str, why: str
) -> None:
    run = small_run(tmp_path / "r")
    lines = lines_of(run)
    write_lines(run, [*lines[:4], bad, *lines[4:]])  # line 5 of ROWS + 1
    path = run / "results.jsonl"
    with pytest.warns(
        ResultsFileWarning, match=rf"^{re.escape(str(path))}, line 5: {why}: skipped$"
    ):
        assert len(read_raw_rows(run)) == ROWS
    with pytest.warns(ResultsFileWarning, match=r"line 5: "):
        md = summary_of(run)
    assert (
        f"{ROWS} configurations measured (1 line(s) of results.jsonl held no row and were "
        "skipped: see Unreadable lines)" in md
    )
    unreadable = md.split("## Unreadable lines")[1].split("##")[0]
    assert "| 5 | not " in unreadable


def test_a_half_written_last_line_warns_and_the_report_still_works(tmp_path: Path) -> None:
    """What a kill while appending leaves: expected, so warned about, never an error."""
    run = small_run(tmp_path / "r")
    write_lines(run, [*lines_of(run), '{"backend": "numpy", "dev'], newline_at_end=False)
    with pytest.warns(ResultsFileWarning, match=rf"line {ROWS + 1}: cut short"):
        assert len(read_rows(run)) == ROWS
    with pytest.warns(ResultsFileWarning, match=rf"line {ROWS + 1}: cut short"):
        assert len(done_keys(run)) == ROWS  # what --resume reads: the cut row is redone
    with pytest.warns(ResultsFileWarning, match="cut short"):
        assert f"{ROWS} configurations measured (1 line(s)" in summary_of(run)


def test_a_file_of_lines_without_rows_is_an_error_that_says_so(tmp_path: Path) -> None:
    run = small_run(tmp_path / "r")
    write_lines(run, ["garbage", '{"foo": 1}'])
    with (
        pytest.warns(ResultsFileWarning),
        pytest.raises(ValueError, match=r"holds no readable row: its 2 line\(s\) were all skipped"),
    ):
        load_run(run)


# --------------------------------------------------------------------------- wrong fields


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("n", "lots", 'must be a positive integer, got "lots"'),
        ("n", 0, "must be a positive integer, got 0"),
        ("devices", True, "must be a positive integer, got true"),
        ("backend", 3, "must be a non-empty string, got 3"),
        ("status", "fine", "must be one of ok, skipped, error, oom, timeout, crashed"),
        ("value_and_grad_median_s", "fast", 'must be a number or null, got "fast"'),
        ("value_and_grad_rounds", 2.5, "must be an integer or null, got 2.5"),
        ("grad_rel_error", [1], "must be a number or null, got [1]"),
        ("loo", "yes", 'must be true, false or null, got "yes"'),
        ("samples", {"value": ["x"]}, "must be an object of lists of numbers"),
        ("schema_version", "3", 'must be an integer, got "3"'),
    ],
)
def test_a_field_of_the_wrong_type_names_file_line_and_field(
    tmp_path: Path, field: str, value: object, expected: str
) -> None:
    run = small_run(tmp_path / "r")
    lines = lines_of(run)
    row = json.loads(lines[2])
    row[field] = value
    write_lines(run, [*lines[:2], json.dumps(row), *lines[3:]])
    where = f"{run / 'results.jsonl'}, line 3: field '{field}' "
    for read in (read_raw_rows, read_rows, load_run):
        with pytest.raises(ResultsFileError) as info:
            read(run)
        assert str(info.value).startswith(where + expected), str(info.value)


def test_the_report_command_ends_a_wrong_field_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = small_run(tmp_path / "r")
    lines = lines_of(run)
    row = json.loads(lines[0])
    row["n"] = "lots"
    write_lines(run, [json.dumps(row), *lines[1:]])
    assert cli_main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        (
            f"ukr-bench report: error: {run / 'results.jsonl'}, line 1: field 'n' must be a "
            'positive integer, got "lots"'
        )
    ]


def test_a_row_that_lacks_a_field_its_record_needs_names_it(tmp_path: Path) -> None:
    run = small_run(tmp_path / "r")
    lines = lines_of(run)
    row = json.loads(lines[1])
    del row["value_and_grad_iqr_s"]  # a median without the rest of its statistics
    write_lines(run, [lines[0], json.dumps(row), *lines[2:]])
    with pytest.raises(ResultsFileError, match=r"line 2: row lacks field 'value_and_grad_iqr_s'"):
        read_rows(run)


# --------------------------------------------------------------------------- comparisons


def test_a_configuration_one_run_did_not_measure_is_not_a_tie(tmp_path: Path) -> None:
    a = small_run(tmp_path / "a")
    b = small_run(tmp_path / "b")
    # run b measured float64 NumPy only
    keep = [x for x in lines_of(b) if '"backend": "numpy"' in x and '"dtype": "float64"' in x]
    write_lines(b, keep)
    md = flat(write_report([a, b], tmp_path / "cmp").read_text())
    fastest = md.split("Fastest backend at each N in every run")[1].split("**")[1]
    assert "| float32 | cpu | 100 | not measured in run b (a: jax) |" in fastest
    assert "| float32 | cpu | 200 | not measured in run b (a: jax) |" in fastest
    assert "tie (runs disagree: jax)" not in md
    assert "tie (runs disagree: numpy)" not in md


def test_consensus_names_missing_and_unusable_runs() -> None:
    on = ["dtype", "device", "N"]
    a = pd.DataFrame({"dtype": ["float32", "float64", "float64"], "device": "cpu",
                      "N": [100, 100, 200], "fastest": ["jax", "numpy", "jax"]})  # fmt: skip
    # b has float64 N = 200 rows but none usable (failed or flagged), no float32 at all
    b = pd.DataFrame({"dtype": ["float64", "float64"], "device": "cpu", "N": [100, 200],
                      "fastest": ["numpy", None]})  # fmt: skip
    c = pd.DataFrame({"dtype": ["float64"], "device": "cpu", "N": [100], "fastest": ["jax"]})
    got = consensus([a, b, c], on, "fastest", names=["a", "b", "c"]).set_index(on)["fastest"]
    assert got[("float32", "cpu", 100)] == "not measured in runs b, c (a: jax)"
    assert got[("float64", "cpu", 100)] == "tie (runs disagree: numpy / numpy / jax)"
    assert got[("float64", "cpu", 200)] == (
        "not measured in run c; no usable timing in run b (a: jax)"
    )
    with pytest.raises(ValueError, match="must name each of the 3 tables"):
        consensus([a, b, c], on, "fastest", names=["a"])


# --------------------------------------------------------------------------- the CPU

XEON = {"vendor_id_raw": "GenuineIntel", "brand_raw": "Intel(R) Xeon(R) Platinum 8480C",
        "family": 6, "model": 143}  # fmt: skip
EPYC = {"vendor_id_raw": "AuthenticAMD", "brand_raw": "AMD EPYC 7763 64-Core Processor",
        "family": 25, "model": 1}  # fmt: skip


def test_describe_cpu_names_vendor_family_and_simd() -> None:
    # /proc/cpuinfo names (avx512_vnni) and py-cpuinfo's (avx512vnni) both count
    flags = ["fpu", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512vnni", "amx_tile", "aes"]
    assert describe_cpu(XEON, flags) == {
        "cpu_vendor": "Intel",
        "cpu_family": "Intel Xeon (family 6, model 143)",
        "cpu_simd": ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_tile"],
    }
    assert describe_cpu(EPYC, ["sse4_2", "avx", "avx2", "fma", "fma4"]) == {
        "cpu_vendor": "AMD",
        "cpu_family": "AMD EPYC (family 25, model 1)",
        "cpu_simd": ["sse4_2", "avx", "avx2", "fma"],
    }
    # unknown flags are not recorded, which is not the same as none
    assert describe_cpu({}, None) == {"cpu_vendor": None, "cpu_family": None, "cpu_simd": None}
    assert describe_cpu({"brand_raw": "Neoverse-N1"}, ["asimd"])["cpu_simd"] == ["asimd"]


def test_the_metadata_records_this_machines_cpu() -> None:
    from ukr_bench.bench.machine import machine_metadata
    from ukr_bench.system import cpu_flags

    m = machine_metadata()
    assert set(m) >= {"cpu_model", "cpu_vendor", "cpu_family", "cpu_simd"}
    assert "flags" not in m["machine"]["cpu"]  # hundreds of them: only the SIMD ones are kept
    flags = cpu_flags()
    if flags is not None:  # Linux: what the kernel says this CPU has, in SIMD_FLAGS' order
        assert m["cpu_simd"] == [f for f in SIMD_FLAGS if f in flags]
    if m["machine"]["cpu"].get("vendor_id_raw") in ("GenuineIntel", "AuthenticAMD"):
        assert m["cpu_vendor"] in ("Intel", "AMD")
        assert f"(family {m['machine']['cpu']['family']}, model " in m["cpu_family"]


def test_the_machine_record_keeps_the_fields_of_the_committed_runs() -> None:
    # The platform and CPU were pytest-benchmark's plugin hook's record; they are collected
    # from platform and py-cpuinfo now, with the same fields in the same order.
    from ukr_bench.bench.machine import machine_metadata

    root = Path(__file__).resolve().parent.parent / "results"
    committed = read_meta(next(iter(sorted(root.glob("*/meta.json")))).parent).machine
    m = machine_metadata()
    assert list(m["machine"]) == list(committed["machine"])
    assert set(m) == set(committed) | {"cpu_vendor", "cpu_family", "cpu_simd"}
    assert set(m["machine"]["cpu"]) >= {"brand_raw", "vendor_id_raw", "family", "model", "count"}
    hook = pytest.importorskip("pytest_benchmark.plugin").pytest_benchmark_generate_machine_info
    expected = hook()
    expected_cpu = expected.pop("cpu")
    expected_cpu.pop("flags", None)
    cpu = m["machine"]["cpu"]
    assert {k: v for k, v in m["machine"].items() if k != "cpu"} == expected
    assert set(cpu) == set(expected_cpu)  # its clock frequencies may differ from call to call
    assert {k: cpu[k] for k in ("brand_raw", "family", "model")} == {
        k: expected_cpu[k] for k in ("brand_raw", "family", "model")
    }


def intel_meta() -> dict[str, object]:
    return {"cpu_model": "Intel(R) Xeon(R) Platinum 8480C", "gpus": [],
            **describe_cpu(XEON, ["avx", "avx2", "fma", "avx512f"])}  # fmt: skip


def amd_meta() -> dict[str, object]:
    return {"cpu_model": "AMD EPYC 7763 64-Core Processor", "gpus": [],
            **describe_cpu(EPYC, ["avx", "avx2", "fma"])}  # fmt: skip


def test_every_machine_table_shows_cpu_family_and_simd() -> None:
    table = machine_table(RunMeta(machine=intel_meta())).set_index("")["value"]
    assert table["CPU family"] == "Intel Xeon (family 6, model 143)"
    assert table["CPU SIMD features"] == "AVX, AVX2, FMA, AVX-512F"
    # a run made before these were recorded: "not recorded", or what py-cpuinfo kept
    old = machine_table(RunMeta(machine={"cpu_model": "Some CPU"})).set_index("")["value"]
    assert (old["CPU family"], old["CPU SIMD features"]) == ("not recorded", "not recorded")
    kept = RunMeta(machine={"machine": {"cpu": XEON}, "cpu_model": XEON["brand_raw"]})
    assert kept.cpu() == {"model": XEON["brand_raw"], "vendor": "Intel",
                          "family": "Intel Xeon (family 6, model 143)", "simd": None}  # fmt: skip


def test_the_committed_runs_name_their_cpu() -> None:
    root = Path(__file__).resolve().parent.parent / "results"
    for meta_file in root.glob("*/meta.json"):
        cpu = read_meta(meta_file.parent).cpu()
        assert cpu["vendor"] == "Intel"
        assert cpu["family"] == "Intel Xeon (family 6, model 207)"


def with_machine(run: Path, machine: dict[str, object]) -> Path:
    meta = read_meta(run)
    meta.machine = machine
    write_meta(run, meta)
    return run


def test_a_comparison_warns_when_its_runs_ran_on_different_cpus(tmp_path: Path) -> None:
    a = with_machine(small_run(tmp_path / "a"), intel_meta())
    b = with_machine(small_run(tmp_path / "b"), amd_meta())
    md = flat(write_report([a, b], tmp_path / "cmp").read_text())
    compared = md.split("## Runs compared")[1].split("##")[0]
    assert "Warning: these runs ran on different CPUs (`a`: Intel(R) Xeon(R) Platinum 8480C " in (
        compared
    )
    assert "`b`: AMD EPYC 7763 64-Core Processor (AMD EPYC (family 25, model 1); SIMD: AVX, " in (
        compared
    )
    assert "different GPUs" not in compared
    # every per-run section's machine table names its CPU's family and SIMD features
    assert md.count("| CPU family ") == 2
    assert "| CPU SIMD features | AVX, AVX2, FMA, AVX-512F |" in md
    assert "| CPU SIMD features | AVX, AVX2, FMA |" in md


def test_a_comparison_warns_when_only_the_simd_features_differ(tmp_path: Path) -> None:
    a = with_machine(small_run(tmp_path / "a"), intel_meta())
    b = with_machine(small_run(tmp_path / "b"), intel_meta() | {"cpu_simd": ["avx", "avx2"]})
    md = flat(write_report([a, b], tmp_path / "cmp").read_text())
    assert "Warning: these runs ran on different CPUs" in md


def test_a_comparison_of_one_cpu_says_so_and_warns_for_a_gpu(tmp_path: Path) -> None:
    a = with_machine(small_run(tmp_path / "a"), intel_meta())
    b = with_machine(small_run(tmp_path / "b"), intel_meta())
    md = flat(write_report([a, b], tmp_path / "cmp").read_text())
    assert "Warning" not in md
    assert "Every run was measured on the same kind of machine: Intel(R) Xeon(R)" in md
    gpu = intel_meta() | {"gpus": [{"name": "NVIDIA H200", "driver_version": "570"}]}
    with_machine(b, gpu)
    md = flat(write_report([a, b], tmp_path / "cmp").read_text())
    assert "Warning: these runs ran with different GPUs (`a`: none; `b`: NVIDIA H200)" in md
    assert "different CPUs" not in md


def test_the_cli_prints_each_bad_line_as_one_warning_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import warnings

    run = small_run(tmp_path / "r")
    write_lines(run, [*lines_of(run)[:4], "this is not json", *lines_of(run)[4:]])
    with warnings.catch_warnings():  # pytest's filter turns warnings into errors
        warnings.simplefilter("always", ResultsFileWarning)
        assert cli_main(["report", str(run), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.splitlines()
    expected = (
        f"ukr-bench report: warning: {run / 'results.jsonl'}, line 5: not JSON (a row cut short "
        "by a kill, if the run was resumed after it): skipped"
    )
    assert [line for line in err if "warning" in line] == [expected]
