"""The blocked layout in torch: one per-block function, one pass over row blocks, one backward.

Shapes: ``Z`` (N x L) latents and ``X`` (N x D) data of the objective; ``Zq`` (M x L) and
``Xq`` (M x D) the query rows of a pass (``Zq is Z`` for the objective, new points for the
projection). Every tensor is float32 or float64, the dtype of ``Z``, on one device.

Formulas (derived in :mod:`backends.numpy_backend`), for a block of b query rows with latents
scaled by 1/(sqrt(2) sigma), so that the logits are A = -||zq_q - z_m||^2:

* ``K = exp(A - row max)`` (b x N), weights ``R = K / s`` with row sums ``s`` (b x 1),
  ``Y = K X / s`` (b x D), ``e = Y - Xq`` (b x D);
* ``B' = R * (e_q.x_m - e_q.y_q)`` (b x N), the softmax backward of sum ||e||^2 / 2;
* with ``P^l = B' * D^l``, ``D^l_qm = zq_ql - z_ml``: row terms ``-rowsum(P^l)`` (b x L) and
  column terms ``colsum(P^l)`` (N x L); d sum ||e||^2 / dZ = (2 / sigma^2)(row + column terms).

A block holds complete rows, so a row's softmax backward needs nothing outside its block: the
one-process objective, the projection and the torch.distributed driver
(:mod:`backends.torch_distributed`) all run :func:`blocked_pass`, and differ only in which rows
they pass and how they reduce. The accurate forms throughout: row sums by a reduction (not a
GEMM's ones column), ``e.y`` reduced from ``B'``'s own terms, ``P^l`` from the differences (not
the GEMM form ``B'Z - Zq B'1``, which cancels in float32). Memory O(b x N): two block buffers,
reused. The framework's shared plumbing lives here too: :func:`with_prior`,
:func:`autograd_value_and_grad` and the hand-derived ``autograd.Function``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

#: ``data_term(Z, X, grad) -> (sum ||e||^2, its gradient N x L, or None without grad)``
DataTerm = Callable[[torch.Tensor, torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor | None]]


def sqdist(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """||a_i - b_j||^2 (M x N) of A (M x L) and B (N x L), one latent dimension at a time.

    The same formulation as the NumPy backend: the (M x N x L) broadcast it replaces made
    value + gradient 1.3-2.4x slower at N = 2000-4000 (and kept N x N x L alive for backward).
    """
    out = (A[:, 0, None] - B[None, :, 0]) ** 2
    for l in range(1, A.shape[1]):
        out = out + (A[:, l, None] - B[None, :, l]) ** 2
    return out


def with_prior(sq: torch.Tensor, Z: torch.Tensor, lam: float) -> torch.Tensor:
    """E = (sum_n ||e_n||^2 + lam ||Z||^2) / N from the data term ``sq`` (a scalar)."""
    return (sq + lam * (Z * Z).sum()) / Z.shape[0]


def autograd_value_and_grad(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(x), df/dx) by ``torch.autograd`` from a detached copy of ``x``; the value detached."""
    x = x.detach().requires_grad_(True)
    value = f(x)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach(), grad


def softmax_backward_(
    K: torch.Tensor, s: torch.Tensor | None, e: torch.Tensor, X: torch.Tensor, out: torch.Tensor
) -> None:
    """out <- B' = R * (e_n.x_m - e_n.y_n) (b x N) for weights R = K / s (R = K if s is None).

    ``e.y_n`` is the row sum of ``R * (e X^T)`` itself, as autodiff's softmax backward forms
    it, so that ``sum_m B'_nm`` (0 in exact arithmetic) vanishes to one reduction's rounding
    (error model: ``_softmax_backward`` in :mod:`backends.numpy_backend`). ``K`` is scratch
    afterwards.
    """
    torch.matmul(e if s is None else e / s, X.T, out=out).mul_(K)
    ey = out.sum(dim=1, keepdim=True)
    out.sub_(K.mul_(ey if s is None else ey.div_(s)))


