"""Run by tests/test_multi_device.py in a subprocess: JAX must see 4 forced CPU devices.

Prints one JSON object: for each case, the relative errors of the sharded value and gradient
against the one-device blocked JAX path and against dense NumPy (float64), the same in float32
(absolute differences) on the benchmark's problem (:func:`float32_case`), and the messages of the errors it provokes.
"""

from __future__ import annotations

import json
import os
import sys

assert "--xla_force_host_platform_device_count=4" in os.environ.get("XLA_FLAGS", "")

import jax
import numpy as np
from jax.sharding import Mesh

import ukr_bench
from ukr_bench import UKR, get_backend, value_and_grad
from ukr_bench.data import problem_inputs
from ukr_bench.problem import Params

#: The float32 case: the benchmark's problem (saddle, sigma = 0.5), N not divisible by 3 or 4,
#: blocks of 64 rows (one device: 15 full blocks + 40 rows; four: 250 rows = 3 x 64 + 58).
F32_N, F32_BLOCK, F32_KW = 1000, 64, {"sigma": 0.5, "lam": 0.1, "loo": True}


def float32_case(device):
    """float32, sharded over ``device`` and on one device, and float64 dense NumPy: the
    absolute differences between them that the test bounds."""
    Z, X = problem_inputs("saddle", F32_N, 2)
    kw = {**F32_KW, "layout": "blocked", "block_size": F32_BLOCK}
    vk, gk = value_and_grad(Z, X, backend="jax", dtype="float32", device=device, **kw)
    v1, g1 = value_and_grad(Z, X, backend="jax", dtype="float32", **kw)
    v0, g0 = value_and_grad(Z, X, backend="numpy", **{**kw, "layout": "dense"})
    return {
        "n": F32_N,
        **F32_KW,
        "value_diff": abs(float(vk) - float(v1)),
        "grad_diff": float(np.linalg.norm(gk - g1)),
        "value_err_sharded": abs(float(vk) - v0),
        "value_err_one": abs(float(v1) - v0),
        "grad_err_sharded": float(np.linalg.norm(gk - g0)),
        "grad_err_one": float(np.linalg.norm(g1 - g0)),
    }


def errors(Z, X, device, block, sigma=0.7, lam=0.1, loo=True):
    kw = {"backend": "jax", "sigma": sigma, "lam": lam, "loo": loo}
    v, g = value_and_grad(Z, X, device=device, layout="blocked", block_size=block, **kw)
    v1, g1 = value_and_grad(Z, X, layout="blocked", block_size=block, **kw)
    v0, g0 = value_and_grad(Z, X, **{**kw, "backend": "numpy"}, layout="dense")
    scale = np.abs(g0).max()
    b = get_backend("jax", device=device, layout="blocked", block_size=block)
    value_only = float(b.to_numpy(b.value(b.asarray(Z), b.asarray(X), sigma, lam, loo)))
    f = b.compile("value_and_grad", b.asarray(Z), b.asarray(X), Params(sigma, lam, loo))
    vc, gc = f(b.asarray(Z), b.asarray(X))
    return {
        "value_vs_blocked": abs(v - v1) / abs(v1),
        "grad_vs_blocked": float(np.abs(g - g1).max() / scale),
        "value_vs_numpy": abs(v - v0) / abs(v0),
        "grad_vs_numpy": float(np.abs(g - g0).max() / scale),
        "value_only_vs_numpy": abs(value_only - v0) / abs(v0),
        "compiled_vs_numpy": float(np.abs(b.to_numpy(gc) - g0).max() / scale)
        + abs(float(b.to_numpy(vc)) - v0) / abs(v0),
        "n_devices": b.n_devices,
        "grad_replicated": bool(gc.sharding.is_fully_replicated),
    }


def main() -> None:
    rng = np.random.default_rng(0)
    cpus = jax.devices("cpu")
    out: dict[str, object] = {"devices": len(cpus)}

    def problem(n):
        return rng.normal(size=(n, 2)), rng.normal(size=(n, 3))

    Z, X = problem(103)  # N not divisible by 4; 26 rows per device, blocks of 16 + 10
    out["n103_k4_loo"] = errors(Z, X, "cpu:0-3", 16)
    out["n103_k4_noloo"] = errors(Z, X, "cpu:0-3", 16, loo=False, lam=0.0)
    out["n103_k3_list"] = errors(Z, X, ["cpu:0", "cpu:2", "cpu:3"], 16)
    Z, X = problem(10)  # more devices than blocks: one block of 64 on one device
    out["n10_k4_block64"] = errors(Z, X, "cpu:0-3", 64)
    Z, X = problem(3)  # more devices than rows: the last device holds only padding
    out["n3_k4"] = errors(Z, X, "cpu:0-3", 8)
    Z, X = problem(50)
    out["n50_mesh1"] = errors(Z, X, Mesh(cpus[:1], ("rows",)), 7)
    out["n50_mesh2x2"] = errors(
        Z, X, Mesh(np.array(cpus[:4]).reshape(2, 2), ("a", "b")), 7, sigma=0.3
    )

    out["float32"] = {"k4": float32_case("cpu:0-3"), "k3": float32_case("cpu:0-2")}

    # The estimator trains on the device set: the same embedding as on one device.
    Xs, _ = ukr_bench.make_dataset("saddle", 120, noise=0.05, random_state=0)
    kw = {"backend": "jax", "sigma": 0.5, "max_iter": 10, "optimizer": "gd", "random_state": 0}
    e4 = UKR(device="cpu:0-3", **kw).fit(Xs).embedding_
    e1 = UKR(device="cpu", **kw).fit(Xs).embedding_
    out["estimator"] = float(np.abs(e4 - e1).max() / np.abs(e1).max())

    msgs = {}
    for name, call in {
        "too_many": lambda: get_backend("jax", device="cpu:0-7"),
        "dense": lambda: get_backend("jax", device="cpu:0-3", layout="dense"),
        "numpy": lambda: get_backend("numpy", device="cpu:0-1"),
    }.items():
        try:
            call()
            msgs[name] = None
        except Exception as exc:  # noqa: BLE001 - the message is the result
            msgs[name] = f"{type(exc).__name__}: {exc}"
    out["errors"] = msgs
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
