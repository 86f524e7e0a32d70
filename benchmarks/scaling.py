"""Strong and weak scaling of the sharded value + gradient (issue 15), outside the harness.

    PYTHONPATH=. python benchmarks/scaling.py measure --out results/scaling_cpu
        [--backends jax torch] [--devices 1 2 4] [--n-strong 20000] [--n-weak 10000]
        [--repeats 5] [--dtype float64] [--torch-threads 1]
    PYTHONPATH=. python benchmarks/scaling.py report results/scaling_cpu

``measure`` writes ``scaling.json`` under ``--out``: for every backend, devices count ``k`` and
N, the median time of one value + gradient of the sharded path (``k`` devices) and, side by
side, of the one-device blocked path at the same N. Strong scaling keeps N = ``--n-strong``;
weak scaling grows N as ``--n-weak * sqrt(k)`` (the pairs per device, N^2 / k, stay constant).

* JAX: one process that sees ``max(--devices)`` devices. On a CPU-only machine these are
  forced host devices (``XLA_FLAGS=--xla_force_host_platform_device_count``; the script
  re-executes itself with it), all sharing the machine's cores. The configurations are timed
  interleaved, round by round, in that one process.
* torch: one ``torchrun`` launch per ``k`` (Gloo ranks on the CPU), each timing the
  distributed call (barrier, call, slowest rank) and the one-process blocked call at the same N
  alternately on rank 0 (the other ranks wait at a barrier meanwhile). Every process runs
  ``--torch-threads`` threads (default 1): on a loaded 2-core machine torch's OpenMP pool with
  2 threads ran the blocked pass 5-20x slower than with 1 (spinning threads that lose their
  core), so one-threaded ranks are the fair comparison; k ranks then use k cores, and a real
  speed-up is possible up to the number of cores.

On a machine whose "devices" share the same few cores, k devices cannot be faster than one:
the ratio sharded / one-device measures the overhead of the decomposition (the collectives,
padding, the per-device programs), not a speed-up. ``report`` writes ``scaling.png`` (time
and efficiency against k) and ``model.md``: the communication-and-compute model of
:mod:`ukr_bench.scaling` for real GPUs at 8, 64 and 512 devices.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIGMA = 0.2
FORCE = "--xla_force_host_platform_device_count"


def problem(n: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's problem: saddle data, L = 2 latents ~ N(0, sigma^2)."""
    import ukr_bench

    X, _ = ukr_bench.make_dataset("saddle", n, noise=0.05, random_state=0)
    Z = SIGMA * np.random.default_rng(0).normal(size=(n, 2))
    return Z.astype(dtype), X.astype(dtype)