def kernel_block(
    Zqs_t: torch.Tensor, Zs_t: torch.Tensor, r0: int, loo: bool, K: torch.Tensor, T: torch.Tensor
) -> None:
    """K <- exp(A - row max) of scaled, transposed queries ``Zqs_t`` (L x b) against ``Zs_t``.

    With ``loo`` the block's rows are rows r0.. of the objective and their diagonal (K's
    offset-r0 diagonal) is excluded. ``T`` is scratch of K's shape.
    """
    torch.sub(Zqs_t[0, :, None], Zs_t[0, None, :], out=K)
    K.square_()
    for l in range(1, Zqs_t.shape[0]):
        torch.sub(Zqs_t[l, :, None], Zs_t[l, None, :], out=T)
        K.add_(T.square_())
    if loo:
        K.diagonal(offset=r0).fill_(math.inf)
    torch.sub(K.amin(dim=1, keepdim=True), K, out=K)
    K.exp_()


def compute_block(
    Zqs_t: torch.Tensor,
    Zs_t: torch.Tensor,
    X: torch.Tensor,
    r0: int,
    K: torch.Tensor,
    T: torch.Tensor,
    *,
    loo: bool,
    Xq: torch.Tensor | None = None,
    Zq: torch.Tensor | None = None,
    Z: torch.Tensor | None = None,
    row: torch.Tensor | None = None,
    col: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits, weights, Y, e, B' and the row and column terms of one block (module docstring).

    ``Zqs_t`` (L x b) are the block's scaled, transposed query latents, rows r0.. (for
    ``loo``) against ``Zs_t`` (L x N); ``K``, ``T`` (b x N) are the buffers. Returns ``Y``
    (b x D) and, given the targets ``Xq`` (b x D), sum ||e_q||^2. Given ``Zq`` (b x L),
    ``Z`` (N x L) and ``row`` (b x L), writes the row terms into ``row`` and, given ``col``
    (N x L), adds the column terms to it.
    """
    kernel_block(Zqs_t, Zs_t, r0, loo, K, T)
    # Row sums by a reduction, not a GEMM column (error model: backends.numpy_backend).
    s = K.sum(dim=1, keepdim=True)
    Y = (K @ X) / s
    if Xq is None:
        return Y, None
    e = Y - Xq
    sq = (e * e).sum()
    if row is None or Zq is None or Z is None:
        return Y, sq
    softmax_backward_(K, s, e, X, out=T)  # K is scratch from here on
    for l in range(Z.shape[1]):
        torch.sub(Zq[:, l, None], Z[None, :, l], out=K).mul_(T)  # P^l
        row[:, l] = -K.sum(dim=1)
        if col is not None:
            col[:, l] += K.sum(dim=0)
    return Y, sq


@torch.no_grad()
def blocked_pass(
    Zq: torch.Tensor,
    Xq: torch.Tensor | None,
    Z: torch.Tensor,
    X: torch.Tensor,
    sigma: float,
    block: int,
    *,
    loo: bool,
    grad: bool,
    columns: bool,
    lo: int = 0,
    hi: int | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    """:func:`compute_block` over query blocks: (Y or None, sum ||e_q||^2, gradient or None).

    Without ``Xq`` only Y (M x D). The gradient of sum ||e||^2 is (2/sigma^2)(row + column
    terms), M x L; the objective passes ``Zq is Z``, ``Xq is X`` with ``columns`` (its B^T
    terms), the projection has no column terms. Only query rows ``[lo, hi)`` (default: all) are
    processed; the gradient's other rows then hold their column terms only: a distributed
    rank's share.
    """
    (M, L), N = Zq.shape, Z.shape[0]
    scale = 1.0 / (math.sqrt(2.0) * sigma)
    Zs_t = (Z * scale).T.contiguous()
    Zqs_t = Zs_t if Zq is Z else (Zq * scale).T.contiguous()
    hi = M if hi is None else hi
    K_buf = torch.empty((min(block, max(hi - lo, 1)), N), dtype=Z.dtype, device=Z.device)
    T_buf = torch.empty_like(K_buf)
    Y = None if Xq is not None else torch.empty((M, X.shape[1]), dtype=X.dtype, device=X.device)
    sq = torch.zeros((), dtype=Z.dtype, device=Z.device)
    partial = (lo, hi) != (0, M)
    row = (torch.zeros_like(Zq) if partial else torch.empty_like(Zq)) if grad else None
    col = torch.zeros((N, L), dtype=Z.dtype, device=Z.device) if grad and columns else None
    for r0 in range(lo, hi, block):
        r1 = min(r0 + block, hi)
        Yb, sq_b = compute_block(
            Zqs_t[:, r0:r1], Zs_t, X, r0, K_buf[: r1 - r0], T_buf[: r1 - r0], loo=loo,
            Xq=None if Xq is None else Xq[r0:r1], Zq=Zq[r0:r1], Z=Z,
            row=None if row is None else row[r0:r1], col=col,
        )  # fmt: skip
        if Y is not None:
            Y[r0:r1] = Yb
        if sq_b is not None:
            sq += sq_b
    if row is not None:
        if col is not None:
            row += col
        row *= 2.0 / sigma**2
    return Y, sq, row


class _HandDerived(torch.autograd.Function):
    """sum_n ||e_n||^2 from a data term, its gradient in ``Z`` the one the data term computed."""

    @staticmethod
    def forward(ctx: Any, Z: torch.Tensor, X: torch.Tensor, data_term: DataTerm) -> torch.Tensor:
        if ctx.needs_input_grad[1]:
            msg = "the blocked objective is differentiable in Z only, not in X"
            raise NotImplementedError(msg)
        want = bool(ctx.needs_input_grad[0])
        sq, grad = data_term(Z, X, want)
        if want:
            ctx.save_for_backward(grad)
        return sq

    @staticmethod
    def backward(ctx: Any, ct: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (grad,) = ctx.saved_tensors
        return ct * grad, None, None


def hand_derived_objective(
    data_term: DataTerm, Z: torch.Tensor, X: torch.Tensor, lam: float
) -> torch.Tensor:
    """E(Z) from ``data_term``; differentiable in ``Z`` only (the backward scales its gradient).

    The forward computes the value and, when ``Z`` requires grad, the whole gradient in one
    pass; the backward only scales the saved gradient. Differentiating in ``X`` raises.
    """
    return with_prior(_HandDerived.apply(Z, X, data_term), Z, lam)


# -- the one-process driver: all rows ------------------------------------------------------------


def objective_blocked(
    Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool, block: int
) -> torch.Tensor:
    """E(Z) over row blocks of ``block`` rows; differentiable in ``Z`` (hand-derived backward)."""

    def data_term(Z: torch.Tensor, X: torch.Tensor, grad: bool) -> Any:
        _, sq, g = blocked_pass(Z, X, Z, X, sigma, block, loo=loo, grad=grad, columns=True)
        return sq, g

    return hand_derived_objective(data_term, Z, X, lam)


def objective_blocked_autodiff(
    Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool, block: int
) -> torch.Tensor:
    """E(Z) over row blocks for ``torch.autograd``, each block under ``torch.utils.checkpoint``.

    The alternative to the hand-derived :func:`objective_blocked`, kept for the comparison in
    ``benchmarks/large_n.py``: each block's forward is recomputed in the backward pass; it was
    slower.
    """

    def block_sq(Zb: torch.Tensor, Zall: torch.Tensor, Xb: torch.Tensor, r0: int) -> torch.Tensor:
        logits = sqdist(Zb, Zall) / (-2.0 * sigma**2)
        if loo:
            mask = torch.zeros_like(logits, dtype=torch.bool)
            mask.diagonal(offset=r0).fill_(True)
            logits = logits.masked_fill(mask, float("-inf"))
        res = Xb - torch.softmax(logits, dim=1) @ X
        return (res * res).sum()

    sq = sum(
        checkpoint(block_sq, Z[r0 : r0 + block], Z, X[r0 : r0 + block], r0, use_reentrant=False)
        for r0 in range(0, Z.shape[0], block)
    )
    return with_prior(sq, Z, lam)
