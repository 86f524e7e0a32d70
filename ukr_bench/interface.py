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
import functools
import importlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeGuard, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from backends import (
    REGISTRY,
    BackendSpec,
    Computations,
    GradientKind,
    Instrumented,
    Variant,
    check_gradient,
)
from ukr_bench.devices import parse_devices
from ukr_bench.problem import (
    Layout,
    Params,
    check_block_size,
    check_inputs,
    check_lam,
    check_layout,
    check_sigma,
    plan_layout,
)
from ukr_bench.system import host_available_memory
from ukr_bench.validation import DType, check_dtype

Array = Any  # a framework's array type: numpy.ndarray, jax.Array or torch.Tensor
FunctionName = Literal["value", "value_and_grad"]
FUNCTIONS: tuple[FunctionName, ...] = ("value", "value_and_grad")
#: How the gradient is asked for: "auto" is the backend's default for the layout.
GradientChoice = Literal["auto", "autodiff", "manual"]
#: A device (``"cpu"``, ``"cuda:1"``), a set of devices (``"cuda:0-3"``, ``["cuda:0", "cuda:2"]``)
#: or a framework's own device set (a ``jax.sharding.Mesh``); see :func:`parse_devices`.
Devices = Any


class BackendNotInstalledError(ImportError):
    """A known backend whose framework is not installed."""


class DeviceUnavailableError(RuntimeError):
    """A well-formed device that this backend cannot see on this machine."""


