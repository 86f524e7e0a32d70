"""Memory layouts of a value + gradient call, and the one rule that chooses among them.

``dense`` forms the N x N arrays at once; ``blocked`` runs row blocks of ``block`` rows (never an
N x N array); ``fused`` runs the value and the hand-derived gradient as kernels written for UKR
(Pallas for JAX, Triton for torch) that store nothing of size N x N; ``auto`` chooses dense or
blocked by :func:`plan_layout`. The objective they all compute is :mod:`ukr_bench.problem`'s.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ukr_bench.validation import DType, check_choice, is_int

__all__ = [
    "AUTO_DENSE_MAX_PAIRS",
    "BLOCK_BUFFERS",
    "BLOCK_MEMORY_FRACTION",
    "BLOCK_MIN_ROWS",
    "BLOCK_TARGET_BYTES",
    "DENSE_BUFFERS",
    "DENSE_MEMORY_FRACTION",
    "LAYOUTS",
    "Layout",
    "check_block_size",
    "check_layout",
    "plan_layout",
]

Layout = Literal["dense", "blocked", "fused", "auto"]
#: fused: a kernel per pass (Pallas, Triton); ``auto`` never picks it until measured on a GPU.
LAYOUTS: tuple[Layout, ...] = ("dense", "blocked", "fused", "auto")

#: ``auto`` keeps the dense form up to this many (query row x training point) pairs, N = 1024
#: for the objective (8 MiB per float64 N x N array): below it per-call overhead weighs more
#: than memory traffic and the dense arrays are small; above it the blocked layout's bounded
#: working set wins (each committed run's report compares the two layouts per N).
AUTO_DENSE_MAX_PAIRS = 1024 * 1024
#: ... and only while its N x N arrays (``DENSE_BUFFERS`` of them) take at most this fraction of
#: the available memory.
DENSE_MEMORY_FRACTION = 0.25
DENSE_BUFFERS = 8
#: Block arrays alive per block (logits/kernel, the gradient's B, a temporary), per worker.
BLOCK_BUFFERS = 4
#: Target bytes of one block's arrays together (``BLOCK_BUFFERS`` arrays of block rows x N): on
#: the host a block that stays in the caches (see benchmarks/large_n.py), on a GPU a block large
#: enough to keep the device busy.
BLOCK_TARGET_BYTES = {"cpu": 4 * 2**20, "cuda": 1024 * 2**20}
#: Blocks never take more than this fraction of the available memory, all workers together.
BLOCK_MEMORY_FRACTION = 0.25
#: Fewer rows per block only when memory leaves no choice: each block costs a few framework
#: calls, which would dominate one-row blocks at N = 100,000.
BLOCK_MIN_ROWS = 8


def check_layout(layout: object) -> Layout:
    """Return ``layout`` or raise naming it unless it is one of :data:`LAYOUTS`."""
    return check_choice("layout", layout, LAYOUTS)


def check_block_size(block_size: object) -> int | None:
    """Return ``block_size`` (rows per block, an int >= 1, or None for the rule) or raise.

    TypeError unless an integer (:func:`ukr_bench.validation.is_int`) or None, ValueError below 1.
    """
    if block_size is None:
        return None
    if not is_int(block_size):
        msg = f"block_size must be a positive integer or None, got {block_size!r}"
        raise TypeError(msg)
    if block_size < 1:
        msg = f"block_size must be >= 1, got {block_size!r}"
        raise ValueError(msg)
    return int(block_size)


def plan_layout(
    rows: int,
    n: int,
    latent_dim: int,
    data_dim: int,
    dtype: DType,
    available_bytes: int,
    *,
    layout: Layout = "auto",
    block_size: int | None = None,
    device_kind: str = "cpu",
    workers: int = 1,
) -> tuple[Literal["dense", "blocked", "fused"], int | None]:
    """Which layout, and how many rows per block, a call over ``rows`` x ``n`` pairs uses.

    The one rule every backend follows (``rows`` query rows against ``n`` training points:
    ``rows = n`` for the objective). With ``s`` the item size of ``dtype``:

    * ``"dense"`` and ``"fused"`` give ``(layout, None)`` (fused: the kernels' own tiles);
      ``"blocked"`` gives blocks; ``"auto"`` (never fused) gives dense when ``rows * n <=
      AUTO_DENSE_MAX_PAIRS`` and the dense arrays, ``DENSE_BUFFERS * rows * n * s`` bytes, are
      at most ``DENSE_MEMORY_FRACTION`` of ``available_bytes``; blocks otherwise.
    * The block size is ``block_size`` when given (capped at ``rows``: a block never holds more
      rows than there are). Otherwise one block row costs
      ``row_bytes = s * (BLOCK_BUFFERS * n + 2 * data_dim + 2 * latent_dim)``; a block gets
      ``BLOCK_TARGET_BYTES[device_kind] // row_bytes`` rows, at least ``BLOCK_MIN_ROWS``, but
      never more than ``BLOCK_MEMORY_FRACTION * available_bytes / workers // row_bytes`` (and at
      least 1, at most ``rows``).

    Memory of the blocked form: ``workers * BLOCK_BUFFERS * block * n * s`` plus O(n (L + D)).
    """
    itemsize = np.dtype(dtype).itemsize
    if layout == "fused":
        return "fused", None
    if layout == "dense" or (
        layout == "auto"
        and rows * n <= AUTO_DENSE_MAX_PAIRS
        and DENSE_BUFFERS * rows * n * itemsize <= DENSE_MEMORY_FRACTION * available_bytes
    ):
        return "dense", None
    if block_size is not None:
        return "blocked", min(block_size, rows)
    row_bytes = itemsize * (BLOCK_BUFFERS * n + 2 * data_dim + 2 * latent_dim)
    target = BLOCK_TARGET_BYTES.get(device_kind, BLOCK_TARGET_BYTES["cpu"]) // row_bytes
    cap = BLOCK_MEMORY_FRACTION * available_bytes / max(workers, 1) // row_bytes
    return "blocked", int(min(max(min(max(target, BLOCK_MIN_ROWS), cap), 1), rows))
