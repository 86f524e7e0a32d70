"""The benchmark harness, tested without asserting any timing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ukr_bench import harness
from ukr_bench.cli import main as cli_main
from ukr_bench.harness import SweepConfig, load_results, read_rows, run_sweep, run_worker

TINY = {
    "ns": [8, 16],
    "min_rounds": 2,
    "min_time": 0.0,
    "warmup": 1,
    "max_rounds": 3,
    "fit_iters": 2,
    "fit_rounds": 1,
}


def in_process(run_dir: Path, backend: str) -> list[str]:
    """A worker command that runs the worker in a child Python with this test's sys.path."""
    return [
        sys.executable,
        "-c",
        f"import sys; sys.path[:0] = {sys.path!r}; from ukr_bench.harness import run_worker; run_worker({str(run_dir)!r}, {backend!r})",
    ]


def test_sweep_writes_schema_and_metadata(tmp_path: Path) -> None:
    cfg = SweepConfig(backends=["jax", "numpy", "torch"], **TINY)
    run_dir = run_sweep(cfg, tmp_path / "run", progress=False, command=["test"])
    df, meta = load_results(run_dir)
    assert len(df) == 3 * 2 * 2
    assert set(df.status) == {"ok"}
    for fn in ("value", "value_and_grad"):
        for field in ("first_s", "compile_s", "median_s", "iqr_s", "min_s", "rounds"):
            assert (df[f"{fn}_{field}"] >= 0).all(), field
        assert all(len(s[fn]) == r for s, r in zip(df.samples, df[f"{fn}_rounds"], strict=True))
    assert (df.grad_ratio > 0).all()
    for opt in ("gd", "rprop", "lbfgs"):  # time-to-fit of every optimiser
        assert (df[f"fit_{opt}_median_s"] > 0).all()
        assert (df[f"fit_{opt}_iters"] <= 2).all()
    # precision against float64 NumPy: float64 is exact to rounding, float32 to ~1e-6
    f64, f32 = df[df.dtype == "float64"], df[df.dtype == "float32"]
    assert (f64.grad_rel_error < 1e-12).all()
    assert (f32.grad_rel_error < 1e-4).all()
    assert (f32.grad_rel_error > 0).all()
    # settings and versions recorded per row, the machine once
    assert all(row["settings"]["threads"] == cfg.threads for row in read_rows(run_dir))
    jax_info = df[df.backend == "jax"].iloc[0]["info"]
    assert jax_info["jax"]
    assert meta["machine"]["cpu_count"] >= 1
    assert meta["machine"]["versions"]["numpy"] == np.__version__
    assert meta["config"]["ns"] == [8, 16]
    assert meta["command"] == ["test"]
    assert "id" in meta["git"]
    table = pd.read_csv(run_dir / "results.csv")
    assert len(table) == 12
    assert "samples" not in table.columns


