r"""KeOps backend: the objective as KeOps ``LazyTensor`` reductions, differentiated by ``torch.autograd``.

KeOps (pykeops, through its torch binding) is the specialised library a user would pick for
kernel sums at large N: it compiles each formula to C++ (CUDA on GPUs) that streams over tiles
of the (i, j) pairs, so neither the N x N logits nor any N x N array is ever stored (memory
O(N (L + D))). Notation of :mod:`ukr_bench.problem`; with latents scaled by
:math:`1/(\sqrt2\sigma)` the logits are :math:`A_{ij} = -\lVert z_i - z_j\rVert^2`, and

.. math:: y_i = \frac{\sum_j \exp(A_{ij}) x_j}{\sum_j \exp(A_{ij})}

is one ``sumsoftmaxweight`` reduction (max-subtracted inside KeOps, so far-apart latents stay
finite). Leave-one-out is exact: the diagonal is excluded *inside* the reduction by comparing
the row and column indices (``ifelse(|i - j| - 1/2, A, -1e30)``: ``exp(-1e30 - max)`` is exactly
0 in float32 and float64), never as "full sum minus the self term", which cancels
catastrophically in float32 when a point's neighbours are far away. Indices travel as floats,
exact up to 2^24 = 16,777,216 points (checked).

The gradient is ``torch.autograd`` through the reductions (KeOps differentiates its formulas
symbolically and compiles the backward reductions too). Layout: KeOps tiles by itself, so it
implements only ``blocked`` (``auto`` means the same): with ``block_size=None`` one reduction
covers all rows; a ``block_size`` splits the query rows into reductions of that many rows.

KeOps compiles every new formula (shape, dtype, leave-one-out) at its first use, tens of seconds
on a CPU, cached on disk afterwards. A failure there (no compiler, a CUDA mismatch) raises
:class:`KeOpsError` saying what to do; a crash of the compiler process itself cannot be caught
here (it took down the process on a CUDA 13 H200 with pykeops 2.3), so run KeOps in its own
process where that matters (the benchmark harness runs one process per backend).
"""

from __future__ import annotations

import math
import os
from typing import Any

import pykeops
import torch
from pykeops.torch import LazyTensor

from backends import Computations, Variant
from backends.torch_backend import TorchBase, projection_error
from backends.torch_blocked import autograd_value_and_grad, with_prior

# KeOps prints each formula's code generation and compilation by default, into the output of
# whatever uses this backend (the demo, a user's script); PYKEOPS_VERBOSE=1 brings it back.
if os.environ.get("PYKEOPS_VERBOSE") is None:
    pykeops.set_verbose(False)

#: Logit given to the excluded diagonal: exp(-1e30 - row max) is exactly 0 unless every other
#: logit of the row is below -1e30 (latent distances over 1e15 sigma), which finite input in
#: the regime UKR works in never reaches.
_EXCLUDED = -1e30
_MAX_INDEX = 2**24  # float32 represents every integer up to here


class KeOpsError(RuntimeError):
    """KeOps could not compile or run a reduction."""


def _reduce(Zqs: torch.Tensor, Zs: torch.Tensor, X: torch.Tensor, r0: int | None) -> torch.Tensor:
    """Y (M x D): softmax over j of A_qj = -||zq_q - z_j||^2, weighting the rows of ``X``.

    ``Zqs`` (M x L) and ``Zs`` (N x L) are scaled latents; with ``r0`` (leave-one-out) the
    queries are rows r0.. of ``Zs`` and pair (q, r0 + q) is excluded.
    """
    zi, zj = LazyTensor(Zqs[:, None, :]), LazyTensor(Zs[None, :, :])
    A = -((zi - zj) ** 2).sum(-1)
    if r0 is not None:
        rows = torch.arange(r0, r0 + Zqs.shape[0], dtype=Zs.dtype, device=Zs.device)
        cols = torch.arange(Zs.shape[0], dtype=Zs.dtype, device=Zs.device)
        ii, jj = LazyTensor(rows[:, None, None]), LazyTensor(cols[None, :, None])
        A = ((ii - jj).abs() - 0.5).ifelse(A, _EXCLUDED)  # >= 0 off the diagonal
    return A.sumsoftmaxweight(LazyTensor(X[None, :, :]), axis=1)