class Backend(ABC):
    """One framework's implementation of the objective in :mod:`ukr_bench.problem`.

    Subclasses set :attr:`name`, :attr:`xp`, :attr:`COMPUTATIONS` and :attr:`VARIANTS`, implement
    :meth:`asarray` and :meth:`to_numpy` and, where the framework has devices other than the
    host, :meth:`_resolve_device`. Arrays passed to the objective
    must come from :meth:`asarray` of the same instance: shape (N, L) for ``Z``, (N, D) for
    ``X``, dtype :attr:`dtype`, on :attr:`device`. The arrays are *not* validated here (that
    is done once, at the boundary); the public methods (:meth:`value`, :meth:`value_and_grad`,
    :meth:`predict`, :meth:`project_value_and_grad`, :meth:`compile`) check only their scalar
    parameters, ``sigma`` and ``lam``, against the ranges of :attr:`dtype`
    (:func:`ukr_bench.problem.check_sigma`, :func:`~ukr_bench.problem.check_lam`): a few float
    comparisons, against the NaN, inf or ZeroDivisionError an out-of-range value gives. A
    subclass that overrides one of them is checked the same way (:meth:`__init_subclass__`).

    :attr:`layout` (``"dense"``, ``"blocked"``, ``"fused"`` or ``"auto"``) and :attr:`block_size`
    choose the memory layout; the public methods run the raw computation of the layout that
    :meth:`resolve_layout` names for the call's N: the :class:`Computations` of that layout,
    or, for :meth:`value_and_grad`, its :class:`Variant`.

    :attr:`gradient_choice` (``"auto"``, ``"autodiff"`` or ``"manual"``) chooses how
    :meth:`value_and_grad` obtains the gradient: ``"manual"`` is the hand-derived formula of
    :mod:`backends.numpy_backend`, ``"autodiff"`` the framework's reverse mode; ``"auto"`` the
    backend's default for the layout (:meth:`gradient_kind`). Each kind of each layout is one
    :class:`Variant`. ``predict`` and the projection are not affected.

    What only the benchmark harness needs (compile counts, caches, device peaks, process
    settings) is apart, in :class:`Instrumented`.
    """

    name: ClassVar[str]
    #: The raw computations of each layout this backend implements (``auto`` chooses among them).
    COMPUTATIONS: ClassVar[tuple[Computations, ...]]
    #: Every (layout, gradient kind) this backend implements: its function and description.
    VARIANTS: ClassVar[tuple[Variant, ...]]
    #: The layouts of :attr:`COMPUTATIONS`, in order (set from them).
    layouts: ClassVar[tuple[str, ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap a subclass's own override of a public method in the parameter check.

        Every backend must refuse an out-of-range ``sigma`` or ``lam`` the same way; the base
        methods check them, and an override (JAX's ahead-of-time :meth:`compile`) would skip
        that check without this wrapper. A subclass's tables are checked against its
        :class:`~backends.BackendSpec` (:func:`_check_tables`).
        """
        super().__init_subclass__(**kwargs)
        for name in _CHECKED_METHODS:
            if name in cls.__dict__:
                setattr(cls, name, _checking_params(cls.__dict__[name]))
        if "COMPUTATIONS" in cls.__dict__ or "VARIANTS" in cls.__dict__:
            cls.layouts = tuple(c.layout for c in cls.COMPUTATIONS)
            _check_tables(cls)

    def _check_params(self, sigma: object, lam: object = 0.0) -> None:
        """Raise naming the parameter unless ``sigma`` and ``lam`` are in :attr:`dtype`'s range."""
        check_sigma(sigma, self.dtype)
        check_lam(lam, self.dtype)

    def __init__(
        self,
        dtype: DType | str = "float64",
        device: Devices = "cpu",
        *,
        layout: Layout | str = "auto",
        block_size: int | None = None,
        gradient: GradientChoice | str = "auto",
    ) -> None:
        self.dtype: DType = check_dtype(dtype)
        if isinstance(device, (str, list, tuple)):
            kind, indices = parse_devices(device)
            name = device if isinstance(device, str) else ",".join(device)
        else:  # a framework's device set (JAX Mesh); the default backend takes none
            kind, indices, name = self._device_set(device)
        self.device: str = name
        #: How many devices share each call (rows split between them; :attr:`device` names them).
        self.n_devices: int = len(indices)
        # Rows sharded over the devices: several of them, or a framework's device set (a Mesh).
        sharded = self.n_devices > 1 or not isinstance(device, (str, list, tuple))
        self.layout: Layout = check_layout(layout)
        if self.layout != "auto" and self.layout not in self.layouts:
            raise _no_layout(self.name, self.layouts, self.layout)
        if sharded:
            if self.layout in ("dense", "fused"):
                msg = f"layout {self.layout!r} cannot be split over {self.n_devices} devices ({name!r}): use layout='blocked' (or 'auto'), whose row blocks are what the devices share"
                raise ValueError(msg)
            self.layout = "blocked"
        if missing := self._spec().missing_for(self.layout):
            raise BackendNotInstalledError(missing)
        self.block_size: int | None = check_block_size(block_size)
        fixed = None if self.layout == "auto" else self.layout  # its gradient kinds, checked now
        self.gradient_choice: GradientChoice = (
            "auto" if gradient == "auto" else check_gradient(gradient, self._spec(), fixed)
        )
        if sharded and self.gradient_kind("blocked") != self._spec().gradient_for("blocked"):
            msg = (
                f"gradient={self.gradient_choice!r} is not implemented on several devices for "
                f"backend {self.name!r}: its sharded objective is hand-derived; use "
                f"gradient={self._spec().gradient_for('blocked')!r} or 'auto'"
            )
            raise ValueError(msg)
        if sharded:
            self._resolve_devices(kind, indices, device)
        else:
            self._resolve_device(kind, indices[0])
        self._device_kind = kind
        self._available: int | None = None
        self._plans: dict[tuple[int, int, int, int], tuple[str, int | None]] = {}

    def _resolve_device(self, kind: str, index: int) -> None:
        """Bind the framework device; the default backend runs on the host only."""
        if kind != "cpu":
            msg = f"device {self.device!r} is not available for backend {self.name!r}: it runs on the host only, use device='cpu'"
            raise DeviceUnavailableError(msg)

    def _device_set(self, device: object) -> tuple[str, tuple[int, ...], str]:
        """(kind, indices, name) of a framework's own device-set object (JAX: a Mesh).

        The default backend takes none: the ValueError of :func:`parse_devices`.
        """
        kind, indices = parse_devices(device)  # raises for anything but a string or a list
        return kind, indices, str(device)

    def _resolve_devices(self, kind: str, indices: tuple[int, ...], device: object) -> None:
        """Bind several devices (rows sharded between them); the default backend runs on one."""
        del kind, indices, device
        msg = f"device {self.device!r} names {self.n_devices} devices, but backend {self.name!r} runs on one: use jax or torch for several"
        raise DeviceUnavailableError(msg)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dtype={self.dtype!r}, device={self.device!r}, "
            f"layout={self.layout!r}, block_size={self.block_size!r}, "
            f"gradient={self.gradient_choice!r})"
        )

    @classmethod
    def _spec(cls) -> BackendSpec:
        return REGISTRY[cls.name]

    # -- gradient ---------------------------------------------------------------------------

    def gradient_kind(self, layout: str) -> GradientKind:
        """How :meth:`value_and_grad` obtains the gradient in ``layout``: "autodiff" or "manual"."""
        return self._spec().gradient_for(layout, self.gradient_choice)

    def _variant(self, layout: str) -> Variant:
        """The :class:`Variant` of ``layout`` whose kind is :meth:`gradient_kind`'s."""
        kind = self.gradient_kind(layout)
        for variant in self.VARIANTS:
            if variant.layout == layout and variant.gradient == kind:
                return variant
        implemented = [(v.layout, v.gradient) for v in self.VARIANTS]
        msg = f"backend {self.name!r} implements no layout {layout!r} with gradient={kind!r}: it has {implemented}"
        raise ValueError(msg)

    def _computations(self, layout: str) -> Computations:
        for computations in self.COMPUTATIONS:
            if computations.layout == layout:
                return computations
        raise _no_layout(self.name, self.layouts, layout)

    def describe_gradient(self, layout: str) -> str:
        """How the gradient is obtained in ``layout`` (for reports: autodiff vs hand-derived)."""
        return self._variant(layout).description

    # -- layout ---------------------------------------------------------------------------------

    def available_memory(self) -> int:
        """Bytes free for this backend's arrays on its device (host memory by default).

        Read once per backend object (the first time a layout is resolved), so that a backend's
        block sizes do not change from call to call.
        """
        return host_available_memory()

    def workers(self) -> int:
        """How many blocks are in flight at once (each holds its own block arrays)."""
        return 1

    def resolve_layout(
        self, n: int, latent_dim: int = 2, data_dim: int = 3, *, rows: int | None = None
    ) -> tuple[str, int | None]:
        """(layout, rows per block) of a call with ``n`` training points and ``rows`` queries.

        ``rows`` defaults to ``n`` (the objective); ``predict`` and ``project_value_and_grad``
        have ``rows = M`` queries. The layout is ``"dense"``, ``"fused"`` (block ``None``; the
        fused kernels' tiles are their own) or ``"blocked"``; the rule is
        :func:`ukr_bench.layouts.plan_layout`, the same for every backend. ``latent_dim``
        and ``data_dim`` only refine the block size (their defaults are the benchmark's L, D).
        """
        rows = n if rows is None else rows
        key = (rows, n, latent_dim, data_dim)
        plan = self._plans.get(key)
        if plan is None:
            if self._available is None:
                self._available = self.available_memory()
            plan = plan_layout(
                rows,
                n,
                latent_dim,
                data_dim,
                self.dtype,
                self._available,
                layout=self.layout,
                block_size=self.block_size,
                device_kind=self._device_kind,
                workers=self.workers(),
            )
            self._plans[key] = plan
        return plan

    def _plan(self, rows: int, Z: Array, X: Array) -> tuple[str, int | None]:
        """(layout, rows per block) of a call with ``rows`` query rows against ``Z``, ``X``.

        The block is None but in the blocked layout, where a plan without a block size (KeOps,
        which tiles by itself) is one block of all ``rows``.
        """
        layout, block = self.resolve_layout(Z.shape[0], Z.shape[1], X.shape[1], rows=rows)
        if layout != "blocked":
            return layout, None
        return layout, rows if block is None else block

    def _objective(self, fn: FunctionName, layout: str, block: int | None) -> Callable[..., Any]:
        """The raw ``fn`` of ``layout`` (blocked: with ``block``): ``f(Z, X, sigma, lam, loo)``."""
        if fn == "value_and_grad":
            raw = self._variant(layout).value_and_grad
        else:
            raw = self._computations(layout).value
        if block is None:
            return functools.partial(raw, self)
        return functools.partial(raw, self, block=block)

    @abstractmethod
    def asarray(self, a: NDArray[np.floating]) -> Array:
        """Copy a host array to this backend's device, in :attr:`dtype`."""

    @abstractmethod
    def to_numpy(self, a: Array) -> NDArray[np.floating]:
        """Copy a backend array back to a host NumPy array."""

    def value(self, Z: Array, X: Array, sigma: float, lam: float, loo: bool) -> Array:
        """E(Z) as a 0-d backend array."""
        self._check_params(sigma, lam)
        return self._objective("value", *self._plan(Z.shape[0], Z, X))(Z, X, sigma, lam, loo)

    def value_and_grad(
        self, Z: Array, X: Array, sigma: float, lam: float, loo: bool
    ) -> tuple[Array, Array]:
        """E(Z) (0-d) and dE/dZ (N x L), as backend arrays."""
        self._check_params(sigma, lam)
        plan = self._plan(Z.shape[0], Z, X)
        return self._objective("value_and_grad", *plan)(Z, X, sigma, lam, loo)

    def predict(self, Zq: Array, Z: Array, X: Array, sigma: float) -> Array:
        """f(Zq) (M x D): the Nadaraya-Watson map of queries ``Zq`` (M x L), no leave-one-out.

        ``Z`` (N x L), ``X`` (N x D) are the training latents and data; see
        :mod:`ukr_bench.problem`. Blocked: queries in row blocks; fused: in the kernel's tiles.
        """
        self._check_params(sigma)
        layout, block = self._plan(Zq.shape[0], Z, X)
        blocks = () if block is None else (block,)
        return self._computations(layout).predict(self, Zq, Z, X, sigma, *blocks)

    def project_value_and_grad(
        self, Zq: Array, Xq: Array, Z: Array, X: Array, sigma: float
    ) -> tuple[Array, Array]:
        """E_q(Zq) = sum_q ||x_q - f(z_q)||^2 (0-d) and its gradient dE_q/dZq (M x L)."""
        self._check_params(sigma)
        layout, block = self._plan(Zq.shape[0], Z, X)
        blocks = () if block is None else (block,)
        project = self._computations(layout).project_value_and_grad
        return project(self, Zq, Xq, Z, X, sigma, *blocks)

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
        method's; eager frameworks just bind the parameters. The layout is resolved here, once,
        for this N (:meth:`resolve_layout`).
        """
        params.check(self.dtype)
        raw = self._objective(fn, *self._plan(Z.shape[0], Z, X))
        sigma, lam, loo = params.sigma, params.lam, params.loo

        def call(Z: Array, X: Array) -> Any:
            return raw(Z, X, sigma, lam, loo)

        return call

    def info(self) -> dict[str, Any]:
        """Versions and settings that affect results, recorded with benchmarks."""
        layout = self.layouts[0] if self.layout == "auto" else self.layout
        return {
            "backend": self.name,
            "dtype": self.dtype,
            "device": self.device,
            "gradient": self.describe_gradient(layout),
            "layout": self.layout,
            "block_size": self.block_size,
        } | ({"n_devices": self.n_devices} if self.n_devices > 1 else {})


def instrumented(backend: Backend) -> Instrumented:
    """``backend`` as the harness sees it: its :class:`Instrumented` hooks, or a TypeError."""
    if not isinstance(backend, Instrumented):
        msg = f"backend {backend.name!r} lacks the harness's hooks: {type(backend).__name__} must inherit backends.Instrumented"
        raise TypeError(msg)
    return backend


def _is_instrumented(cls: type[Backend]) -> TypeGuard[type[Instrumented]]:
    return Instrumented in cls.__mro__


def instrumented_class(backend: str) -> type[Instrumented]:
    """The class of ``backend`` as the harness sees it (its ``configure_process``)."""
    cls = backend_class(backend)
    if not _is_instrumented(cls):
        msg = f"backend {backend!r} lacks the harness's hooks: {cls.__name__} must inherit backends.Instrumented"
        raise TypeError(msg)
    return cls


def _check_tables(cls: type[Backend]) -> None:
    """TypeError unless ``cls``'s variants are one per (layout, gradient) its spec declares
    (:meth:`~backends.BackendSpec.gradients_in` each layout)."""
    found = sorted((v.layout, v.gradient) for v in cls.VARIANTS)
    spec = REGISTRY.get(getattr(cls, "name", ""))
    layouts = cls.layouts if spec is None else spec.layouts
    kinds = spec.gradients_in if spec is not None else lambda _: sorted({k for _, k in found})
    expected = sorted((layout, k) for layout in layouts for k in kinds(layout))
    if found != expected or cls.layouts != layouts:
        msg = f"{cls.__name__} implements {found} in layouts {cls.layouts}; its BackendSpec declares {expected} in {layouts}"
        raise TypeError(msg)


#: The public methods whose ``sigma`` / ``lam`` (or ``params``) are checked, in every subclass.
_CHECKED_METHODS = ("value", "value_and_grad", "predict", "project_value_and_grad", "compile")


def _checking_params(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method``, preceded by the check of its ``sigma`` and ``lam`` (or ``params``)."""
    signature = inspect.signature(method)

    @functools.wraps(method)
    def checked(self: Backend, *args: Any, **kwargs: Any) -> Any:
        given = signature.bind(self, *args, **kwargs).arguments
        if "params" in given:
            cast(Params, given["params"]).check(self.dtype)
        if "sigma" in given:
            self._check_params(given["sigma"], given.get("lam", 0.0))
        return method(self, *args, **kwargs)

    return checked


def _no_layout(backend: str, layouts: tuple[str, ...], layout: str) -> ValueError:
    """The error of a layout ``backend`` lacks, naming the backends that have it."""
    have = sorted(name for name, spec in REGISTRY.items() if layout in spec.layouts)
    msg = f"layout {layout!r} is not implemented by backend {backend!r} (backends with it: {', '.join(have) or 'none'}): use one of {[*layouts, 'auto']}"
    return ValueError(msg)


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
        module = importlib.import_module(f"backends.{spec.module}")
    except ImportError as exc:
        msg = f"backend {backend!r} could not import {spec.requires!r} ({exc}); reinstall it: {spec.install}"
        raise BackendNotInstalledError(msg) from exc
    return getattr(module, spec.cls)


def get_backend(
    backend: str = "numpy",
    *,
    dtype: DType | str = "float64",
    device: Devices = "cpu",
    layout: Layout | str = "auto",
    block_size: int | None = None,
    gradient: GradientChoice | str = "auto",
) -> Backend:
    """A :class:`Backend` instance for ``backend`` computing in ``dtype`` on ``device``.

    ``layout`` ("dense", "blocked", "fused" or "auto") and ``block_size`` (rows per block, None
    for the rule of :func:`ukr_bench.layouts.plan_layout`) choose the memory layout;
    :meth:`Backend.resolve_layout` says which one a call at a given N uses. ``gradient``
    ("autodiff", "manual" or "auto": the backend's default for the layout) chooses how the
    gradient is obtained; a kind the backend does not implement raises a ValueError naming
    ``gradient`` (NumPy is hand-derived only, KeOps autodiff only).
    """
    dtype = check_dtype(dtype)
    if isinstance(device, (str, list, tuple)):
        parse_devices(device)
    layout = check_layout(layout)
    block_size = check_block_size(block_size)
    spec = _spec(backend)
    if layout != "auto" and layout not in spec.layouts:  # before importing the framework
        raise _no_layout(backend, spec.layouts, layout)
    if gradient != "auto":
        check_gradient(gradient, spec, None if layout == "auto" else layout)
    return backend_class(backend)(
        dtype=dtype, device=device, layout=layout, block_size=block_size, gradient=gradient
    )


def value_and_grad(
    Z: ArrayLike,
    X: ArrayLike,
    *,
    backend: str = "numpy",
    sigma: float = 1.0,
    lam: float = 0.0,
    loo: bool = True,
    dtype: DType | str = "float64",
    device: Devices = "cpu",
    layout: Layout | str = "auto",
    block_size: int | None = None,
    gradient: GradientChoice | str = "auto",
) -> tuple[float, NDArray[np.floating]]:
    """The UKR objective E(Z) and its gradient, computed by ``backend``.

    Parameters
    ----------
    Z : array of shape (N, L), real floating point
        Latent points: anything NumPy makes a float array of (lists too); integers refused.
    X : array of shape (N, D), real floating point
        Data, by the same rule (:func:`ukr_bench.validation.check_array`).
    backend : {"numpy", "jax", "torch", "keops"}, default "numpy"
        Which implementation; see :func:`available_backends`.
    sigma : float, default 1.0
        Kernel bandwidth (> 0); it must lie in :func:`ukr_bench.problem.sigma_range` of
        ``dtype`` (float32: [2^-46, 2^46]).
    lam : float, default 0.0
        Prior weight (>= 0): 0, or in :func:`~ukr_bench.problem.lam_range` of ``dtype``
        (float32: [2^-92, 2^92]).
    loo : bool, default True
        Leave-one-out: ``x_n`` is left out of its own prediction. Z and X must not be so large
        that E(Z) overflows ``dtype`` (:func:`~ukr_bench.problem.check_magnitudes`), nor so far
        from the origin that ``dtype`` cannot resolve them (max |Z| / sigma <= 1 / (8 eps));
        otherwise a ValueError names the cause. See :mod:`ukr_bench.problem`.
    dtype : {"float64", "float32"}, default "float64"
        Precision of the whole computation; inputs are converted to it.
    device : {"cpu", "cuda", "cuda:<index>", "cuda:<i>-<j>", "cpu:<i>-<j>"}, list, or Mesh
        One device, or several that split the rows between them (jax: the devices JAX sees,
        forced host devices for ``cpu:0-3``, or a ``jax.sharding.Mesh``; torch: one process per
        device, started by ``torchrun``). Several devices need the blocked layout.
    layout : {"auto", "dense", "blocked", "fused"}
        ``dense`` forms the N x N arrays at once; ``blocked`` processes row blocks (memory
        O(block x N)); ``fused`` a GPU kernel per pass (Pallas; Triton: ``ukr-bench[triton]``;
        memory O(N (L + D)); interpreted on a CPU, slowly); ``auto`` never picks fused, but dense
        while it is small and fits, blocked otherwise.
    block_size : int >= 1 or None
        Rows per block for ``blocked`` (None: the rule of :func:`ukr_bench.layouts.plan_layout`).
    gradient : {"auto", "autodiff", "manual"}
        How the gradient is obtained: the framework's autodiff, or the hand-derived formula
        written in the framework's arrays; "auto" is the backend's default for the layout
        (jax, torch: autodiff dense, hand-derived blocked and fused, which has no autodiff;
        numpy: hand-derived only; keops: autodiff only).

    Returns
    -------
    value : float
        E(Z).
    grad : ndarray of shape (N, L) and dtype ``dtype``
        dE/dZ.
    """
    dtype = check_dtype(dtype)
    # the ranges of this dtype first (Params alone checks float64's, which are wider)
    params = Params(sigma=check_sigma(sigma, dtype), lam=check_lam(lam, dtype), loo=loo)
    layout = check_layout(layout)
    block_size = check_block_size(block_size)
    Z, X = check_inputs(Z, X, params, dtype)
    b = get_backend(
        backend, dtype=dtype, device=device, layout=layout, block_size=block_size, gradient=gradient
    )
    value, grad = b.sync(
        b.value_and_grad(b.asarray(Z), b.asarray(X), params.sigma, params.lam, params.loo)
    )
    return float(b.to_numpy(value)), b.to_numpy(grad)
