"""The blocked value + gradient of :mod:`backends.jax_backend` with its rows sharded over a mesh.

Decomposition (issue 15): ``Z`` (N x L) and ``X`` (N x D) are replicated on every device of a
``jax.sharding.Mesh``; the rows are split into ``k`` contiguous ranges of ``n_loc = ceil(N / k)``
rows (the mesh's devices in order; all mesh axes together form the row axis). A device runs the
one-pass blocked value + hand-derived gradient of ``_data_term_blocked`` over its own range
only: a row's softmax needs all N columns, which every device has, so each row is computed
exactly once and completely. Every device's contribution to the gradient is an N x L array:
its rows' row terms in its own range and its column terms (:func:`block_terms`, nonzero in
every row). The only communication per pass is therefore one ``psum`` of that N x L array and of the
scalar sum of squares (XLA's all-reduce: reduce-scatter + all-gather, ``2 (k-1)/k N L``
elements through each device), after which every device holds the whole value and gradient,
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

from backends.jax_backend import _blocks, _dot, _kernel_block, block_terms


def row_mesh(devices: Any) -> Mesh:
    """A one-axis mesh (axis ``"rows"``) over ``devices``, in the order given."""
    return Mesh(list(devices), ("rows",))


def rows_per_device(n: int, k: int) -> int:
    """Rows in each device's range: ``ceil(n / k)`` (the last ranges may be partly padding)."""
    return -(-n // k)


def _local_data_term(
    Z: jax.Array,
    X: jax.Array,
    sigma: jax.Array,
    *,
    loo: bool,
    block: int,
    grad: bool,
    n_loc: int,
    axes: tuple[str, ...],
) -> tuple[jax.Array, jax.Array]:
    """One device's share: (sum of its rows' ||e_n||^2, its N x L gradient contribution).

    Runs inside ``shard_map``; ``Z``, ``X`` are the whole replicated arrays. Formulas of
    ``_data_term_blocked`` (see :mod:`backends.numpy_backend`) with the row range
    ``[start, start + n_loc)`` of this device and padded rows masked. Without ``grad`` the
    second output is an empty (N x 0) array.
    """
    N, L = Z.shape
    k = jax.lax.psum(1, axes)
    start = jax.lax.axis_index(axes) * n_loc
    pad = n_loc * k - N
    Zs = Z / (jnp.sqrt(2.0) * sigma)

    def mine(a: jax.Array) -> jax.Array:  # this device's rows of a (padded with zeros)
        padded = jnp.pad(a, ((0, pad), (0, 0)))
        return jax.lax.dynamic_slice_in_dim(padded, start, n_loc)

    valid = (start + jnp.arange(n_loc) < N)[:, None]

    def step(
        carry: Any, r0: Any, Zqs: jax.Array, Xb: jax.Array, Zb: jax.Array, vb: jax.Array
    ) -> Any:
        K = _kernel_block(Zqs, Zs, start + r0, loo)
        s = jnp.sum(K, axis=1, keepdims=True)  # a reduction, as in _data_term_blocked
        e = jnp.where(vb, _dot(K, X) / s - Xb, 0.0)  # padded rows: no residual, no gradient
        sq = carry[0] + jnp.sum(e * e)
        if not grad:
            return (sq,), jnp.zeros((Zqs.shape[0], 0), Z.dtype)
        rows, cols = block_terms(K, s, e, X, Zb, Z)
        return (sq, carry[1] + cols), rows

    zero = jnp.zeros((), Z.dtype)
    init = (zero, jnp.zeros((N, L), Z.dtype)) if grad else (zero,)
    # The carry differs from device to device: mark it so (shard_map's varying-axes check).
    init = tuple(jax.lax.pcast(c, axes, to="varying") for c in init)
    carry, row = _blocks(step, n_loc, block, init, mine(Zs), mine(X), mine(Z), valid)
    if not grad:
        return carry[0], jnp.zeros((N, 0), Z.dtype)
    # Row terms into this device's range of an N x L array; padded rows (zero) fall off the end.
    rows = jax.lax.dynamic_update_slice_in_dim(jnp.zeros((N + pad, L), Z.dtype), row, start, 0)
    return carry[0], rows[:N] + carry[1]


def _data_term_sharded(
    Z: jax.Array, X: jax.Array, sigma: Any, loo: bool, block: int, grad: bool, mesh: Mesh
) -> tuple[jax.Array, jax.Array]:
    """sum_n ||e_n||^2 and its gradient (N x L; N x 0 without ``grad``), replicated on ``mesh``.

    One ``psum`` over all mesh axes of each device's (scalar, N x L) contribution.
    """
    axes = tuple(mesh.axis_names)
    n_loc = rows_per_device(Z.shape[0], mesh.size)

    def local(Z: jax.Array, X: jax.Array, sigma: jax.Array) -> tuple[jax.Array, jax.Array]:
        sq, g = _local_data_term(
            Z, X, sigma, loo=loo, block=block, grad=grad, n_loc=n_loc, axes=axes
        )
        return jax.lax.psum(sq, axes), jax.lax.psum(g, axes)

    sq, g = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(), P()), out_specs=(P(), P()))(
        Z, X, jnp.asarray(sigma, Z.dtype)
    )
    return sq, (2.0 / sigma**2) * g


def objective_sharded(
    Z: jax.Array, X: jax.Array, sigma: float, lam: float, loo: bool, block: int, mesh: Mesh
) -> jax.Array:
    """E(Z) with rows sharded over ``mesh``, blocks of ``block`` rows per device.

    Differentiable in ``Z`` (hand-derived VJP, as :func:`backends.jax_backend.objective_blocked`):
    ``jax.value_and_grad`` computes value and gradient in one sharded pass.
    """

    @jax.custom_vjp
    def data_term(Z: jax.Array) -> jax.Array:
        return _data_term_sharded(Z, X, sigma, loo, block, False, mesh)[0]

    def fwd(Z: jax.Array) -> tuple[jax.Array, jax.Array]:
        return _data_term_sharded(Z, X, sigma, loo, block, True, mesh)

    def bwd(g: jax.Array, ct: jax.Array) -> tuple[jax.Array]:
        return (ct * g,)

    data_term.defvjp(fwd, bwd)
    return (data_term(Z) + lam * jnp.sum(Z * Z)) / Z.shape[0]


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
