"""The benchmark harness (ukr_bench.bench), tested without asserting any performance.

Faults are injected through ``run_worker``'s ``measure`` parameter (in this process) or a worker
command that passes a faulty ``measure`` (in a child process), never by patching module globals.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from error_model import tolerance

import ukr_bench
from ukr_bench.bench import SweepConfig, resume_sweep, run_sweep, run_worker
from ukr_bench.bench.machine import gpus, provenance
from ukr_bench.bench.timing import measure_case
from ukr_bench.cli import main as cli_main
from ukr_bench.schema import (
    INFLIGHT_FILE,
    ResultsFileWarning,
    RunMeta,
    Status,
    load_results,
    read_meta,
    read_rows,
    write_meta,
)

TINY = {
    "layouts": ["dense"],
    "ns": [8, 16],
    "min_rounds": 2,
    "min_time": 0.0,
    "warmup": 1,
    "max_rounds": 3,
    "fit_iters": 2,
    "fit_rounds": 1,
}


def new_run_dir(tmp_path: Path, cfg: SweepConfig) -> Path:
    """A run directory with only its meta.json, for a worker run in this process."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_meta(run_dir, RunMeta(config=cfg.to_dict()))
    return run_dir


def sweep_process(cfg: SweepConfig, run_dir: Path, **popen: Any) -> subprocess.Popen[bytes]:
    """``run_sweep(cfg, run_dir)`` in a process of its own (for tests that kill it)."""
    code = (
        "from ukr_bench.bench import SweepConfig, run_sweep; "
        f"run_sweep(SweepConfig(**{cfg.to_dict()!r}), {str(run_dir)!r}, progress=False)"
    )
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, **popen)


def inflight_pid(run_dir: Path) -> int:
    """The pid in the in-flight marker (rewritten between configurations: retried briefly)."""
    deadline = time.time() + 10
    while True:
        try:
            return int(json.loads((run_dir / INFLIGHT_FILE).read_text())["pid"])
        except (OSError, ValueError, KeyError):
            if time.time() > deadline:
                raise
            time.sleep(0.005)


def faulty_worker(fault: str):
    """A worker command whose process runs ``fault`` when it reaches the configuration N=16."""

    def command(run_dir: Path, backend: str) -> list[str]:
        script = (
            f"import os, signal, sys, time; sys.path[:0] = {sys.path!r}\n"
            "from ukr_bench.bench.timing import measure_case\n"
            "from ukr_bench.bench.worker import run_worker, watch_parent\n"
            "def fake(key, cfg, ref):\n"
            f"    if key.n == 16: {fault}\n"
            "    return measure_case(key, cfg, ref)\n"
            "watch_parent()\n"
            f"run_worker({str(run_dir)!r}, {backend!r}, measure=fake)\n"
        )
        return [sys.executable, "-c", script]

    return command


