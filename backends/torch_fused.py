r"""The fused layout in PyTorch: UKR's value and hand-derived gradient by Triton kernels.

The same computation as :mod:`backends.jax_fused` (FlashAttention's tiling for UKR, issue 26;
formulas and signs of :mod:`backends.numpy_backend`), written with ``triton.jit`` and wrapped
in a ``torch.autograd.Function``. In the scaled latents ``u = z / (sqrt(2) sigma)``, with
``q_ij = ||u_i - u_j||^2`` from the differences:

* pass 1 (``_pass1``), a program per tile of query rows, streaming over column tiles: the
  online softmax ``mu_i = min_j q_ij`` (running; +inf until a valid column is seen, and then a
  shift of 0, so never ``inf - inf``), ``l_i = sum_j exp(mu_i - q_ij)``,
  ``y_i = sum_j exp(mu_i - q_ij) x_j / l_i``; out ``mu``, ``l``, ``y`` per row;
* between the passes (O(N D), in torch): ``e = y - x``, ``sum ||e||^2``, ``w = e / l``;
* pass 2 (``_pass2``), per tile of rows i against all columns j:
  ``B'_ij = exp(mu_i - q_ij) w_i.(x_j - y_i)`` (row term, from the difference ``x_j - y_i``),
  ``B'_ji = exp(mu_j - q_ij) w_j.(x_i - y_j)`` (column term: the logits are symmetric, so one
  tile gives both, with a second exp; no third pass, no atomics: each program writes only its
  own rows), ``g_i = sum_j (B'_ij + B'_ji)(u_i - u_j)``; ``d sq / dz_i = -4 g_i / (sqrt(2)
  sigma)`` and ``dE/dz_i = (d sq / dz_i + 2 lam z_i) / N``.

Cost per ordered pair (i, j) (:data:`EXPS_PER_PAIR`, :func:`flops_per_pair`; adds,
subtractions, multiplies and min/max, an FMA counted as 2, masking selects not counted):

* pass 1: 3L - 1 for q (L differences, L squares, L - 1 adds), 1 min, 1 subtraction
  ``mu - q``, 1 exp, 1 add into l, 2D into y: 3L + 2D + 2 flops (14 at L = 2, D = 3), 1 exp;
* pass 2: 3L - 1 for q, 2 subtractions, 2 exps (rows, columns), the two dot products
  ``w.(x - y)`` (2 (3D - 1)), 3 for ``p_row r + p_col c``, then per latent dimension the
  difference again (Triton's unrolled loop keeps no list of L tiles, so it is recomputed: L)
  and a multiply-add into g (2L): 6L + 6D + 2 flops (32), 2 exps;
* the projection's gradient (queries against the fixed training points): pass 1, then the
  row terms only, 3L - 1 for q, 1 subtraction, 1 exp, 3D - 1, 1 multiply by p, L again for
  the differences and 2L into g: 6L + 3D flops (21) and 1 exp per pair;
* together 9L + 8D + 4 flops (46) and 3 exps per ordered pair; O(BM (L + D)) more per
  row and column tile (rescale, accumulator updates), not counted. The exps are what the
  compiled code does: the sm_90 PTX has one ``ex2.approx`` per pair and thread in pass 1
  (plus the rescale's) and two in pass 2 (counted in the PTX at several tiles). On a GPU each exp
  compiles to a multiply by log2(e) and an ``ex2.approx``: that multiply (3 per pair) is not
  in the flop counts; scaling the latents by sqrt(log2 e) and using exp2 would remove it.

Tiles, Triton and interpret mode: :mod:`backends.torch_fused_kernels`.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch

from backends import FusedInterpretWarning
from backends.torch_fused_kernels import INSTALL_HINT, TILES, _num_warps, kernels

__all__ = [
    "EXPS_PER_PAIR",
    "INSTALL_HINT",
    "TILES",
    "FusedInterpretWarning",
    "flops_per_pair",
    "kernels",
    "objective_fused",
    "predict_fused",
    "project_value_and_grad_fused",
    "value_and_grad_fused",
]


#: Exps per ordered pair (i, j), by pass (derivation in the module docstring); the objective's
#: value and gradient do the first three, the projection's gradient pass 1 and the last.
EXPS_PER_PAIR = {"pass1": 1, "pass2_rows": 1, "pass2_columns": 1, "projection_pass2": 1}


def flops_per_pair(latent_dim: int, data_dim: int) -> dict[str, int]:
    """Flops per ordered pair (i, j) of each pass, for L = ``latent_dim``, D = ``data_dim``.

    Derivation in the module docstring: pass 1 3L + 2D + 2, pass 2 6L + 6D + 2 (rows and
    columns together), 46 in all at L = 2, D = 3; the projection's pass 2 (row terms only)
    6L + 3D.
    """
    L, D = latent_dim, data_dim
    return {
        "pass1": 3 * L + 2 * D + 2,
        "pass2": 6 * L + 6 * D + 2,
        "projection_pass2": 6 * L + 3 * D,
    }


# Plants: deliberately wrong variants of single terms, for tests/test_fused.py only (they show
# that the agreement tests catch an error in each term); see backends/jax_fused.py. They act on
# pass 2's per-row weights, or as a constexpr of pass 1 (a separate specialisation), so the
# kernels used otherwise are unchanged by them.
_PLANTS = (None, "no_column", "row_sign", "no_inv_l", "no_shift")


def _pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def _check(Z: torch.Tensor, X: torch.Tensor, loo: bool, block: int | None) -> None:
    if Z.ndim != 2 or X.ndim != 2 or Z.shape[0] != X.shape[0]:
        msg = f"Z (N x L) and X (N x D) must have the same N, got {tuple(Z.shape)} and {tuple(X.shape)}"
        raise ValueError(msg)
    if Z.dtype != X.dtype or Z.device != X.device:
        msg = f"Z and X must share dtype and device, got {Z.dtype}/{X.dtype}, {Z.device}/{X.device}"
        raise ValueError(msg)
    if Z.shape[0] < (2 if loo else 1):
        msg = f"the objective needs N >= {2 if loo else 1} points (loo={loo}), got {Z.shape[0]}"
        raise ValueError(msg)
    if block is not None and (block < 1 or block & (block - 1)):
        msg = f"block must be a power of 2 (Triton's tensors are), got {block}"
        raise ValueError(msg)


def _kernels_for(device: torch.device) -> dict[str, Any]:
    k = kernels()
    if k["interpret"] != (device.type == "cpu"):
        msg = (
            f"the fused kernels were defined for {'CPU' if k['interpret'] else 'CUDA'} tensors "
            f"(TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET', '0')} when they were), got "
            f"tensors on {device}"
        )
        raise RuntimeError(msg)
    return k


def _pass1(
    Uq: torch.Tensor, U: torch.Tensor, Xt: torch.Tensor, *, loo: bool, block: int, naive: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mu (M,), l (M,), y (D x M)) of queries Uq (L x M) against keys U (L x N), data Xt."""
    (L, M), (D, N) = Uq.shape, Xt.shape
    k = _kernels_for(U.device)
    mu = torch.empty(M, dtype=U.dtype, device=U.device)
    ls = torch.empty_like(mu)
    y = torch.empty((D, M), dtype=U.dtype, device=U.device)
    k["pass1"][(-(-M // block),)](
        Uq, U, Xt, mu, ls, y, M, N,
        LOO=loo, NAIVE=naive, L=L, D=D, DP=_pow2(D), BM=block, BN=block,
        num_warps=_num_warps(block),
    )  # fmt: skip
    return mu, ls, y


def _data_term(
    Z: torch.Tensor,
    X: torch.Tensor,
    sigma: float,
    *,
    loo: bool,
    grad: bool,
    block: int | None,
    plant: str | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """sq = sum_n ||e_n||^2 and, with ``grad``, d sq / dZ (N x L), by the two passes (tiles:
    ``block`` in both, or :data:`TILES` for None)."""
    if plant not in _PLANTS:
        msg = f"unknown plant {plant!r}: one of {_PLANTS}"
        raise ValueError(msg)
    (N, L), D = Z.shape, X.shape[1]
    scale = 1.0 / (math.sqrt(2.0) * float(sigma))
    U = (Z * scale).T.contiguous()
    Xt = X.T.contiguous()
    b1, b2 = (TILES["pass1"], TILES["pass2"]) if block is None else (block, block)
    mu, ls, y = _pass1(U, U, Xt, loo=loo, block=b1, naive=plant == "no_shift")
    e = y - Xt
    sq = (e * e).sum()
    if not grad:
        return sq, None
    w = e if plant == "no_inv_l" else e / ls
    w_rows = -w if plant == "row_sign" else w
    w_cols = torch.zeros_like(w) if plant == "no_column" else w
    g = torch.empty((L, N), dtype=Z.dtype, device=Z.device)
    _kernels_for(Z.device)["pass2"][(-(-N // b2),)](
        U, Xt, y, w_rows.contiguous(), w_cols.contiguous(), mu, g, N,
        LOO=loo, L=L, D=D, LP=_pow2(L), BM=b2, BN=b2, num_warps=_num_warps(b2),
    )  # fmt: skip
    return sq, (-4.0 * scale) * g.T


class _FusedDataTerm(torch.autograd.Function):
    """sum_n ||e_n||^2 by the fused kernels, with the kernels' hand-derived gradient in Z."""

    @staticmethod
    def forward(
        ctx: Any,
        Z: torch.Tensor,
        X: torch.Tensor,
        sigma: float,
        loo: bool,
        block: int | None,
        plant: str | None,
    ) -> torch.Tensor:
        if ctx.needs_input_grad[1]:
            msg = "the fused objective is differentiable in Z only, not in X"
            raise NotImplementedError(msg)
        want = bool(ctx.needs_input_grad[0])
        sq, g = _data_term(Z, X, sigma, loo=loo, grad=want, block=block, plant=plant)
        if want:
            ctx.save_for_backward(g)
        return sq

    @staticmethod
    def backward(ctx: Any, ct: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None, None]:
        (g,) = ctx.saved_tensors
        return ct * g, None, None, None, None, None


def objective_fused(
    Z: torch.Tensor,
    X: torch.Tensor,
    sigma: float,
    lam: float,
    loo: bool,
    *,
    block: int | None = None,
    _plant: str | None = None,
) -> torch.Tensor:
    """E(Z) by the fused kernels, differentiable in ``Z`` (``backward`` uses the kernels'
    gradient; the prior's comes from torch's autograd). ``_plant`` is for the tests only."""
    _check(Z, X, loo, block)
    sq = _FusedDataTerm.apply(Z, X, sigma, loo, block, _plant)
    return (sq + lam * (Z * Z).sum()) / Z.shape[0]


def value_and_grad_fused(
    Z: torch.Tensor,
    X: torch.Tensor,
    sigma: float,
    lam: float,
    loo: bool,
    *,
    block: int | None = None,
    _plant: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """E(Z) and dE/dZ by the fused kernels (pass 1, then pass 2), in the dtype of ``Z``.

    ``Z`` (N x L) and ``X`` (N x D): tensors of one dtype (float32 or float64) on one device
    (CUDA, or the CPU in Triton's interpreter); ``block``: the tile of both passes, a power of 2
    (None: :data:`TILES`).
    """
    _check(Z, X, loo, block)
    with torch.no_grad():
        sq, g = _data_term(Z, X, sigma, loo=loo, grad=True, block=block, plant=_plant)
        assert g is not None  # asked for
        N = Z.shape[0]
        value = (sq + lam * (Z * Z).sum()) / N
        grad = (g + (2.0 * lam) * Z) / N
    return value, grad


def predict_fused(
    Zq: torch.Tensor, Z: torch.Tensor, X: torch.Tensor, sigma: float, *, block: int | None = None
) -> torch.Tensor:
    """f(Zq) (M x D), the Nadaraya-Watson map of query latents ``Zq`` (M x L), no loo: pass 1
    with the queries in tiles against all N training latents."""
    _check(Z, X, False, block)
    if Zq.ndim != 2 or Zq.shape[1] != Z.shape[1]:
        msg = f"Zq must be M x L with the L of Z ({Z.shape[1]}), got {tuple(Zq.shape)}"
        raise ValueError(msg)
    scale = 1.0 / (math.sqrt(2.0) * float(sigma))
    with torch.no_grad():
        U, Uq = (Z * scale).T.contiguous(), (Zq * scale).T.contiguous()
        tile = TILES["pass1"] if block is None else block
        _, _, y = _pass1(Uq, U, X.T.contiguous(), loo=False, block=tile, naive=False)
    return y.T


def project_value_and_grad_fused(
    Zq: torch.Tensor,
    Xq: torch.Tensor,
    Z: torch.Tensor,
    X: torch.Tensor,
    sigma: float,
    *,
    block: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The projection error E_q = sum_q ||x_q - f(z_q)||^2 (a sum, not a mean) of queries
    ``Zq`` (M x L) with data ``Xq`` (M x D), and its gradient in ``Zq``, training ``Z``, ``X``
    fixed: pass 1 for the queries, then the row terms only (``_project2``)."""
    _check(Z, X, False, block)
    _check(Zq, Xq, False, block)
    if Zq.shape[1] != Z.shape[1] or Xq.shape[1] != X.shape[1]:
        msg = f"queries {tuple(Zq.shape)}, {tuple(Xq.shape)} do not match the training {tuple(Z.shape)}, {tuple(X.shape)}"
        raise ValueError(msg)
    (M, L), N = Zq.shape, Z.shape[0]
    scale = 1.0 / (math.sqrt(2.0) * float(sigma))
    b1, b2 = (TILES["pass1"], TILES["pass2"]) if block is None else (block, block)
    with torch.no_grad():
        U, Uq = (Z * scale).T.contiguous(), (Zq * scale).T.contiguous()
        muq, lq, yq = _pass1(Uq, U, X.T.contiguous(), loo=False, block=b1, naive=False)
        e = yq - Xq.T
        wq = (e / lq).contiguous()
        g = torch.empty((L, M), dtype=Z.dtype, device=Z.device)
        _kernels_for(Z.device)["project2"][(-(-M // b2),)](
            Uq, yq, wq, muq, U, X.T.contiguous(), g, M, N,
            L=L, D=X.shape[1], LP=_pow2(L), BM=b2, BN=b2, num_warps=_num_warps(b2),
        )  # fmt: skip
        return (e * e).sum(), (-4.0 * scale) * g.T
