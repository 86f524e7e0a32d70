"""PyTorch backend: the objective in eager ``torch``, differentiated by ``torch.autograd``.

float32 matmuls on CUDA: PyTorch's default (``torch.backends.cuda.matmul.allow_tf32 = False``)
already computes them in full float32; :meth:`TorchBackend.info` records the setting so a run
with TF32 switched on is visible in the results.

Blocked layout (``layout="blocked"``): rows of the N x N logits in blocks of ``block`` rows,
memory O(block x N) (two reused block buffers), never N x N. The gradient there is
*hand-derived*, through a ``torch.autograd.Function``: its forward computes the value and, when
``Z`` requires grad, the whole gradient in one pass over the blocks (formulas derived in
:mod:`backends.numpy_backend`: a block holds complete rows, so a row's softmax backward needs
nothing outside its block); its backward only scales the saved gradient. The autodiff
alternative, ``torch.utils.checkpoint`` per block (forward recomputed in the backward pass), is
:func:`objective_blocked_autodiff`; it was slower (see ``benchmarks/large_n.py``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

from ukr_bench.interface import Backend, DeviceUnavailableError


def _sqdist(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """||a_i - b_j||^2 (M x N) from differences, one latent dimension at a time.

    The same formulation as the NumPy backend: the (M x N x L) broadcast it replaces made
    value + gradient 1.3-2.4x slower at N = 2000-4000 (and kept N x N x L alive for backward).
    """
    out = (A[:, 0, None] - B[None, :, 0]) ** 2
    for l in range(1, A.shape[1]):
        out = out + (A[:, l, None] - B[None, :, l]) ** 2
    return out


def objective(
    Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool
) -> torch.Tensor:
    """E(Z) as defined in :mod:`ukr_bench.problem`."""
    N = Z.shape[0]
    logits = _sqdist(Z, Z) / (-2.0 * sigma**2)
    if loo:
        eye = torch.eye(N, dtype=torch.bool, device=Z.device)
        logits = logits.masked_fill(eye, float("-inf"))
    R = torch.softmax(logits, dim=1)
    res = X - R @ X
    return ((res * res).sum() + lam * (Z * Z).sum()) / N


@torch.no_grad()
def value_and_grad_manual(
    Z: torch.Tensor,
    X: torch.Tensor,
    sigma: float,
    lam: float,
    loo: bool,
    assembly: str = "differences",
) -> tuple[torch.Tensor, torch.Tensor]:
    """E(Z) and its hand-derived gradient (dense), eager, in place where the formula allows.

    The formulas of :func:`backends.jax_backend.value_and_grad_manual`: ``B'_nm = R_nm
    e_n.(x_m - y_n)``, ``dE/dz_kl = (2 / (N sigma^2)) (colsum - rowsum)(B' * D^l)_k + 2 lam
    z_kl / N`` with ``D^l_nm = z_nl - z_ml`` (``assembly="differences"``; ``"products"`` is the
    GEMM form that cancels in float32). Three N x N buffers at the peak (R, B', one scratch).
    """
    N, L = Z.shape
    A = _sqdist(Z, Z).mul_(-1.0 / (2.0 * sigma**2))
    if loo:
        A.fill_diagonal_(float("-inf"))
    R = torch.softmax(A, dim=1)
    del A
    Y = R @ X
    e = Y - X
    value = ((e * e).sum() + lam * (Z * Z).sum()) / N
    # B' = R * (e.x_m - e.y_n), e.y_n reduced from the same weights as autodiff's softmax
    # backward does (error model: _softmax_backward in backends.numpy_backend)
    B = (e @ X.T).mul_(R)
    B.sub_(R.mul_(B.sum(dim=1, keepdim=True)))
    del R
    if assembly == "products":
        grad = B @ Z + B.T @ Z - (B.sum(dim=1) + B.sum(dim=0))[:, None] * Z
    else:
        grad = torch.empty_like(Z)
        T = torch.empty_like(B)
        for l in range(L):
            torch.sub(Z[:, l, None], Z[None, :, l], out=T).mul_(B)
            grad[:, l] = T.sum(dim=0) - T.sum(dim=1)
    grad.mul_(2.0 / (N * sigma**2))
    if lam:
        grad.add_(Z, alpha=2.0 * lam / N)
    return value, grad


def predict(Zq: torch.Tensor, Z: torch.Tensor, X: torch.Tensor, sigma: float) -> torch.Tensor:
    """f(Zq) (M x D), the Nadaraya-Watson map of :mod:`ukr_bench.problem`, no leave-one-out."""
    R = torch.softmax(_sqdist(Zq, Z) / (-2.0 * sigma**2), dim=1)
    return R @ X


# -- blocked layout ------------------------------------------------------------------------------


def _kernel_block(
    Zqs_t: torch.Tensor, Zs_t: torch.Tensor, r0: int, loo: bool, K: torch.Tensor, T: torch.Tensor
) -> None:
    """K <- exp(A - row max) of scaled, transposed queries ``Zqs_t`` (L x b) against ``Zs_t``.

    Both scaled by 1/(sqrt(2) sigma), so A = -squared distance; with ``loo`` the block's rows are
    rows r0.. of the objective and their diagonal (K's offset-r0 diagonal) is excluded.
    ``T`` is scratch of K's shape.
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


@torch.no_grad()
def _blocked_pass(
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
    """One pass over query blocks: (Y or None, sum ||e_q||^2, gradient or None).

    Only query rows ``[lo, hi)`` (default: all) are processed; the gradient's other rows hold
    their column terms only (zero without ``columns``): a distributed rank's share
    (:mod:`backends.torch_distributed`).

    The objective is ``Zq is Z``, ``Xq is X`` with ``columns`` (its B^T terms); the projection
    has no column terms. Per block (see :mod:`backends.numpy_backend`): K, s = row sums (a
    reduction), Y = K X / s, e = Y - Xq, B' = R * (e.x_m - e.y_q); with P^l = B' * D^l,
    D^l_qm = zq_ql - z_ml (the differences, not the GEMM form B'Z - Zq * B'1, which cancels in
    float32): row terms -rowsum(P^l), column terms colsum(P^l); the gradient of sum ||e||^2 is
    (2/sigma^2)(row + column terms).
    """
    (M, L), N = Zq.shape, Z.shape[0]
    scale = 1.0 / (math.sqrt(2.0) * sigma)
    Zs_t = (Z * scale).T.contiguous()
    Zqs_t = Zs_t if columns else (Zq * scale).T.contiguous()
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
        K, T = K_buf[: r1 - r0], T_buf[: r1 - r0]
        _kernel_block(Zqs_t[:, r0:r1], Zs_t, r0, loo, K, T)
        # Row sums by a reduction, not a GEMM column (error model: backends.numpy_backend).
        s = K.sum(dim=1, keepdim=True)
        Yb = (K @ X) / s
        if Xq is None:
            Y[r0:r1] = Yb  # type: ignore[index]
            continue
        e = Yb - Xq[r0:r1]
        sq += (e * e).sum()
        if not grad:
            continue
        # B' = R * (e.x_m - e.y_q) with e.y_q reduced from the same weights (error model:
        # _softmax_backward in backends.numpy_backend); K is scratch from here on
        torch.matmul(e / s, X.T, out=T).mul_(K)
        T.sub_(K.mul_(T.sum(dim=1, keepdim=True).div_(s)))
        for l in range(L):
            torch.sub(Zq[r0:r1, l, None], Z[None, :, l], out=K).mul_(T)  # P^l
            row[r0:r1, l] = -K.sum(dim=1)  # type: ignore[index]
            if col is not None:
                col[:, l] += K.sum(dim=0)
    if row is not None:
        if col is not None:
            row += col
        row *= 2.0 / sigma**2
    return Y, sq, row


class _BlockedDataTerm(torch.autograd.Function):
    """sum_n ||e_n||^2 over row blocks, with its hand-derived gradient in ``Z``."""

    @staticmethod
    def forward(
        ctx: Any, Z: torch.Tensor, X: torch.Tensor, sigma: float, loo: bool, block: int
    ) -> torch.Tensor:
        if ctx.needs_input_grad[1]:
            msg = "the blocked objective is differentiable in Z only, not in X"
            raise NotImplementedError(msg)
        want = bool(ctx.needs_input_grad[0])
        _, sq, grad = _blocked_pass(Z, X, Z, X, sigma, block, loo=loo, grad=want, columns=True)
        if want:
            ctx.save_for_backward(grad)
        return sq

    @staticmethod
    def backward(ctx: Any, ct: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None]:
        (grad,) = ctx.saved_tensors
        return ct * grad, None, None, None, None


def objective_blocked(
    Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool, block: int
) -> torch.Tensor:
    """E(Z) over row blocks of ``block`` rows; differentiable in ``Z`` (hand-derived backward)."""
    sq = _BlockedDataTerm.apply(Z, X, sigma, loo, block)
    return (sq + lam * (Z * Z).sum()) / Z.shape[0]


def objective_blocked_autodiff(
    Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool, block: int
) -> torch.Tensor:
    """E(Z) over row blocks for ``torch.autograd``, each block under ``torch.utils.checkpoint``.

    The alternative to the hand-derived :func:`objective_blocked`, kept for the comparison in
    ``benchmarks/large_n.py``: each block's forward is recomputed in the backward pass.
    """
    N = Z.shape[0]

    def block_sq(Zb: torch.Tensor, Zall: torch.Tensor, Xb: torch.Tensor, r0: int) -> torch.Tensor:
        logits = _sqdist(Zb, Zall) / (-2.0 * sigma**2)
        if loo:
            mask = torch.zeros_like(logits, dtype=torch.bool)
            mask.diagonal(offset=r0).fill_(True)
            logits = logits.masked_fill(mask, float("-inf"))
        res = Xb - torch.softmax(logits, dim=1) @ X
        return (res * res).sum()

    sq = sum(
        checkpoint(block_sq, Z[r0 : r0 + block], Z, X[r0 : r0 + block], r0, use_reentrant=False)
        for r0 in range(0, N, block)
    )
    return (sq + lam * (Z * Z).sum()) / N


class TorchBackend(Backend):
    """torch.autograd on eager tensors (dense) or a hand-derived blocked autograd.Function."""

    name = "torch"
    gradient = "autodiff (torch.autograd)"
    blocked_gradient = "hand-derived (blocked autograd.Function)"
    other_gradients: ClassVar[dict[str, str]] = {
        "dense": "hand-derived (dense, eager)",
        "blocked": "autodiff (torch.autograd, torch.utils.checkpoint per block)",
    }
    xp: ClassVar[Any] = torch

    def _resolve_device(self, kind: str, index: int) -> None:
        if kind == "cuda":
            if not torch.cuda.is_available():
                msg = f"device {self.device!r} is not available for backend 'torch': torch.cuda.is_available() is False (torch {torch.__version__})"
                raise DeviceUnavailableError(msg)
            if index >= torch.cuda.device_count():
                msg = f"device {self.device!r} is not available for backend 'torch': it sees {torch.cuda.device_count()} cuda device(s)"
                raise DeviceUnavailableError(msg)
        self._device = torch.device(kind, index) if kind == "cuda" else torch.device("cpu")
        self._torch_dtype = {"float32": torch.float32, "float64": torch.float64}[self.dtype]
        self._distributed = False

    def _resolve_devices(self, kind: str, indices: tuple[int, ...], device: object) -> None:
        """Several devices: this process is one rank of a torch.distributed group of that size.

        Rank ``r`` computes on the ``r``-th device named (see :mod:`backends.torch_distributed`).
        """
        del device
        from backends import torch_distributed

        rank, _ = torch_distributed.ensure_group(kind, len(indices), self.device)
        self._resolve_device(kind, indices[rank])
        self._distributed = True

    def asarray(self, a: np.ndarray) -> torch.Tensor:
        # Always a copy of the caller's array: as_tensor shared a float array's memory on the
        # CPU, warned for a read-only one (a memmap, np.broadcast_to) and refused negative strides.
        return torch.from_numpy(np.array(a, dtype=self.dtype, order="C")).to(self._device)

    def to_numpy(self, a: torch.Tensor) -> np.ndarray:
        return a.detach().cpu().numpy()

    def _value_dense(
        self, Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool
    ) -> torch.Tensor:
        with torch.no_grad():
            return objective(Z, X, sigma, lam, loo)

    def _value_and_grad_dense(
        self, Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        Z = Z.detach().requires_grad_(True)
        value = objective(Z, X, sigma, lam, loo)
        (grad,) = torch.autograd.grad(value, Z)
        return value.detach(), grad

    def _value_and_grad_dense_manual(
        self, Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return value_and_grad_manual(Z, X, sigma, lam, loo)

    def _value_and_grad_blocked_autodiff(
        self, Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool, block: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        Z = Z.detach().requires_grad_(True)
        value = objective_blocked_autodiff(Z, X, sigma, lam, loo, block)
        (grad,) = torch.autograd.grad(value, Z)
        return value.detach(), grad

    def _predict_dense(
        self, Zq: torch.Tensor, Z: torch.Tensor, X: torch.Tensor, sigma: float
    ) -> torch.Tensor:
        with torch.no_grad():
            return predict(Zq, Z, X, sigma)

    def _project_value_and_grad_dense(
        self, Zq: torch.Tensor, Xq: torch.Tensor, Z: torch.Tensor, X: torch.Tensor, sigma: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        Zq = Zq.detach().requires_grad_(True)
        res = Xq - predict(Zq, Z, X, sigma)
        value = (res * res).sum()  # E_q of ukr_bench.problem
        (grad,) = torch.autograd.grad(value, Zq)
        return value.detach(), grad

    @classmethod
    def configure_process(cls, threads: int) -> dict[str, Any]:
        # torch sizes its intra-op pool itself (OMP_NUM_THREADS is only its default), and
        # "highest" keeps float32 matmuls in float32 wherever TF32 or bf16 would be allowed.
        torch.set_num_threads(threads)
        torch.set_float32_matmul_precision("highest")
        return {
            "torch_num_threads": torch.get_num_threads(),
            "torch_float32_matmul_precision": torch.get_float32_matmul_precision(),
        }

    def _value_blocked(
        self, Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool, block: int
    ) -> torch.Tensor:
        if self._distributed:
            from backends import torch_distributed

            return torch_distributed.value(Z, X, sigma, lam, loo, block)
        with torch.no_grad():
            return objective_blocked(Z, X, sigma, lam, loo, block)

    def _value_and_grad_blocked(
        self, Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool, block: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._distributed:
            from backends import torch_distributed

            return torch_distributed.value_and_grad(Z, X, sigma, lam, loo, block)
        Z = Z.detach().requires_grad_(True)
        value = objective_blocked(Z, X, sigma, lam, loo, block)
        (grad,) = torch.autograd.grad(value, Z)
        return value.detach(), grad

    def _predict_blocked(
        self, Zq: torch.Tensor, Z: torch.Tensor, X: torch.Tensor, sigma: float, block: int
    ) -> torch.Tensor:
        Y, _, _ = _blocked_pass(Zq, None, Z, X, sigma, block, loo=False, grad=False, columns=False)
        return Y  # type: ignore[return-value]

    def _project_value_and_grad_blocked(
        self,
        Zq: torch.Tensor,
        Xq: torch.Tensor,
        Z: torch.Tensor,
        X: torch.Tensor,
        sigma: float,
        block: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _, value, grad = _blocked_pass(
            Zq, Xq, Z, X, sigma, block, loo=False, grad=True, columns=False
        )
        return value, grad  # type: ignore[return-value]

    def available_memory(self) -> int:
        if self._device.type == "cuda":
            return int(torch.cuda.mem_get_info(self._device)[0])
        return super().available_memory()

    def sync(self, out: Any) -> Any:
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)
        return out

    def reset_device_peak(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self._device)

    device_peak_method = "torch.cuda.max_memory_allocated (reset before each configuration)"

    def device_peak(self) -> int | None:
        if self._device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self._device))
        return None

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            **super().info(),
            "torch": torch.__version__,
            "torch_num_threads": torch.get_num_threads(),
        }
        if self._device.type == "cuda":
            info |= {
                "device_name": torch.cuda.get_device_name(self._device),
                "cuda": torch.version.cuda,
                "allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            }
        return info
