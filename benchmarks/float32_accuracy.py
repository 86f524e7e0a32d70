"""The float32 gradient's relative error against float64, per backend, layout and gradient kind.

    PYTHONPATH=. python benchmarks/float32_accuracy.py [--n 1000] [--sigma 0.5]

The benchmark's problem (the saddle, leave-one-out, no prior), the table of issue 21: every
hand-derived float32 gradient should be as accurate as autodiff's on any CPU (the tests hold it
to twice autodiff's error: ``tests/test_gradients.py``). Errors depend on the CPU and on the
instruction-set path its libraries take; the CPU is printed with the table. Run it under the
second path of ``nox -s tests`` by setting the variables of ``ISA_PATHS`` in ``noxfile.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ukr_bench import available_backends, relative_error, value_and_grad
from ukr_bench.bench.machine import machine_metadata
from ukr_bench.data import problem_inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--sigma", type=float, default=0.5)
    args = parser.parse_args()
    Z, X = problem_inputs("saddle", args.n, 2)
    ref = value_and_grad(Z, X, sigma=args.sigma, layout="dense")[1]
    rows = []
    for backend in ("numpy", "jax", "torch"):
        if backend not in available_backends():
            continue
        row = [backend]
        for layout in ("dense", "blocked"):
            for gradient in ("manual", "autodiff"):
                if backend == "numpy" and gradient == "autodiff":
                    row.append("-")
                    continue
                g = value_and_grad(
                    Z, X, backend=backend, sigma=args.sigma, dtype="float32", layout=layout,
                    gradient=gradient,
                )[1]  # fmt: skip
                row.append(f"{relative_error(g, ref):.2e}")
        rows.append(row)
    meta = machine_metadata()
    print(f"CPU: {meta['cpu_model']} ({', '.join(meta.get('cpu_simd') or [])})")
    print(f"saddle, N = {args.n}, sigma = {args.sigma}, float32 against float64 NumPy\n")
    header = ["backend", "dense manual", "dense autodiff", "blocked manual", "blocked autodiff"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
