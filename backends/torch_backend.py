"""PyTorch backend: the objective in eager ``torch``, differentiated by ``torch.autograd``.

float32 matmuls on CUDA: PyTorch's default (``torch.backends.cuda.matmul.allow_tf32 = False``)
already computes them in full float32; :meth:`TorchBackend.info` records the setting so a run
with TF32 switched on is visible in the results.

Blocked layout (``layout="blocked"``): :mod:`backends.torch_blocked`, one per-block function
(memory O(block x N), never N x N) with a hand-derived ``torch.autograd.Function``; over several
processes the rows are split by :mod:`backends.torch_distributed`, which runs the same pass.

Fused layout (``layout="fused"``): :mod:`backends.torch_fused`, Triton kernels (the optional
extra ``ukr-bench[triton]``, imported on first use) with the hand-derived gradient in a
``torch.autograd.Function``; without CUDA they run in Triton's interpreter, which warns once that
it is for correctness, not speed.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import torch

from backends import Computations, Instrumented, Variant, torch_blocked, torch_distributed
from backends.torch_blocked import autograd_value_and_grad, sqdist, with_prior
from backends.torch_fused_kernels import choose_interpreter
from ukr_bench.interface import Backend, DeviceUnavailableError

choose_interpreter()  # before torch may import Triton: the fused kernels' interpreter, if any


def _weights(Zq: torch.Tensor, Z: torch.Tensor, sigma: float, loo: bool) -> torch.Tensor:
    """R = softmax(A) (M x N) with logits A = -||zq_q - z_m||^2 / (2 sigma^2), diagonal
    excluded with ``loo`` (then ``Zq`` is ``Z``)."""
    logits = sqdist(Zq, Z) / (-2.0 * sigma**2)
    if loo:
        eye = torch.eye(Z.shape[0], dtype=torch.bool, device=Z.device)
        logits = logits.masked_fill(eye, float("-inf"))
    return torch.softmax(logits, dim=1)


def objective(
    Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool
) -> torch.Tensor:
    """E(Z) as defined in :mod:`ukr_bench.problem`."""
    res = X - _weights(Z, Z, sigma, loo) @ X
    return with_prior((res * res).sum(), Z, lam)


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
    A = sqdist(Z, Z).mul_(-1.0 / (2.0 * sigma**2))
    if loo:
        A.fill_diagonal_(float("-inf"))
    R = torch.softmax(A, dim=1)
    del A
    e = R @ X - X
    value = with_prior((e * e).sum(), Z, lam)
    B = torch.empty_like(R)
    torch_blocked.softmax_backward_(R, None, e, X, out=B)  # R is scratch from here on
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
    return _weights(Zq, Z, sigma, False) @ X


def projection_error(Xq: torch.Tensor, Yq: torch.Tensor) -> torch.Tensor:
    """E_q = sum_q ||x_q - y_q||^2 (:mod:`ukr_bench.problem`) of targets ``Xq`` and f(Zq) ``Yq``."""
    res = Xq - Yq
    return (res * res).sum()


class TorchBase(Backend, Instrumented):
    """What every torch-tensor backend shares (devices, conversion, memory, process settings);
    its computations are its subclass's: :class:`TorchBackend`'s, or KeOps's reductions."""

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
        rank, _ = torch_distributed.ensure_group(kind, len(indices), self.device)
        self._resolve_device(kind, indices[rank])
        self._distributed = True

    def asarray(self, a: np.ndarray) -> torch.Tensor:
        # Always a copy of the caller's array: as_tensor shared a float array's memory on the
        # CPU, warned for a read-only one (a memmap, np.broadcast_to) and refused negative strides.
        return torch.from_numpy(np.array(a, dtype=self.dtype, order="C")).to(self._device)

    def to_numpy(self, a: torch.Tensor) -> np.ndarray:
        return a.detach().cpu().numpy()

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
        if self.layout == "fused":  # Triton's interpreter: chosen once, by choose_interpreter
            info["fused_interpreted"] = os.environ.get("TRITON_INTERPRET", "0") == "1"
        if self._device.type == "cuda":
            info |= {
                "device_name": torch.cuda.get_device_name(self._device),
                "cuda": torch.version.cuda,
                "allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            }
        return info


class TorchBackend(TorchBase):
    """torch.autograd on eager tensors (dense) or a hand-derived blocked autograd.Function."""

    name = "torch"

    def _value_dense(
        self, Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool
    ) -> torch.Tensor:
        with torch.no_grad():
            return objective(Z, X, sigma, lam, loo)

    def _value_and_grad_dense(
        self, Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return autograd_value_and_grad(lambda Z: objective(Z, X, sigma, lam, loo), Z)

    def _value_and_grad_dense_manual(
        self, Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return value_and_grad_manual(Z, X, sigma, lam, loo)

    def _value_and_grad_blocked_autodiff(
        self, Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool, block: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return autograd_value_and_grad(
            lambda Z: torch_blocked.objective_blocked_autodiff(Z, X, sigma, lam, loo, block), Z
        )

    def _predict_dense(
        self, Zq: torch.Tensor, Z: torch.Tensor, X: torch.Tensor, sigma: float
    ) -> torch.Tensor:
        with torch.no_grad():
            return predict(Zq, Z, X, sigma)

    def _project_value_and_grad_dense(
        self, Zq: torch.Tensor, Xq: torch.Tensor, Z: torch.Tensor, X: torch.Tensor, sigma: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return autograd_value_and_grad(
            lambda Zq: projection_error(Xq, predict(Zq, Z, X, sigma)), Zq
        )

    def _objective_blocked(self) -> Any:
        """The blocked objective of this process, or of the process group it is one rank of."""
        return torch_distributed.objective if self._distributed else torch_blocked.objective_blocked

    def _value_blocked(
        self, Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool, block: int
    ) -> torch.Tensor:
        with torch.no_grad():
            return self._objective_blocked()(Z, X, sigma, lam, loo, block)

    def _value_and_grad_blocked(
        self, Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool, block: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        f = self._objective_blocked()
        return autograd_value_and_grad(lambda Z: f(Z, X, sigma, lam, loo, block), Z)

    def _predict_blocked(
        self, Zq: torch.Tensor, Z: torch.Tensor, X: torch.Tensor, sigma: float, block: int
    ) -> torch.Tensor:
        Y, _, _ = torch_blocked.blocked_pass(
            Zq, None, Z, X, sigma, block, loo=False, grad=False, columns=False
        )
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
        _, value, grad = torch_blocked.blocked_pass(
            Zq, Xq, Z, X, sigma, block, loo=False, grad=True, columns=False
        )
        return value, grad  # type: ignore[return-value]

    def _value_fused(
        self, Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool
    ) -> torch.Tensor:
        from backends import torch_fused

        with torch.no_grad():
            return torch_fused.objective_fused(Z, X, sigma, lam, loo)

    def _value_and_grad_fused(
        self, Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from backends import torch_fused

        return torch_fused.value_and_grad_fused(Z, X, sigma, lam, loo)

    def _predict_fused(
        self, Zq: torch.Tensor, Z: torch.Tensor, X: torch.Tensor, sigma: float
    ) -> torch.Tensor:
        from backends import torch_fused

        return torch_fused.predict_fused(Zq, Z, X, sigma)

    def _project_value_and_grad_fused(
        self, Zq: torch.Tensor, Xq: torch.Tensor, Z: torch.Tensor, X: torch.Tensor, sigma: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from backends import torch_fused

        return torch_fused.project_value_and_grad_fused(Zq, Xq, Z, X, sigma)

    COMPUTATIONS = (
        Computations("dense", _value_dense, _predict_dense, _project_value_and_grad_dense),
        Computations("blocked", _value_blocked, _predict_blocked, _project_value_and_grad_blocked),
        Computations("fused", _value_fused, _predict_fused, _project_value_and_grad_fused),
    )
    VARIANTS = (
        Variant("dense", "autodiff", _value_and_grad_dense, "autodiff (torch.autograd)"),
        Variant("dense", "manual", _value_and_grad_dense_manual, "hand-derived (dense, eager)"),
        Variant(
            "blocked", "manual", _value_and_grad_blocked,
            "hand-derived (blocked autograd.Function)",
        ),
        Variant(
            "blocked", "autodiff", _value_and_grad_blocked_autodiff,
            "autodiff (torch.autograd, torch.utils.checkpoint per block)",
        ),
        Variant(
            "fused", "manual", _value_and_grad_fused,
            "hand-derived (fused Triton kernels, autograd.Function)",
        ),
    )  # fmt: skip
