"""PyTorch backend: the objective in eager ``torch``, differentiated by ``torch.autograd``.

float32 matmuls on CUDA: PyTorch's default (``torch.backends.cuda.matmul.allow_tf32 = False``)
already computes them in full float32; :meth:`TorchBackend.info` records the setting so a run
with TF32 switched on is visible in the results.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

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


def predict(Zq: torch.Tensor, Z: torch.Tensor, X: torch.Tensor, sigma: float) -> torch.Tensor:
    """f(Zq) (M x D), the Nadaraya-Watson map of :mod:`ukr_bench.problem`, no leave-one-out."""
    R = torch.softmax(_sqdist(Zq, Z) / (-2.0 * sigma**2), dim=1)
    return R @ X


class TorchBackend(Backend):
    """torch.autograd on eager tensors; cpu or cuda."""

    name = "torch"
    gradient = "autodiff (torch.autograd)"
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

    def asarray(self, a: np.ndarray) -> torch.Tensor:
        # Always a copy of the caller's array: as_tensor shared a float array's memory on the
        # CPU, warned for a read-only one (a memmap, np.broadcast_to) and refused negative strides.
        return torch.from_numpy(np.array(a, dtype=self.dtype, order="C")).to(self._device)

    def to_numpy(self, a: torch.Tensor) -> np.ndarray:
        return a.detach().cpu().numpy()

    def value(
        self, Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool
    ) -> torch.Tensor:
        with torch.no_grad():
            return objective(Z, X, sigma, lam, loo)

    def value_and_grad(
        self, Z: torch.Tensor, X: torch.Tensor, sigma: float, lam: float, loo: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        Z = Z.detach().requires_grad_(True)
        value = objective(Z, X, sigma, lam, loo)
        (grad,) = torch.autograd.grad(value, Z)
        return value.detach(), grad

    def predict(
        self, Zq: torch.Tensor, Z: torch.Tensor, X: torch.Tensor, sigma: float
    ) -> torch.Tensor:
        with torch.no_grad():
            return predict(Zq, Z, X, sigma)

    def project_value_and_grad(
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
