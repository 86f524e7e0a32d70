"""Issue 12: *why* value + gradient costs more than three values in the dense layout.

    PYTHONPATH=. python benchmarks/gradient_profile.py [--n 4000] [--out FILE.md]

The cheap-gradient principle bounds reverse mode's *operations* by a small constant times the
value's; the dense layout is bound by *memory traffic* over N x N arrays instead, and the
gradient moves several more of them. Two views, in one process, float64 and float32:

* JAX: XLA's own cost analysis of the compiled executables (``compiled.cost_analysis()``:
  flops, transcendentals, bytes accessed) of the value, the autodiff value + gradient and the
  hand-derived one, as multiples of the value's;
* torch: ``torch.profiler``'s operators by self CPU time in one autodiff and one hand-derived
  dense value + gradient (after a warm-up call).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ukr_bench import get_backend
from ukr_bench.data import problem_inputs

SIGMA, LAM = 0.5, 0.0


def _costs(compiled: Any) -> dict[str, float]:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost  # older jaxlib: one dict per program
    return {k: float(cost.get(k, 0.0)) for k in ("flops", "transcendentals", "bytes accessed")}


def jax_view(n: int) -> list[str]:
    import numpy as np

    from backends.jax_backend import _JITTED, _enable_x64

    Z, X = problem_inputs("saddle", n, 2)
    lines = [
        f"### JAX, dense, N = {n}: XLA cost analysis (multiples of the value's)",
        "",
        "| dtype | executable | flops | exp | bytes accessed | bytes / N^2 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for dtype in ("float64", "float32"):
        with _enable_x64(dtype == "float64"):
            Zj, Xj = np.asarray(Z, dtype), np.asarray(X, dtype)
            costs = {
                name: _costs(_JITTED[key].lower(Zj, Xj, SIGMA, LAM, loo=True).compile())
                for name, key in (
                    ("value", "value"),
                    ("autodiff value + gradient", "value_and_grad"),
                    ("hand-derived value + gradient", "value_and_grad_manual"),
                )
            }
        base = costs["value"]
        for name, c in costs.items():
            rel = {k: c[k] / base[k] if base[k] else float("nan") for k in c}
            lines.append(
                f"| {dtype} | {name} | {rel['flops']:.2f}x | {rel['transcendentals']:.2f}x | "
                f"{rel['bytes accessed']:.2f}x | {c['bytes accessed'] / n**2:.0f} |"
            )
    return lines


def torch_view(n: int, rows: int = 8) -> list[str]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    Z, X = problem_inputs("saddle", n, 2)
    lines = []
    for gradient in ("autodiff", "manual"):
        b = get_backend("torch", dtype="float64", layout="dense", gradient=gradient)
        Zt, Xt = b.asarray(Z), b.asarray(X)
        b.value_and_grad(Zt, Xt, SIGMA, LAM, True)  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            b.value_and_grad(Zt, Xt, SIGMA, LAM, True)
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events) or 1.0
        lines += [
            f"### torch {torch.__version__}, dense float64, N = {n}, {gradient}: operators by "
            + "self CPU time",
            "",
            "| operator | calls | self CPU | share |",
            "|---|---:|---:|---:|",
        ]
        for e in events[:rows]:
            lines.append(
                f"| `{e.key}` | {e.count} | {e.self_cpu_time_total / 1e3:.1f} ms | "
                f"{100 * e.self_cpu_time_total / total:.0f} % |"
            )
        lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--out", type=Path, default=None, help="also write the tables here")
    args = parser.parse_args()
    text = "\n".join([*jax_view(args.n), "", *torch_view(args.n)]) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            f"# Where the dense gradient's time goes\n\n`{' '.join(sys.argv)}`\n\n{text}"
        )


if __name__ == "__main__":
    main()
