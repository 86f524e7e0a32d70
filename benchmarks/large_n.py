"""Large-N measurements of the blocked layout, side by side (issue 9), outside the harness.

    PYTHONPATH=. python benchmarks/large_n.py [--n-mid 10000] [--n-large 100000] [--repeats 3]
        [--backends numpy jax torch keops] [--skip-dense] [--skip-large | --only-large]
    [--timeout SECONDS]

Prints four tables (medians over ``--repeats`` interleaved rounds; ratios within this run):

1. N = ``--n-mid`` float64 value + gradient, dense vs blocked (the ``auto`` block size), per
   backend, in this process.
2. The alternatives behind the choices: NumPy blocked on 1 worker vs all CPUs, and with the
   float64 GEMM forms vs the differences (``GEMM_MAX_SQNORM``); JAX and torch
   hand-derived blocked VJP vs autodiff with ``jax.checkpoint`` / ``torch.utils.checkpoint``.
3. A lower bound from this machine's exp throughput: one ``np.exp`` over N x N float64 elements
   in row blocks (single thread, and on a thread pool over all CPUs), and the fastest blocked
   value + gradient as a multiple of it.
4. N = ``--n-large`` float32 value + gradient, blocked, each backend in its own subprocess: time
   of one call (JAX: after ahead-of-time compilation) and peak RSS (``ru_maxrss``).

Timing on a shared machine is noisy: read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ukr_bench
from ukr_bench import Params

SIGMA = 0.2


def problem(n: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's problem: saddle data, L = 2 latents ~ N(0, sigma^2)."""
    X, _ = ukr_bench.make_dataset("saddle", n, noise=0.05, random_state=0)
    Z = SIGMA * np.random.default_rng(0).normal(size=(n, 2))
    return Z.astype(dtype), X.astype(dtype)


def prepared(backend: str, dtype: str, layout: str, Z: np.ndarray, X: np.ndarray) -> Any:
    """A synchronised value + gradient call ``f()`` on device-resident inputs."""
    b = ukr_bench.get_backend(backend, dtype=dtype, layout=layout)
    Zd, Xd = b.asarray(Z), b.asarray(X)
    f = b.compile("value_and_grad", Zd, Xd, Params(sigma=SIGMA))
    return b, (lambda: b.sync(f(Zd, Xd)))


def interleaved(calls: dict[str, Any], repeats: int) -> dict[str, float]:
    """Median seconds of each call, rounds interleaved so that load drifts hit all alike."""
    times: dict[str, list[float]] = {k: [] for k in calls}
    for f in calls.values():  # warm-up (JAX: first execution; KeOps: compilation)
        f()
    for _ in range(repeats):
        for k, f in calls.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


def fmt(t: float) -> str:
    return f"{t * 1e3:.0f} ms" if t < 1 else f"{t:.2f} s"


def dense_vs_blocked(n: int, backends: list[str], repeats: int, skip_dense: bool) -> dict:
    Z, X = problem(n, "float64")
    calls, blocks = {}, {}
    for backend in backends:
        for layout in ["blocked"] if skip_dense else ["dense", "blocked"]:
            if backend == "keops" and layout == "dense":
                continue
            b, f = prepared(backend, "float64", layout, Z, X)
            calls[f"{backend} {layout}"] = f
            blocks[f"{backend} {layout}"] = b.resolve_layout(n)[1]
    med = interleaved(calls, repeats)
    print(f"\n## N = {n} float64 value + gradient (median of {repeats})\n")
    print("| backend | dense | blocked (block rows) | dense / blocked |")
    print("|---|---|---|---|")
    for backend in backends:
        d, bl = med.get(f"{backend} dense"), med[f"{backend} blocked"]
        blk = blocks[f"{backend} blocked"]
        ratio = f"{d / bl:.2f}x" if d else "-"
        print(f"| {backend} | {fmt(d) if d else '-'} | {fmt(bl)} ({blk}) | {ratio} |")
    return med


def _x64_call(exe: Any, Zd: Any, Xd: Any) -> Any:
    import jax

    with jax.enable_x64(True):
        return jax.block_until_ready(exe(Zd, Xd, SIGMA, 0.0))


