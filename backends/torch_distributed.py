"""The blocked value + gradient of :mod:`backends.torch_blocked` split over torch.distributed ranks.

One process per device, started by ``torchrun --nproc-per-node k script.py`` (several hosts:
``torchrun --nnodes H --node-rank h --rdzv-endpoint host0:29500 --nproc-per-node k``); rank
``r`` computes on ``cuda:<r-th index>`` (NCCL) or on the host (Gloo). Every rank holds all of
``Z`` (N x L) and ``X`` (N x D); rank ``r`` takes the contiguous rows
``[r N // k, (r + 1) N // k)`` (uneven ranges, no padding) and runs the one-pass blocked value
and hand-derived gradient over them (:func:`backends.torch_blocked.blocked_pass`, the pass of
one process): its rows' softmaxes are complete (all N columns are on every rank), so each row
is computed exactly once. Its gradient contribution is an N x L array, its row terms in its own
range plus its column terms in every row; one ``all_reduce`` (sum) of that array with the sum
of squares appended gives every rank the whole value and gradient, which the same
``autograd.Function`` as in one process (:func:`backends.torch_blocked.hand_derived_objective`)
turns into E and dE/dZ.

Failure on one rank: before the data ``all_reduce`` the ranks exchange one small status vector
(which ranks failed; min and max of N, L and D) with ``all_reduce(MAX)``, so an exception on one
rank (out of memory, bad input) or mismatched shapes raise :class:`RankFailedError` on *every*
rank instead of leaving the others blocked in the data collective. A rank that dies without
raising is caught by the process group's timeout (``init_process_group(timeout=...)``; the
groups this module starts take ``UKR_BENCH_DIST_TIMEOUT`` seconds, default 600).
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist

from backends import torch_blocked


class RankFailedError(RuntimeError):
    """Raised on every rank when one rank's share failed or the ranks' inputs differ."""


def ensure_group(kind: str, k: int, device: str) -> tuple[int, int]:
    """(rank, world size) of the default process group, starting it from torchrun's environment.

    The world must have ``k`` ranks, one per device of ``device``.
    """
    if not dist.is_available():
        msg = f"device {device!r} needs torch.distributed, which this torch build lacks"
        raise RuntimeError(msg)
    if not dist.is_initialized():
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            msg = (
                f"device {device!r} names {k} devices: torch runs one process per device; start "
                f"the script with 'torchrun --nproc-per-node {k} script.py' (or call "
                "torch.distributed.init_process_group first)"
            )
            raise RuntimeError(msg)
        timeout = float(os.environ.get("UKR_BENCH_DIST_TIMEOUT", "600"))
        dist.init_process_group(
            "nccl" if kind == "cuda" else "gloo",
            timeout=datetime.timedelta(seconds=timeout),
        )
    rank, world = dist.get_rank(), dist.get_world_size()
    if world != k:
        msg = f"device {device!r} names {k} devices, but the process group has {world} ranks: start one process per device"
        raise RuntimeError(msg)
    return rank, world


def row_range(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of ``rank``: contiguous, sizes differing by at most one."""
    return rank * n // world, (rank + 1) * n // world


def local_pass(
    Z: torch.Tensor,
    X: torch.Tensor,
    sigma: float,
    block: int,
    *,
    loo: bool,
    grad: bool,
    lo: int,
    hi: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Rows ``[lo, hi)``: (sum of their ||e_n||^2, their N x L contribution to d sum||e||^2 / dZ).

    The one-process blocked pass (:func:`backends.torch_blocked.blocked_pass`) over these rows
    only: the loo diagonal at each block's global row offset, row terms for these rows, column
    terms from these rows for all N. The contribution is scaled by 2 / sigma^2 already; it is
    None without ``grad``.
    """
    _, sq, share = torch_blocked.blocked_pass(
        Z, X, Z, X, sigma, block, loo=loo, grad=grad, columns=True, lo=lo, hi=hi
    )
    return sq, share


def _check_ranks(error: BaseException | None, shapes: tuple[int, ...], device: Any) -> None:
    """Every rank learns which ranks failed and whether the shapes agree; raise on all of them."""
    rank, world = dist.get_rank(), dist.get_world_size()
    status = torch.zeros(world + 2 * len(shapes), dtype=torch.int64, device=device)
    status[rank] = int(error is not None)
    for i, n in enumerate(shapes):
        status[world + 2 * i], status[world + 2 * i + 1] = n, -n
    dist.all_reduce(status, op=dist.ReduceOp.MAX)
    failed = [r for r in range(world) if status[r] > 0]
    here = f" (this rank, {rank}: {type(error).__name__}: {error})" if error is not None else ""
    if failed:
        msg = f"rank(s) {failed} of {world} failed in the distributed UKR pass{here}"
        raise RankFailedError(msg) from error
    ext = status[world:].tolist()
    if any(ext[2 * i] != -ext[2 * i + 1] for i in range(len(shapes))):
        msg = f"the ranks' inputs differ in shape: (N, L, D) max {ext[0::2]}, min {[-v for v in ext[1::2]]}; every rank must hold the same Z and X"
        raise RankFailedError(msg)


def data_term(
    Z: torch.Tensor, X: torch.Tensor, sigma: float, loo: bool, block: int, *, grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """sum_n ||e_n||^2 and (with ``grad``) its gradient N x L, on every rank of the group."""
    rank, world = dist.get_rank(), dist.get_world_size()
    lo, hi = row_range(Z.shape[0], rank, world)
    error: BaseException | None = None
    sq: torch.Tensor | None = None
    g: torch.Tensor | None = None
    try:
        sq, g = local_pass(Z, X, sigma, block, loo=loo, grad=grad, lo=lo, hi=hi)
    except Exception as exc:  # noqa: BLE001 - re-raised on every rank by _check_ranks
        error = exc
    _check_ranks(error, (Z.shape[0], Z.shape[1], X.shape[1]), Z.device)
    assert sq is not None
    # One collective: the N x L contributions with the sum of squares appended.
    buf = torch.cat([g.reshape(-1), sq.reshape(1)]) if g is not None else sq.reshape(1).clone()
    dist.all_reduce(buf)
    return buf[-1], (buf[:-1].reshape(Z.shape) if g is not None else None)


def objective(
    Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool, block: int
) -> torch.Tensor:
    """E(Z) with rows split over the process group, the same on every rank; differentiable in
    ``Z`` as :func:`backends.torch_blocked.objective_blocked` is (one pass, one collective)."""

    def share(Z: torch.Tensor, X: torch.Tensor, grad: bool) -> Any:
        return data_term(Z, X, sigma, loo, block, grad=grad)

    return torch_blocked.hand_derived_objective(share, Z, X, lam)