def points(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    """(mode, N, k) of every sharded configuration."""
    out = [("strong", args.n_strong, k) for k in args.devices]
    out += [("weak", round(args.n_weak * math.sqrt(k)), k) for k in args.devices]
    return out


def _jax_child(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time every configuration in this process (which sees enough JAX devices)."""
    import jax

    import ukr_bench
    from backends import jax_sharded
    from ukr_bench import Params

    calls: dict[tuple[str, int, int], Any] = {}
    blocks: dict[tuple[str, int, int], int | None] = {}
    for mode, n, k in points(args):
        kind = args.platform
        # The sharded path runs on a mesh even for k = 1 (shard_map, psum and all), so its
        # k = 1 row is the decomposition's own overhead on one device.
        mesh = jax_sharded.row_mesh(jax.devices(kind)[:k])
        for key, device in [((mode, n, k), mesh), (("one", n, 1), kind)]:
            if key in calls:
                continue
            b = ukr_bench.get_backend("jax", dtype=args.dtype, device=device, layout="blocked")
            Z, X = problem(n, args.dtype)
            Zd, Xd = b.asarray(Z), b.asarray(X)
            f = b.compile("value_and_grad", Zd, Xd, Params(sigma=SIGMA))
            b.sync(f(Zd, Xd))  # warm
            calls[key] = lambda b=b, f=f, Zd=Zd, Xd=Xd: b.sync(f(Zd, Xd))
            blocks[key] = b.resolve_layout(n)[1]
    times: dict[tuple[str, int, int], list[float]] = {key: [] for key in calls}
    for _ in range(args.repeats):
        for key, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - t0)
    rows = []
    for mode, n, k in points(args):
        rows.append(
            {
                "backend": "jax",
                "mode": mode,
                "n": n,
                "devices": k,
                "block": blocks[(mode, n, k)],
                "sharded_s": times[(mode, n, k)],
                "one_device_s": times[("one", n, 1)],
                "devices_seen": len(jax.devices()),
                "forced_host_devices": FORCE in os.environ.get("XLA_FLAGS", ""),
            }
        )
    return rows


def _torch_rank(args: argparse.Namespace) -> None:
    """One torchrun rank: time the distributed call and (rank 0) the one-process call."""
    import torch
    import torch.distributed as dist

    import ukr_bench
    from ukr_bench import Params

    dist.init_process_group("gloo")
    rank, k = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(args.torch_threads)
    rows = []
    for mode, n, kk in points(args):
        if kk != k:
            continue
        Z, X = problem(n, args.dtype)
        bd = ukr_bench.get_backend("torch", dtype=args.dtype, device=f"cpu:0-{k - 1}")
        b1 = ukr_bench.get_backend("torch", dtype=args.dtype, device="cpu", layout="blocked")
        fd = bd.compile("value_and_grad", bd.asarray(Z), bd.asarray(X), Params(sigma=SIGMA))
        f1 = b1.compile("value_and_grad", b1.asarray(Z), b1.asarray(X), Params(sigma=SIGMA))
        Zd, Xd = bd.asarray(Z), bd.asarray(X)
        sharded, one = [], []
        for r in range(args.repeats + 1):  # the first round warms up
            dist.barrier()
            t0 = time.perf_counter()
            fd(Zd, Xd)
            elapsed = torch.tensor([time.perf_counter() - t0], dtype=torch.float64)
            dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
            if rank == 0:
                t0 = time.perf_counter()
                f1(Zd, Xd)
                t1 = time.perf_counter() - t0
                if r:
                    sharded.append(float(elapsed))
                    one.append(t1)
            dist.barrier()
        rows.append(
            {
                "backend": "torch",
                "mode": mode,
                "n": n,
                "devices": k,
                "block": bd.resolve_layout(n)[1],
                "sharded_s": sharded,
                "one_device_s": one,
                "threads_per_rank": args.torch_threads,
            }
        )
    if rank == 0:
        print("ROWS " + json.dumps(rows), flush=True)
    dist.destroy_process_group()


def _child_args(args: argparse.Namespace) -> list[str]:
    out = ["--devices", *map(str, args.devices), "--n-strong", str(args.n_strong)]
    out += ["--n-weak", str(args.n_weak), "--repeats", str(args.repeats)]
    out += ["--dtype", args.dtype, "--platform", args.platform]
    return [*out, "--torch-threads", str(args.torch_threads)]


def measure(args: argparse.Namespace) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows: list[dict[str, Any]] = []
    script = str(Path(__file__).resolve())
    if "jax" in args.backends:
        jenv = dict(env)
        if args.platform == "cpu":
            jenv["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {FORCE}={max(args.devices)}".strip()
        cmd = [sys.executable, script, "_jax", *_child_args(args)]
        proc = subprocess.run(cmd, env=jenv, capture_output=True, text=True, check=False)
        if proc.returncode:
            sys.exit(f"jax measurement failed:\n{proc.stderr[-4000:]}")
        rows += json.loads(proc.stdout.splitlines()[-1])
    if "torch" in args.backends:
        for k in args.devices:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
            cmd += ["--nproc-per-node", str(k), script, "_torch", *_child_args(args)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            found = [line for line in proc.stdout.splitlines() if line.startswith("ROWS ")]
            if proc.returncode or not found:
                sys.exit(f"torch measurement with {k} ranks failed:\n{proc.stderr[-4000:]}")
            rows += json.loads(found[-1][5:])
    for row in rows:
        row["sharded_median_s"] = float(np.median(row["sharded_s"]))
        row["one_device_median_s"] = float(np.median(row["one_device_s"]))
        row["overhead"] = row["sharded_median_s"] / row["one_device_median_s"] - 1.0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": "python benchmarks/scaling.py " + " ".join(sys.argv[1:]),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "dtype": args.dtype,
        "sigma": SIGMA,
        "torch_threads_per_process": args.torch_threads,
        "note": (
            f"{os.cpu_count()} shared cores. JAX's forced host devices share them: its ratio "
            "measures the decomposition's overhead (the one-device XLA program used about one "
            f"core, so k > 1 may gain up to {os.cpu_count()}x). torch: {args.torch_threads} "
            "thread(s) per process, k ranks = k processes on the same cores (k = 2 uses both "
            "cores; k = 4 oversubscribes them)"
            if args.platform == "cpu"
            else ""
        ),
    }
    (out / "scaling.json").write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    for row in rows:
        print(
            f"{row['backend']:6s} {row['mode']:6s} N={row['n']:7d} k={row['devices']}: "
            f"sharded {row['sharded_median_s']:.3f} s, one device {row['one_device_median_s']:.3f}"
            f" s, overhead {100 * row['overhead']:+.1f} %"
        )


def report(args: argparse.Namespace) -> None:
    from ukr_bench import scaling

    out = Path(args.dir)
    data = json.loads((out / "scaling.json").read_text())
    scaling.scaling_figure(data, out / "scaling.png")
    (out / "model.md").write_text(scaling.model_markdown())
    print(f"wrote {out / 'scaling.png'} and {out / 'model.md'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("measure", "_jax", "_torch"):
        p = sub.add_parser(name)
        if name == "measure":
            p.add_argument("--out", required=True)
            p.add_argument("--backends", nargs="+", default=["jax", "torch"])
        p.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
        p.add_argument("--n-strong", type=int, default=20000)
        p.add_argument("--n-weak", type=int, default=10000)
        p.add_argument("--repeats", type=int, default=5)
        p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
        p.add_argument("--platform", default="cpu", choices=["cpu", "cuda"])
        p.add_argument("--torch-threads", type=int, default=1)
    p = sub.add_parser("report")
    p.add_argument("dir")
    args = parser.parse_args()
    if args.cmd == "measure":
        measure(args)
    elif args.cmd == "_jax":
        print(json.dumps(_jax_child(args)))
    elif args.cmd == "_torch":
        _torch_rank(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
