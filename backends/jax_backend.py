"""JAX backend: the objective in ``jax.numpy``, differentiated by ``jax.value_and_grad``, under ``jax.jit``.

float64 without global state: JAX computes in float32 unless x64 is enabled, and the usual
``jax.config.update("jax_enable_x64", True)`` changes it for every JAX user in the process. Here
every conversion and call of a float64 backend runs inside the ``jax.enable_x64`` context
instead; jit caches are keyed by that flag, so float32 and float64 executables never mix, and
code outside the backend keeps JAX's default.

Matrix products use ``precision="highest"``: on recent NVIDIA GPUs JAX's default would run
float32 matmuls in TF32 (10-bit mantissa), which is a different, less precise computation.

Blocked layout (``layout="blocked"``): rows of the N x N logits in blocks of ``block`` rows,
``lax.scan`` over the full blocks plus one shorter block for the remainder (static shapes, so
still ahead-of-time compilable), memory O(block x N). The gradient there is *hand-derived*,
through ``jax.custom_vjp``: the forward pass of ``jax.value_and_grad`` computes the value and
the whole gradient in one pass over the blocks, with the formulas derived in
:mod:`backends.numpy_backend` (a block holds complete rows, so everything a row's softmax
backward needs is in its block), and the backward pass only scales it. The autodiff
alternative, ``jax.checkpoint`` inside the scan (the block's forward recomputed in the backward
pass, two exps per pair), is :func:`objective_blocked_autodiff`; it was slower on the CPU (see
``benchmarks/large_n.py``). Value-only calls (``jit(objective_blocked)``) run the primal: one
pass, no gradient work.
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


def value_and_grad_manual(
    Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool, assembly: str = "differences"
) -> tuple[jax.Array, jax.Array]:
    """E(Z) and its hand-derived gradient (dense), the formulas of :mod:`backends.numpy_backend`.

    With ``B'_nm = R_nm e_n.(x_m - y_n)`` (N x N) and ``D^l_nm = z_nl - z_ml``:
    ``dE/dz_kl = -(2 / (N sigma^2)) (rowsum(B' * D^l) - colsum(B' * D^l))_k + 2 lam z_kl / N``.

    ``assembly="differences"`` (the default) sums ``B' * D^l`` from the differences, as
    autodiff does; ``"products"`` is the GEMM form ``B'Z + B'^T Z - (rowsum + colsum)(B') * Z``
    of the NumPy backend, which cancels in float32 (``z_k sum_m S_km`` and ``(SZ)_k`` are ~|z|
    while their difference is ~|z_k - z_m|): 1.2e-6 relative error at N = 1000 against 3e-7.
    """
    N = Z.shape[0]
    logits = -_sqdist(Z, Z) / (2.0 * sigma**2)
    if loo:
        logits = jnp.where(jnp.eye(N, dtype=bool), -jnp.inf, logits)
    R = jax.nn.softmax(logits, axis=1)
    Y = _dot(R, X)
    e = Y - X
    value = (jnp.sum(e * e) + lam * jnp.sum(Z * Z)) / N
    B = softmax_backward(R, 1.0, e, X)
    if assembly == "products":
        grad = _dot(B, Z) + _dot(B.T, Z) - (jnp.sum(B, axis=1) + jnp.sum(B, axis=0))[:, None] * Z
    else:
        cols = []
        for l in range(Z.shape[1]):
            P = B * (Z[:, l, None] - Z[None, :, l])
            cols.append(jnp.sum(P, axis=0) - jnp.sum(P, axis=1))
        grad = jnp.stack(cols, axis=1)
    return value, (2.0 / (N * sigma**2)) * grad + (2.0 * lam / N) * Z


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


# -- blocked layout ------------------------------------------------------------------------------


def _dot(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.matmul(a, b, precision="highest")


def softmax_backward(K: jax.Array, s: Any, e: jax.Array, X: jax.Array) -> jax.Array:
    """B' = R * (e_n.x_m - e_n.y_n) (b x N) for weights R = K / s (s: b x 1, or 1 for R = K).

    As autodiff's softmax backward forms it: ``T = R * (e X^T)``, then ``e_n.y_n`` as the row
    sum of ``T`` itself, so that ``sum_m B'_nm`` (0 in exact arithmetic) vanishes to one
    reduction's rounding instead of carrying a GEMM's (error model:
    ``_softmax_backward`` in :mod:`backends.numpy_backend`).
    """
    T = K * _dot(e / s, X.T)
    return T - K * (jnp.sum(T, axis=1, keepdims=True) / s)


def block_terms(
    K: jax.Array, s: jax.Array, e: jax.Array, X: jax.Array, Zb: jax.Array, Z: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Row terms (b x L) and column terms (N x L) of one block of the latent gradient.

    With B' from :func:`softmax_backward` and P^l = B' * D^l, D^l_nm = zb_nl - z_ml (from the
    differences, not the GEMM form B'Z - Z * B'1, which cancels in float32: see
    :func:`value_and_grad_manual`): row terms -rowsum(P^l), column terms colsum(P^l).
    """
    B = softmax_backward(K, s, e, X)
    rows, cols = [], []
    for l in range(Z.shape[1]):
        P = B * (Zb[:, l, None] - Z[None, :, l])
        rows.append(-jnp.sum(P, axis=1))
        cols.append(jnp.sum(P, axis=0))
    return jnp.stack(rows, axis=1), jnp.stack(cols, axis=1)


def _kernel_block(Zqs: jax.Array, Zs: jax.Array, r0: Any, loo: bool) -> jax.Array:
    """exp(A - row max) (b x N) of scaled query rows ``Zqs`` against scaled ``Zs``.

    Both are scaled by 1/(sqrt(2) sigma), so A = -squared distance; with ``loo`` the rows are
    rows r0.. of the objective and their diagonal entries are excluded (index comparison).
    """
    d = _sqdist(Zqs, Zs)
    if loo:
        rows = r0 + jnp.arange(Zqs.shape[0])
        d = jnp.where(rows[:, None] == jnp.arange(Zs.shape[0])[None, :], jnp.inf, d)
    return jnp.exp(jnp.min(d, axis=1, keepdims=True) - d)


def _blocks(
    fn: Callable[..., tuple[Any, Any]], rows: int, block: int, init: Any, *xs: jax.Array
) -> tuple[Any, jax.Array]:
    """Fold ``fn(carry, r0, *blocks_of_xs) -> (carry, out)`` over row blocks of ``xs``.

    ``lax.scan`` over the ``rows // block`` full blocks, then one call on the remainder; the
    per-block outputs are concatenated along rows (rows x ...).
    """
    full = rows // block
    outs = []
    carry = init
    if full:

        def step(carry: Any, args: tuple[Any, ...]) -> tuple[Any, Any]:
            return fn(carry, args[0], *args[1:])

        starts = jnp.arange(full) * block
        blocked = [x[: full * block].reshape(full, block, *x.shape[1:]) for x in xs]
        carry, out = jax.lax.scan(step, carry, (starts, *blocked))
        outs.append(out.reshape(full * block, *out.shape[2:]))
    if rows > full * block:
        carry, out = fn(carry, full * block, *(x[full * block :] for x in xs))
        outs.append(out)
    return carry, outs[0] if len(outs) == 1 else jnp.concatenate(outs)


def _data_term_blocked(
    Z: jax.Array, X: jax.Array, sigma: Any, loo: bool, block: int, grad: bool
) -> tuple[jax.Array, jax.Array | None]:
    """sum_n ||e_n||^2 and, with ``grad``, its gradient (N x L), in one pass over row blocks.

    Formulas of the blocked NumPy backend: per block K (unnormalised kernel), s = row sums,
    Y = K X / s, e = Y - X_I, then the row and column terms of :func:`block_terms`, the
    column terms accumulated in the scan's carry; d/dZ = (2/sigma^2)(row + column terms).
    """
    N, L = Z.shape
    Zs = Z / (jnp.sqrt(2.0) * sigma)

    def step(carry: Any, r0: Any, Zqs: jax.Array, Xb: jax.Array, Zb: jax.Array) -> Any:
        K = _kernel_block(Zqs, Zs, r0, loo)
        # Row sums by a reduction, not as the ones column of K [X, 1] (error model: "Row
        # sums" in backends.numpy_backend): s divides every term of the row's gradient.
        s = jnp.sum(K, axis=1, keepdims=True)
        e = _dot(K, X) / s - Xb
        sq = carry[0] + jnp.sum(e * e)
        if not grad:
            return (sq,), jnp.zeros((Zqs.shape[0], 0), Z.dtype)
        rows, cols = block_terms(K, s, e, X, Zb, Z)
        return (sq, carry[1] + cols), rows

    zero = jnp.zeros((), Z.dtype)
    init = (zero, jnp.zeros((N, L), Z.dtype)) if grad else (zero,)
    carry, row = _blocks(step, N, block, init, Zs, X, Z)
    if not grad:
        return carry[0], None
    return carry[0], (2.0 / sigma**2) * (row + carry[1])


def objective_blocked(
    Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool, block: int
) -> jax.Array:
    """E(Z) over row blocks of ``block`` rows; differentiable in ``Z`` (hand-derived VJP).

    The custom VJP covers ``Z`` only: ``X`` and ``sigma`` are closed over, so differentiating
    with respect to them raises (JAX's ``UnexpectedTracerError``) instead of returning a wrong
    zero.
    """

    @jax.custom_vjp
    def data_term(Z: jax.Array) -> jax.Array:
        return _data_term_blocked(Z, X, sigma, loo, block, grad=False)[0]

    def fwd(Z: jax.Array) -> tuple[jax.Array, jax.Array]:
        return _data_term_blocked(Z, X, sigma, loo, block, grad=True)  # type: ignore[return-value]

    def bwd(g: jax.Array, ct: jax.Array) -> tuple[jax.Array]:
        return (ct * g,)

    data_term.defvjp(fwd, bwd)
    return (data_term(Z) + lam * jnp.sum(Z * Z)) / Z.shape[0]


def objective_blocked_autodiff(
    Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool, block: int
) -> jax.Array:
    """E(Z) over row blocks, for ``jax.value_and_grad`` to differentiate (``jax.checkpoint``).

    The alternative to the hand-derived :func:`objective_blocked`, kept for the comparison in
    ``benchmarks/large_n.py``: each block's forward is recomputed in the backward pass.
    """
    Zs = Z / (jnp.sqrt(2.0) * sigma)

    @jax.checkpoint
    def block_sq(r0: Any, Zqs: jax.Array, Xb: jax.Array) -> jax.Array:
        K = _kernel_block(Zqs, Zs, r0, loo)
        res = Xb - _dot(K / jnp.sum(K, axis=1, keepdims=True), X)
        return jnp.sum(res * res)

    def step(carry: Any, r0: Any, Zqs: jax.Array, Xb: jax.Array) -> Any:
        return carry + block_sq(r0, Zqs, Xb), jnp.zeros((Zqs.shape[0], 0), Z.dtype)

    sq, _ = _blocks(step, Z.shape[0], block, jnp.zeros((), Z.dtype), Zs, X)
    return (sq + lam * jnp.sum(Z * Z)) / Z.shape[0]


def _projection_blocked(
    Zq: jax.Array, Xq: jax.Array | None, Z: jax.Array, X: jax.Array, sigma: Any, block: int
) -> tuple[jax.Array, jax.Array | None, jax.Array | None]:
    """f(Zq) and, given ``Xq``, E_q and dE_q/dZq (hand-derived), over query blocks."""
    scale = 1.0 / (jnp.sqrt(2.0) * sigma)
    Zs, Zqs = Z * scale, Zq * scale

    def step(carry: Any, r0: Any, Zqs_b: jax.Array, Zq_b: jax.Array, *Xq_b: jax.Array) -> Any:
        K = _kernel_block(Zqs_b, Zs, r0, False)
        s = jnp.sum(K, axis=1, keepdims=True)  # a reduction, as in _data_term_blocked
        Y = _dot(K, X) / s
        if not Xq_b:
            return carry, Y
        e = Y - Xq_b[0]
        rows, _ = block_terms(K, s, e, X, Zq_b, Z)  # no column terms: Z is fixed
        g = (2.0 / sigma**2) * rows
        return carry + jnp.sum(e * e), jnp.concatenate([Y, g], axis=1)

    xs = (Zqs, Zq) if Xq is None else (Zqs, Zq, Xq)
    value, out = _blocks(step, Zq.shape[0], block, jnp.zeros((), Z.dtype), *xs)
    if Xq is None:
        return out, None, None
    D = X.shape[1]
    return out[:, :D], value, out[:, D:]


def predict_blocked(
    Zq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float, block: int
) -> jax.Array:
    """f(Zq) (M x D) over query blocks of ``block`` rows."""
    return _projection_blocked(Zq, None, Z, X, sigma, block)[0]


def project_value_and_grad_blocked(
    Zq: jax.Array, Xq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float, block: int
) -> tuple[jax.Array, jax.Array]:
    """E_q(Zq) and dE_q/dZq (hand-derived) over query blocks of ``block`` rows."""
    _, value, grad = _projection_blocked(Zq, Xq, Z, X, sigma, block)
    return value, grad  # type: ignore[return-value]


_JITTED: dict[str, Any] = {  # jitted functions (with .lower for AOT compilation)
    "value": jax.jit(objective, static_argnames="loo"),
    "value_and_grad": jax.jit(jax.value_and_grad(objective), static_argnames="loo"),
    "predict": jax.jit(predict),
    "project_value_and_grad": jax.jit(jax.value_and_grad(projection_error)),
    "value_blocked": jax.jit(objective_blocked, static_argnames=("loo", "block")),
    "value_and_grad_blocked": jax.jit(
        jax.value_and_grad(objective_blocked), static_argnames=("loo", "block")
    ),
    # The non-default gradient of each layout (``gradient=...``).
    "value_and_grad_manual": jax.jit(value_and_grad_manual, static_argnames=("loo", "assembly")),
    "value_and_grad_blocked_autodiff": jax.jit(
        jax.value_and_grad(objective_blocked_autodiff), static_argnames=("loo", "block")
    ),
    "predict_blocked": jax.jit(predict_blocked, static_argnames="block"),
    "project_value_and_grad_blocked": jax.jit(
        project_value_and_grad_blocked, static_argnames="block"
    ),
}

# Counts XLA compilations process-wide, so the harness can prove nothing recompiles while timing.
_compiles = 0


def _count_compile(event: str, *_: Any, **__: Any) -> None:
    global _compiles  # noqa: PLW0603
    if event.endswith("/backend_compile_duration"):
        _compiles += 1


jax.monitoring.register_event_duration_secs_listener(_count_compile)


class JaxBackend(Backend):
    """jax.value_and_grad under jax.jit (dense) or a hand-derived blocked custom_vjp; cpu or cuda."""

    name = "jax"
    gradient = "autodiff (jax.value_and_grad)"
    blocked_gradient = "hand-derived (blocked custom_vjp)"
    other_gradients: ClassVar[dict[str, str]] = {
        "dense": "hand-derived (dense, jit)",
        "blocked": "autodiff (jax.value_and_grad, jax.checkpoint per block)",
    }
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
        from jax.sharding import Mesh

        if not isinstance(device, Mesh):
            return super()._device_set(device)
        kinds = {d.platform for d in device.devices.flat}
        kind = "cuda" if kinds == {"gpu"} else "/".join(sorted(kinds))
        return kind, tuple(d.id for d in device.devices.flat), f"mesh({kind} x{device.size})"

    def _resolve_devices(self, kind: str, indices: tuple[int, ...], device: object) -> None:
        from backends import jax_sharded

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

    def _value_dense(
        self, Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool
    ) -> jax.Array:
        with self._precision():
            return _JITTED["value"](Z, X, sigma, lam, loo=loo)

    def _value_and_grad_dense(
        self, Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool
    ) -> tuple[jax.Array, jax.Array]:
        with self._precision():
            return _JITTED["value_and_grad"](Z, X, sigma, lam, loo=loo)

    def _value_and_grad_dense_manual(
        self, Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool
    ) -> tuple[jax.Array, jax.Array]:
        with self._precision():
            return _JITTED["value_and_grad_manual"](Z, X, sigma, lam, loo=loo)

    def _value_and_grad_blocked_autodiff(
        self, Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool, block: int
    ) -> tuple[jax.Array, jax.Array]:
        with self._precision():
            return _JITTED["value_and_grad_blocked_autodiff"](
                Z, X, sigma, lam, loo=loo, block=block
            )

    def _predict_dense(self, Zq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float) -> jax.Array:
        with self._precision():
            return _JITTED["predict"](Zq, Z, X, sigma)

    def _project_value_and_grad_dense(
        self, Zq: jax.Array, Xq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float
    ) -> tuple[jax.Array, jax.Array]:
        with self._precision():
            return _JITTED["project_value_and_grad"](Zq, Xq, Z, X, sigma)

    def _blocked_fn(self, fn: str) -> Any:
        """The jitted blocked ``fn``: the one-device one, or the mesh-sharded one."""
        if self._mesh is None:
            return _JITTED[f"{fn}_blocked"]
        from backends import jax_sharded

        return jax_sharded.jitted(fn, self._mesh)

    def _value_blocked(
        self, Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool, block: int
    ) -> jax.Array:
        with self._precision():
            return self._blocked_fn("value")(Z, X, sigma, lam, loo=loo, block=block)

    def _value_and_grad_blocked(
        self, Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool, block: int
    ) -> tuple[jax.Array, jax.Array]:
        with self._precision():
            return self._blocked_fn("value_and_grad")(Z, X, sigma, lam, loo=loo, block=block)

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
        layout, block = self.resolve_layout(Z.shape[0], Z.shape[1], X.shape[1])
        static: dict[str, Any] = {"loo": params.loo}
        jitted = _JITTED[fn]
        if layout == "blocked":
            jitted, static["block"] = self._blocked_fn(fn), block
        kind = self.gradient_kind(layout)
        if fn == "value_and_grad" and kind != self._spec().gradient_for(layout):
            # the non-default gradient (one device only: refused at construction on several)
            jitted = _JITTED[f"{fn}{'_blocked' if layout == 'blocked' else ''}_{kind}"]
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

    def compile_count(self) -> int:
        return _compiles

    def clear_compile_caches(self) -> None:
        # lower().compile() reuses what a jit call with the same program compiled before
        jax.clear_caches()

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
