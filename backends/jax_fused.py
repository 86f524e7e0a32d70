r"""The fused layout in JAX: UKR's value and hand-derived gradient by Pallas kernels.

FlashAttention's tiling applied to UKR (issue 26). The kernels, their tiles and their cost per
ordered pair (:data:`EXPS_PER_PAIR`, :func:`flops_per_pair`, re-exported here) are derived in
:mod:`backends.jax_fused_kernels`. Here, their drivers: the latents scaled by ``1 / (sqrt(2) sigma)``, transposed and
padded to tiles; pass 1; the O(N D) work between the passes (``e = y - x``, ``sum ||e||^2``,
``w = e / l``); pass 2; the prior; the ``jax.custom_vjp`` that makes :func:`objective_fused`
differentiable in Z; ``predict`` and the projection with the queries in tiles.

On a CPU the kernels run in Pallas's interpret mode (``interpret=True``), which is for
correctness, not speed: the first such call in a process warns once
(:class:`FusedInterpretWarning`).
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp

from backends import FusedInterpretWarning
from backends.jax_fused_kernels import (
    BLOCK,
    EXPS_PER_PAIR,
    NUM_WARPS,
    _pass1,
    _pass2,
    _project2,
    flops_per_pair,
)

__all__ = [
    "BLOCK",
    "EXPS_PER_PAIR",
    "NUM_WARPS",
    "FusedInterpretWarning",
    "flops_per_pair",
    "objective_fused",
    "predict_fused",
    "project_value_and_grad_fused",
    "value_and_grad_fused",
]


_WARNED: list[bool] = []  # one warning per process


def _warn_interpret() -> None:
    if _WARNED:
        return
    _WARNED.append(True)
    warnings.warn(
        "the fused (Pallas) kernels run in interpret mode here, which is for correctness, not "
        "speed: time them on a GPU",
        FusedInterpretWarning,
        stacklevel=3,
    )


def _resolve_interpret(interpret: bool | None) -> bool:
    """``interpret``, or, for None, True unless JAX's default backend is a GPU."""
    if interpret is None:
        interpret = jax.default_backend() != "gpu"
    if interpret:
        _warn_interpret()
    return bool(interpret)


# Plants: deliberately wrong variants of single terms, for tests/test_fused.py only (they show
# that the agreement tests catch an error in each term). They act on per-row inputs between the
# passes, or on a per-row flag in pass 1, never on a per-pair step, so the kernels' inner loops
# are the same with and without them (and compiled once for all of them):
# "no_column" drops the column terms B'_ji (pass 2's column weights w_j = 0), "row_sign" flips
# the row terms' sign (row weights -w_i), "no_inv_l" forgets the 1/l_i of R = p / l (w = e),
# "no_shift" forms the naive exp(-q) / sum exp(-q) (no running minimum: 0/0 where a row's every
# weight underflows).
_PLANTS = (None, "no_column", "row_sign", "no_inv_l", "no_shift")


def _check_plant(plant: str | None) -> None:
    if plant not in _PLANTS:
        msg = f"unknown plant {plant!r}: one of {_PLANTS}"
        raise ValueError(msg)


def _pad_t(a: jax.Array, rows: int) -> jax.Array:
    """``a`` (n x k) transposed to (k x rows), zero-padded."""
    return jnp.pad(a.T, ((0, 0), (0, rows - a.shape[0])))


def _padded(n: int, block: int) -> int:
    return -(-n // block) * block


#: XLA options for interpret mode: the kernels' loops compile 2-3x faster at the lowest
#: optimisation level (measured 5.7 s against 2.4 s, float32 N = 33, both passes), and
#: interpret mode is for correctness, not speed, anyway.
_INTERPRET_XLA_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
}


def _jitted(fn: Any) -> Any:
    """``fn`` jitted; in interpret mode, called at the top level, with
    :data:`_INTERPRET_XLA_OPTIONS` (JAX refuses compiler options on a jit nested in another
    trace, such as the caller's ``jax.jit``, whose own options then apply)."""
    static = ("block", "interpret")
    fast = jax.jit(fn, static_argnames=static, compiler_options=_INTERPRET_XLA_OPTIONS)
    plain = jax.jit(fn, static_argnames=static)

    def call(*args: Any, block: int, interpret: bool) -> Any:
        nested = any(isinstance(a, jax.core.Tracer) for a in args)
        run = fast if interpret and not nested else plain
        return run(*args, block=block, interpret=interpret)

    return call


_PASS1, _PASS2, _PROJECT2 = _jitted(_pass1), _jitted(_pass2), _jitted(_project2)


def _scale(sigma: Any) -> Any:
    """1 / (sqrt(2) sigma): in Python float64 for a Python sigma (rounded once to the dtype, as
    NumPy's backend does), in the array's dtype for a traced one."""
    if isinstance(sigma, (int, float)):
        return 1.0 / (math.sqrt(2.0) * float(sigma))
    return 1.0 / (jnp.sqrt(2.0) * sigma)


