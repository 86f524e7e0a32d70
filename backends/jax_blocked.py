"""The blocked layout in JAX: one per-block function, one pass over row blocks, one custom VJP.

Shapes: ``Z`` (N x L) latents and ``X`` (N x D) data of the objective; ``Zq`` (M x L) and
``Xq`` (M x D) the query rows a pass computes (``Zq = Z`` for the objective, a row range of it
for one device of a mesh, new points for the projection). Every array is float32 or float64,
the dtype of ``Z``; row offsets are integers.

Formulas (derived in :mod:`backends.numpy_backend`), for a block of b query rows with latents
scaled by 1/(sqrt(2) sigma), so that the logits are A = -||zq_q - z_m||^2:

* ``K = exp(A - row max)`` (b x N), the weights ``R = K / s`` with row sums ``s`` (b x 1),
  ``Y = K X / s`` (b x D), ``e = Y - Xq`` (b x D);
* ``B' = R * (e_q.x_m - e_q.y_q)`` (b x N), the softmax backward of sum ||e||^2 / 2;
* with ``P^l = B' * D^l``, ``D^l_qm = zq_ql - z_ml``: row terms ``-rowsum(P^l)`` (b x L) and
  column terms ``colsum(P^l)`` (N x L); d sum ||e||^2 / dZ = (2 / sigma^2)(row + column terms).

A block holds complete rows, so everything a row's softmax backward needs is in its block, and
the drivers (:func:`blocked_pass` on one device, :mod:`backends.jax_sharded` on a mesh) differ
only in which rows they pass and how they reduce. The accurate forms throughout: row sums by a
reduction (not the ones column of ``K [X, 1]``), ``e.y`` reduced from ``B'``'s own terms, and
``P^l`` from the differences (not the GEMM form ``B'Z - z B'1``, which cancels in float32).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


def dot(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a @ b`` at full precision: JAX's default runs float32 matmuls in TF32 on recent GPUs."""
    return jnp.matmul(a, b, precision="highest")


def sqdist(A: jax.Array, B: jax.Array) -> jax.Array:
    """||a_i - b_j||^2 (M x N) of A (M x L) and B (N x L), one latent dimension at a time.

    The same formulation as the NumPy backend: the (M x N x L) broadcast it replaces made the
    backward pass 1.8-2.9x slower at N = 2000-4000 in float64 (XLA on the CPU).
    """
    out = (A[:, 0, None] - B[None, :, 0]) ** 2
    for l in range(1, A.shape[1]):
        out = out + (A[:, l, None] - B[None, :, l]) ** 2
    return out


def with_prior(sq: jax.Array, Z: jax.Array, lam: Any) -> jax.Array:
    """E = (sum_n ||e_n||^2 + lam ||Z||^2) / N from the data term ``sq`` (a scalar)."""
    return (sq + lam * jnp.sum(Z * Z)) / Z.shape[0]


def softmax_backward(K: jax.Array, s: Any, e: jax.Array, X: jax.Array) -> jax.Array:
    """B' = R * (e_n.x_m - e_n.y_n) (b x N) for weights R = K / s (s: b x 1, or 1 for R = K).

    As autodiff's softmax backward forms it: ``T = R * (e X^T)``, then ``e_n.y_n`` as the row
    sum of ``T`` itself, so that ``sum_m B'_nm`` (0 in exact arithmetic) vanishes to one
    reduction's rounding instead of carrying a GEMM's (error model:
    ``_softmax_backward`` in :mod:`backends.numpy_backend`).
    """
    T = K * dot(e / s, X.T)
    return T - K * (jnp.sum(T, axis=1, keepdims=True) / s)


def kernel_block(Zqs: jax.Array, Zs: jax.Array, r0: Any, loo: bool) -> jax.Array:
    """K = exp(A - row max) (b x N) of scaled query rows ``Zqs`` (b x L) against ``Zs`` (N x L).

    With ``loo`` the queries are rows r0.. of ``Zs`` and their diagonal entries are excluded by
    comparing indices (``r0`` may be traced).
    """
    d = sqdist(Zqs, Zs)
    if loo:
        rows = r0 + jnp.arange(Zqs.shape[0])
        d = jnp.where(rows[:, None] == jnp.arange(Zs.shape[0])[None, :], jnp.inf, d)
    return jnp.exp(jnp.min(d, axis=1, keepdims=True) - d)


class Block(NamedTuple):
    """One block's results; a field is None where the call did not ask for it."""

    Y: jax.Array  # b x D, f at the block's queries
    sq: jax.Array | None  # scalar, sum of the block's ||e_q||^2 (needs Xq)
    rows: jax.Array | None  # b x L, row terms (needs grad)
    cols: jax.Array | None  # N x L, column terms (needs grad and columns)


