"""JAX backend: the objective in ``jax.numpy``, differentiated by ``jax.value_and_grad``, under ``jax.jit``.

float64 without global state: JAX computes in float32 unless x64 is enabled, and the usual
``jax.config.update("jax_enable_x64", True)`` changes it for every JAX user in the process. Here
every conversion and call of a float64 backend runs inside the ``jax.enable_x64`` context
instead; jit caches are keyed by that flag, so float32 and float64 executables never mix, and
code outside the backend keeps JAX's default.

Matrix products use ``precision="highest"``: on recent NVIDIA GPUs JAX's default would run
float32 matmuls in TF32 (10-bit mantissa), which is a different, less precise computation.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ukr_bench.interface import Backend, DeviceUnavailableError, FunctionName
from ukr_bench.problem import Params

_enable_x64 = jax.enable_x64 if hasattr(jax, "enable_x64") else jax.experimental.enable_x64  # type: ignore[attr-defined]


def _sqdist(A: jax.Array, B: jax.Array) -> jax.Array:
    """||a_i - b_j||^2 (M x N) from differences, one latent dimension at a time.

    The same formulation as the NumPy backend: the (M x N x L) broadcast it replaces made the
    backward pass 1.8-2.9x slower at N = 2000-4000 in float64 (XLA on the CPU).
    """
    out = (A[:, 0, None] - B[None, :, 0]) ** 2
    for l in range(1, A.shape[1]):
        out = out + (A[:, l, None] - B[None, :, l]) ** 2
    return out


def objective(Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool) -> jax.Array:
    """E(Z) as defined in :mod:`ukr_bench.problem`."""
    N = Z.shape[0]
    logits = -_sqdist(Z, Z) / (2.0 * sigma**2)
    if loo:
        logits = jnp.where(jnp.eye(N, dtype=bool), -jnp.inf, logits)
    R = jax.nn.softmax(logits, axis=1)
    res = X - jnp.matmul(R, X, precision="highest")
    return (jnp.sum(res * res) + lam * jnp.sum(Z * Z)) / N


def predict(Zq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float) -> jax.Array:
    """f(Zq) (M x D), the Nadaraya-Watson map of :mod:`ukr_bench.problem`, no leave-one-out."""
    R = jax.nn.softmax(-_sqdist(Zq, Z) / (2.0 * sigma**2), axis=1)
    return jnp.matmul(R, X, precision="highest")


def projection_error(
    Zq: jax.Array, Xq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float
) -> jax.Array:
    """E_q(Zq) = sum_q ||x_q - f(z_q)||^2 as defined in :mod:`ukr_bench.problem`."""
    res = Xq - predict(Zq, Z, X, sigma)
    return jnp.sum(res * res)


_JITTED: dict[str, Any] = {  # jitted functions (with .lower for AOT compilation)
    "value": jax.jit(objective, static_argnames="loo"),
    "value_and_grad": jax.jit(jax.value_and_grad(objective), static_argnames="loo"),
    "predict": jax.jit(predict),
    "project_value_and_grad": jax.jit(jax.value_and_grad(projection_error)),
}

# Counts XLA compilations process-wide, so the harness can prove nothing recompiles while timing.
_compiles = 0


def _count_compile(event: str, *_: Any, **__: Any) -> None:
    global _compiles  # noqa: PLW0603
    if event.endswith("/backend_compile_duration"):
        _compiles += 1


jax.monitoring.register_event_duration_secs_listener(_count_compile)


class JaxBackend(Backend):
    """jax.value_and_grad under jax.jit; cpu or cuda."""

    name = "jax"
    gradient = "autodiff (jax.value_and_grad)"
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

    def _precision(self) -> contextlib.AbstractContextManager[Any]:
        return _enable_x64(self.dtype == "float64")

    def asarray(self, a: np.ndarray) -> jax.Array:
        with self._precision():
            return jax.device_put(np.asarray(a, dtype=self.dtype), self._device)

    def to_numpy(self, a: jax.Array) -> np.ndarray:
        return np.asarray(jax.device_get(a))

    def value(self, Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool) -> jax.Array:
        with self._precision():
            return _JITTED["value"](Z, X, sigma, lam, loo=loo)

    def value_and_grad(
        self, Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool
    ) -> tuple[jax.Array, jax.Array]:
        with self._precision():
            return _JITTED["value_and_grad"](Z, X, sigma, lam, loo=loo)

    def predict(self, Zq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float) -> jax.Array:
        with self._precision():
            return _JITTED["predict"](Zq, Z, X, sigma)

    def project_value_and_grad(
        self, Zq: jax.Array, Xq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float
    ) -> tuple[jax.Array, jax.Array]:
        with self._precision():
            return _JITTED["project_value_and_grad"](Zq, Xq, Z, X, sigma)

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
        with self._precision():
            exe = _JITTED[fn].lower(Z, X, params.sigma, params.lam, loo=params.loo).compile()
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

    def compile_count(self) -> int:
        return _compiles

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
        }
