"""Several devices: the sharded JAX path and torch.distributed against the one-device paths.

Both run in subprocesses: JAX sees several CPU devices only when ``XLA_FLAGS`` forces them
before it is imported, and torch.distributed needs one process per rank (``torchrun``). The
references are the one-device blocked path of the same framework and dense NumPy, in float64.
Every subprocess has a timeout, so a hang fails the test instead of the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ukr_bench import get_backend
from ukr_bench.problem import parse_devices

HERE = Path(__file__).parent
ROOT = HERE.parent
TOL = 1e-12


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
    assert out["estimator"] < 1e-10
    errors = out["errors"]
    assert "xla_force_host_platform_device_count=8" in errors["too_many"]
    assert errors["dense"].startswith("ValueError: layout 'dense' cannot be split over 4")
    assert errors["numpy"].startswith("DeviceUnavailableError")


def _torchrun(ranks: int, mode: str) -> list[dict[str, object]]:
    pytest.importorskip("torch")
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    args += ["--nproc-per-node", str(ranks), str(HERE / "multi" / "dist_torch_check.py"), mode]
    proc = _run(args, _env(OMP_NUM_THREADS="1"), 180)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == ranks - (mode == "die"), proc.stderr[-3000:]
    return sorted(lines, key=lambda r: r["rank"])  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize("ranks", [2, 4])
def test_torch_distributed_equals_one_process(ranks: int) -> None:
    results = _torchrun(ranks, "agree")
    assert [r["rank"] for r in results] == list(range(ranks))
    for r in results:
        cases = {k: v for k, v in r.items() if isinstance(v, dict)}
        assert len(cases) == 4
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
def test_torch_failing_rank_raises_everywhere(mode: str, match: str) -> None:
    results = _torchrun(2, mode)
    for r in results:
        assert isinstance(r["raised"], str), r
        assert r["raised"].startswith(match), r
    if mode == "raise":
        assert "MemoryError: injected failure" in str(results[1]["raised"])