def compute_block(
    Zqs: jax.Array,
    Zs: jax.Array,
    X: jax.Array,
    r0: Any,
    *,
    loo: bool,
    Xq: jax.Array | None = None,
    Zq: jax.Array | None = None,
    Z: jax.Array | None = None,
    valid: jax.Array | None = None,
    columns: bool = False,
) -> Block:
    """Logits, weights, Y, e, B' and the row and column terms of one block (module docstring).

    ``Zqs`` (b x L) are the block's scaled query latents, rows r0.. (for ``loo``) of the
    scaled ``Zs`` (N x L); ``Xq`` (b x D) its targets (omit for Y alone); ``Zq`` (b x L) and
    ``Z`` (N x L) the unscaled latents (give both for the row terms; ``columns`` adds the
    column terms). ``valid`` (b x 1, bool) zeroes the residual of padding rows, so that they
    add nothing to the value or the gradient.
    """
    K = kernel_block(Zqs, Zs, r0, loo)
    # Row sums by a reduction, not as the ones column of K [X, 1] (error model: "Row sums" in
    # backends.numpy_backend): s divides every term of the row's gradient.
    s = jnp.sum(K, axis=1, keepdims=True)
    Y = dot(K, X) / s
    if Xq is None:
        return Block(Y, None, None, None)
    e = Y - Xq
    if valid is not None:
        e = jnp.where(valid, e, 0.0)
    sq = jnp.sum(e * e)
    if Zq is None or Z is None:
        return Block(Y, sq, None, None)
    B = softmax_backward(K, s, e, X)
    rows, cols = [], []
    for l in range(Z.shape[1]):
        P = B * (Zq[:, l, None] - Z[None, :, l])
        rows.append(-jnp.sum(P, axis=1))
        if columns:
            cols.append(jnp.sum(P, axis=0))
    return Block(Y, sq, jnp.stack(rows, axis=1), jnp.stack(cols, axis=1) if columns else None)


def fold(
    fn: Callable[..., tuple[Any, Any]], rows: int, size: int, init: Any, *xs: jax.Array
) -> tuple[Any, Any]:
    """Fold ``fn(carry, r0, *blocks_of_xs) -> (carry, out)`` over blocks of ``size`` rows.

    ``lax.scan`` over the ``rows // size`` full blocks, then one call on the remainder (static
    shapes: ahead-of-time compilable); ``out`` (a pytree of arrays with the block's rows first,
    or None) is concatenated along rows.
    """
    full = rows // size
    carry, parts = init, []
    if full:
        starts = jnp.arange(full) * size
        blocked = [x[: full * size].reshape(full, size, *x.shape[1:]) for x in xs]
        carry, out = jax.lax.scan(lambda c, a: fn(c, a[0], *a[1:]), carry, (starts, *blocked))
        parts.append(jax.tree.map(lambda o: o.reshape(full * size, *o.shape[2:]), out))
    if rows > full * size:
        carry, out = fn(carry, full * size, *(x[full * size :] for x in xs))
        parts.append(out)
    if len(parts) == 1:
        return carry, parts[0]
    return carry, jax.tree.map(lambda a, b: jnp.concatenate([a, b]), *parts)


class Sums(NamedTuple):
    """What a pass over the query rows sums; the terms are not yet scaled by 2 / sigma^2."""

    sq: jax.Array  # scalar, sum_q ||e_q||^2
    rows: jax.Array | None  # M x L, the row terms (with grad)
    cols: jax.Array | None  # N x L, the column terms summed over blocks (with grad and columns)


def blocked_pass(
    Zq: jax.Array,
    Xq: jax.Array,
    Z: jax.Array,
    X: jax.Array,
    sigma: Any,
    size: int,
    *,
    loo: bool,
    grad: bool,
    columns: bool,
    start: Any = 0,
    valid: jax.Array | None = None,
    varying: tuple[str, ...] = (),
) -> Sums:
    """:func:`compute_block` over the query rows ``Zq`` (M x L), ``Xq`` in blocks of ``size``.

    What every driver of the value and gradient runs; the column terms are summed in the scan's
    carry. ``start`` is the global index of query row 0 (for ``loo``); ``valid`` (M x 1, bool)
    marks the rows that are not padding; ``varying`` names the ``shard_map`` axes over which
    the carry differs from device to device (its varying-axes check).
    """
    M, (N, L) = Zq.shape[0], Z.shape
    Zs = Z / (jnp.sqrt(2.0) * sigma)
    Zqs = Zs if Zq is Z else Zq / (jnp.sqrt(2.0) * sigma)
    columns = columns and grad

    def step(
        carry: Any, r0: Any, Zqs_b: jax.Array, Zq_b: jax.Array, Xq_b: jax.Array, *valid_b: Any
    ) -> tuple[Any, Any]:
        out = compute_block(
            Zqs_b, Zs, X, start + r0, loo=loo, Xq=Xq_b, Zq=Zq_b if grad else None,
            Z=Z, valid=valid_b[0] if valid_b else None, columns=columns,
        )  # fmt: skip
        carry = (carry[0] + out.sq, carry[1] + out.cols) if columns else (carry[0] + out.sq,)
        return carry, out.rows

    zero = jnp.zeros((), Z.dtype)
    init = (zero, jnp.zeros((N, L), Z.dtype)) if columns else (zero,)
    init = tuple(jax.lax.pcast(c, varying, to="varying") for c in init) if varying else init
    xs = [Zqs, Zq, Xq] + ([] if valid is None else [valid])
    carry, rows = fold(step, M, size, init, *xs)
    return Sums(carry[0], rows, carry[1] if columns else None)