def test_resume_after_a_kill_redoes_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = SweepConfig(
        backends=["numpy"], dtypes=["float64"], **(TINY | {"ns": [4, 8, 16, 32, 64, 128]})
    )
    # A real kill: the sweep runs in a child process, killed once some rows exist.
    code = (
        "from ukr_bench.harness import SweepConfig, run_sweep; "
        f"run_sweep(SweepConfig(**{cfg.__dict__!r}), {str(run_dir)!r}, progress=False)"
    )
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    deadline = time.time() + 120
    while len(read_rows(run_dir)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = read_rows(run_dir)
    assert 2 <= len(before) <= 6
    # Simulate the worst moment too: half a line written when the kill landed.
    with (run_dir / "results.jsonl").open("a") as f:
        f.write('{"backend": "numpy", "dev')
    run_sweep(out=run_dir, resume=True, progress=False)
    after = read_rows(run_dir)
    assert sorted(r["n"] for r in after) == [4, 8, 16, 32, 64, 128]
    finished_before = {r["n"]: r["finished"] for r in before}
    for r in after:  # rows that had finished are the very same rows
        if r["n"] in finished_before:
            assert r["finished"] == finished_before[r["n"]]
    assert json.loads((run_dir / "meta.json").read_text())["resumed"]


def test_oom_is_recorded_and_larger_n_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = harness.measure_case

    def fake(case, cfg, reference):
        if case.n >= 16 and case.dtype == "float32":
            raise MemoryError("simulated: cannot allocate")
        return real(case, cfg, reference)

    monkeypatch.setattr(harness, "measure_case", fake)
    cfg = SweepConfig(backends=["numpy"], **(TINY | {"ns": [8, 16, 32, 64]}))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # The worker runs in this process (so the monkeypatch applies); it needs only meta.json.
    (run_dir / "meta.json").write_text(json.dumps({"config": cfg.__dict__, "machine": {}}))
    run_worker(run_dir, "numpy")
    rows = {(r["dtype"], r["n"]): r for r in read_rows(run_dir)}
    assert rows["float32", 8]["status"] == "ok"
    assert rows["float32", 16]["status"] == "oom"
    assert "simulated" in rows["float32", 16]["reason"]
    assert rows["float32", 32]["status"] == "skipped"
    assert rows["float32", 64]["reason"] == "oom at N=16: larger N skipped"
    assert all(rows["float64", n]["status"] == "ok" for n in (8, 16, 32, 64))


def test_estimated_memory_over_the_limit_is_skipped(tmp_path: Path) -> None:
    cfg = SweepConfig(backends=["numpy"], dtypes=["float64"], **(TINY | {"ns": [8, 1_000_000]}))
    run_dir = run_sweep(cfg, tmp_path / "run", progress=False)
    rows = {r["n"]: r for r in read_rows(run_dir)}
    assert rows[8]["status"] == "ok"
    assert rows[1_000_000]["status"] == "skipped"
    need = 3.5 * 1e12 * 8 / 2**30  # NumPy keeps ~3.5 N x N float64 arrays at its peak
    assert rows[1_000_000]["reason"].startswith(f"estimated {need:.1f} GiB > limit")


def faulty_worker(fault: str):
    """A worker command whose process runs ``fault`` when it reaches the configuration N=16."""

    def command(run_dir: Path, backend: str) -> list[str]:
        script = (
            f"import os, signal, sys, time; sys.path[:0] = {sys.path!r}\n"
            "from ukr_bench import harness\n"
            "real = harness.measure_case\n"
            "def fake(case, cfg, ref):\n"
            f"    if case.n == 16: {fault}\n"
            "    return real(case, cfg, ref)\n"
            "harness.measure_case = fake\n"
            f"harness.run_worker({str(run_dir)!r}, {backend!r})\n"
        )
        return [sys.executable, "-c", script]

    return command


def test_a_worker_that_dies_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    # The worker is killed by SIGKILL at N=16, as the kernel's OOM killer would.
    dying_worker = faulty_worker("os.kill(os.getpid(), signal.SIGKILL)")
    cfg = SweepConfig(backends=["numpy"], dtypes=["float64"], **(TINY | {"ns": [8, 16, 32]}))
    run_dir = run_sweep(cfg, tmp_path / "run", progress=False, worker_cmd=dying_worker)
    rows = {r["n"]: r for r in read_rows(run_dir)}
    assert rows[8]["status"] == "ok"
    assert rows[16]["status"] == "crashed"
    assert "SIGKILL" in rows[16]["reason"]
    assert rows[32]["status"] == "skipped"


def test_timeout_kills_the_worker_and_skips_larger_n(tmp_path: Path) -> None:
    slow_worker = faulty_worker("time.sleep(60)")
    cfg = SweepConfig(
        backends=["numpy"], dtypes=["float64"], timeout=3.0, **(TINY | {"ns": [8, 16, 32]})
    )
    run_dir = run_sweep(cfg, tmp_path / "run", progress=False, worker_cmd=slow_worker)
    rows = {r["n"]: r for r in read_rows(run_dir)}
    assert rows[16]["status"] == "timeout"
    assert rows[32]["status"] == "skipped"
    assert rows[32]["reason"] == "timeout at N=16: larger N skipped"


def test_an_error_is_recorded_and_the_sweep_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = SweepConfig(backends=["numpy"], dtypes=["float64"], **(TINY | {"ns": [8, 16]}))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "meta.json").write_text(json.dumps({"config": cfg.__dict__, "machine": {}}))
    real = harness.measure_case
    monkeypatch.setattr(
        harness,
        "measure_case",
        lambda c, g, r: (_ for _ in ()).throw(ValueError("boom")) if c.n == 8 else real(c, g, r),
    )
    run_worker(run_dir, "numpy")
    rows = {r["n"]: r for r in read_rows(run_dir)}
    assert rows[8]["status"] == "error"
    assert rows[8]["reason"] == "ValueError: boom"
    assert rows[16]["status"] == "ok"  # an error is not a reason to skip larger N


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
    cfg = SweepConfig(backends=["jax"], dtypes=["float32"], **(TINY | {"ns": [8]}))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "meta.json").write_text(json.dumps({"config": cfg.__dict__, "machine": {}}))
    run_worker(run_dir, "jax")
    (row,) = read_rows(run_dir)
    assert row["status"] == "error"
    assert "recompiled" in row["reason"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ns": [-5]}, r"ns: every N must be an integer >= 2"),
        ({"ns": [1]}, r"ns: every N must be an integer >= 2 \(loo=True\)"),
        ({"ns": []}, r"ns must be a non-empty list"),
        ({"ns": [8, 8]}, r"ns has duplicates"),
        ({"backends": ["tensorflow"]}, r"backends: unknown backend 'tensorflow'"),
        ({"backends": []}, r"backends must be a non-empty list"),
        ({"devices": ["tpu"]}, r"device must be 'cpu', 'cuda' or 'cuda:<index>', got 'tpu'"),
        ({"dtypes": ["float16"]}, r"dtype must be one of"),
        ({"data": "moons"}, r"data must be one of"),
        ({"sigma": 0.0}, r"sigma must be > 0"),
        ({"min_rounds": 0}, r"min_rounds must be a positive integer"),
        ({"min_rounds": 10, "max_rounds": 5}, r"max_rounds \(5\) must be >= min_rounds \(10\)"),
        ({"threads": 10_000}, r"threads must be <= the"),
        ({"timeout": -1.0}, r"timeout must be > 0"),
        ({"memory_fraction": 1.5}, r"memory_fraction must be in \(0, 1\]"),
        ({"warmup": -1}, r"warmup must be an integer >= 0"),
        ({"fit_optimizers": ["adam"]}, r"fit_optimizers: unknown optimizer 'adam'"),
        ({"fit_iters": -1}, r"fit_iters must be an integer >= 0"),
    ],
)
def test_bad_options_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SweepConfig(**kwargs)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--n", "-5"], "ns: every N must be an integer >= 2"),
        (["--backends", "tensorflow"], "backends: unknown backend 'tensorflow'"),
        (["--devices", "tpu"], "device must be 'cpu', 'cuda' or 'cuda:<index>'"),
        (["--devices", "cuda"], "asks for cuda, but nvidia-smi lists no NVIDIA GPU"),
        (["--resume", "/nonexistent/run"], "cannot resume /nonexistent/run: it has no meta.json"),
    ],
)
def test_cli_reports_bad_options(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if "cuda" in argv and harness._gpus():
        pytest.skip("this machine has a GPU")
    assert cli_main(["bench", "--no-progress", *argv]) == 2
    assert message in capsys.readouterr().err


def test_existing_run_directory_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "x").write_text("")
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        run_sweep(SweepConfig(backends=["numpy"], **TINY), tmp_path / "run", progress=False)


def test_load_results_rejects_a_directory_without_metadata(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="is not a results directory"):
        load_results(tmp_path)
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_results(tmp_path)


def test_interrupting_the_sweep_leaves_no_worker_behind(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = SweepConfig(
        backends=["numpy"],
        dtypes=["float64"],
        **(TINY | {"ns": [200, 400, 800, 1600, 3200], "min_time": 0.5}),
    )
    code = (
        "from ukr_bench.harness import SweepConfig, run_sweep; "
        f"run_sweep(SweepConfig(**{cfg.__dict__!r}), {str(run_dir)!r}, progress=False)"
    )
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run_dir / "inflight.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    pid = json.loads((run_dir / "inflight.json").read_text())["pid"]
    proc.send_signal(signal.SIGINT)  # Ctrl-C reaches the parent only, e.g. under nohup or nox
    proc.wait(timeout=60)
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the worker is gone too
    run_sweep(out=run_dir, resume=True, progress=False)
    assert sorted(r["n"] for r in read_rows(run_dir)) == [200, 400, 800, 1600, 3200]
