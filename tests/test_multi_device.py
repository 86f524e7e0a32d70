"""Several devices: the sharded JAX path and torch.distributed against the one-device paths.

Both run in subprocesses: JAX sees several CPU devices only when ``XLA_FLAGS`` forces them
before it is imported, and torch.distributed needs one process per rank (``torchrun``). The
references are the one-device blocked path of the same framework and dense NumPy, in float64
and in float32 (:func:`assert_float32_agrees`: the drivers run the one-device pass, so they are
as accurate as it is). Every subprocess has a timeout, so a hang fails the test instead of the
suite.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from error_model import EPS, FIT_TOL, error_bounds, objective_tolerances, tolerance
from test_gradients import AS_ACCURATE

from ukr_bench import get_backend
from ukr_bench.data import problem_inputs
from ukr_bench.devices import parse_devices

HERE = Path(__file__).parent
ROOT = HERE.parent
# float64, sharded or distributed against one device: the same operations with the row blocks'
# partial sums reduced across devices in another order (N <= 103 here; error_model.tolerance).
TOL = tolerance("float64", 128)


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("cpu", ("cpu", (0,))),
        ("cuda:2", ("cuda", (2,))),
        ("cuda:0-3", ("cuda", (0, 1, 2, 3))),
        ("cpu:1-2", ("cpu", (1, 2))),
        (["cuda:0", "cuda:2"], ("cuda", (0, 2))),
        (("cpu:3",), ("cpu", (3,))),
    ],
)
def test_parse_devices(device: object, expected: tuple[str, tuple[int, ...]]) -> None:
    assert parse_devices(device) == expected


@pytest.mark.parametrize(
    ("device", "match"),
    [
        ("cuda:3-1", "empty"),
        ("gpu:0-1", "device must be"),
        (["cuda:0", "cpu"], "mixes kinds"),
        (["cuda:1", "cuda:1"], "twice"),
        ([], "device must be"),
        (["cuda:0-1"], "device must be"),
        (3, "device must be"),
    ],
)
def test_parse_devices_rejects(device: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_devices(device)


def test_one_device_backends_refuse_several() -> None:
    with pytest.raises(RuntimeError, match="runs on one: use jax or torch"):
        get_backend("numpy", device="cpu:0-1")


def test_torch_several_devices_without_a_group_says_torchrun() -> None:
    pytest.importorskip("torch")
    import torch.distributed as dist

    if dist.is_initialized() or "RANK" in os.environ:
        pytest.skip("this process is already part of a process group")
    with pytest.raises(RuntimeError, match="torchrun --nproc-per-node 2"):
        get_backend("torch", device="cpu:0-1")


def assert_float32_agrees(case: dict[str, float], where: str) -> None:
    """The several-device float32 result against the one-device one and float64 NumPy.

    Both drivers run the one-device blocked pass over their rows and sum the column terms in
    another order, so the bounds are those of any two float32 evaluations of E and dE/dZ:

    * each is within :func:`error_bounds` (float32) of the exact value, so the two differ by at
      most twice that bound, and each differs from float64 NumPy by at most
      :func:`objective_tolerances`;
    * accuracy: the several-device gradient's error against float64 is at most
      ``AS_ACCURATE`` times the one-device path's (the criterion of ``test_gradients``: it
      tells a form that cancels, such as the GEMM assembly ``B'Z - z B'1`` with its 3-5x on
      this problem, from a reordering of the same sums).
    """
    Z, X = problem_inputs("saddle", int(case["n"]), 2)
    kw = {k: case[k] for k in ("sigma", "lam", "loo")}
    v_bound, g_bound = error_bounds(Z, X, kw, EPS["float32"])
    v_tol, g_tol = objective_tolerances(Z, X, kw, "float32")
    assert case["value_diff"] <= 2 * v_bound, (where, case["value_diff"], 2 * v_bound)
    assert case["grad_diff"] <= 2 * g_bound, (where, case["grad_diff"], 2 * g_bound)
    for path in ("sharded", "one"):
        assert case[f"value_err_{path}"] <= v_tol, (where, path, case, v_tol)
        assert case[f"grad_err_{path}"] <= g_tol, (where, path, case, g_tol)
    ratio = case["grad_err_sharded"] / case["grad_err_one"]
    assert ratio <= AS_ACCURATE, (where, case["grad_err_sharded"], case["grad_err_one"])


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )


def test_jax_sharded_equals_one_device() -> None:
    """4 forced CPU devices: N not divisible by 4, 3 listed devices, more devices than blocks
    and than rows, a 1-device and a 2 x 2 Mesh, value-only and compiled calls, the estimator."""
    pytest.importorskip("jax")
    env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=4")
    proc = _run([sys.executable, str(HERE / "multi" / "sharded_jax_check.py")], env, 300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["devices"] == 4
    cases = {k: v for k, v in out.items() if isinstance(v, dict) and "grad_vs_numpy" in v}
    assert len(cases) == 7
    for name, case in cases.items():
        assert case["grad_replicated"], name
        assert case["n_devices"] == (1 if name == "n50_mesh1" else 3 if "k3" in name else 4)
        for what, err in case.items():
            if what not in ("n_devices", "grad_replicated"):
                assert err < TOL, (name, what, err)
    assert out["estimator"] < FIT_TOL  # the same L-BFGS fit (error_model)
    for name, case in out["float32"].items():
        assert_float32_agrees(case, f"jax {name}")
    errors = out["errors"]
    assert "xla_force_host_platform_device_count=8" in errors["too_many"]
    assert errors["dense"].startswith("ValueError: layout 'dense' cannot be split over 4")
    assert errors["numpy"].startswith("DeviceUnavailableError")


def _torchrun(ranks: int, mode: str, out: Path) -> list[dict[str, object]]:
    pytest.importorskip("torch")
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    args += ["--nproc-per-node", str(ranks), str(HERE / "multi" / "dist_torch_check.py"), mode]
    proc = _run(args, _env(OMP_NUM_THREADS="1", UKR_TEST_OUT=str(out)), 180)
    lines = [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]
    assert len(lines) == ranks - (mode == "die"), proc.stderr[-3000:]
    return sorted(lines, key=lambda r: r["rank"])  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize("ranks", [2, 4])
def test_torch_distributed_equals_one_process(ranks: int, tmp_path: Path) -> None:
    results = _torchrun(ranks, "agree", tmp_path)
    assert [r["rank"] for r in results] == list(range(ranks))
    for r in results:
        cases = {k: v for k, v in r.items() if isinstance(v, dict) and "grad_vs_numpy" in v}
        assert len(cases) == 4
        assert_float32_agrees(r["float32"], f"torch rank {r['rank']} of {ranks}")  # type: ignore[arg-type]
        assert r["estimator"] < FIT_TOL  # UKR.fit on the ranks equals the one-process fit
        for name, case in cases.items():
            for what, err in case.items():
                assert err < TOL, (r["rank"], name, what, err)


@pytest.mark.parametrize(
    ("mode", "match"),
    [
        ("raise", "RankFailedError: rank(s) [1] of 2 failed"),
        ("shapes", "RankFailedError: the ranks' inputs differ in shape"),
        ("die", "RuntimeError"),  # Gloo: the peer's connection closed, or the group's timeout
    ],
)
def test_torch_failing_rank_raises_everywhere(mode: str, match: str, tmp_path: Path) -> None:
    results = _torchrun(2, mode, tmp_path)
    for r in results:
        assert isinstance(r["raised"], str), r
        assert r["raised"].startswith(match), r
    if mode == "raise":
        assert "MemoryError: injected failure" in str(results[1]["raised"])


# -- the harness: a devices-count axis (schema version 3) ---------------------------------------


def test_plan_runs_several_devices_only_blocked_and_in_process() -> None:
    from backends import REGISTRY
    from ukr_bench.bench import SweepConfig

    cfg = SweepConfig(
        backends=["jax", "numpy", "torch"],
        layouts=["dense", "blocked"],
        dtypes=["float64"],
        ns=[8],
        device_counts=[2, 1],
    )
    plan = cfg.plan()
    multi = {(k.backend, k.layout, k.device, k.devices) for k in plan if k.devices > 1}
    assert multi == {("jax", "blocked", "cpu:0-1", 2)}
    # every backend x layout x gradient on one device (jax, torch: autodiff and manual; numpy:
    # manual), + jax blocked x 2 with its default (hand-derived, sharded) gradient only
    assert len(plan) == (2 * 2 + 2 + 2 * 2) + 1
    assert cfg.device_counts == [1, 2]
    assert (cfg.host_devices("jax"), cfg.host_devices("torch")) == (2, 1)
    env = REGISTRY["jax"].worker_env(1, 2)
    assert "--xla_force_host_platform_device_count=2" in env["XLA_FLAGS"]
    assert "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]  # the thread flag kept
    assert REGISTRY["torch"].worker_env(1, 2) == REGISTRY["torch"].process_env(1)


@pytest.mark.parametrize("counts", [[0], [1, 1], [1.5]])
def test_bad_device_counts_are_rejected(counts: list[object]) -> None:
    from ukr_bench.bench import SweepConfig

    with pytest.raises((ValueError, TypeError), match="device_counts"):
        SweepConfig(backends=["numpy"], device_counts=counts)


def test_sweep_records_the_device_count(tmp_path: Path) -> None:
    pytest.importorskip("jax")
    from ukr_bench.bench import SweepConfig, run_sweep
    from ukr_bench.schema import load_results

    cfg = SweepConfig(
        backends=["jax"],
        layouts=["blocked"],
        dtypes=["float64"],
        ns=[9, 16],
        device_counts=[1, 3],
        gradients=["auto"],  # the default gradient: this test is about devices
        min_rounds=2,
        max_rounds=2,
        min_time=0.0,
        warmup=1,
        fit_iters=0,
        threads=1,
    )
    df, meta = load_results(run_sweep(cfg, tmp_path / "run", progress=False))
    assert set(df.status) == {"ok"}, df[["device", "reason"]]
    assert sorted(zip(df.device, df.devices, df.n, strict=True)) == [
        ("cpu", 1, 9),
        ("cpu", 1, 16),
        ("cpu:0-2", 3, 9),
        ("cpu:0-2", 3, 16),
    ]
    assert (df.grad_rel_error < TOL).all()  # against float64 NumPy: N not divisible by 3
    assert [info.get("n_devices", 1) for info in df["info"]] == list(df.devices)
    assert meta.config["device_counts"] == [1, 3]


def test_rows_before_version_3_ran_on_one_device(tmp_path: Path) -> None:
    from ukr_bench.schema import SCHEMA_VERSION, ConfigKey, load_results, upgrade_row

    assert SCHEMA_VERSION >= 3  # version 4 put D and L in the key
    old = {"backend": "jax", "layout": "blocked", "gradient": "manual", "dtype": "float32"}
    old |= {"device": "cpu", "n": 8, "schema_version": 2}
    assert upgrade_row(old)["devices"] == 1
    assert ConfigKey.from_mapping(upgrade_row(old)).devices == 1
    assert upgrade_row({**old, "schema_version": 3, "devices": 4})["devices"] == 4
    runs = [p.parent for p in (ROOT / "results").glob("*/results.jsonl")]
    assert runs
    for run in runs:  # the committed runs (schema 1 and 2) load, all on one device
        df, _ = load_results(run)
        assert set(df.devices) == {1}, run
        assert set(df.schema_version) == {SCHEMA_VERSION}, run


# -- the scaling model ------------------------------------------------------------------------


def test_scaling_model_against_hand_computed_cases() -> None:
    from dataclasses import replace

    from ukr_bench.scaling import BOUND, MEASURED, predict

    one = predict(1000, 1)
    assert one["efficiency"] == 1.0
    assert one["comm_s"] == 0.0
    assert one["bytes_per_device"] == 0.0
    p = predict(1000, 4, latent_dim=2, itemsize=4)
    assert p["pairs_per_device"] == 250 * 1000
    assert p["bytes_per_device"] == 2 * 3 / 4 * 2001 * 4  # ring all-reduce of N L + 1 values
    # Free communication and replicated work: only the uneven split is left, N / (k ceil(N/k)).
    free = replace(MEASURED, bw_intra=math.inf, bw_inter=math.inf, alpha_intra=0.0)
    free = replace(free, alpha_inter=0.0, replicated_bytes_per_point=0.0)
    assert predict(10, 4, free)["efficiency"] == pytest.approx(10 / 12)
    assert predict(12, 4, free)["efficiency"] == pytest.approx(1.0)
    # Across nodes, without latency: communication equals compute at k = N B / (2 L b R).
    nolat = replace(BOUND, alpha_inter=0.0, replicated_bytes_per_point=0.0)
    k = 2048
    q = predict(1_000_000, k, nolat)
    balance = q["balance_devices"]
    assert balance == pytest.approx(1e6 * 40e9 / (2 * 2 * 4 * 1e12))
    assert q["comm_s"] / q["compute_s"] == pytest.approx(
        k / balance * (k - 1) / k, rel=5e-3
    )  # ceil(N/k) rows per device instead of N/k: at most k/N = 0.2 % more
    # The goal, and the ordering the model must show.
    assert predict(1_000_000, 8)["efficiency"] >= 0.8
    assert predict(1_000_000, 8, BOUND)["efficiency"] >= 0.8
    effs = [predict(1_000_000, k, BOUND)["efficiency"] for k in (8, 64, 512)]
    assert effs == sorted(effs, reverse=True)
    assert predict(10_000_000, 512, BOUND)["efficiency"] > effs[-1]
    with pytest.raises(ValueError, match="n and k"):
        predict(0, 2)


def test_scaling_benchmark_writes_results_and_figure(tmp_path: Path) -> None:
    """benchmarks/scaling.py, JAX only, 2 forced devices, tiny N; then its report."""
    pytest.importorskip("jax")
    out = tmp_path / "scaling"
    args = [sys.executable, str(ROOT / "benchmarks" / "scaling.py"), "measure", "--out", str(out)]
    args += ["--backends", "jax", "--devices", "1", "2", "--n-strong", "60", "--n-weak", "40"]
    proc = _run([*args, "--repeats", "2"], _env(), 300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "scaling.json").read_text())
    rows = data["rows"]
    assert sorted((r["mode"], r["n"], r["devices"]) for r in rows) == [
        ("strong", 60, 1),
        ("strong", 60, 2),
        ("weak", 40, 1),
        ("weak", 57, 2),  # 40 sqrt(2): constant pairs per device
    ]
    for r in rows:
        assert r["devices_seen"] == 2
        assert r["forced_host_devices"]
        assert len(r["sharded_s"]) == len(r["one_device_s"]) == 2
        assert r["overhead"] == pytest.approx(r["sharded_median_s"] / r["one_device_median_s"] - 1)
    proc = _run(
        [sys.executable, str(ROOT / "benchmarks" / "scaling.py"), "report", str(out)], _env(), 120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 1e+06 | 8 |" in (out / "model.md").read_text()
