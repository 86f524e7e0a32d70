"""Issue 12, outside the harness: how the hand-derived gradient is written, measured side by side.

    PYTHONPATH=. python benchmarks/gradient_forms.py [--n 1000 4000] [--rounds 15]
        [--frameworks jax torch numpy] [--array-api PATH]

Per framework, layout, dtype and N, interleaved rounds (each round times every variant
once, so the machine's load hits all of them alike), medians:

* ``value``: the objective alone; ``autodiff``: the framework's reverse mode;
* ``manual``: the hand-derived gradient as shipped (latent assembly from differences);
* dense only: ``manual-products``: the same with the GEMM assembly ``B'Z + B'^T Z - (rowsum + colsum) Z``;
* ``manual-xp``: the hand-derived formula written once against the array API standard
  (``array_api_compat.array_namespace``; JAX under ``jit``), when ``array_api_compat`` is
  importable (``--array-api`` adds a folder holding it to ``sys.path``).

Then the float32 gradient's relative error against the float64 NumPy gradient, for each
variant. Timing on a shared machine is noisy: read the ratios within one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ukr_bench import get_backend, relative_error
from ukr_bench.data import problem_inputs

SIGMA, LAM, LOO = 0.5, 0.0, True


def manual_xp(Z: Any, X: Any, sigma: float, lam: float, loo: bool) -> tuple[Any, Any]:
    """The hand-derived value and gradient, once, in the array API standard's functions only."""
    import array_api_compat

    xp = array_api_compat.array_namespace(Z, X)
    N, L = Z.shape
    A = (Z[:, 0, None] - Z[None, :, 0]) ** 2
    for l in range(1, L):
        A = A + (Z[:, l, None] - Z[None, :, l]) ** 2
    A = A * (-1.0 / (2.0 * sigma**2))
    if loo:
        A = xp.where(xp.eye(N, dtype=xp.bool), -xp.inf, A)
    K = xp.exp(A - xp.max(A, axis=1, keepdims=True))
    R = K / xp.sum(K, axis=1, keepdims=True)
    Y = xp.matmul(R, X)
    e = Y - X
    value = (xp.sum(e * e) + lam * xp.sum(Z * Z)) / N
    B = R * (xp.matmul(e, xp.matrix_transpose(X)) - xp.sum(e * Y, axis=1, keepdims=True))
    cols = []
    for l in range(L):
        P = B * (Z[:, l, None] - Z[None, :, l])
        cols.append(xp.sum(P, axis=0) - xp.sum(P, axis=1))
    grad = xp.stack(cols, axis=1) * (2.0 / (N * sigma**2)) + (2.0 * lam / N) * Z
    return value, grad


def variants(
    framework: str, dtype: str, layout: str = "dense"
) -> tuple[Any, dict[str, Callable[[Any, Any], Any]]]:
    """The backend object and the functions to time, each ``f(Z, X) -> value or (value, grad)``."""
    b = get_backend(framework, dtype=dtype, layout=layout)
    out: dict[str, Callable[[Any, Any], Any]] = {}

    def bound(fn: str, **kw: Any) -> Callable[[Any, Any], Any]:
        kb = get_backend(framework, dtype=dtype, layout=layout, **kw)
        return lambda Z, X: getattr(kb, fn)(Z, X, SIGMA, LAM, LOO)

    out["value"] = bound("value")
    if framework != "numpy":
        out["autodiff"] = bound("value_and_grad", gradient="autodiff")
    out["manual"] = bound("value_and_grad", gradient="manual")
    if layout == "blocked":
        return b, out
    if framework == "jax":
        import jax

        from backends import jax_backend as jb

        prod = jax.jit(jb.value_and_grad_manual, static_argnames=("loo", "assembly"))
        out["manual-products"] = lambda Z, X: _x64(dtype, prod, Z, X, assembly="products")
        if _has_array_api():
            xpf = jax.jit(manual_xp, static_argnames="loo")
            out["manual-xp"] = lambda Z, X: _x64(dtype, xpf, Z, X)
    elif framework == "torch":
        from backends import torch_backend as tb

        out["manual-products"] = lambda Z, X: tb.value_and_grad_manual(
            Z, X, SIGMA, LAM, LOO, assembly="products"
        )
        if _has_array_api():
            out["manual-xp"] = lambda Z, X: manual_xp(Z, X, SIGMA, LAM, LOO)
    elif _has_array_api():
        out["manual-xp"] = lambda Z, X: manual_xp(Z, X, SIGMA, LAM, LOO)
    return b, out


def _x64(dtype: str, f: Callable[..., Any], Z: Any, X: Any, **kw: Any) -> Any:
    import jax

    with jax.enable_x64(dtype == "float64"):
        return f(Z, X, SIGMA, LAM, loo=LOO, **kw)


def _has_array_api() -> bool:
    try:
        import array_api_compat  # noqa: F401
    except ImportError:
        return False
    return True


def measure(framework: str, dtype: str, n: int, rounds: int, layout: str = "dense") -> None:
    Z, X = problem_inputs("saddle", n, 2)
    b, fns = variants(framework, dtype, layout)
    Zd, Xd = b.asarray(Z), b.asarray(X)
    for f in fns.values():  # warm-up (JAX compiles here)
        b.sync(f(Zd, Xd))
        b.sync(f(Zd, Xd))
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            b.sync(f(Zd, Xd))
            times[k].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    cells = [f"{k} {1e3 * t:.1f} ms" for k, t in med.items()]
    ratios = [f"{k}/value {t / med['value']:.2f}" for k, t in med.items() if k != "value"]
    if "autodiff" in med:
        ratios.append(f"autodiff/manual {med['autodiff'] / med['manual']:.2f}")
    if "manual-xp" in med:
        ratios.append(f"xp/manual {med['manual-xp'] / med['manual']:.2f}")
    if "manual-products" in med:
        ratios.append(f"products/manual {med['manual-products'] / med['manual']:.2f}")
    print(f"{framework} {layout} {dtype} N={n}: " + ", ".join(cells))
    print("    " + ", ".join(ratios))
    if dtype == "float32":
        ref = get_backend("numpy", layout="dense").value_and_grad(Z, X, SIGMA, LAM, LOO)[1]
        errs = []
        for k, f in fns.items():
            if k != "value":
                g = b.to_numpy(b.sync(f(Zd, Xd))[1])
                errs.append(f"{k} {relative_error(g, ref):.2e}")
        print("    float32 gradient error vs float64 NumPy: " + ", ".join(errs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--frameworks", nargs="+", default=["jax", "torch", "numpy"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--layouts", nargs="+", default=["dense", "blocked"])
    parser.add_argument("--array-api", help="a folder holding array_api_compat, put on sys.path")
    args = parser.parse_args()
    if args.array_api:
        sys.path.append(args.array_api)
    for framework in args.frameworks:
        for layout in args.layouts:
            for dtype in args.dtypes:
                for n in args.n:
                    measure(framework, dtype, n, args.rounds, layout)


if __name__ == "__main__":
    main()
