r"""The fused layout's Pallas kernels: UKR's value and hand-derived gradient, tiled.

FlashAttention's tiling applied to UKR (issue 26). Queries = keys = the latents ``Z``
(N x L), values = the data ``X`` (N x D), the diagonal masked with leave-one-out. Nothing of
size N x N is ever stored: each kernel program owns a tile of query rows and streams over
all column tiles, so memory is O(N (L + D)). Formulas and sign conventions are those of
:mod:`backends.numpy_backend`; in the scaled latents ``u = z / (sqrt(2) sigma)`` the logits are
``A_ij = -q_ij`` with ``q_ij = ||u_i - u_j||^2`` (from the differences, never from
``|u_i|^2 + |u_j|^2 - 2 u_i.u_j``, which cancels in float32).

Pass 1 (:func:`_pass1_kernel`), per query row ``i``: an online softmax over the column tiles
in the "distance" form: ``mu_i = min_j q_ij`` (= minus the row max of the logits), running,
``l_i = sum_j exp(mu_i - q_ij)`` and ``acc_i = sum_j exp(mu_i - q_ij) x_j``, rescaled by
``exp(mu_old - mu_new)`` when ``mu_i`` drops; out ``mu_i``, ``l_i`` and ``y_i = acc_i / l_i``
(O(N (D + 2)) in all). A tile whose every entry is masked keeps ``mu = +inf``: the shift used
is then 0, so ``exp(mu_used - mu_old)`` is ``exp(-inf) = 0``, never ``inf - inf``. Between
the passes, O(N D) jnp work: ``e_i = y_i - x_i``, ``sq = sum_i ||e_i||^2`` and
``w_i = e_i / l_i``.

Pass 2 (:func:`_pass2_kernel`), the gradient of ``sq = sum_n ||e_n||^2``, per query row ``i``
against each column ``j`` (one ordered pair at a time; no atomics):

* ``B'_ij = R_ij e_i.(x_j - y_i) = exp(mu_i - q_ij) w_i.(x_j - y_i)`` (the row term: the
  ``1/l_i`` is folded into ``w_i``), from the difference ``x_j - y_i``, not as
  ``e_i.x_j - e_i.y_i``, which cancels for the neighbours that carry the weight;
* ``B'_ji = exp(mu_j - q_ij) w_j.(x_i - y_j)`` (the column term, row ``j``'s statistics): the
  logits are symmetric, ``q_ji = q_ij`` bit for bit (``(a - b)^2 = (b - a)^2`` in floating
  point), so the same tile gives both terms, with a second exp; no third pass and no
  scattered (atomic) writes to other programs' rows;
* ``g_i = sum_j (B'_ij + B'_ji) (u_i - u_j)``, and
  ``d sq / dz_i = (2 / sigma^2) sum_j S'_ij (z_j - z_i) = -4 g_i / (sqrt(2) sigma)``,
  ``S' = B' + B'^T``; ``dE/dz_i = (d sq / dz_i + 2 lam z_i) / N``.

Tiles and arithmetic. L = 2 and D = 3 are far below the 16 that ``pl.dot`` (``tl.dot`` under
the Triton lowering) needs in every dimension, so every contraction over L or D is an
elementwise multiply-add over (BLOCK x BLOCK) tiles, one latent or data dimension at a
time (unrolled in Python: L and D are static), and the sums over ``j`` are row reductions of
the tile. Padding L and D to 16 for ``pl.dot`` would multiply the work by 16/D (5x at D = 3)
and run ``R X`` through TF32 unless asked for "highest"; a large D (>= 64) would make ``R X``
and ``B' Y``-like products real matrix products, which this kernel does not implement yet.
Arrays are passed transposed, (L, N) and (D, N), so that a column tile of one dimension is a
contiguous vector of :data:`BLOCK` entries (Triton's lowering needs every loaded value's size to
be a power of 2; the arrays' own shapes need not be). Default tile: 32 x 32 (:data:`BLOCK`, both
passes: pass 1's padded rows are pass 2's padded columns), 4 warps (:data:`NUM_WARPS`), i.e. 8
pairs per thread per tile step. Chosen, without a GPU, from ptxas's register report of the same
computation written in Triton (:mod:`backends.torch_fused`, sm_90, float32): pass 2 keeps about
2 + L + D tiles live, and at 32 x 32 and 4 warps it used 168 registers without spilling, while
64 x 64 spilled 2.4 KB per thread (pass 1 fits 64 x 64 at 8 warps, but the passes share the
padding here). Not timed on a GPU yet. N is padded to a multiple of the tile; padded columns
are masked (``q = +inf``, weight 0) and padded rows are computed on zeros (masked in pass 2's
column terms, whose exp would overflow there) and cut off, so any N >= 1 works (N >= 2 with
loo).

Cost per ordered pair (i, j), the numbers the harness's bound uses (:data:`EXPS_PER_PAIR`,
:func:`flops_per_pair`). Flops count adds, subtractions, multiplies and min/max (an FMA is 2);
masking selects are not counted. L, D as above:

* pass 1: L differences, L squares and L - 1 adds for ``q`` (3L - 1), 1 min for ``mu``, 1
  subtraction ``mu - q``, 1 exp, 1 add into ``l``, a multiply and an add per data dimension
  into ``acc`` (2D): 3L + 2D + 2 flops (14 at L = 2, D = 3), 1 exp;
* pass 2: ``q`` again (3L - 1), two subtractions ``mu_i - q``, ``mu_j - q`` (2), two exps,
  the row and the column dot products ``w.(x - y)`` (D subtractions, D multiplies, D - 1
  adds each: 2 (3D - 1)), ``s = p_row r + p_col c`` (3), and ``g += s d`` per latent dimension
  (2L, the differences kept from the logits): 5L + 6D + 2 flops (30), 2 exps (1 for the row
  terms, 1 for the column terms);
* together 8L + 8D + 4 flops (44) and 3 exps per ordered pair for value + gradient; the value
  alone is pass 1; the projection's gradient (queries against training points, row terms
  only): pass 1, then 3L - 1 for q, 1 subtraction, 1 exp, 3D - 1 for the dot product, 1
  multiply by p and 2L into g: 5L + 3D flops (19) and 1 exp per pair. Per row and column tile there are O(BLOCK (L + D)) more (the rescale's
  exp and multiplies), 1 / BLOCK of the above per pair, not counted. On a GPU each exp
  compiles to a multiply by log2(e) and an ``ex2.approx``: that multiply (3 per pair) is not
  in the flop counts; scaling the latents by sqrt(log2 e) and using exp2 would remove it.

The drivers around them (padding, the O(N (L + D)) work between the passes, the
``jax.custom_vjp``, interpret mode) are :mod:`backends.jax_fused`'s.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

__all__ = ["BLOCK", "EXPS_PER_PAIR", "NUM_WARPS", "flops_per_pair"]


#: Query rows per program (the grid's tile) and columns per step of its loop, by default, and
#: warps per program on a GPU (module docstring).
BLOCK = 32
NUM_WARPS = 4

#: Exps per ordered pair (i, j), by pass (derivation in the module docstring); the objective's
#: value and gradient do the first three, the projection's gradient pass 1 and the last.
EXPS_PER_PAIR = {"pass1": 1, "pass2_rows": 1, "pass2_columns": 1, "projection_pass2": 1}


def flops_per_pair(latent_dim: int, data_dim: int) -> dict[str, int]:
    """Flops per ordered pair (i, j) of each pass, for L = ``latent_dim``, D = ``data_dim``.

    Derivation in the module docstring: pass 1 3L + 2D + 2, pass 2 5L + 6D + 2 (rows and
    columns together; they share the logits and the final multiply-add), 44 in all at L = 2,
    D = 3; the projection's pass 2 (row terms only) 5L + 3D.
    """
    L, D = latent_dim, data_dim
    return {
        "pass1": 3 * L + 2 * D + 2,
        "pass2": 5 * L + 6 * D + 2,
        "projection_pass2": 5 * L + 3 * D,
    }


def _sqdist(ui: list[Any], uj: list[Any]) -> tuple[Any, list[Any]]:
    """q = ||u_i - u_j||^2 (bm x bn) from the differences, and the differences themselves."""
    diffs = [a[:, None] - b[None, :] for a, b in zip(ui, uj, strict=True)]
    q = diffs[0] * diffs[0]
    for d in diffs[1:]:
        q = q + d * d
    return q, diffs


def _valid(rows: Any, cols: Any, n: Any, loo: Any) -> Any:
    """(bm x bn) mask of the pairs that count: real columns, and not the diagonal with loo.

    ``n`` and ``loo`` (0 or 1) are scalars read from the kernel's ``meta`` input, not static:
    one compiled kernel serves every N of the same padded size, with and without loo.
    """
    return (cols < n)[None, :] & ((rows[:, None] != cols[None, :]) | (loo == 0))


def _pass1_kernel(
    meta_ref: Any,
    uq_ref: Any,
    u_ref: Any,
    x_ref: Any,
    mu_ref: Any,
    l_ref: Any,
    y_ref: Any,
    *,
    bm: int,
    bn: int,
) -> None:
    """Row statistics of one tile of query rows against all keys: mu, l and y (see above).

    ``meta_ref`` holds (M, N, loo, naive): the real query rows, the real columns, the diagonal
    mask and the "no_shift" plant (0 in every use but the tests').
    """
    m, n, loo, naive = meta_ref[0], meta_ref[1], meta_ref[2], meta_ref[3]
    L, D = u_ref.shape[0], x_ref.shape[0]
    dtype = u_ref.dtype
    i0 = pl.program_id(0) * bm
    rows = i0 + jnp.arange(bm)
    ui = [uq_ref[l, pl.ds(i0, bm)] for l in range(L)]

    def body(t: Any, carry: Any) -> Any:
        mu, s, acc = carry
        j0 = t * bn
        col_slice = pl.ds(j0, bn)
        cols = j0 + jnp.arange(bn)
        q, _ = _sqdist(ui, [u_ref[l, col_slice] for l in range(L)])
        q = jnp.where(_valid(rows, cols, n, loo), q, jnp.inf)
        mu_new = jnp.minimum(mu, jnp.min(q, axis=1))
        # a row with nothing valid yet keeps mu = inf: shift by 0 there (never inf - inf)
        shift = jnp.where((mu_new == jnp.inf) | (naive != 0), jnp.zeros_like(mu_new), mu_new)
        alpha = jnp.exp(shift - jnp.where(naive != 0, jnp.zeros_like(mu), mu))
        p = jnp.exp(shift[:, None] - q)
        s = alpha * s + jnp.sum(p, axis=1)
        acc = tuple(
            alpha * a + jnp.sum(p * x_ref[d, col_slice][None, :], axis=1) for d, a in enumerate(acc)
        )
        return mu_new, s, acc

    init = (
        jnp.full((bm,), jnp.inf, dtype),
        jnp.zeros((bm,), dtype),
        tuple(jnp.zeros((bm,), dtype) for _ in range(D)),
    )
    mu, s, acc = lax.fori_loop(0, (n + (bn - 1)) // bn, body, init)
    mu = jnp.where(naive != 0, jnp.zeros_like(mu), mu)  # the naive form's shift: 0
    real = rows < m  # padded rows: y = 0, mu = 0, l = 1, finite for pass 2
    for d in range(D):
        y_ref[d, :] = jnp.where(real, acc[d] / s, jnp.zeros_like(s))
    mu_ref[:] = jnp.where(real, mu, jnp.zeros_like(mu))
    l_ref[:] = jnp.where(real, s, jnp.ones_like(s))


def _pass2_kernel(
    meta_ref: Any,
    u_ref: Any,
    x_ref: Any,
    y_ref: Any,
    wr_ref: Any,
    wc_ref: Any,
    mu_ref: Any,
    g_ref: Any,
    *,
    bm: int,
    bn: int,
) -> None:
    """g_i = sum_j (B'_ij + B'_ji)(u_i - u_j) for one tile of rows i, over all columns j.

    ``wr_ref`` holds the weights w = e / l of the rows in their row terms, ``wc_ref`` those of
    the columns in their column terms: the same array in every use but the plants'.
    """
    n, loo = meta_ref[1], meta_ref[2]
    L, D = u_ref.shape[0], x_ref.shape[0]
    dtype = u_ref.dtype
    i0 = pl.program_id(0) * bm
    rows = i0 + jnp.arange(bm)
    row_slice = pl.ds(i0, bm)
    ui = [u_ref[l, row_slice] for l in range(L)]
    xi = [x_ref[d, row_slice] for d in range(D)]
    yi = [y_ref[d, row_slice] for d in range(D)]
    wi = [wr_ref[d, row_slice] for d in range(D)]
    mu_i = mu_ref[row_slice]

    def body(t: Any, g: Any) -> Any:
        j0 = t * bn
        col_slice = pl.ds(j0, bn)
        cols = j0 + jnp.arange(bn)
        q, diffs = _sqdist(ui, [u_ref[l, col_slice] for l in range(L)])
        # padded rows too: their q against real columns may be below mu_j (exp overflow)
        q = jnp.where(_valid(rows, cols, n, loo) & (rows < n)[:, None], q, jnp.inf)
        p_row = jnp.exp(mu_i[:, None] - q)  # R_ij l_i
        p_col = jnp.exp(mu_ref[col_slice][None, :] - q)  # R_ji l_j (q symmetric)
        rs, cs = [], []
        for d in range(D):
            xj, yj, wj = x_ref[d, col_slice], y_ref[d, col_slice], wc_ref[d, col_slice]
            rs.append(wi[d][:, None] * (xj[None, :] - yi[d][:, None]))  # w_i.(x_j - y_i)
            cs.append(wj[None, :] * (xi[d][:, None] - yj[None, :]))  # w_j.(x_i - y_j)
        r, c = functools.reduce(jnp.add, rs), functools.reduce(jnp.add, cs)
        s = p_row * r + p_col * c  # B'_ij + B'_ji
        return tuple(gl + jnp.sum(s * dl, axis=1) for gl, dl in zip(g, diffs, strict=True))

    init = tuple(jnp.zeros((bm,), dtype) for _ in range(L))
    g = lax.fori_loop(0, (n + (bn - 1)) // bn, body, init)
    for l in range(L):
        g_ref[l, :] = g[l]


def _project_kernel(
    meta_ref: Any,
    uq_ref: Any,
    yq_ref: Any,
    wq_ref: Any,
    muq_ref: Any,
    u_ref: Any,
    x_ref: Any,
    g_ref: Any,
    *,
    bm: int,
    bn: int,
) -> None:
    """The projection's g_q = sum_j B'_qj (u_q - u_j), B'_qj = exp(mu_q - q_qj) w_q.(x_j - y_q),
    for one tile of queries against all N training latents: row terms only (the training
    latents are fixed, so there are no column terms), no loo."""
    n = meta_ref[1]
    L, D = u_ref.shape[0], x_ref.shape[0]
    dtype = u_ref.dtype
    i0 = pl.program_id(0) * bm
    row_slice = pl.ds(i0, bm)
    ui = [uq_ref[l, row_slice] for l in range(L)]
    yi = [yq_ref[d, row_slice] for d in range(D)]
    wi = [wq_ref[d, row_slice] for d in range(D)]
    mu_i = muq_ref[row_slice]

    def body(t: Any, g: Any) -> Any:
        j0 = t * bn
        col_slice = pl.ds(j0, bn)
        cols = j0 + jnp.arange(bn)
        q, diffs = _sqdist(ui, [u_ref[l, col_slice] for l in range(L)])
        q = jnp.where((cols < n)[None, :], q, jnp.inf)
        terms = [wi[d][:, None] * (x_ref[d, col_slice][None, :] - yi[d][:, None]) for d in range(D)]
        s = jnp.exp(mu_i[:, None] - q) * functools.reduce(jnp.add, terms)  # B'_qj
        return tuple(gl + jnp.sum(s * dl, axis=1) for gl, dl in zip(g, diffs, strict=True))

    init = tuple(jnp.zeros((bm,), dtype) for _ in range(L))
    g = lax.fori_loop(0, (n + (bn - 1)) // bn, body, init)
    for l in range(L):
        g_ref[l, :] = g[l]


def _compiler_params(interpret: bool) -> Any:
    if interpret:
        return None
    from jax.experimental.pallas import triton as plgpu

    return plgpu.CompilerParams(num_warps=NUM_WARPS, num_stages=2)


def _full(shape: tuple[int, ...]) -> pl.BlockSpec:
    """The whole array in every program (the keys: each program streams over all of them)."""
    return pl.BlockSpec(shape, lambda i: (0,) * len(shape))


def _pass1(
    meta: jax.Array, Uq: jax.Array, U: jax.Array, X: jax.Array, *, block: int, interpret: bool
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(mu (Mp,), l (Mp,), y (D x Mp)) of query rows ``Uq`` (L x Mp) against keys ``U``
    (L x Np) with data ``X`` (D x Np), transposed and padded to tiles; ``meta`` =
    (M, N, loo, naive), int32."""
    Mp, (D, _), dtype = Uq.shape[1], X.shape, U.dtype
    ins = (meta, Uq, U, X)
    row = pl.BlockSpec((block,), lambda i: (i,))
    return pl.pallas_call(
        functools.partial(_pass1_kernel, bm=block, bn=block),
        grid=(Mp // block,),
        in_specs=[_full(a.shape) for a in ins],
        out_specs=[row, row, pl.BlockSpec((D, block), lambda i: (0, i))],
        out_shape=[
            jax.ShapeDtypeStruct((Mp,), dtype),
            jax.ShapeDtypeStruct((Mp,), dtype),
            jax.ShapeDtypeStruct((D, Mp), dtype),
        ],
        interpret=interpret,
        compiler_params=_compiler_params(interpret),
        name="ukr_fused_pass1",
    )(*ins)


def _pass2(
    meta: jax.Array,
    U: jax.Array,
    X: jax.Array,
    y: jax.Array,
    w_rows: jax.Array,
    w_cols: jax.Array,
    mu: jax.Array,
    *,
    block: int,
    interpret: bool,
) -> jax.Array:
    """g (L x Np) of the objective's rows, from the padded, transposed U, X and pass 1's
    y, mu with w = e / l (square tiles: pass 1's padded rows are its padded columns)."""
    L, Np = U.shape
    ins = (meta, U, X, y, w_rows, w_cols, mu)
    return pl.pallas_call(
        functools.partial(_pass2_kernel, bm=block, bn=block),
        grid=(Np // block,),
        in_specs=[_full(a.shape) for a in ins],
        out_specs=pl.BlockSpec((L, block), lambda i: (0, i)),
        out_shape=jax.ShapeDtypeStruct((L, Np), U.dtype),
        interpret=interpret,
        compiler_params=_compiler_params(interpret),
        name="ukr_fused_pass2",
    )(*ins)


def _project2(
    meta: jax.Array,
    Uq: jax.Array,
    yq: jax.Array,
    wq: jax.Array,
    muq: jax.Array,
    U: jax.Array,
    X: jax.Array,
    *,
    block: int,
    interpret: bool,
) -> jax.Array:
    """The projection's g (L x Mp) of padded, transposed queries Uq with pass 1's yq, muq and
    wq = e / l, against the training U (L x Np), X (D x Np)."""
    L, Mp = Uq.shape
    ins = (meta, Uq, yq, wq, muq, U, X)
    return pl.pallas_call(
        functools.partial(_project_kernel, bm=block, bn=block),
        grid=(Mp // block,),
        in_specs=[_full(a.shape) for a in ins],
        out_specs=pl.BlockSpec((L, block), lambda i: (0, i)),
        out_shape=jax.ShapeDtypeStruct((L, Mp), U.dtype),
        interpret=interpret,
        compiler_params=_compiler_params(interpret),
        name="ukr_fused_projection",
    )(*ins)