def test_sweep_writes_schema_and_metadata(tmp_path: Path) -> None:
    cfg = SweepConfig(
        backends=["jax", "numpy", "torch"], **(TINY | {"layouts": ["dense", "blocked"]})
    )
    run_dir = run_sweep(cfg, tmp_path / "run", progress=False, command=["test"])
    df, meta = load_results(run_dir)
    # (backend, layout, gradient): jax and torch 2 x 2, numpy 2 layouts; x dtypes x N
    assert len(df) == (2 * 2 + 2 + 2 * 2) * 2 * 2
    assert set(df.status) == {"ok"}
    rows = read_rows(run_dir)
    for row in rows:
        for fn, t in row.timings.items():
            assert len(row.samples[fn]) == t.rounds
            assert t.min_s <= t.q1_s <= t.median_s <= t.q3_s <= t.max_s
            assert t.median_s == pytest.approx(float(np.median(row.samples[fn])))
            assert t.first_s >= t.compile_s  # the first call's time includes the compilation
        assert row.grad_ratio == pytest.approx(
            row.timings["value_and_grad"].median_s / row.timings["value"].median_s
        )
        # time-to-fit once per backend, dtype and N: on the dense rows of the default gradient
        fitted = row.key.layout == "dense" and row.key.gradient == (
            "manual" if row.key.backend == "numpy" else "autodiff"
        )
        assert set(row.fits) == ({"gd", "rprop", "lbfgs"} if fitted else set())
        assert all(f.iters <= 2 for f in row.fits.values())
        assert row.settings["threads"] == cfg.threads
    # one key per row: backend, layout, gradient source, dtype, device, N; JAX and torch
    # obtain theirs both ways in both layouts (issue 12), NumPy's is hand-derived only
    assert {(r.key.backend, r.key.layout, r.key.gradient) for r in rows} == {
        ("jax", "dense", "autodiff"),
        ("jax", "dense", "manual"),
        ("jax", "blocked", "autodiff"),
        ("jax", "blocked", "manual"),
        ("numpy", "dense", "manual"),
        ("numpy", "blocked", "manual"),
        ("torch", "dense", "autodiff"),
        ("torch", "dense", "manual"),
        ("torch", "blocked", "autodiff"),
        ("torch", "blocked", "manual"),
    }
    for r in rows:  # what ran is what the key says, and the bound is below the time
        assert r.info["resolved_layout"] == r.key.layout
        described = r.info["gradient"]  # in words, consistent with the key's kind
        assert described.startswith("hand-derived" if r.key.gradient == "manual" else "autodiff")
        assert (r.info["block_rows"] is None) == (r.key.layout == "dense")
        assert r.bound_s is not None
        assert 0 < r.bound_s < r.timings["value_and_grad"].min_s
    # precision against float64 NumPy, within the error model for sums of N terms
    for dtype, part in df.groupby("dtype"):
        assert (part.grad_rel_error < tolerance(str(dtype), int(part.n.max()))).all(), dtype
    # float32 cannot be exact: the error is real (more than float64's whole tolerance)
    assert (df[df.dtype == "float32"].grad_rel_error > tolerance("float64", 16)).all()
    jax_info = df[(df.backend == "jax") & (df.gradient == "autodiff")].iloc[0]["info"]
    assert jax_info["jax"]
    assert jax_info["gradient"].startswith("autodiff")
    assert meta.machine["cpu_count"] >= 1
    assert meta.machine["versions"]["numpy"] == np.__version__
    assert meta.config["ns"] == [8, 16]
    assert meta.command == ["test"]
    assert meta.provenance["version"]
    assert set(meta.thread_env) == {"jax", "numpy", "torch"}
    assert meta.thread_env["jax"]["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    table = pd.read_csv(run_dir / "results.csv")
    assert len(table) == len(df)
    assert "samples" not in table.columns


def test_resume_after_a_kill_redoes_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = SweepConfig(
        backends=["numpy"], dtypes=["float64"], **(TINY | {"ns": [4, 8, 16, 32, 64, 128]})
    )
    # A real kill of the whole process group, once some rows exist.
    proc = sweep_process(cfg, run_dir, start_new_session=True)
    deadline = time.time() + 120
    while len(read_rows(run_dir)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = (run_dir / "results.jsonl").read_text().splitlines()
    assert 2 <= len(before) <= 6
    # Simulate the worst moment too: half a line written when the kill landed.
    with (run_dir / "results.jsonl").open("a") as f:
        f.write('{"backend": "numpy", "dev')
    # Expected after a kill: warned about, naming the line (cut short while last, then a line
    # that is not JSON once rows follow it), never an error.
    half = rf"results\.jsonl, line {len(before) + 1}: (cut short|not JSON)"
    with pytest.warns(ResultsFileWarning, match=half):
        resume_sweep(run_dir, progress=False)
    with pytest.warns(ResultsFileWarning, match=half):
        after = read_rows(run_dir)
    assert sorted(r.key.n for r in after) == [4, 8, 16, 32, 64, 128]
    # rows that had finished are byte for byte the same lines, and the half line stays alone
    # (the row appended after it is not glued to it)
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    assert lines[: len(before)] == before
    assert lines[len(before)] == '{"backend": "numpy", "dev'
    assert len(lines) == 6 + 1
    assert read_meta(run_dir).resumed


@pytest.mark.parametrize("rows_before_kill", [0, 2])
def test_killing_the_sweep_alone_leaves_no_orphan_and_resume_completes(
    tmp_path: Path, rows_before_kill: int
) -> None:
    """SIGKILL to the sweep's main process only (as the OOM killer or a closed terminal does),
    at the first configuration and after two have finished."""
    run_dir = tmp_path / "run"
    cfg = SweepConfig(
        backends=["numpy"], dtypes=["float64"], **(TINY | {"ns": [100, 200, 400, 800, 1600]})
    )
    proc = sweep_process(cfg, run_dir, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (
        (run_dir / INFLIGHT_FILE).exists() and len(read_rows(run_dir)) >= rows_before_kill
    ):
        time.sleep(0.01)
    worker_pid = inflight_pid(run_dir)
    proc.kill()  # the parent alone, not its group
    proc.wait()
    gone = time.time() + 2
    while time.time() < gone:
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)  # the worker died with its sweep, within a second or two
    before = (run_dir / "results.jsonl").read_text().splitlines() if read_rows(run_dir) else []
    resume_sweep(run_dir, progress=False)
    rows = read_rows(run_dir)
    assert sorted(r.key.n for r in rows) == [100, 200, 400, 800, 1600]  # exactly one row each
    assert (run_dir / "results.jsonl").read_text().splitlines()[: len(before)] == before


def test_a_second_sweep_on_a_locked_run_is_refused(tmp_path: Path) -> None:
    cfg = SweepConfig(backends=["numpy"], dtypes=["float64"], **(TINY | {"ns": [8]}))
    run_dir = run_sweep(cfg, tmp_path / "run", progress=False)
    from ukr_bench.bench import RunLockedError
    from ukr_bench.bench.rundir import run_lock

    with (
        run_lock(run_dir),
        pytest.raises(RunLockedError, match=r"being written by another sweep \(pid"),
    ):
        resume_sweep(run_dir, progress=False)
    resume_sweep(run_dir, progress=False)  # free again once the holder is gone


def test_a_run_directory_that_cannot_be_written_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can write to a read-only directory")
    cfg = SweepConfig(backends=["numpy"], dtypes=["float64"], **(TINY | {"ns": [8]}))
    run_dir = run_sweep(cfg, tmp_path / "run", progress=False)
    (run_dir / ".lock").unlink()
    run_dir.chmod(0o500)
    try:
        with pytest.raises(OSError, match="cannot write to the run directory"):
            resume_sweep(run_dir, progress=False)
    finally:
        run_dir.chmod(0o700)


def test_disk_full_keeps_earlier_rows_and_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from ukr_bench import schema

    cfg = SweepConfig(backends=["numpy"], dtypes=["float64"], **(TINY | {"ns": [8, 16]}))
    run_dir = new_run_dir(tmp_path, cfg)
    real = schema._append
    calls = []

    def full_after_one(path, line):
        calls.append(line)
        if len(calls) > 1:  # the disk fills up in the middle of the second row
            with path.open("a") as f:
                f.write(line[:20])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, line)

    monkeypatch.setattr(schema, "_append", full_after_one)
    with pytest.raises(OSError, match=r"No space left on device") as info:
        run_worker(run_dir, "numpy")
    assert "results.jsonl" in str(info.value)
    assert "--resume" in str(info.value)
    with pytest.warns(ResultsFileWarning, match=r"results\.jsonl, line 2: cut short"):
        (only,) = read_rows(run_dir)
    assert only.key.n == 8
    assert only.status is Status.OK


def test_oom_is_recorded_and_larger_n_skipped(tmp_path: Path) -> None:
    def fake(key, cfg, reference):
        if key.n >= 16 and key.dtype == "float32":
            raise MemoryError("simulated: cannot allocate")
        return measure_case(key, cfg, reference)

    cfg = SweepConfig(backends=["numpy"], **(TINY | {"ns": [8, 16, 32, 64]}))
    run_dir = new_run_dir(tmp_path, cfg)
    run_worker(run_dir, "numpy", measure=fake)
    rows = {(r.key.dtype, r.key.n): r for r in read_rows(run_dir)}
    assert rows["float32", 8].status is Status.OK
    assert rows["float32", 16].status is Status.OOM
    assert "simulated" in rows["float32", 16].reason
    assert rows["float32", 32].status is Status.SKIPPED
    assert rows["float32", 64].reason == "oom at N=16: larger N skipped"
    assert all(rows["float64", n].status is Status.OK for n in (8, 16, 32, 64))


def test_estimated_memory_over_the_limit_is_skipped(tmp_path: Path) -> None:
    cfg = SweepConfig(backends=["numpy"], dtypes=["float64"], **(TINY | {"ns": [8, 1_000_000]}))
    run_dir = run_sweep(cfg, tmp_path / "run", progress=False)
    rows = {r.key.n: r for r in read_rows(run_dir)}
    assert rows[8].status is Status.OK
    assert rows[1_000_000].status is Status.SKIPPED
    # NumPy keeps ~3.5 N x N float64 arrays at its peak, plus 16 O(N (L + 4)) arrays
    need = (3.5 * 1e12 * 8 + 16 * 1e6 * (2 + 4) * 8) / 2**30
    assert rows[1_000_000].reason.startswith(f"estimated {need:.1f} GiB > limit")


def test_a_worker_that_dies_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    # The worker is killed by SIGKILL at N=16, as the kernel's OOM killer would.
    dying_worker = faulty_worker("os.kill(os.getpid(), signal.SIGKILL)")
    cfg = SweepConfig(backends=["numpy"], dtypes=["float64"], **(TINY | {"ns": [8, 16, 32]}))
    run_dir = run_sweep(cfg, tmp_path / "run", progress=False, worker_cmd=dying_worker)
    rows = {r.key.n: r for r in read_rows(run_dir)}
    assert rows[8].status is Status.OK
    assert rows[16].status is Status.CRASHED
    assert "SIGKILL" in rows[16].reason
    assert rows[32].status is Status.SKIPPED


def test_a_worker_that_fails_outside_a_configuration_records_only_what_is_left(
    tmp_path: Path,
) -> None:
    # Exits with status 1 after N=8 finished and before N=16 starts: only 16 and 32 are errors.
    failing = faulty_worker("sys.exit(1)")
    cfg = SweepConfig(backends=["numpy"], dtypes=["float64"], **(TINY | {"ns": [8, 16, 32]}))

    def command(run_dir: Path, backend: str) -> list[str]:
        cmd = failing(run_dir, backend)
        # run the exit outside measure: between configurations, with no in-flight marker
        cmd[-1] = cmd[-1].replace(
            "    if key.n == 16: sys.exit(1)",
            f"    if key.n == 16: os.remove({str(run_dir / INFLIGHT_FILE)!r}); os._exit(1)",
        )
        return cmd

    run_dir = run_sweep(cfg, tmp_path / "run", progress=False, worker_cmd=command)
    rows = {r.key.n: r for r in read_rows(run_dir)}
    assert len(read_rows(run_dir)) == 3
    assert rows[8].status is Status.OK
    assert rows[16].status is Status.ERROR
    assert rows[32].status is Status.ERROR
    assert "worker failed: exited with status 1" in rows[16].reason


def test_timeout_kills_the_worker_and_skips_larger_n(tmp_path: Path) -> None:
    slow_worker = faulty_worker("time.sleep(60)")
    cfg = SweepConfig(
        backends=["numpy"], dtypes=["float64"], timeout=3.0, **(TINY | {"ns": [8, 16, 32]})
    )
    run_dir = run_sweep(cfg, tmp_path / "run", progress=False, worker_cmd=slow_worker)
    rows = {r.key.n: r for r in read_rows(run_dir)}
    assert rows[16].status is Status.TIMEOUT
    assert rows[32].status is Status.SKIPPED
    assert rows[32].reason == "timeout at N=16: larger N skipped"


def test_an_error_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    def fake(key, cfg, reference):
        if key.n == 8:
            raise ValueError("boom")
        return measure_case(key, cfg, reference)

    cfg = SweepConfig(backends=["numpy"], dtypes=["float64"], **(TINY | {"ns": [8, 16]}))
    run_dir = new_run_dir(tmp_path, cfg)
    run_worker(run_dir, "numpy", measure=fake)
    rows = {r.key.n: r for r in read_rows(run_dir)}
    assert rows[8].status is Status.ERROR
    assert rows[8].reason == "ValueError: boom"
    assert rows[16].status is Status.OK  # an error is not a reason to skip larger N


def test_recompilation_while_timing_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jax

    from backends.jax_backend import JaxBackend, objective

    def retracing_compile(self, fn, Z, X, params):
        # A fresh jax.jit of a fresh lambda on every call: each call compiles again, which is
        # what the check must catch.
        f = jax.value_and_grad(objective) if fn == "value_and_grad" else objective

        def call(Z, X):
            with self._precision():
                return jax.jit(lambda z, x: f(z, x, params.sigma, params.lam, params.loo))(Z, X)

        return call

    monkeypatch.setattr(JaxBackend, "compile", retracing_compile)
    cfg = SweepConfig(
        backends=["jax"], dtypes=["float32"], **(TINY | {"ns": [8], "gradients": ["autodiff"]})
    )
    run_dir = new_run_dir(tmp_path, cfg)
    run_worker(run_dir, "jax")
    (row,) = read_rows(run_dir)
    assert row.status is Status.ERROR
    assert "recompiled" in row.reason


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ns": [-5]}, r"ns: every N must be an integer >= 2, got -5"),
        ({"ns": [1]}, r"ns: every N must be an integer >= 2, got 1"),
        ({"ns": [0], "loo": False}, r"ns: every N must be an integer >= 1, got 0"),
        ({"ns": []}, r"ns must be a non-empty list"),
        ({"ns": [8, 8]}, r"ns has duplicates"),
        ({"backends": ["tensorflow"]}, r"backends: unknown backend 'tensorflow'"),
        ({"backends": []}, r"backends must be a non-empty list"),
        ({"devices": ["tpu"]}, r"device must be 'cpu', 'cuda' or 'cuda:<index>', got 'tpu'"),
        ({"dtypes": ["float16"]}, r"dtype must be one of"),
        ({"data": "moons"}, r"data must be one of"),
        ({"sigma": 0.0}, r"sigma must be > 0"),
        ({"min_rounds": 0}, r"min_rounds must be an integer >= 1, got 0"),
        ({"min_rounds": 10, "max_rounds": 5}, r"max_rounds \(5\) must be >= min_rounds \(10\)"),
        ({"threads": 10_000}, r"threads must be <= the"),
        ({"timeout": -1.0}, r"timeout must be > 0"),
        ({"memory_fraction": 1.5}, r"memory_fraction must be in \(0, 1\]"),
        ({"warmup": -1}, r"warmup must be an integer >= 0"),
        ({"seed": -1}, r"seed must be an integer >= 0"),
        ({"fit_optimizers": ["adam"]}, r"fit_optimizers: unknown optimizer 'adam'"),
        ({"fit_optimizers": ["gd", "gd"]}, r"fit_optimizers has duplicates"),
        ({"fit_iters": -1}, r"fit_iters must be an integer >= 0"),
    ],
)
def test_bad_options_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SweepConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        # Wrong types are TypeErrors (ukr_bench.validation's policy); they were ValueErrors.
        ({"threads": True}, r"threads must be an integer >= 1, got True of type bool"),
        ({"ns": [2.5]}, r"ns: every N must be an integer >= 2, got 2.5 of type float"),
        ({"ns": (8, 16)}, r"ns must be a non-empty list, got \(8, 16\)"),
        ({"fit_optimizers": "gd"}, r"fit_optimizers must be a list, got 'gd'"),
        ({"interleave": "yes"}, r"interleave must be True or False, got 'yes'"),
        ({"loo": 1}, r"loo must be True or False, got 1"),
        ({"noise": "0"}, r"noise must be a real number"),
    ],
)
def test_options_of_the_wrong_type_are_type_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        SweepConfig(**kwargs)


