"""JAX backend: the objective in ``jax.numpy``, differentiated by ``jax.value_and_grad``, under ``jax.jit``.

float64 without global state: JAX computes in float32 unless x64 is enabled, and the usual
``jax.config.update("jax_enable_x64", True)`` changes it for every JAX user in the process. Here
every conversion and call of a float64 backend runs inside the ``jax.enable_x64`` context
instead; jit caches are keyed by that flag, so float32 and float64 executables never mix, and
code outside the backend keeps JAX's default.

Matrix products use ``precision="highest"``: on recent NVIDIA GPUs JAX's default would run
float32 matmuls in TF32 (10-bit mantissa), which is a different, less precise computation.

Dense layout: :mod:`backends.jax_dense`'s functions, jitted and differentiated here.

Blocked layout (``layout="blocked"``): :mod:`backends.jax_blocked`, one per-block function
(memory O(block x N)) with a hand-derived ``jax.custom_vjp``; on several devices the rows are
sharded over a mesh by :mod:`backends.jax_sharded`, which runs the same pass.

Fused layout (``layout="fused"``): :mod:`backends.jax_fused`, Pallas kernels (imported on first
use) with the hand-derived gradient in a ``jax.custom_vjp``; on a device other than a GPU they
run in Pallas's interpret mode, which warns once that it is for correctness, not speed.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from backends import Computations, Instrumented, Variant, jax_blocked, jax_sharded
from backends.jax_blocked import dot
from backends.jax_dense import objective, predict, projection_error, value_and_grad_manual
from ukr_bench.interface import Backend, DeviceUnavailableError, FunctionName
from ukr_bench.problem import Params

_enable_x64 = jax.enable_x64 if hasattr(jax, "enable_x64") else jax.experimental.enable_x64  # type: ignore[attr-defined]


_JITTED: dict[str, Any] = {  # jitted functions (with .lower for AOT compilation)
    "value": jax.jit(objective, static_argnames="loo"),
    "value_and_grad": jax.jit(jax.value_and_grad(objective), static_argnames="loo"),
    "predict": jax.jit(predict),
    "project_value_and_grad": jax.jit(jax.value_and_grad(projection_error)),
    "value_blocked": jax.jit(jax_blocked.objective_blocked, static_argnames=("loo", "block")),
    "value_and_grad_blocked": jax.jit(
        jax.value_and_grad(jax_blocked.objective_blocked), static_argnames=("loo", "block")
    ),
    # The non-default gradient of each layout (``gradient=...``).
    "value_and_grad_manual": jax.jit(value_and_grad_manual, static_argnames=("loo", "assembly")),
    "value_and_grad_blocked_autodiff": jax.jit(
        jax.value_and_grad(jax_blocked.objective_blocked_autodiff),
        static_argnames=("loo", "block"),
    ),
    "predict_blocked": jax.jit(jax_blocked.predict_blocked, static_argnames="block"),
    "project_value_and_grad_blocked": jax.jit(
        jax_blocked.project_value_and_grad_blocked, static_argnames="block"
    ),
}


@functools.cache
def _fused_jitted(fn: FunctionName) -> Any:
    """The fused layout's jitted value or value + gradient (imports Pallas on first use)."""
    from backends import jax_fused

    f = jax_fused.objective_fused if fn == "value" else jax_fused.value_and_grad_fused
    return jax.jit(f, static_argnames=("loo", "interpret"))


@functools.partial(jax.jit, static_argnums=1)
def _exp_sum(a: jax.Array, shifts: int) -> jax.Array:
    """``sum_k sum_i exp(a_i - k / shifts)`` (:meth:`backends.Instrumented.exp_sum`)."""
    return sum((jnp.exp(a - k / shifts).sum() for k in range(1, shifts)), jnp.exp(a).sum())