def hand_derived_objective(
    data_term: Callable[[jax.Array, bool], tuple[jax.Array, jax.Array | None]],
    Z: jax.Array,
    lam: Any,
) -> jax.Array:
    """E(Z) from ``data_term(Z, grad) -> (sum ||e||^2, its gradient N x L or None)``.

    Differentiable in ``Z`` through a ``jax.custom_vjp``: the forward pass of
    ``jax.value_and_grad`` computes the value and the whole gradient in one pass, the backward
    pass only scales it; value-only calls run ``data_term(Z, False)``. Whatever else
    ``data_term`` closes over (``X``, ``sigma``) is not differentiable: differentiating in it
    raises JAX's ``UnexpectedTracerError`` instead of returning a wrong zero.
    """

    @jax.custom_vjp
    def sq(Z: jax.Array) -> jax.Array:
        return data_term(Z, False)[0]

    def fwd(Z: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        return data_term(Z, True)

    def bwd(g: jax.Array, ct: jax.Array) -> tuple[jax.Array]:
        return (ct * g,)

    sq.defvjp(fwd, bwd)
    return with_prior(sq(Z), Z, lam)


# -- the one-device driver: all rows, summed in the scan ------------------------------------------


def _data_term_blocked(
    Z: jax.Array, X: jax.Array, sigma: Any, loo: bool, size: int, grad: bool
) -> tuple[jax.Array, jax.Array | None]:
    """sum_n ||e_n||^2 and, with ``grad``, its gradient (N x L), in one pass over all rows."""
    p = blocked_pass(Z, X, Z, X, sigma, size, loo=loo, grad=grad, columns=True)
    if not grad:
        return p.sq, None
    assert p.rows is not None
    assert p.cols is not None
    return p.sq, (2.0 / sigma**2) * (p.rows + p.cols)


def objective_blocked(
    Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool, block: int
) -> jax.Array:
    """E(Z) over row blocks of ``block`` rows; differentiable in ``Z`` (hand-derived VJP)."""
    return hand_derived_objective(
        lambda Z, grad: _data_term_blocked(Z, X, sigma, loo, block, grad), Z, lam
    )


def objective_blocked_autodiff(
    Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool, block: int
) -> jax.Array:
    """E(Z) over row blocks, for ``jax.value_and_grad`` to differentiate (``jax.checkpoint``).

    The alternative to the hand-derived :func:`objective_blocked`, kept for the comparison in
    ``benchmarks/large_n.py``: each block's forward is recomputed in the backward pass (two
    exps per pair); it was slower on the CPU.
    """
    Zs = Z / (jnp.sqrt(2.0) * sigma)

    @jax.checkpoint
    def block_sq(r0: Any, Zqs: jax.Array, Xb: jax.Array) -> jax.Array:
        K = kernel_block(Zqs, Zs, r0, loo)
        res = Xb - dot(K / jnp.sum(K, axis=1, keepdims=True), X)
        return jnp.sum(res * res)

    def step(carry: Any, r0: Any, Zqs: jax.Array, Xb: jax.Array) -> tuple[Any, None]:
        return carry + block_sq(r0, Zqs, Xb), None

    sq, _ = fold(step, Z.shape[0], block, jnp.zeros((), Z.dtype), Zs, X)
    return with_prior(sq, Z, lam)


def predict_blocked(
    Zq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float, block: int
) -> jax.Array:
    """f(Zq) (M x D) over query blocks of ``block`` rows."""
    Zs = Z / (jnp.sqrt(2.0) * sigma)

    def step(carry: None, r0: Any, Zqs_b: jax.Array) -> tuple[None, jax.Array]:
        return carry, compute_block(Zqs_b, Zs, X, r0, loo=False).Y

    return fold(step, Zq.shape[0], block, None, Zq / (jnp.sqrt(2.0) * sigma))[1]


def project_value_and_grad_blocked(
    Zq: jax.Array, Xq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float, block: int
) -> tuple[jax.Array, jax.Array]:
    """E_q(Zq) and dE_q/dZq (M x L, hand-derived: row terms only, Z is fixed) over query blocks."""
    p = blocked_pass(Zq, Xq, Z, X, sigma, block, loo=False, grad=True, columns=False)
    assert p.rows is not None
    return p.sq, (2.0 / sigma**2) * p.rows