def alternatives(n: int, repeats: int) -> None:
    from backends import numpy_backend

    Z, X = problem(n, "float64")
    block = ukr_bench.get_backend("numpy", layout="blocked").resolve_layout(n)[1]
    nb = ukr_bench.get_backend("numpy", layout="blocked")
    workers = numpy_backend._cpu_count()

    def numpy_on(w: int, gemm: bool = True) -> Any:
        def call() -> Any:
            saved = numpy_backend._cpu_count, numpy_backend.GEMM_MAX_SQNORM
            numpy_backend._cpu_count = lambda: w
            if not gemm:  # the differences form (float32's) in float64
                numpy_backend.GEMM_MAX_SQNORM = -1.0
            try:
                return nb.value_and_grad(Z, X, SIGMA, 0.0, True)
            finally:
                numpy_backend._cpu_count, numpy_backend.GEMM_MAX_SQNORM = saved

        return call

    calls = {
        "numpy blocked, 1 worker": numpy_on(1),
        f"numpy blocked, {workers} workers": numpy_on(workers),
        f"numpy blocked, {workers} workers, differences instead of GEMM forms": numpy_on(
            workers, gemm=False
        ),
    }
    try:
        import jax

        from backends import jax_blocked

        jb = ukr_bench.get_backend("jax", layout="blocked")
        Zd, Xd = jb.asarray(Z), jb.asarray(X)
        with jax.enable_x64(True):
            exe = {
                name: jax.jit(jax.value_and_grad(fn), static_argnames=("loo", "block"))
                .lower(Zd, Xd, SIGMA, 0.0, loo=True, block=block)
                .compile()
                for name, fn in [
                    ("jax hand-derived custom_vjp", jax_blocked.objective_blocked),
                    ("jax autodiff + checkpoint", jax_blocked.objective_blocked_autodiff),
                ]
            }
        for name, e in exe.items():
            calls[name] = lambda e=e: _x64_call(e, Zd, Xd)
    except ImportError:
        pass
    try:
        import torch

        from backends import torch_blocked

        Zt, Xt = torch.tensor(Z), torch.tensor(X)
        for name, fn in [
            ("torch hand-derived autograd.Function", torch_blocked.objective_blocked),
            ("torch autodiff + checkpoint", torch_blocked.objective_blocked_autodiff),
        ]:

            def call(fn: Any = fn) -> Any:
                z = Zt.detach().requires_grad_(True)
                v = fn(z, Xt, SIGMA, 0.0, True, block)
                return torch.autograd.grad(v, z)

            calls[name] = call
    except ImportError:
        pass
    med = interleaved(calls, repeats)
    print(f"\n## Alternatives, N = {n} float64 blocked ({block} rows), median of {repeats}\n")
    print("| variant | time |")
    print("|---|---|")
    for k, t in med.items():
        print(f"| {k} | {fmt(t)} |")


def exp_bound(n: int, repeats: int) -> tuple[float, float]:
    """Seconds for one exp over n x n float64 elements, in row blocks: 1 thread, all CPUs."""
    rows = 64
    src = np.random.default_rng(0).uniform(-5, 0, size=(rows, n))
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    outs = [np.empty_like(src) for _ in range(workers)]

    def part(w: int) -> None:
        for _ in range(w, -(-n // rows), workers):
            np.exp(src, out=outs[w])

    def single() -> None:
        for _ in range(-(-n // rows)):
            np.exp(src, out=outs[0])

    with ThreadPoolExecutor(workers) as pool:
        med = interleaved(
            {"1": single, "all": lambda: list(pool.map(part, range(workers)))}, repeats
        )
    return med["1"], med["all"]


def worker(backend: str, dtype: str, n: int) -> None:
    """Subprocess: one blocked value + gradient at N = n; prints JSON (time, peak RSS)."""
    Z, X = problem(n, dtype)
    b, f = prepared(backend, dtype, "auto", Z, X)
    t = time.perf_counter()
    f()
    elapsed = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps({"time": elapsed, "rss": rss, "layout": b.resolve_layout(n)}))


def large(n: int, backends: list[str], timeout: float) -> None:
    print(f"\n## N = {n} float32 value + gradient, layout auto, one process per backend\n")
    print("| backend | layout (block rows) | time of one call | peak RSS |")
    print("|---|---|---|---|")
    for backend in backends:
        cmd = [sys.executable, __file__, "--worker", backend, "float32", str(n)]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"| {backend} | timed out after {timeout:.0f} s | | |", flush=True)
            continue
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if out.returncode or not lines:
            print(f"| {backend} | failed (rc {out.returncode}): {out.stderr.strip()[-200:]} | | |")
            continue
        r = json.loads(lines[-1])
        print(
            f"| {backend} | {r['layout'][0]} ({r['layout'][1]}) | {fmt(r['time'])} "
            f"| {r['rss'] / 2**30:.2f} GiB |",
            flush=True,
        )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n-mid", type=int, default=10_000)
    p.add_argument("--n-large", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backends", nargs="+", default=ukr_bench.available_backends())
    p.add_argument("--skip-dense", action="store_true", help="blocked only at --n-mid")
    p.add_argument("--skip-large", action="store_true")
    p.add_argument("--only-large", action="store_true", help="only the --n-large table")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per --n-large process")
    p.add_argument("--worker", nargs=3, metavar=("BACKEND", "DTYPE", "N"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], int(args.worker[2]))
        return
    if args.only_large:
        large(args.n_large, args.backends, args.timeout)
        return
    med = dense_vs_blocked(args.n_mid, args.backends, args.repeats, args.skip_dense)
    alternatives(args.n_mid, args.repeats)
    one, pooled = exp_bound(args.n_mid, args.repeats)
    fastest = min((t, k) for k, t in med.items() if k.endswith("blocked"))
    print(f"\n## Bound: exp over {args.n_mid}^2 float64 elements\n")
    print(
        f"1 thread {fmt(one)}, all CPUs {fmt(pooled)}; fastest blocked ({fastest[1]}) "
        f"{fastest[0] / one:.1f}x the 1-thread exp, {fastest[0] / pooled:.1f}x the all-CPU exp"
    )
    if not args.skip_large:
        large(args.n_large, args.backends, args.timeout)


if __name__ == "__main__":
    main()