_matmul = jax.jit(dot)  # the products' precision (:meth:`backends.Instrumented.matmul`)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _fma_chain(a: jax.Array, steps: int, chains: int) -> jax.Array:
    """``chains`` chains of ``x <- x / 2 + 1 / 2``, summed (:meth:`backends.Instrumented.fma_chain`)."""
    xs = [a + j / chains for j in range(chains)]
    for _ in range(steps):
        xs = [x * 0.5 + 0.5 for x in xs]
    return sum(xs[1:], xs[0])


# Counts XLA compilations process-wide, so the harness can prove nothing recompiles while timing.
_compiles = 0


def _count_compile(event: str, *_: Any, **__: Any) -> None:
    global _compiles  # noqa: PLW0603
    if event.endswith("/backend_compile_duration"):
        _compiles += 1


jax.monitoring.register_event_duration_secs_listener(_count_compile)


@dataclass(frozen=True)
class _Program:
    """A raw value or value + gradient of :class:`JaxBackend`: the jitted program that ``jitted``
    picks for the backend (what :meth:`JaxBackend.compile` lowers), called in its precision."""

    jitted: Callable[[JaxBackend], Any]
    #: Static arguments of the program besides ``loo`` and ``block`` (fused: ``interpret``).
    static: Callable[[JaxBackend], dict[str, Any]] = lambda b: {}

    def __call__(
        self, backend: JaxBackend, Z: jax.Array, X: jax.Array, sigma: float, lam: float,
        loo: bool, block: int | None = None,
    ) -> Any:  # fmt: skip
        static = {"loo": loo} if block is None else {"loo": loo, "block": block}
        with backend._precision():
            return self.jitted(backend)(Z, X, sigma, lam, **static, **self.static(backend))


def _interpret(backend: JaxBackend) -> dict[str, Any]:
    """The fused kernels compiled for a GPU, interpreted elsewhere (``jax_fused``'s warning)."""
    return {"interpret": backend._device.platform != "gpu"}