def _map(
    Zq: torch.Tensor, Z: torch.Tensor, X: torch.Tensor, sigma: float, loo: bool, block: int | None
) -> torch.Tensor:
    """f at the rows of ``Zq`` (M x D), one reduction per ``block`` query rows (all if None)."""
    scale = 1.0 / (math.sqrt(2.0) * sigma)
    Zqs, Zs = Zq * scale, Z * scale
    M = Zq.shape[0]
    step = M if block is None else block
    try:
        parts = [
            _reduce(Zqs[r0 : r0 + step], Zs, X, r0 if loo else None) for r0 in range(0, M, step)
        ]
    except Exception as exc:  # KeOps raises plain exceptions from its code generator/compiler
        msg = (
            f"KeOps failed ({type(exc).__name__}: {exc}). It compiles C++ at first use: check "
            "that g++ and cmake (and, for cuda, a CUDA toolkit matching the driver) are "
            "installed, then clear its cache with `python -c 'import pykeops; "
            "pykeops.clean_pykeops()'` and retry, or use another backend (layout='blocked' "
            "on jax, torch or numpy needs no compiler)"
        )
        raise KeOpsError(msg) from exc
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def objective(
    Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool, block: int | None = None
) -> torch.Tensor:
    """E(Z) as defined in :mod:`ukr_bench.problem`, through KeOps reductions."""
    return with_prior(projection_error(X, _map(Z, Z, X, sigma, loo, block)), Z, lam)


class KeOpsBackend(TorchBase):
    """KeOps LazyTensor reductions (never N x N), torch.autograd through them; cpu or cuda.

    It shares torch's devices and conversions (:class:`~backends.torch_backend.TorchBase`) and
    implements the blocked layout only.
    """

    name = "keops"

    def resolve_layout(
        self, n: int, latent_dim: int = 2, data_dim: int = 3, *, rows: int | None = None
    ) -> tuple[str, int | None]:
        """Always ``"blocked"``: KeOps tiles by itself; the block is ``block_size`` or None (one
        reduction over all rows)."""
        if n > _MAX_INDEX:
            msg = f"the keops backend supports at most {_MAX_INDEX} points (indices as float32), got {n}"
            raise ValueError(msg)
        rows = n if rows is None else rows
        return "blocked", None if self.block_size is None else min(self.block_size, rows)

    def _value_blocked(
        self,
        Z: torch.Tensor,
        X: torch.Tensor,
        sigma: float,
        lam: float,
        loo: bool,
        block: int,
    ) -> torch.Tensor:
        with torch.no_grad():
            return objective(Z, X, sigma, lam, loo, block)

    def _value_and_grad_blocked(
        self,
        Z: torch.Tensor,
        X: torch.Tensor,
        sigma: float,
        lam: float,
        loo: bool,
        block: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return autograd_value_and_grad(lambda Z: objective(Z, X, sigma, lam, loo, block), Z)

    def _predict_blocked(
        self, Zq: torch.Tensor, Z: torch.Tensor, X: torch.Tensor, sigma: float, block: int
    ) -> torch.Tensor:
        with torch.no_grad():
            return _map(Zq, Z, X, sigma, False, block)

    def _project_value_and_grad_blocked(
        self,
        Zq: torch.Tensor,
        Xq: torch.Tensor,
        Z: torch.Tensor,
        X: torch.Tensor,
        sigma: float,
        block: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return autograd_value_and_grad(
            lambda Zq: projection_error(Xq, _map(Zq, Z, X, sigma, False, block)), Zq
        )

    COMPUTATIONS = (
        Computations("blocked", _value_blocked, _predict_blocked, _project_value_and_grad_blocked),
    )
    VARIANTS = (
        Variant(
            "blocked", "autodiff", _value_and_grad_blocked,
            "autodiff (torch.autograd through KeOps reductions)",
        ),
    )  # fmt: skip

    def info(self) -> dict[str, Any]:
        return {**super().info(), "pykeops": pykeops.__version__}
