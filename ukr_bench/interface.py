"""The one interface every backend implements, the registry, and the public functional API.

Two levels:

* :func:`value_and_grad` takes and returns NumPy arrays, validates everything, and is what
  scripts and tests call.
* :class:`Backend` objects keep arrays on their device between calls, for the benchmark harness
  and the estimator: convert once with :meth:`Backend.asarray`, call :meth:`Backend.compile`'d
  functions many times, and :meth:`Backend.sync` before reading a clock.

Frameworks are imported only when a backend is asked for, so the package works with any subset
of jax and torch installed.
"""

from __future__ import annotations

import contextlib
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ukr_bench.backends import REGISTRY, BackendSpec
from ukr_bench.problem import DType, Params, check_dtype, check_inputs, parse_device

Array = Any  # a framework's array type: numpy.ndarray, jax.Array or torch.Tensor
FunctionName = Literal["value", "value_and_grad"]
FUNCTIONS: tuple[FunctionName, ...] = ("value", "value_and_grad")


class BackendNotInstalledError(ImportError):
    """A known backend whose framework is not installed."""


class DeviceUnavailableError(RuntimeError):
    """A well-formed device that this backend cannot see on this machine."""


class Backend(ABC):
    """One framework's implementation of the objective in :mod:`ukr_bench.problem`.

    Subclasses set :attr:`name`, implement the abstract methods, set :attr:`xp` and, where the framework
    has devices other than the host, :meth:`_resolve_device`. Arrays passed to the objective
    must come from :meth:`asarray` of the same instance: shape (N, L) for ``Z``, (N, D) for
    ``X``, dtype :attr:`dtype`, on :attr:`device`. Inputs are *not* validated here (that is
    done once, at the boundary); the methods are the raw, timed computation.
    """

    name: ClassVar[str]
    #: How the gradient is obtained, in words (recorded with every benchmark row).
    gradient: ClassVar[str]

    def __init__(self, dtype: DType | str = "float64", device: str = "cpu") -> None:
        self.dtype: DType = check_dtype(dtype)
        kind, index = parse_device(device)
        self.device: str = device
        self._resolve_device(kind, index)

    def _resolve_device(self, kind: str, index: int) -> None:
        """Bind the framework device; the default backend runs on the host only."""
        if kind != "cpu":
            msg = f"device {self.device!r} is not available for backend {self.name!r}: it runs on the host only, use device='cpu'"
            raise DeviceUnavailableError(msg)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dtype={self.dtype!r}, device={self.device!r})"

    @abstractmethod
    def asarray(self, a: NDArray[np.floating]) -> Array:
        """Copy a host array to this backend's device, in :attr:`dtype`."""

    @abstractmethod
    def to_numpy(self, a: Array) -> NDArray[np.floating]:
        """Copy a backend array back to a host NumPy array."""

    @abstractmethod
    def value(self, Z: Array, X: Array, sigma: float, lam: float, loo: bool) -> Array:
        """E(Z) as a 0-d backend array."""

    @abstractmethod
    def value_and_grad(
        self, Z: Array, X: Array, sigma: float, lam: float, loo: bool
    ) -> tuple[Array, Array]:
        """E(Z) (0-d) and dE/dZ (N x L), as backend arrays."""

    @abstractmethod
    def predict(self, Zq: Array, Z: Array, X: Array, sigma: float) -> Array:
        """f(Zq) (M x D): the Nadaraya-Watson map of queries ``Zq`` (M x L), no leave-one-out.

        ``Z`` (N x L), ``X`` (N x D) are the training latents and data; see
        :mod:`ukr_bench.problem`.
        """

    @abstractmethod
    def project_value_and_grad(
        self, Zq: Array, Xq: Array, Z: Array, X: Array, sigma: float
    ) -> tuple[Array, Array]:
        """E_q(Zq) = sum_q ||x_q - f(z_q)||^2 (0-d) and its gradient dE_q/dZq (M x L)."""

    #: The array namespace (``numpy``, ``jax.numpy``, ``torch``) whose ``sign``, ``where``,
    #: ``clip`` and ``abs`` the optimisers in :mod:`ukr_bench.optim` apply to this backend's
    #: arrays, so that training never leaves the device.
    xp: ClassVar[Any]

    def context(self) -> contextlib.AbstractContextManager[Any]:
        """A context in which elementwise ``xp`` operations keep :attr:`dtype` (JAX: x64)."""
        return contextlib.nullcontext()

    def sync(self, out: Any) -> Any:
        """Block until ``out`` (an array or a tuple of them) is computed; returns it.

        Frameworks that dispatch asynchronously (JAX everywhere, torch on CUDA) return before
        the work is done, so a clock read without this measures only the dispatch.
        """
        return out

    def compile(
        self, fn: FunctionName, Z: Array, X: Array, params: Params
    ) -> Callable[[Array, Array], Any]:
        """Specialise ``fn`` to these shapes and ``params``; return ``f(Z, X)``.

        JAX traces and compiles here (ahead of time), so the cost of the first call is this
        method's; eager frameworks just bind the parameters.
        """
        method = getattr(self, fn)

        def call(Z: Array, X: Array) -> Any:
            return method(Z, X, params.sigma, params.lam, params.loo)

        return call

    def compile_count(self) -> int:
        """How many compilations this framework has done so far (0 for eager frameworks)."""
        return 0

    def reset_device_peak(self) -> None:
        """Start a new device-memory peak measurement, where the framework can."""
        return

    #: How :meth:`device_peak` measures, in words (recorded with every benchmark row).
    device_peak_method: ClassVar[str | None] = None

    def device_peak(self) -> int | None:
        """Peak bytes allocated on the device (None on the host: the harness measures RSS)."""
        return None

    @classmethod
    def configure_process(cls, threads: int) -> dict[str, Any]:
        """Apply this framework's process-wide settings for a benchmark worker; return them.

        Called once per worker process, before any measurement (thread pools the environment
        cannot size, float32 matmul precision). The default has nothing to set.
        """
        del threads
        return {}

    def info(self) -> dict[str, Any]:
        """Versions and settings that affect results, recorded with benchmarks."""
        return {
            "backend": self.name,
            "dtype": self.dtype,
            "device": self.device,
            "gradient": self.gradient,
        }


