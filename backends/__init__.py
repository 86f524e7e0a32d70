"""One module per framework, each a :class:`ukr_bench.interface.Backend` subclass, and their registry.

Everything the rest of the suite needs to know about a framework *without importing it* is
declared here, once per backend, in a :class:`BackendSpec`: where its class lives, which package
it needs and how to install it, the environment its worker process must start with (thread
pools are sized at import time), whether it has devices other than the host, how many N x N
buffers its value + gradient keeps alive (so the harness skips configurations that cannot fit),
and how reports draw it. The harness and the report read these fields and name no framework.

The backend modules import their framework at the top; :mod:`ukr_bench.interface` imports a
module only when its backend is asked for, so importing this package costs nothing.

This folder is the import package ``backends``, beside ``ukr_bench``, in a checkout and once
installed (the wheel installs both): each backend module has one name, ``backends.<module>``.

Adding a backend: write ``backends/<name>_backend.py`` with a ``Backend`` subclass and add one
``BackendSpec`` to :data:`REGISTRY` below. The class declares what it implements in two tables
of the types here, :class:`Computations` per layout and one :class:`Variant` per (layout,
gradient kind), and inherits :class:`Instrumented`, what the harness asks of it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from backends.process_env import _blas_threads, _xla_env, _xla_host_devices

GradientKind = Literal["autodiff", "manual"]
#: How a gradient can be obtained: by automatic differentiation, or by the hand-derived formula.
GRADIENT_KINDS: tuple[GradientKind, ...] = ("autodiff", "manual")
#: A memory layout a backend implements: N x N arrays, row blocks, or one fused kernel per pass
#: (``ukr_bench.layouts.LAYOUTS`` adds ``auto``, which chooses among them).
LayoutName = Literal["dense", "blocked", "fused"]
#: The install hint of the fused torch kernels' Triton (imported only when they are first used).
TRITON_INSTALL = 'pip install "ukr-bench[triton]"'


class FusedInterpretWarning(UserWarning):
    """The fused kernels (Pallas, Triton) run in interpret mode, on a CPU: correct, not fast.

    Each framework's fused module warns once per process; one class for both, so that one
    filter (the test suite's) silences them.
    """


#: How a backend runs on several devices (rows split between them): not at all, in one
#: process (JAX: a mesh of the devices it sees), or one process per device (torch.distributed,
#: started by ``torchrun``; the harness's one worker per backend cannot do that yet).
MultiDevice = Literal["none", "in_process", "processes"]


@dataclass(frozen=True)
class BackendSpec:
    """Where a backend lives, what it needs, and how the harness and the report treat it."""

    name: str
    module: str  # relative to this package
    cls: str
    requires: str | None  # the importable framework; None for NumPy (always present)
    install: str
    #: How the gradient is obtained by default ("manual": derived by hand, "autodiff").
    gradient: GradientKind = "autodiff"
    #: The host is the only device (no ``cuda``): the harness plans no GPU configurations.
    host_only: bool = False
    #: Environment of the worker process, from the number of CPU threads to use.
    process_env: Callable[[int], dict[str, str]] = _blas_threads
    #: N x N arrays alive at value_and_grad's peak (dense layout), as base + per_latent * L,
    #: from peak RSS at N = 4000 and 8000, L = 2, CPU: the harness skips what cannot fit.
    n2_base: float = 8.0
    n2_per_latent: float = 0.0
    #: The reference the report's speed-up figure divides by (the hand-derived baseline).
    baseline: bool = False
    #: Report style: colour and marker of this backend in every figure.
    color: str = "#2ca02c"
    marker: str = "D"
    #: Memory layouts the backend implements (``Backend.layouts``; ``auto`` chooses among them).
    layouts: tuple[str, ...] = ("dense", "blocked")
    #: How the gradient is obtained in the blocked layout, where it differs from ``gradient``.
    blocked_gradient: GradientKind | None = None
    also_requires: tuple[str, ...] = ()  # further importable packages (keops: torch)
    #: Every way of obtaining the gradient the backend implements, in each of its layouts
    #: (``get_backend(..., gradient=...)``); the harness sweeps these.
    gradients: tuple[GradientKind, ...] = ("autodiff",)
    #: Several devices (``device="cuda:0-3"``): how (see :data:`MultiDevice`).
    multi_device: MultiDevice = "none"
    #: Environment a worker needs to see ``count`` host (CPU) devices; merged into
    #: :attr:`process_env` by :meth:`worker_env` (values of a key both set are joined by a
    #: space, this one first).
    host_devices_env: Callable[[int], dict[str, str]] | None = None
    #: Layouts that implement fewer gradient kinds than :attr:`gradients`, as (layout, kinds)
    #: pairs, the first kind the layout's default: the fused kernels are hand-differentiated
    #: only (neither JAX nor torch differentiates through a Pallas or Triton kernel).
    layout_gradients: tuple[tuple[LayoutName, tuple[GradientKind, ...]], ...] = ()
    #: Packages a layout needs beyond :attr:`requires`, as (layout, importable, install hint).
    layout_requires: tuple[tuple[LayoutName, str, str], ...] = ()

    def __post_init__(self) -> None:
        defaults = {self.gradient, self.blocked_gradient or self.gradient}
        if not defaults <= set(self.gradients) <= set(GRADIENT_KINDS):
            msg = f"backend {self.name!r}: gradients {self.gradients} must hold its defaults {sorted(defaults)}"
            raise ValueError(msg)
        for layout, kinds in self.layout_gradients:
            if layout not in self.layouts or not kinds or not set(kinds) <= set(self.gradients):
                msg = f"backend {self.name!r}: layout_gradients {layout!r}: {kinds} must be a non-empty subset of gradients {self.gradients} of one of its layouts {self.layouts}"
                raise ValueError(msg)

    def gradients_in(self, layout: str) -> tuple[GradientKind, ...]:
        """The gradient kinds the backend implements in ``layout`` (its Variants' kinds)."""
        return next((k for name, k in self.layout_gradients if name == layout), self.gradients)

    def missing_for(self, layout: str) -> str | None:
        """Why ``layout`` cannot run here (a package it needs, with its install hint), or None."""
        for name, package, install in self.layout_requires:
            if name == layout and not _importable(package):
                return f"layout {layout!r} of backend {self.name!r} needs the {package!r} package, which is not installed: {install}"
        return None

    def worker_env(self, threads: int, host_devices: int = 1) -> dict[str, str]:
        """The worker process's environment: threads, and ``host_devices`` CPU devices."""
        env = self.process_env(threads)
        if host_devices > 1 and self.host_devices_env is not None:
            for key, value in self.host_devices_env(host_devices).items():
                env[key] = f"{value} {env[key]}".strip() if env.get(key) else value
        return env

    def n2_buffers(self, latent_dim: int) -> float:
        return self.n2_base + self.n2_per_latent * latent_dim

    def gradient_for(self, layout: str, gradient: str = "auto") -> GradientKind:
        """How the gradient is obtained in ``layout``: a result row's ``gradient`` field.

        ``gradient`` is what was asked for ("autodiff", "manual"); "auto" is the backend's
        default for the layout (autodiff dense, hand-derived blocked for JAX and torch).
        """
        if gradient != "auto":
            return check_gradient(gradient, self, layout)
        if any(name == layout for name, _ in self.layout_gradients):
            return self.gradients_in(layout)[0]
        if layout == "blocked" and self.blocked_gradient is not None:
            return self.blocked_gradient
        return self.gradient

    def installed(self) -> bool:
        if self.requires is None:
            return True
        return all(_importable(name) for name in (self.requires, *self.also_requires))


def check_gradient(
    gradient: object, spec: BackendSpec | None = None, layout: str | None = None
) -> GradientKind:
    """``gradient`` as a :data:`GradientKind`, or a ValueError naming it and the supported values.

    With ``spec``, only the kinds that backend implements are accepted; with ``layout`` too,
    only those of that layout (:meth:`BackendSpec.gradients_in`).
    """
    supported = GRADIENT_KINDS if spec is None else spec.gradients
    if spec is not None and layout is not None:
        supported = spec.gradients_in(layout)
    if gradient not in supported:
        where = "" if spec is None else f" for backend {spec.name!r}"
        if spec is not None and layout is not None and supported != spec.gradients:
            where += f" in layout {layout!r}"
        msg = f"gradient must be one of {['auto', *supported]}{where}, got {gradient!r}"
        raise ValueError(msg)
    return gradient


# -- what a backend class declares (the classes: ukr_bench.interface.Backend) ------------------


@dataclass(frozen=True)
class Variant:
    """One way a backend computes E(Z) and dE/dZ: a layout and a gradient kind.

    ``value_and_grad`` is a plain function taking the backend first (a method of its class):
    ``f(backend, Z, X, sigma, lam, loo)`` dense and fused (the kernels' own tiles), with
    ``block`` (rows per block, an int) last in the blocked layout. ``description`` says in
    words how the gradient is obtained: what
    :meth:`~ukr_bench.interface.Backend.describe_gradient` answers, recorded with every
    benchmark row and shown by the report.
    """

    layout: LayoutName
    gradient: GradientKind
    value_and_grad: Callable[..., tuple[Any, Any]]
    description: str


@dataclass(frozen=True)
class Computations:
    """A backend's other raw computations in one layout, plain functions taking the backend first.

    ``value(b, Z, X, sigma, lam, loo)``, ``predict(b, Zq, Z, X, sigma)`` and
    ``project_value_and_grad(b, Zq, Xq, Z, X, sigma)``; blocked ones take ``block`` last. Dense:
    the N x N arrays at once; blocked: row blocks of ``block`` rows (the last may be shorter),
    never an N x N array; fused: one kernel per pass over tiles of its own size, memory
    O(N (L + D)).
    """

    layout: LayoutName
    value: Callable[..., Any]
    predict: Callable[..., Any]
    project_value_and_grad: Callable[..., tuple[Any, Any]]


@runtime_checkable
class Instrumented(Protocol):
    """What only the benchmark harness asks of a backend, apart from the ``Backend`` ABC.

    A second, small Protocol (as optax keeps its extra-argument transformations apart from
    ``GradientTransformation``): users of :class:`ukr_bench.interface.Backend` never see it; the
    harness reaches it through :func:`ukr_bench.interface.instrumented`. Every backend class
    inherits it explicitly, so the bodies here are the defaults: an eager framework on the host,
    which never compiles, has no device memory to measure and no process-wide settings.
    """

    #: How :meth:`device_peak` measures, in words (recorded with every benchmark row).
    device_peak_method: ClassVar[str | None] = None

    def compile_count(self) -> int:
        """How many compilations this framework has done so far (0 for eager frameworks)."""
        return 0

    def clear_compile_caches(self) -> None:
        """Forget this process's compiled programs, so that the next ``compile`` compiles.

        The harness calls it before each configuration: an earlier one in the same worker (a
        time-to-fit, whose estimator picks the blocked layout above N = 1024) may have compiled
        the very same program, and that configuration's compile time would read as a cache hit.
        """
        return

    def reset_device_peak(self) -> None:
        """Start a new device-memory peak measurement, where the framework can."""
        return

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

    def exp_sum(self, a: Any, shifts: int) -> Callable[[], Any]:
        """A function computing ``sum_k sum_i exp(a_i - k / shifts)``, k < ``shifts``.

        ``a``: a 1-D array of the backend's dtype on its device (values in [-1, 0]); the
        function does ``shifts * a.size`` exps, each fused with a subtraction and a sum as a
        UKR kernel does, in the fastest form the framework offers (the harness's exp rate).
        The default: the backend's array namespace ``xp`` into one preallocated buffer, which
        a block that fits in cache keeps there (NumPy, eager torch).
        """
        xp, buf = self.xp, a * 1  # type: ignore[attr-defined]
        terms = [-k / shifts for k in range(shifts)]

        def run() -> Any:
            total = 0.0
            for c in terms:
                xp.add(a, c, out=buf)
                xp.exp(buf, out=buf)
                total = total + buf.sum()
            return total

        return run

    def matmul(self, a: Any, b: Any) -> Callable[[], Any]:
        """A function computing the matrix product ``a @ b`` (2-D arrays of the backend's dtype
        on its device) at the precision the backend's own products use (the harness's GEMM
        rate). The default: ``a @ b``."""
        return lambda: a @ b

    def fma_chain(self, a: Any, steps: int, chains: int) -> Callable[[], Any]:
        """A function returning ``sum_j x_j``, j < ``chains``, each ``x_j`` started at
        ``a + j / chains`` and updated ``steps`` times by ``x <- x / 2 + 1 / 2``, elementwise.

        ``a``: a 1-D array of the backend's dtype on its device. ``(2 steps + 2) chains - 1``
        flops per element (the multiply-adds, the starts and the sum; the iteration converges
        to 1, so no value overflows or becomes subnormal); the chains are independent, so that
        the hardware can overlap them (one chain waits on each result's latency). In the
        framework's fastest elementwise form: the harness's FMA rate. The default updates
        ``chains`` buffers in place with the array namespace, two passes a step.
        """
        xp, bufs = self.xp, [a * 1 for _ in range(chains)]  # type: ignore[attr-defined]

        def run() -> Any:
            for j, x in enumerate(bufs):
                xp.add(a, j / chains, out=x)
                for _ in range(steps):
                    xp.multiply(x, 0.5, out=x)
                    xp.add(x, 0.5, out=x)
            total = bufs[0] * 1
            for x in bufs[1:]:
                xp.add(total, x, out=total)
            return total

        return run


def _importable(name: str) -> bool:
    if name in sys.modules:  # a module blocked with sys.modules[name] = None
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


REGISTRY: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec(
            "jax",
            "jax_backend",
            "JaxBackend",
            "jax",
            'pip install "ukr-bench[jax]"',
            process_env=_xla_env,
            n2_base=4.0,  # float64 at N = 8000 peaked at 4.4 N^2 (float32: 3.2 N^2)
            n2_per_latent=0.5,
            blocked_gradient="manual",  # a hand-derived custom_vjp
            gradients=("autodiff", "manual"),
            layouts=("dense", "blocked", "fused"),
            layout_gradients=(("fused", ("manual",)),),  # Pallas kernels, a custom_vjp
            multi_device="in_process",  # a mesh; rows sharded (backends/jax_sharded.py)
            host_devices_env=_xla_host_devices,
            color="#1f77b4",
            marker="o",
        ),
        BackendSpec(
            "numpy",
            "numpy_backend",
            "NumpyBackend",
            None,
            "pip install ukr-bench",
            gradient="manual",
            gradients=("manual",),  # NumPy has no autodiff
            host_only=True,
            n2_base=3.5,
            baseline=True,
            color="#444444",
            marker="s",
        ),
        BackendSpec(
            "torch",
            "torch_backend",
            "TorchBackend",
            "torch",
            'pip install "ukr-bench[torch]" (or the torch build for your CUDA from pytorch.org)',
            n2_base=4.5,  # 6 N^2 at N = 8000
            n2_per_latent=1.0,
            blocked_gradient="manual",  # a hand-derived autograd.Function
            gradients=("autodiff", "manual"),
            layouts=("dense", "blocked", "fused"),
            layout_gradients=(("fused", ("manual",)),),  # Triton kernels, an autograd.Function
            layout_requires=(("fused", "triton", TRITON_INSTALL),),
            multi_device="processes",  # torchrun (backends/torch_distributed.py)
            color="#ff7f0e",
            marker="^",
        ),
        BackendSpec(
            "keops",
            "keops_backend",
            "KeOpsBackend",
            "pykeops",
            'pip install "ukr-bench[keops]" (needs g++ and cmake; compiles at first use)',
            n2_base=0.0,  # KeOps streams over tiles: memory O(N), no N x N array
            layouts=("blocked",),  # KeOps tiles by itself
            also_requires=("torch",),
            color="#9467bd",
            marker="P",
        ),
    )
}
