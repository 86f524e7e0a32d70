"""UKR's value + gradient and a few training steps, rows split over torch.distributed ranks.

Run with one process per device (CPU ranks talk over Gloo, GPU ranks over NCCL)::

    torchrun --standalone --nproc-per-node 4 examples/distributed_torch.py --device cpu:0-3
    torchrun --standalone --nproc-per-node 4 examples/distributed_torch.py --device cuda:0-3

Every rank builds the same data (same seed), computes its share of the rows, and receives the
whole value and gradient; rank 0 checks them against the one-process blocked computation and
prints. Several hosts: ``torchrun --nnodes H --node-rank h --rdzv-endpoint host0:29500
--nproc-per-node k examples/distributed_torch.py --device cuda:0-<k-1>`` on each host.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch.distributed as dist

import ukr_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu:0-1", help="e.g. cpu:0-3 or cuda:0-3")
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    X, _ = ukr_bench.make_dataset("saddle", args.points, noise=0.05, random_state=0)
    Z = 0.1 * np.random.default_rng(0).normal(size=(args.points, 2))
    b = ukr_bench.get_backend("torch", dtype="float64", device=args.device, layout="blocked")
    Zt, Xt = b.asarray(Z), b.asarray(X)
    value, grad = b.value_and_grad(Zt, Xt, 0.5, 0.0, True)
    rank = dist.get_rank()
    if rank == 0:
        ref_v, ref_g = ukr_bench.value_and_grad(Z, X, backend="torch", sigma=0.5, layout="blocked")
        err = np.abs(b.to_numpy(grad) - ref_g).max() / np.abs(ref_g).max()
        print(
            f"{b.n_devices} ranks: E = {float(value):.12g} (one process: {ref_v:.12g}), "
            f"gradient max rel. difference {err:.2e}"
        )
    for step in range(args.steps):  # plain gradient descent; every rank takes the same step
        Zt = Zt - 200.0 * grad
        value, grad = b.value_and_grad(Zt, Xt, 0.5, 0.0, True)
        if rank == 0:
            print(f"step {step + 1}: E = {float(value):.6g}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