@functools.partial(jax.jit, static_argnames=("block",))
def _prepare(
    Z: jax.Array, X: jax.Array, scale: Any, *, block: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(U, X) scaled, transposed and padded to tiles (L x Np, D x Np), and the scale."""
    Np = _padded(Z.shape[0], block)
    s = jnp.asarray(scale, Z.dtype)
    return _pad_t(Z * s, Np), _pad_t(X, Np), s


@functools.partial(jax.jit, static_argnames=("plant",))
def _between(
    y: jax.Array, X: jax.Array, l: jax.Array, *, plant: str | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """sq = sum_n ||e_n||^2 and pass 2's row and column weights w = e / l (D x Np)."""
    e = y - X  # zero in the padded rows: y and X are both 0 there
    w = e if plant == "no_inv_l" else e / l
    w_rows = -w if plant == "row_sign" else w
    w_cols = jnp.zeros_like(w) if plant == "no_column" else w
    return jnp.sum(e * e), w_rows, w_cols


@functools.partial(jax.jit, static_argnames=("n",))
def _gradient(g: jax.Array, s: jax.Array, *, n: int) -> jax.Array:
    """d sq / dZ (N x L) = -4 s g^T, s = 1 / (sqrt(2) sigma), from pass 2's g (L x Np)."""
    return (-4.0 * s) * g[:, :n].T


def _data_term(
    Z: jax.Array,
    X: jax.Array,
    scale: Any,
    *,
    loo: bool,
    grad: bool,
    block: int,
    interpret: bool,
    plant: str | None,
) -> tuple[jax.Array, jax.Array | None]:
    """sq = sum_n ||e_n||^2 and, with ``grad``, d sq / dZ (N x L).

    The two passes are jitted apart from the O(N (L + D)) work around them (padding, scaling,
    e = y - x, w = e / l), so that one compiled pair of kernels serves every N with the same
    number of tiles, with and without loo (and the tests' plants).
    """
    N = Z.shape[0]
    meta = jnp.array([N, N, int(loo), int(plant == "no_shift")], dtype=jnp.int32)
    U, Xt, s = _prepare(Z, X, scale, block=block)
    mu, l, y = _PASS1(meta, U, U, Xt, block=block, interpret=interpret)
    sq, w_rows, w_cols = _between(y, Xt, l, plant=plant)
    if not grad:
        return sq, None
    g = _PASS2(meta, U, Xt, y, w_rows, w_cols, mu, block=block, interpret=interpret)
    return sq, _gradient(g, s, n=N)


@jax.jit
def _with_prior(sq: jax.Array, g: jax.Array, Z: jax.Array, lam: Any) -> tuple[jax.Array, jax.Array]:
    """E = (sq + lam ||Z||^2) / N and dE/dZ = (d sq / dZ + 2 lam Z) / N."""
    N = Z.shape[0]
    return (sq + lam * jnp.sum(Z * Z)) / N, (g + (2.0 * lam) * Z) / N


def _check(Z: jax.Array, X: jax.Array, loo: bool, block: int) -> None:
    if Z.ndim != 2 or X.ndim != 2 or Z.shape[0] != X.shape[0]:
        msg = f"Z (N x L) and X (N x D) must have the same N, got {Z.shape} and {X.shape}"
        raise ValueError(msg)
    if Z.shape[0] < (2 if loo else 1):
        msg = f"the objective needs N >= {2 if loo else 1} points (loo={loo}), got {Z.shape[0]}"
        raise ValueError(msg)
    if block < 1 or block & (block - 1):
        msg = f"block must be a power of 2 (Triton's tensors are), got {block}"
        raise ValueError(msg)


def value_and_grad_fused(
    Z: jax.Array,
    X: jax.Array,
    sigma: Any,
    lam: Any,
    loo: bool,
    *,
    interpret: bool | None = None,
    block: int = BLOCK,
    _plant: str | None = None,
) -> tuple[jax.Array, jax.Array]:
    """E(Z) and dE/dZ by the fused kernels (pass 1, then pass 2), in the dtype of ``Z``.

    ``Z`` (N x L) and ``X`` (N x D) are jnp arrays of one dtype (float64 needs JAX's x64
    mode); ``block`` is the tile (rows per program and columns per step, a power of 2);
    ``interpret`` None runs the kernels in interpret mode unless JAX's default backend is a
    GPU (with a one-time :class:`FusedInterpretWarning`). ``_plant`` is for the tests only.
    """
    Z, X = jnp.asarray(Z), jnp.asarray(X)
    _check(Z, X, loo, block)
    _check_plant(_plant)
    run = _resolve_interpret(interpret)
    sq, g = _data_term(
        Z, X, _scale(sigma), loo=loo, grad=True, block=block, interpret=run, plant=_plant
    )
    assert g is not None  # asked for
    return _with_prior(sq, g, Z, lam)


def objective_fused(
    Z: jax.Array,
    X: jax.Array,
    sigma: Any,
    lam: Any,
    loo: bool,
    *,
    interpret: bool | None = None,
    block: int = BLOCK,
    _plant: str | None = None,
) -> jax.Array:
    """E(Z) by the fused kernels, differentiable in ``Z`` through a ``jax.custom_vjp``.

    The forward pass of ``jax.value_and_grad`` runs both passes and keeps the data term's
    gradient; the backward pass only scales it (the prior's gradient comes from JAX's own
    autodiff of ``lam ||Z||^2 / N``). A value alone runs pass 1 only. ``X`` and ``sigma`` are
    closed over, not differentiable: differentiating in them raises JAX's
    ``UnexpectedTracerError`` instead of returning a wrong zero.
    """
    Z, X = jnp.asarray(Z), jnp.asarray(X)
    _check(Z, X, loo, block)
    _check_plant(_plant)
    run = _resolve_interpret(interpret)
    term = functools.partial(
        _data_term, X=X, scale=_scale(sigma), loo=loo, block=block, interpret=run, plant=_plant
    )

    @jax.custom_vjp
    def sq(Z: jax.Array) -> jax.Array:
        return term(Z, grad=False)[0]

    def fwd(Z: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        return term(Z, grad=True)

    def bwd(g: jax.Array, ct: jax.Array) -> tuple[jax.Array]:
        return (ct * g,)

    sq.defvjp(fwd, bwd)
    return (sq(Z) + lam * jnp.sum(Z * Z)) / Z.shape[0]


def predict_fused(
    Zq: jax.Array,
    Z: jax.Array,
    X: jax.Array,
    sigma: Any,
    *,
    interpret: bool | None = None,
    block: int = BLOCK,
) -> jax.Array:
    """f(Zq) (M x D): the Nadaraya-Watson map of query latents ``Zq`` (M x L), no loo.

    Pass 1 with the queries in tiles against all N training latents (its value and
    gradient outputs unused); the projection's gradient is not fused yet.
    """
    Zq, Z, X = jnp.asarray(Zq), jnp.asarray(Z), jnp.asarray(X)
    _check(Z, X, False, block)
    if Zq.ndim != 2 or Zq.shape[1] != Z.shape[1]:
        msg = f"Zq must be M x L with the L of Z ({Z.shape[1]}), got {Zq.shape}"
        raise ValueError(msg)
    run = _resolve_interpret(interpret)
    M = Zq.shape[0]
    meta = jnp.array([M, Z.shape[0], 0, 0], dtype=jnp.int32)
    U, Xt, s = _prepare(Z, X, _scale(sigma), block=block)
    _, _, y = _PASS1(meta, _scale_queries(Zq, s, block=block), U, Xt, block=block, interpret=run)
    return _unpad(y, n=M)


@functools.partial(jax.jit, static_argnames=("block",))
def _scale_queries(Zq: jax.Array, s: jax.Array, *, block: int) -> jax.Array:
    return _pad_t(Zq * s, _padded(Zq.shape[0], block))


@functools.partial(jax.jit, static_argnames=("n",))
def _unpad(y: jax.Array, *, n: int) -> jax.Array:
    return y[:, :n].T


def project_value_and_grad_fused(
    Zq: jax.Array,
    Xq: jax.Array,
    Z: jax.Array,
    X: jax.Array,
    sigma: Any,
    *,
    interpret: bool | None = None,
    block: int = BLOCK,
) -> tuple[jax.Array, jax.Array]:
    """The projection error E_q = sum_q ||x_q - f(z_q)||^2 (a sum, not a mean) of queries
    ``Zq`` (M x L) with data ``Xq`` (M x D), and its gradient in ``Zq``, training ``Z``, ``X``
    fixed: pass 1 for the queries, then the row terms of pass 2 (:func:`_project_kernel`)."""
    Zq, Xq, Z, X = (jnp.asarray(a) for a in (Zq, Xq, Z, X))
    _check(Z, X, False, block)
    _check(Zq, Xq, False, block)
    if Zq.shape[1] != Z.shape[1] or Xq.shape[1] != X.shape[1]:
        msg = f"queries {Zq.shape}, {Xq.shape} do not match the training {Z.shape}, {X.shape}"
        raise ValueError(msg)
    run = _resolve_interpret(interpret)
    M, scale = Zq.shape[0], _scale(sigma)
    meta = jnp.array([M, Z.shape[0], 0, 0], dtype=jnp.int32)
    U, Xt, s = _prepare(Z, X, scale, block=block)
    Uq, Xqt, _ = _prepare(Zq, Xq, scale, block=block)
    muq, lq, yq = _PASS1(meta, Uq, U, Xt, block=block, interpret=run)
    sq, wq, _ = _between(yq, Xqt, lq, plant=None)
    g = _PROJECT2(meta, Uq, yq, wq, muq, U, Xt, block=block, interpret=run)
    return sq, _gradient(g, s, n=M)
