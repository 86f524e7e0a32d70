"""The blocked value + gradient of :mod:`backends.jax_blocked` with its rows sharded over a mesh.

Decomposition (issue 15): ``Z`` (N x L) and ``X`` (N x D) are replicated on every device of a
``jax.sharding.Mesh``; the rows are split into ``k`` contiguous ranges of ``n_loc = ceil(N / k)``
rows (the mesh's devices in order; all mesh axes together form the row axis). A device runs the
one-pass blocked value + hand-derived gradient of the one-device path
(:func:`backends.jax_blocked.blocked_pass`, the same per-block function) over its own range
only: a row's softmax needs all N columns, which every device has, so each row is computed
exactly once and completely. Every device's contribution to the gradient is an N x L array:
its rows' row terms in its own range and its column terms (nonzero in every row). The only
communication per pass is therefore one ``psum`` of that N x L array and of the scalar sum of
squares (XLA's all-reduce: reduce-scatter + all-gather, ``2 (k-1)/k N L`` elements through
each device), after which every device holds the whole value and gradient,
replicated, as the next optimiser step needs them.

Uneven N: the row ranges are padded to ``k * n_loc`` rows. A padded row has its residual set
to zero, so it adds nothing to the value and (its ``B'`` being zero) nothing to
the gradient; padded rows are never columns, so they never enter another row's softmax. A
device whose range is all padding (more devices than rows) computes zeros.

Runs on any devices JAX sees: several GPUs, TPU cores or, for tests and for measuring overhead,
CPU devices forced with ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` set before JAX
is imported. Several hosts: start the same script on every host with
``jax.distributed.initialize(coordinator_address="host0:1234", num_processes=P, process_id=p)``
before anything else (on SLURM or TPU pods ``jax.distributed.initialize()`` reads them from the
environment); ``jax.devices()`` then lists every host's devices and a mesh over them shards the
rows across hosts. Every host must hold the same ``Z`` and ``X`` (same seed or same file).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from backends import jax_blocked


def row_mesh(devices: Any) -> Mesh:
    """A one-axis mesh (axis ``"rows"``) over ``devices``, in the order given."""
    return Mesh(list(devices), ("rows",))


def rows_per_device(n: int, k: int) -> int:
    """Rows in each device's range: ``ceil(n / k)`` (the last ranges may be partly padding)."""
    return -(-n // k)


def _local_share(
    Z: jax.Array,
    X: jax.Array,
    sigma: jax.Array,
    *,
    loo: bool,
    block: int,
    grad: bool,
    n_loc: int,
    axes: tuple[str, ...],
) -> tuple[jax.Array, jax.Array | None]:
    """One device's share: (sum of its rows' ||e_n||^2, its N x L gradient contribution or None).

    Runs inside ``shard_map``; ``Z``, ``X`` are the whole replicated arrays. The pass of the
    one-device path (:func:`backends.jax_blocked.blocked_pass`) over the row range
    ``[start, start + n_loc)`` of this device, padding rows masked; its row terms go into
    that range of an N x L array, its column terms into every row.
    """
    N, L = Z.shape
    k = jax.lax.psum(1, axes)
    start = jax.lax.axis_index(axes) * n_loc
    pad = n_loc * k - N

    def mine(a: jax.Array) -> jax.Array:  # this device's rows of a (padded with zeros)
        padded = jnp.pad(a, ((0, pad), (0, 0)))
        return jax.lax.dynamic_slice_in_dim(padded, start, n_loc)

    valid = (start + jnp.arange(n_loc) < N)[:, None]
    p = jax_blocked.blocked_pass(
        mine(Z), mine(X), Z, X, sigma, block, loo=loo, grad=grad, columns=True,
        start=start, valid=valid, varying=axes,
    )  # fmt: skip
    if not grad:
        return p.sq, None
    assert p.rows is not None
    assert p.cols is not None
    # Row terms into this device's range; padded rows (zero) fall off the end.
    rows = jax.lax.dynamic_update_slice_in_dim(jnp.zeros((N + pad, L), Z.dtype), p.rows, start, 0)
    return p.sq, rows[:N] + p.cols


def _data_term_sharded(
    Z: jax.Array, X: jax.Array, sigma: Any, loo: bool, block: int, grad: bool, mesh: Mesh
) -> tuple[jax.Array, jax.Array | None]:
    """sum_n ||e_n||^2 and, with ``grad``, its gradient (N x L), replicated on ``mesh``.

    One ``psum`` over all mesh axes of each device's (scalar, N x L) contribution.
    """
    axes = tuple(mesh.axis_names)
    n_loc = rows_per_device(Z.shape[0], mesh.size)

    def local(Z: jax.Array, X: jax.Array, sigma: jax.Array) -> Any:
        sq, g = _local_share(Z, X, sigma, loo=loo, block=block, grad=grad, n_loc=n_loc, axes=axes)
        return (jax.lax.psum(sq, axes), jax.lax.psum(g, axes)) if grad else jax.lax.psum(sq, axes)

    out = jax.shard_map(
        local, mesh=mesh, in_specs=(P(), P(), P()), out_specs=(P(), P()) if grad else P()
    )(Z, X, jnp.asarray(sigma, Z.dtype))
    if not grad:
        return out, None
    sq, g = out
    return sq, (2.0 / sigma**2) * g


def objective_sharded(
    Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool, block: int, mesh: Mesh
) -> jax.Array:
    """E(Z) with rows sharded over ``mesh``, blocks of ``block`` rows per device.

    Differentiable in ``Z`` by the same custom VJP as the one-device
    :func:`backends.jax_blocked.objective_blocked`: ``jax.value_and_grad`` computes value and
    gradient in one sharded pass.
    """
    return jax_blocked.hand_derived_objective(
        lambda Z, grad: _data_term_sharded(Z, X, sigma, loo, block, grad, mesh), Z, lam
    )


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding of inputs and outputs: a full copy on every device of ``mesh``."""
    return NamedSharding(mesh, P())


@functools.cache
def jitted(fn: str, mesh: Mesh) -> Any:
    """``jit`` of the sharded value (``fn="value"``) or value + gradient, outputs replicated."""
    f = objective_sharded if fn == "value" else jax.value_and_grad(objective_sharded)
    out = replicated(mesh) if fn == "value" else (replicated(mesh), replicated(mesh))
    return jax.jit(
        functools.partial(f, mesh=mesh), static_argnames=("loo", "block"), out_shardings=out
    )
