"""Run by tests/test_multi_device.py under ``torchrun``: one Gloo process per rank.

``mode`` (first argument):

* ``agree``: every rank writes one JSON file (``$UKR_TEST_OUT/rank<r>.json``) with the relative errors of the distributed value
  and gradient against the one-process blocked torch path and dense NumPy (float64), for N not
  divisible by the world size, more ranks than blocks, more ranks than rows; the same in
  float32 on the benchmark's problem (key ``float32``: absolute differences between the
  three); and UKR.fit on the ranks against one process.
* ``raise``: rank 1's share raises; every rank must raise RankFailedError (written as JSON).
* ``shapes``: rank 1 holds one more row; every rank must raise RankFailedError.
* ``die``: rank 1 exits without a word before the collective; the others must raise within the
  process group's timeout.
"""

from __future__ import annotations

import datetime
import json
import os
import sys

import numpy as np
import torch.distributed as dist

import ukr_bench
from backends import torch_distributed
from ukr_bench import get_backend, value_and_grad
from ukr_bench.data import problem_inputs

TIMEOUT_S = 20
#: The float32 case: the benchmark's problem (saddle, sigma = 0.5), N = 1000 divisible by
#: neither 3 nor 64, blocks of 64 rows (one process: 15 full blocks + 40 rows).
F32_N, F32_BLOCK, F32_KW = 1000, 64, {"sigma": 0.5, "lam": 0.1, "loo": True}


def float32_case(device: str) -> dict[str, object]:
    """float32 split over the ranks and in one process, and float64 dense NumPy: the absolute
    differences between them that the test bounds."""
    Z, X = problem_inputs("saddle", F32_N, 2)
    kw = {**F32_KW, "layout": "blocked", "block_size": F32_BLOCK}
    vk, gk = value_and_grad(Z, X, backend="torch", dtype="float32", device=device, **kw)
    dist.barrier()
    v1, g1 = value_and_grad(Z, X, backend="torch", dtype="float32", **kw)
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


def main() -> None:
    mode = sys.argv[1]
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=TIMEOUT_S))
    rank, world = dist.get_rank(), dist.get_world_size()
    device = f"cpu:0-{world - 1}"
    rng = np.random.default_rng(0)
    out: dict[str, object] = {"rank": rank, "world": world}
    if mode == "agree":
        for n, block, loo in [(103, 16, True), (103, 16, False), (10, 64, True), (3, 8, True)]:
            Z, X = rng.normal(size=(n, 2)), rng.normal(size=(n, 3))
            kw = {"sigma": 0.7, "lam": 0.1, "loo": loo, "layout": "blocked", "block_size": block}
            v, g = value_and_grad(Z, X, backend="torch", device=device, **kw)
            b = get_backend("torch", device=device, layout="blocked", block_size=block)
            vo = float(b.value(b.asarray(Z), b.asarray(X), 0.7, 0.1, loo))
            dist.barrier()
            v1, g1 = value_and_grad(Z, X, backend="torch", **kw)  # one process
            v0, g0 = value_and_grad(Z, X, backend="numpy", **{**kw, "layout": "dense"})
            scale = np.abs(g0).max()
            out[f"n{n}_b{block}_loo{int(loo)}"] = {
                "value_vs_blocked": abs(v - v1) / abs(v1),
                "grad_vs_blocked": float(np.abs(g - g1).max() / scale),
                "value_vs_numpy": abs(v - v0) / abs(v0),
                "grad_vs_numpy": float(np.abs(g - g0).max() / scale),
                "value_only_vs_numpy": abs(vo - v0) / abs(v0),
            }
        out["float32"] = float32_case(device)
        # The estimator trains on the ranks: the same embedding as in one process.
        Xs, _ = ukr_bench.make_dataset("saddle", 150, noise=0.05, random_state=0)
        kw = {"backend": "torch", "sigma": 0.5, "max_iter": 10, "optimizer": "gd"}
        e_k = ukr_bench.UKR(device=device, random_state=0, **kw).fit(Xs).embedding_
        e_1 = ukr_bench.UKR(device="cpu", random_state=0, **kw).fit(Xs).embedding_
        out["estimator"] = float(np.abs(e_k - e_1).max() / np.abs(e_1).max())
    else:
        n = 50 + (mode == "shapes" and rank == 1)
        Z, X = rng.normal(size=(n, 2)), rng.normal(size=(n, 3))
        if mode == "raise" and rank == 1:

            def broken(*args: object, **kwargs: object) -> None:
                raise MemoryError("injected failure")

            torch_distributed.local_pass = broken  # type: ignore[assignment]
        if mode == "die" and rank == 1:
            os._exit(0)
        try:
            value_and_grad(Z, X, backend="torch", device=device, layout="blocked")
            out["raised"] = None
        except Exception as exc:  # noqa: BLE001 - the message is the result
            out["raised"] = f"{type(exc).__name__}: {exc}"
    # One file per rank: the ranks share torchrun's stdout, where two lines can interleave.
    out_dir = os.environ["UKR_TEST_OUT"]
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(out, f)
    if mode != "die":
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