class JaxBackend(Backend, Instrumented):
    """jax.value_and_grad under jax.jit (dense) or a hand-derived blocked custom_vjp; cpu or cuda."""

    name = "jax"
    xp: ClassVar[Any] = jnp

    def _resolve_device(self, kind: str, index: int) -> None:
        try:
            devices = jax.devices(kind)
        except RuntimeError as exc:
            msg = f"device {self.device!r} is not available for backend 'jax': {exc}"
            raise DeviceUnavailableError(msg) from exc
        if index >= len(devices):
            msg = f"device {self.device!r} is not available for backend 'jax': it sees {len(devices)} {kind} device(s)"
            raise DeviceUnavailableError(msg)
        self._device = devices[index]
        self._mesh: Any = None

    # Several devices: rows sharded over a mesh (backends/jax_sharded.py).

    def _device_set(self, device: object) -> tuple[str, tuple[int, ...], str]:
        if not isinstance(device, jax.sharding.Mesh):
            return super()._device_set(device)
        kinds = {d.platform for d in device.devices.flat}
        kind = "cuda" if kinds == {"gpu"} else "/".join(sorted(kinds))
        return kind, tuple(d.id for d in device.devices.flat), f"mesh({kind} x{device.size})"

    def _resolve_devices(self, kind: str, indices: tuple[int, ...], device: object) -> None:
        if isinstance(device, jax.sharding.Mesh):
            mesh = device
        else:
            try:
                seen = jax.devices(kind)
            except RuntimeError as exc:
                msg = f"device {self.device!r} is not available for backend 'jax': {exc}"
                raise DeviceUnavailableError(msg) from exc
            if max(indices) >= len(seen):
                hint = (
                    " (several CPU devices: set XLA_FLAGS=--xla_force_host_platform_device_count="
                    f"{max(indices) + 1} before jax is imported)"
                    if kind == "cpu"
                    else ""
                )
                msg = f"device {self.device!r} is not available for backend 'jax': it sees {len(seen)} {kind} device(s){hint}"
                raise DeviceUnavailableError(msg)
            mesh = jax_sharded.row_mesh([seen[i] for i in indices])
        self._mesh = mesh
        self._device = mesh.devices.flat[0]

    def _precision(self) -> contextlib.AbstractContextManager[Any]:
        return _enable_x64(self.dtype == "float64")

    def asarray(self, a: np.ndarray) -> jax.Array:
        with self._precision():
            if self._mesh is not None:  # replicated: every device needs all of Z and X
                sharding = jax.sharding.NamedSharding(self._mesh, jax.sharding.PartitionSpec())
                return jax.device_put(np.asarray(a, dtype=self.dtype), sharding)
            return jax.device_put(np.asarray(a, dtype=self.dtype), self._device)

    def to_numpy(self, a: jax.Array) -> np.ndarray:
        return np.asarray(jax.device_get(a))

    def _predict_dense(self, Zq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float) -> jax.Array:
        with self._precision():
            return _JITTED["predict"](Zq, Z, X, sigma)

    def _project_value_and_grad_dense(
        self, Zq: jax.Array, Xq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float
    ) -> tuple[jax.Array, jax.Array]:
        with self._precision():
            return _JITTED["project_value_and_grad"](Zq, Xq, Z, X, sigma)

    def _predict_blocked(
        self, Zq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float, block: int
    ) -> jax.Array:
        with self._precision():
            return _JITTED["predict_blocked"](Zq, Z, X, sigma, block=block)

    def _project_value_and_grad_blocked(
        self, Zq: jax.Array, Xq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float, block: int
    ) -> tuple[jax.Array, jax.Array]:
        with self._precision():
            return _JITTED["project_value_and_grad_blocked"](Zq, Xq, Z, X, sigma, block=block)

    def _predict_fused(self, Zq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float) -> jax.Array:
        from backends import jax_fused

        with self._precision():
            return jax_fused.predict_fused(Zq, Z, X, sigma, **_interpret(self))

    def _project_value_and_grad_fused(
        self, Zq: jax.Array, Xq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float
    ) -> tuple[jax.Array, jax.Array]:
        from backends import jax_fused

        with self._precision():
            return jax_fused.project_value_and_grad_fused(Zq, Xq, Z, X, sigma, **_interpret(self))

    def _blocked_value(self) -> Any:
        """The jitted blocked value: the one-device one, or the mesh-sharded one."""
        if self._mesh is None:
            return _JITTED["value_blocked"]
        return jax_sharded.jitted("value", self._mesh)

    def _blocked_value_and_grad(self) -> Any:
        """The jitted blocked value + hand-derived gradient: one device, or the mesh-sharded one."""
        if self._mesh is None:
            return _JITTED["value_and_grad_blocked"]
        return jax_sharded.jitted("value_and_grad", self._mesh)

    COMPUTATIONS = (
        Computations(
            "dense", _Program(lambda b: _JITTED["value"]), _predict_dense,
            _project_value_and_grad_dense,
        ),
        Computations(
            "blocked", _Program(_blocked_value), _predict_blocked,
            _project_value_and_grad_blocked,
        ),
        Computations(
            "fused", _Program(lambda b: _fused_jitted("value"), _interpret), _predict_fused,
            _project_value_and_grad_fused,
        ),
    )  # fmt: skip
    VARIANTS = (
        Variant(
            "dense", "autodiff", _Program(lambda b: _JITTED["value_and_grad"]),
            "autodiff (jax.value_and_grad)",
        ),
        Variant(
            "dense", "manual", _Program(lambda b: _JITTED["value_and_grad_manual"]),
            "hand-derived (dense, jit)",
        ),
        Variant(
            "blocked", "manual", _Program(_blocked_value_and_grad),
            "hand-derived (blocked custom_vjp)",
        ),
        Variant(
            "blocked", "autodiff", _Program(lambda b: _JITTED["value_and_grad_blocked_autodiff"]),
            "autodiff (jax.value_and_grad, jax.checkpoint per block)",
        ),
        Variant(
            "fused", "manual", _Program(lambda b: _fused_jitted("value_and_grad"), _interpret),
            "hand-derived (fused Pallas kernels, custom_vjp)",
        ),
    )  # fmt: skip

    def available_memory(self) -> int:
        if self._device.platform == "cpu":
            return super().available_memory()
        stats = self._device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
        return super().available_memory()

    def context(self) -> contextlib.AbstractContextManager[Any]:
        return self._precision()

    def sync(self, out: Any) -> Any:
        return jax.block_until_ready(out)

    def compile(
        self, fn: FunctionName, Z: jax.Array, X: jax.Array, params: Params
    ) -> Callable[[Any, Any], Any]:
        """Ahead-of-time ``lower().compile()``: the returned executable cannot retrace.

        Calling it with other shapes or dtypes raises instead of silently recompiling. The
        executable's own buffer assignment (``memory_analysis()``) is kept for
        :meth:`device_peak`.
        """
        layout, block = self._plan(Z.shape[0], Z, X)
        if fn == "value_and_grad":
            program = self._variant(layout).value_and_grad
        else:
            program = self._computations(layout).value
        assert isinstance(program, _Program)  # every JAX value and value + gradient is one
        jitted = program.jitted(self)
        static: dict[str, Any] = {"loo": params.loo} | ({} if block is None else {"block": block})
        static |= program.static(self)
        with self._precision():
            exe = jitted.lower(Z, X, params.sigma, params.lam, **static).compile()
        mem = exe.memory_analysis()
        self._compiled_bytes = (
            None
            if mem is None
            else int(
                mem.argument_size_in_bytes
                + mem.output_size_in_bytes
                + mem.temp_size_in_bytes
                - mem.alias_size_in_bytes
            )
        )
        sigma, lam, precision = params.sigma, params.lam, self._precision

        def call(Z: jax.Array, X: jax.Array) -> Any:
            with precision():
                return exe(Z, X, sigma, lam)

        return call

    # -- what the harness asks (Instrumented) --

    def compile_count(self) -> int:
        return _compiles

    def clear_compile_caches(self) -> None:
        # lower().compile() reuses what a jit call with the same program compiled before
        jax.clear_caches()

    def exp_sum(self, a: jax.Array, shifts: int) -> Callable[[], Any]:
        # one XLA fusion: the exps are reduced as they are made, never written out
        with self._precision():
            _exp_sum(a, shifts)  # compiled here, not in the caller's timing

        def run() -> Any:
            with self._precision():
                return _exp_sum(a, shifts)

        return run

    def matmul(self, a: jax.Array, b: jax.Array) -> Callable[[], Any]:
        # "highest", as every product of this backend: the default would be TF32 on a GPU
        with self._precision():
            _matmul(a, b)

        def run() -> Any:
            with self._precision():
                return _matmul(a, b)

        return run

    def fma_chain(self, a: jax.Array, steps: int, chains: int) -> Callable[[], Any]:
        # unrolled in one fusion: one read and one write of ``a`` for all the steps
        with self._precision():
            _fma_chain(a, steps, chains)

        def run() -> Any:
            with self._precision():
                return _fma_chain(a, steps, chains)

        return run

    device_peak_method = (
        "XLA memory_analysis() of the compiled executable (arguments + outputs + temporaries)"
    )

    def device_peak(self) -> int | None:
        # XLA's own peak_bytes_in_use is process-lifetime and cannot be reset, so every later
        # configuration would report the largest one seen; the compiled executable's buffer
        # assignment is exact per configuration. On the host the harness measures RSS instead.
        if self._device.platform == "cpu":
            return None
        return getattr(self, "_compiled_bytes", None)

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "jax": jax.__version__,
            "jaxlib": importlib.metadata.version("jaxlib"),
            "device_name": getattr(self._device, "device_kind", str(self._device)),
            "matmul_precision": "highest",
        } | ({"fused_interpreted": _interpret(self)["interpret"]} if self.layout == "fused" else {})
