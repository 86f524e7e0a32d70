"""The bound's rates per framework: the exp rate as the harness measured it before and now.

    PYTHONPATH=. python benchmarks/pair_rates.py [--threads 1] [--backends numpy jax torch]
                                                 [--device cuda]

One process per framework, started with the environment a benchmark worker of that backend
gets (threads sized before the framework loads), as the harness runs them. Per backend and
dtype: the old exp rate (``xp.exp`` of 2^22 elements, each written back to memory) beside
the rates of :func:`ukr_bench.bench.bound.pair_rates` (exps fused with a sum on a block in
cache, an elementwise FMA chain, a GEMM), in operations per second. Times on a shared machine
are noisy: compare the columns of one run, on an otherwise idle machine where possible.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends import REGISTRY
from ukr_bench.interface import available_backends

#: Elements of the old exp measurement (what ``pair_rates`` timed before the fused one).
OLD_ELEMENTS = 2**22


def measure(name: str, threads: int, device: str) -> list[dict[str, Any]]:
    """This process's rates of backend ``name`` on ``device``, both dtypes."""
    import numpy as np

    from ukr_bench.bench.bound import _best_of_5, pair_rates
    from ukr_bench.interface import get_backend, instrumented_class

    instrumented_class(name).configure_process(threads)
    out: list[dict[str, Any]] = []
    for dtype in ("float32", "float64"):
        b = get_backend(name, dtype=dtype, device=device)
        with b.context():
            a = b.asarray(-np.random.default_rng(0).random(OLD_ELEMENTS).astype(dtype))
            old = OLD_ELEMENTS / _best_of_5(b, functools.partial(b.xp.exp, a))
        r = pair_rates(b)
        out.append({"backend": name, "dtype": dtype, "old exp": old, "exp": r.exp,
                    "fma": r.fma, "gemm": r.gemm})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backends", nargs="+", default=["numpy", "jax", "torch"])
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for a GPU's rates")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # one framework's process
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args.threads, args.device)))
        return
    rows = []
    for name in args.backends:
        if name not in available_backends():
            print(f"{name}: not installed, skipped", file=sys.stderr)
            continue
        env = os.environ | REGISTRY[name].worker_env(args.threads)
        if args.device != "cpu" and REGISTRY[name].host_only:
            continue
        cmd = [sys.executable, __file__, "--worker", name, "--threads", str(args.threads),
               "--device", args.device]  # fmt: skip
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"{name}: the worker failed:\n{done.stderr}")
        rows += json.loads(done.stdout.strip().splitlines()[-1])
    print("| backend | dtype | old exp/s | exp/s | FMA flop/s | GEMM flop/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        rates = " | ".join(f"{r[k]:.3g}" for k in ("old exp", "exp", "fma", "gemm"))
        print(f"| {r['backend']} | {r['dtype']} | {rates} |")


if __name__ == "__main__":
    main()