def test_numpy_integers_are_stored_as_python_ints() -> None:
    # accepted as integers, and stored as ints: meta.json is written with json.dumps
    cfg = SweepConfig(backends=["numpy"], ns=[np.int64(16), 8], seed=np.int32(3), device_counts=[np.int64(1)])  # fmt: skip
    assert cfg.ns == [8, 16]
    assert all(type(v) is int for v in [*cfg.ns, *cfg.device_counts, cfg.seed])
    json.dumps(cfg.to_dict())


def test_unknown_stored_configuration_fields_are_named() -> None:
    with pytest.raises(ValueError, match=r"unknown sweep configuration field\(s\) \['colour'\]"):
        SweepConfig.from_dict({"colour": "red"})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--n", "-5"], "--n: every N must be an integer >= 2"),
        (["--backends", "tensorflow"], "--backends: unknown backend 'tensorflow'"),
        (["--devices", "tpu"], "device must be 'cpu', 'cuda' or 'cuda:<index>'"),
        (["--devices", "cuda"], "asks for cuda, but nvidia-smi lists no NVIDIA GPU"),
        (["--resume", "/nonexistent/run"], "/nonexistent/run is not a results directory"),
        (["--resume", "/x", "--n", "8"], "--resume repeats the run's own stored configuration"),
        (["--resume", "/x", "--quick"], "cannot be combined with --quick"),
    ],
)
def test_cli_reports_bad_options(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if "cuda" in argv and gpus():
        pytest.skip("this machine has a GPU")
    assert cli_main(["bench", "--no-progress", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_options_and_help_come_from_the_configuration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import dataclasses

    from ukr_bench.cli.options import flag as _flag

    with pytest.raises(SystemExit):
        cli_main(["bench", "--help"])
    out = capsys.readouterr().out
    for f in dataclasses.fields(SweepConfig):
        assert _flag(f.name) in out, f.name
    assert "(default: 125 250 500 1000 2000 4000 8000)" in " ".join(out.split())
    assert "smoke test: --n 64 128 256" in " ".join(out.split())


def test_existing_run_directory_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "x").write_text("")
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        run_sweep(SweepConfig(backends=["numpy"], **TINY), tmp_path / "run", progress=False)


def test_load_results_rejects_a_directory_without_metadata(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="is not a results directory"):
        load_results(tmp_path)
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"meta\.json is not valid JSON"):
        load_results(tmp_path)
    (tmp_path / "meta.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"meta\.json must hold a JSON object"):
        load_results(tmp_path)


def test_interrupting_the_sweep_leaves_no_worker_behind(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = SweepConfig(
        backends=["numpy"],
        dtypes=["float64"],
        **(TINY | {"ns": [200, 400, 800, 1600, 3200], "min_time": 0.5}),
    )
    proc = sweep_process(cfg, run_dir, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run_dir / INFLIGHT_FILE).exists() and time.time() < deadline:
        time.sleep(0.05)

    pid = json.loads((run_dir / INFLIGHT_FILE).read_text())["pid"]
    proc.send_signal(signal.SIGINT)  # Ctrl-C reaches the parent only, e.g. under nohup or nox
    proc.wait(timeout=60)
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the worker is gone too
    resume_sweep(run_dir, progress=False)
    assert sorted(r.key.n for r in read_rows(run_dir)) == [200, 400, 800, 1600, 3200]


def test_provenance_is_this_package_and_holds_no_absolute_path(tmp_path: Path) -> None:
    # Run from inside another git repository: the commit must still be ukr-bench's own.
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    code = "import json; from ukr_bench.bench.machine import provenance; print(json.dumps(provenance()))"
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=other, env=env, capture_output=True, text=True, check=True
    )

    prov = json.loads(out.stdout)
    assert prov == provenance()
    assert str(tmp_path) not in out.stdout
    assert "/" not in "".join(str(v) for v in prov.values() if v is not None)


def test_provenance_of_a_copy_without_git_is_named_by_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A working tree copied to a GPU machine has no .git: the commit comes from
    # UKR_BENCH_SOURCE_COMMIT, checked, and the report says where it came from.
    import subprocess as sp

    from ukr_bench.bench import machine
    from ukr_bench.report.tables import machine_table

    def no_git(*args: object) -> str:
        raise sp.CalledProcessError(128, "git")

    monkeypatch.setattr(machine, "_git", no_git)
    monkeypatch.delenv(machine.SOURCE_COMMIT_ENV, raising=False)
    assert machine.provenance() == {
        "version": ukr_bench.__version__, "commit": None, "dirty": None,
        "source": "not a git checkout",
    }  # fmt: skip
    commit = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv(machine.SOURCE_COMMIT_ENV, commit)
    prov = machine.provenance()
    assert prov == {
        "version": ukr_bench.__version__, "commit": commit, "dirty": None,
        "source": "copy of a git checkout",
    }  # fmt: skip
    table = machine_table(RunMeta(provenance=prov, command=["ukr-bench"]))
    assert f"commit {commit} (a copy of that checkout" in table.to_string()
    for bad in ["abc", commit.upper(), commit + "0", "HEAD"]:
        monkeypatch.setenv(machine.SOURCE_COMMIT_ENV, bad)
        with pytest.raises(ValueError, match="UKR_BENCH_SOURCE_COMMIT must be a full commit hash"):
            machine.provenance()


def test_a_reference_run_refuses_a_dirty_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ukr_bench.bench import rundir

    dirty = {"version": "0", "commit": "abc", "dirty": True, "source": "git checkout"}
    monkeypatch.setattr(rundir, "provenance", lambda: dirty)
    argv = ["bench", "--no-progress", "--no-report", "--backends", "numpy", "--n", "8"]
    assert cli_main([*argv, "--reference", "--out", str(tmp_path / "a")]) == 2
    assert "a reference run must come from a clean tree" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    fast = ["--dtypes", "float64", "--fit-iters", "0", "--min-time", "0", "--repeats", "1"]
    assert (
        cli_main([*argv, *fast, "--reference", "--allow-dirty", "--out", str(tmp_path / "b")]) == 0
    )
    meta = read_meta(tmp_path / "b")
    assert meta.reference
    assert meta.provenance["dirty"] is True
    from ukr_bench.report import write_report

    assert "uncommitted changes" in write_report([tmp_path / "b"]).read_text()


def test_repeat_runs_writes_each_run_and_their_comparison(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "--no-progress", "--backends", "numpy", "--layouts", "dense", "--dtypes", "float64", "--n", "8",
            "16", "--fit-iters", "0", "--min-time", "0", "--repeats", "3"]  # fmt: skip
    assert cli_main([*argv, "--repeat-runs", "2", "--out", str(tmp_path / "rep")]) == 0
    for k in (1, 2):
        assert len(read_rows(tmp_path / "rep" / f"run{k}")) == 2
    md = (tmp_path / "rep" / "comparison" / "report.md").read_text()
    assert "## Run-to-run variation" in md
    assert "Fastest backend at each N in every run" in md
    assert cli_main([*argv, "--repeat-runs", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--repeat-runs must be an integer >= 1, got 0" in capsys.readouterr().err


def test_larger_n_predicted_too_slow_is_skipped(tmp_path: Path) -> None:
    """A series whose calls would take longer than --max-call-seconds stops: the fake says
    0.1 s at N = 8, so N = 16 is predicted 0.4 s (O(N^2)) and runs under a 0.5 s limit, and
    N = 32 (1.6 s from 0.4 s at N = 16) is skipped with the prediction as its reason."""

    def fake(key, cfg, reference):
        row = measure_case(key, cfg, reference)
        t = 0.1 * (key.n / 8) ** 2
        row.timings["value_and_grad"] = dataclasses.replace(
            row.timings["value_and_grad"], median_s=t
        )
        return row

    cfg = SweepConfig(
        backends=["numpy"], dtypes=["float64"], max_call_seconds=0.5, **(TINY | {"ns": [8, 16, 32]})
    )
    run_dir = new_run_dir(tmp_path, cfg)
    run_worker(run_dir, "numpy", measure=fake)
    rows = {r.key.n: r for r in read_rows(run_dir)}
    assert rows[8].status is rows[16].status is Status.OK
    assert rows[32].status is Status.SKIPPED
    assert rows[32].reason == (
        "predicted 1.6 s per value + gradient call (O(N^2) from 0.4 s at N=16) "
        "> --max-call-seconds 0.5"
    )
    # 0 turns the limit off
    cfg = dataclasses.replace(cfg, max_call_seconds=0.0)
    (tmp_path / "off").mkdir()
    run_dir = new_run_dir(tmp_path / "off", cfg)
    run_worker(run_dir, "numpy", measure=fake)
    assert all(r.status is Status.OK for r in read_rows(run_dir))
    with pytest.raises(ValueError, match="max_call_seconds"):
        SweepConfig(max_call_seconds=-1.0)


# -- interleaving: the backends take turns at each N ---------------------------------------------


@pytest.mark.parametrize("interleave", [True, False])
def test_backends_take_turns_at_each_n(tmp_path: Path, interleave: bool) -> None:
    # Rows are appended as configurations finish, so the file's order is the order measured.
    cfg = SweepConfig(
        backends=["numpy", "torch"], dtypes=["float64"], gradients=["auto"],
        interleave=interleave, **(TINY | {"ns": [8, 16], "fit_iters": 0}),
    )  # fmt: skip
    run_dir = run_sweep(cfg, tmp_path / "run", progress=False)
    order = [(r.key.backend, r.key.n) for r in read_rows(run_dir)]
    if interleave:
        assert order == [("numpy", 8), ("torch", 8), ("numpy", 16), ("torch", 16)]
    else:
        assert order == [("numpy", 8), ("numpy", 16), ("torch", 8), ("torch", 16)]
    assert all(r.status is Status.OK for r in read_rows(run_dir))


def test_rounds_and_the_default_of_old_runs() -> None:
    cfg = SweepConfig(ns=[16, 8, 32])
    assert cfg.interleave
    assert cfg.rounds() == [[8], [16], [32]]
    assert dataclasses.replace(cfg, interleave=False).rounds() == [[8, 16, 32]]
    # a run made before interleaving is resumed as it was made: one worker per backend
    old = cfg.to_dict()
    del old["interleave"]
    assert SweepConfig.from_dict(old).interleave is False
    with pytest.raises(TypeError, match="interleave must be True or False, got 'yes'"):
        SweepConfig(interleave="yes")  # type: ignore[arg-type]


def test_a_worker_measures_only_its_turn_after_warming_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ukr_bench import interface
    from ukr_bench.bench import worker

    cfg = SweepConfig(
        backends=["numpy"], dtypes=["float32", "float64"], **(TINY | {"ns": [8, 16, 32]})
    )
    run_dir = new_run_dir(tmp_path, cfg)
    events: list[tuple[str, ...]] = []
    real = interface.value_and_grad

    def recording_value_and_grad(*args: Any, **kw: Any) -> Any:
        events.append(("warm-up", kw["dtype"], str(args[0].shape[0])))
        return real(*args, **kw)

    def fake(key: Any, cfg: SweepConfig, reference: Any) -> Any:
        events.append(("measure", key.dtype, str(key.n)))
        return measure_case(key, cfg, reference)

    monkeypatch.setattr(interface, "value_and_grad", recording_value_and_grad)
    monkeypatch.setenv(worker.NS_ENV, "16")
    run_worker(run_dir, "numpy", measure=fake)
    assert events == [
        ("warm-up", "float32", str(worker.PROCESS_WARMUP_N)),
        ("measure", "float32", "16"),
        ("warm-up", "float64", str(worker.PROCESS_WARMUP_N)),
        ("measure", "float64", "16"),
    ]
    assert sorted((r.key.dtype, r.key.n) for r in read_rows(run_dir)) == [
        ("float32", 16), ("float64", 16),
    ]  # fmt: skip
    # nothing left to do in this turn: no warm-up either
    events.clear()
    run_worker(run_dir, "numpy", measure=fake, ns={16})
    assert events == []
    run_worker(run_dir, "numpy", measure=fake, ns={8, 32})
    assert events == [
        ("warm-up", "float32", str(worker.PROCESS_WARMUP_N)),
        ("measure", "float32", "8"), ("measure", "float32", "32"),
        ("warm-up", "float64", str(worker.PROCESS_WARMUP_N)),
        ("measure", "float64", "8"), ("measure", "float64", "32"),
    ]  # fmt: skip


def test_cli_turns_interleaving_off(tmp_path: Path) -> None:
    argv = ["bench", "--no-progress", "--no-report", "--backends", "numpy", "--n", "8", "16"]
    fast = ["--dtypes", "float64", "--fit-iters", "0", "--min-time", "0", "--repeats", "1"]
    assert cli_main([*argv, *fast, "--no-interleave", "--out", str(tmp_path / "a")]) == 0
    assert read_meta(tmp_path / "a").config["interleave"] is False


def test_a_crash_while_warming_up_costs_only_its_configuration(tmp_path: Path) -> None:
    # The warm-up runs inside the in-flight window of the first configuration of its kind:
    # a worker killed there (as KeOps' code generation once did) records that configuration
    # as crashed, its series' larger N are skipped, and the other kinds are measured.
    def command(run_dir: Path, backend: str) -> list[str]:
        script = (
            f"import os, signal, sys; sys.path[:0] = {sys.path!r}\n"
            "from ukr_bench.bench import worker\n"
            "real = worker.warm_up\n"
            "def warm_up(key, cfg):\n"
            "    if key.dtype == 'float32': os.kill(os.getpid(), signal.SIGKILL)\n"
            "    real(key, cfg)\n"
            "worker.warm_up = warm_up\n"
            "worker.watch_parent()\n"
            f"worker.run_worker({str(run_dir)!r}, {backend!r})\n"
        )
        return [sys.executable, "-c", script]

    cfg = SweepConfig(backends=["numpy"], **(TINY | {"ns": [8, 16], "fit_iters": 0}))
    run_dir = run_sweep(cfg, tmp_path / "run", progress=False, worker_cmd=command)
    rows = {(r.key.dtype, r.key.n): r for r in read_rows(run_dir)}
    assert rows["float32", 8].status is Status.CRASHED
    assert "SIGKILL" in rows["float32", 8].reason
    assert rows["float32", 16].status is Status.SKIPPED
    assert rows["float64", 8].status is Status.OK
    assert rows["float64", 16].status is Status.OK


def test_each_configuration_compiles_its_own_program() -> None:
    # An earlier configuration in the same worker may compile the very same program (a
    # time-to-fit at N > 1024 picks the blocked layout): the measured compile must still be one,
    # not a cache hit. Measured twice in this process, the same configuration compiles each
    # time (without clearing the caches, the second time compiled nothing).
    from backends.jax_backend import JaxBackend
    from ukr_bench.schema import ConfigKey

    cfg = SweepConfig(backends=["jax"], **(TINY | {"fit_iters": 0}))
    key = ConfigKey("jax", "blocked", "manual", "float32", "cpu", 16)
    reference = lambda key: (0.0, np.zeros((key.n, key.latent_dim)))  # the errors are not checked
    counts = []
    for _ in range(2):
        before = JaxBackend.compile_count(None)  # type: ignore[arg-type]
        measure_case(key, cfg, reference)
        counts.append(JaxBackend.compile_count(None) - before)  # type: ignore[arg-type]
    # value and value + gradient, each time (the first also compiles a few one-off programs)
    assert counts[0] >= 2
    assert counts[1] >= 2
