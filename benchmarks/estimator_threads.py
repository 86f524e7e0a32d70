"""The estimator's fit time against ``n_jobs``, side by side, per backend (issue 25 item 2).

    PYTHONPATH=. python benchmarks/estimator_threads.py [--n 600] [--max-iter 30] [--repeats 5]
        [--backends numpy torch] [--n-jobs 1 2]

Fits ``UKR(max_iter=...)`` on ``--n`` digits with the default ``n_jobs=None`` (the libraries'
own thread counts) and with each ``--n-jobs`` value, in rounds that interleave the settings
(one warm-up fit per backend first), all in this process. Prints, per backend, the median time
of each setting, every time measured, and each setting's median as a multiple of the fastest's.
JAX is not offered: ``n_jobs`` does not bound XLA's pool (:mod:`backends.threads`).

Timing on a shared machine is noisy: read the ratios within one run, not the absolute times.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import ukr_bench
from backends.threads import usable_cpu_count


def main(argv: list[str] | None = None) -> dict[str, dict[str, list[float]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="digits (at most 1797)")
    parser.add_argument("--max-iter", type=int, default=30, help="iRprop+ iterations per fit")
    parser.add_argument("--repeats", type=int, default=5, help="rounds over the settings")
    parser.add_argument("--backends", nargs="+", default=["numpy", "torch"])
    parser.add_argument("--n-jobs", nargs="+", type=int, default=[1], help="besides None")
    args = parser.parse_args(argv)

    X, _ = ukr_bench.make_dataset("digits", args.n, random_state=0)
    settings: list[int | None] = [None, *args.n_jobs]
    print(
        f"{args.n} digits, {args.max_iter} iterations, {args.repeats} rounds, "
        f"{usable_cpu_count()} usable CPUs"
    )
    out: dict[str, dict[str, list[float]]] = {}
    for backend in args.backends:
        ukr_bench.UKR(max_iter=2, backend=backend).fit(X)  # imports, first-call costs
        times: dict[str, list[float]] = {str(k): [] for k in settings}
        for _ in range(args.repeats):
            for n_jobs in settings:
                start = time.perf_counter()
                ukr_bench.UKR(max_iter=args.max_iter, backend=backend, n_jobs=n_jobs).fit(X)
                times[str(n_jobs)].append(time.perf_counter() - start)
        medians = {k: float(np.median(v)) for k, v in times.items()}
        best = min(medians.values())
        for k, v in times.items():
            print(
                f"{backend:6s} n_jobs={k:4s} median {medians[k]:7.2f} s  "
                f"x{medians[k] / best:5.2f} of the fastest  (all: "
                + " ".join(f"{t:.2f}" for t in v)
                + ")"
            )
        out[backend] = times
    return out


if __name__ == "__main__":
    main()
