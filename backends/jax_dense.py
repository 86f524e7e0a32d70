"""The dense layout in JAX: the N x N objective, its hand-derived gradient, the map and the
projection error, in ``jax.numpy`` (jitted and differentiated by :mod:`backends.jax_backend`).

Formulas of :mod:`ukr_bench.problem`; the hand-derived gradient is that of
:mod:`backends.numpy_backend`, its B' computed by :func:`backends.jax_blocked.softmax_backward`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from backends import jax_blocked
from backends.jax_blocked import dot, sqdist, with_prior

__all__ = ["objective", "predict", "projection_error", "value_and_grad_manual"]


def _weights(Zq: jax.Array, Z: jax.Array, sigma: float, loo: bool) -> jax.Array:
    """R = softmax(A) (M x N) with logits A = -||zq_q - z_m||^2 / (2 sigma^2), diagonal
    excluded with ``loo`` (then ``Zq`` is ``Z``)."""
    logits = -sqdist(Zq, Z) / (2.0 * sigma**2)
    if loo:
        logits = jnp.where(jnp.eye(Z.shape[0], dtype=bool), -jnp.inf, logits)
    return jax.nn.softmax(logits, axis=1)


def objective(Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool) -> jax.Array:
    """E(Z) as defined in :mod:`ukr_bench.problem`."""
    res = X - dot(_weights(Z, Z, sigma, loo), X)
    return with_prior(jnp.sum(res * res), Z, lam)


def value_and_grad_manual(
    Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool, assembly: str = "differences"
) -> tuple[jax.Array, jax.Array]:
    """E(Z) and its hand-derived gradient (dense), the formulas of :mod:`backends.numpy_backend`.

    With ``B'_nm = R_nm e_n.(x_m - y_n)`` (N x N) and ``D^l_nm = z_nl - z_ml``:
    ``dE/dz_kl = -(2 / (N sigma^2)) (rowsum(B' * D^l) - colsum(B' * D^l))_k + 2 lam z_kl / N``.

    ``assembly="differences"`` (the default) sums ``B' * D^l`` from the differences, as
    autodiff does; ``"products"`` is the GEMM form ``B'Z + B'^T Z - (rowsum + colsum)(B') * Z``
    of the NumPy backend, which cancels in float32 (``z_k sum_m S_km`` and ``(SZ)_k`` are ~|z|
    while their difference is ~|z_k - z_m|; ``benchmarks/gradient_forms.py`` measures both).
    """
    N = Z.shape[0]
    R = _weights(Z, Z, sigma, loo)
    e = dot(R, X) - X
    value = with_prior(jnp.sum(e * e), Z, lam)
    B = jax_blocked.softmax_backward(R, 1.0, e, X)
    if assembly == "products":
        grad = dot(B, Z) + dot(B.T, Z) - (jnp.sum(B, axis=1) + jnp.sum(B, axis=0))[:, None] * Z
    else:
        cols = []
        for l in range(Z.shape[1]):
            P = B * (Z[:, l, None] - Z[None, :, l])
            cols.append(jnp.sum(P, axis=0) - jnp.sum(P, axis=1))
        grad = jnp.stack(cols, axis=1)
    return value, (2.0 / (N * sigma**2)) * grad + (2.0 * lam / N) * Z


def predict(Zq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float) -> jax.Array:
    """f(Zq) (M x D), the Nadaraya-Watson map of :mod:`ukr_bench.problem`, no leave-one-out."""
    return dot(_weights(Zq, Z, sigma, False), X)


def projection_error(
    Zq: jax.Array, Xq: jax.Array, Z: jax.Array, X: jax.Array, sigma: float
) -> jax.Array:
    """E_q(Zq) = sum_q ||x_q - f(z_q)||^2 as defined in :mod:`ukr_bench.problem`."""
    res = Xq - predict(Zq, Z, X, sigma)
    return jnp.sum(res * res)