def available_backends() -> list[str]:
    """Names of the backends whose framework is installed, sorted; imports no framework."""
    return sorted(name for name, spec in REGISTRY.items() if spec.installed())


def _spec(backend: str) -> BackendSpec:
    if backend not in REGISTRY:
        msg = f"backend must be one of {sorted(REGISTRY)}, got {backend!r}"
        raise ValueError(msg)
    return REGISTRY[backend]


def backend_class(backend: str) -> type[Backend]:
    """The :class:`Backend` subclass for ``backend``, importing its framework now."""
    spec = _spec(backend)
    if not spec.installed():
        msg = f"backend {backend!r} needs the {spec.requires!r} package, which is not installed: {spec.install}"
        raise BackendNotInstalledError(msg)
    try:
        module = importlib.import_module(f"ukr_bench.backends.{spec.module}")
    except ImportError as exc:
        msg = f"backend {backend!r} could not import {spec.requires!r} ({exc}); reinstall it: {spec.install}"
        raise BackendNotInstalledError(msg) from exc
    return getattr(module, spec.cls)


def get_backend(
    backend: str = "numpy", *, dtype: DType | str = "float64", device: str = "cpu"
) -> Backend:
    """A :class:`Backend` instance for ``backend`` computing in ``dtype`` on ``device``."""
    dtype = check_dtype(dtype)
    parse_device(device)
    return backend_class(backend)(dtype=dtype, device=device)


def value_and_grad(
    Z: ArrayLike,
    X: ArrayLike,
    *,
    backend: str = "numpy",
    sigma: float = 1.0,
    lam: float = 0.0,
    loo: bool = True,
    dtype: DType | str = "float64",
    device: str = "cpu",
) -> tuple[float, NDArray[np.floating]]:
    """The UKR objective E(Z) and its gradient, computed by ``backend``.

    Parameters
    ----------
    Z : array of shape (N, L), real floating point
        Latent points.
    X : array of shape (N, D), real floating point
        Data.
    backend : {"jax", "numpy", "torch"}
        Which implementation; see :func:`available_backends`.
    sigma, lam, loo
        Kernel bandwidth (> 0), prior weight (>= 0), leave-one-out; see :mod:`ukr_bench.problem`.
    dtype : {"float32", "float64"}
        Precision of the whole computation; inputs are converted to it.
    device : {"cpu", "cuda", "cuda:<index>"}

    Returns
    -------
    value : float
        E(Z).
    grad : ndarray of shape (N, L) and dtype ``dtype``
        dE/dZ.
    """
    params = Params(sigma=sigma, lam=lam, loo=loo)
    dtype = check_dtype(dtype)
    Z, X = check_inputs(Z, X, params, dtype)
    b = get_backend(backend, dtype=dtype, device=device)
    value, grad = b.sync(
        b.value_and_grad(b.asarray(Z), b.asarray(X), params.sigma, params.lam, params.loo)
    )
    return float(b.to_numpy(value)), b.to_numpy(grad)
