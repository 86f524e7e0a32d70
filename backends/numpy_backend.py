r"""NumPy backend: the gradient derived by hand, the baseline the autodiff backends are checked against.

Notation as in :mod:`ukr_bench.problem`: logits :math:`A_{nm} = -\lVert z_n - z_m\rVert^2/(2\sigma^2)`,
:math:`R = \mathrm{softmax}_\text{rows}(A)`, :math:`Y = RX`, residuals :math:`e_n = y_n - x_n`,
:math:`E = \frac1N\sum_n(\lVert e_n\rVert^2 + \lambda\lVert z_n\rVert^2)`.

Derivation, backwards through the computation:

1. :math:`\partial E/\partial y_n = \tfrac2N e_n`, so
   :math:`G_{nm} := \partial E/\partial R_{nm} = \tfrac2N\, e_n\cdot x_m`.
2. Row-wise softmax: :math:`\partial E/\partial A_{nm} = R_{nm}(G_{nm} - \sum_k R_{nk}G_{nk})`.
   Since :math:`\sum_k R_{nk} x_k = y_n`, this is
   :math:`B_{nm} = \tfrac2N R_{nm}\, e_n\cdot(x_m - y_n)`.
   With leave-one-out :math:`R_{nn} = 0`, so :math:`B_{nn} = 0` and the fixed diagonal needs no
   special case.
3. :math:`A_{nm}` depends on :math:`z_n` and :math:`z_m` through
   :math:`\partial A_{nm}/\partial z_n = -(z_n - z_m)/\sigma^2 = -\partial A_{nm}/\partial z_m`.
   Collecting both roles of :math:`z_k` with :math:`S = B + B^\top`:

   .. math:: \frac{\partial E}{\partial z_k}
             = -\frac1{\sigma^2}\sum_m S_{km}(z_k - z_m) + \frac{2\lambda}{N} z_k
             = -\frac1{\sigma^2}\Big(z_k \sum_m S_{km} - (SZ)_k\Big) + \frac{2\lambda}{N} z_k .

Projection (queries :math:`z_q` with data :math:`x_q`, training :math:`Z, X` fixed, no
leave-one-out): :math:`A_{qm} = -\lVert z_q - z_m\rVert^2/(2\sigma^2)`, :math:`R` its row-wise
softmax, :math:`y_q = f(z_q) = \sum_m R_{qm} x_m`, :math:`e_q = y_q - x_q`,
:math:`E_q = \sum_q \lVert e_q\rVert^2` (a sum: no :math:`1/N`). Steps 1 and 2 as above give
:math:`B_{qm} = 2 R_{qm}\, e_q\cdot(x_m - y_q)`; only :math:`z_q` varies (not :math:`z_m`), so
there is no transpose term:

.. math:: \frac{\partial E_q}{\partial z_q}
          = -\frac1{\sigma^2}\Big(z_q \sum_m B_{qm} - (BZ)_q\Big) .

Cost: :math:`O(N^2(L + D))` time (the products :math:`E X^\top`, :math:`RX`, :math:`SZ`) and
:math:`O(N^2)` memory: distances are accumulated one latent dimension at a time, so no
N x N x L or N x N x D array is ever formed.

Blocked layout (``layout="blocked"``): the same formulas over row blocks :math:`I` of
:math:`b` rows, memory :math:`O(bN)` per worker, never N x N. A block holds *complete* rows of
:math:`A`, so its softmax is exact, and everything step 2 needs for row :math:`n`
(:math:`R_{n\cdot}`, :math:`y_n`, :math:`e_n`) belongs to row :math:`n` alone: one pass over the
blocks suffices (the "statistics first, then :math:`B`" pass of a blocked *autodiff* backward is
not needed, and each pair costs one ``exp``). Per block, with :math:`K_I = \exp(A_I - \max_m
A_{Im})` unnormalised and :math:`s_I = K_I\mathbf 1`:

* :math:`[K_I X,\ s_I] = K_I\,[X, \mathbf 1]` (one product), :math:`Y_I = K_I X / s_I`,
  :math:`e_I = Y_I - X_I`, the value's :math:`\sum \lVert e_I\rVert^2`;
* :math:`B'_I = K_I \odot \big([e_I / s_I,\ -(e_I\cdot y_I)/s_I]\,[X, \mathbf 1]^\top\big)`,
  i.e. :math:`B_I = \tfrac2N B'_I` (:math:`R_I = K_I / s_I` folded into the small factor);
* row terms (:math:`B` in :math:`S = B + B^\top`): :math:`[B'_I Z,\ B'_I\mathbf 1] = B'_I [Z, \mathbf
  1]`, giving :math:`(B'Z)_I - Z_I \odot B'_I\mathbf 1`;
* column terms (:math:`B^\top`): accumulate :math:`[B'^\top Z,\ B'^\top \mathbf 1] \mathrel{+}=
  B'^\top_I [Z_I, \mathbf 1]` over blocks, giving :math:`(B'^\top Z)_k - z_k (B'^\top\mathbf
  1)_k` at the end;

and :math:`\partial E/\partial Z = \tfrac{2}{N\sigma^2}(\text{row} + \text{column terms}) +
\tfrac{2\lambda}{N} Z`. Logits come from :math:`Z / (\sqrt2\sigma)`, so that
:math:`A = -\lVert\cdot\rVert^2` needs no scaling pass. Blocks run on a thread pool, one
worker per CPU in this process's affinity mask (NumPy releases the GIL in ``exp`` and BLAS);
each worker has its own block buffers and column accumulator, reduced in worker order, so results
do not depend on scheduling. Projection and ``predict`` process query blocks the same way (no
column terms: the training latents are fixed).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from ukr_bench.interface import Backend

Arr = NDArray[np.floating]


def _responsibilities(Z: Arr, sigma: float, loo: bool, Zq: Arr | None = None) -> Arr:
    """R (M x N): row-wise softmax of the logits of rows ``Zq`` (default ``Z``) against ``Z``.

    Built in one M x N buffer; ``loo`` (which needs ``Zq is None``) masks the diagonal.
    """
    Zq = Z if Zq is None else Zq
    (M, L), N = Zq.shape, Z.shape[0]
    A = np.zeros((M, N), dtype=Z.dtype)
    for l in range(L):  # from differences: no cancellation, no M x N x L temporary
        d = Zq[:, l, None] - Z[None, :, l]
        d *= d
        A += d
    A *= -1.0 / (2.0 * sigma**2)
    if loo:
        np.fill_diagonal(A, -np.inf)
    A -= A.max(axis=1, keepdims=True)
    np.exp(A, out=A)
    A /= A.sum(axis=1, keepdims=True)
    return A


class NumpyBackend(Backend):
    """Hand-derived gradient in NumPy, dense or in row blocks on a thread pool; host only."""

    name = "numpy"
    gradient = "hand-derived"
    xp: ClassVar[Any] = np

    def asarray(self, a: Arr) -> Arr:
        return np.ascontiguousarray(a, dtype=self.dtype)

    def to_numpy(self, a: Arr) -> Arr:
        return np.asarray(a)

    def _value_dense(self, Z: Arr, X: Arr, sigma: float, lam: float, loo: bool) -> Arr:
        R = _responsibilities(Z, sigma, loo)
        res = R @ X
        res -= X
        return (np.sum(res * res) + lam * np.sum(Z * Z)) / Z.shape[0]

    def _value_and_grad_dense(
        self, Z: Arr, X: Arr, sigma: float, lam: float, loo: bool
    ) -> tuple[Any, Arr]:
        N = Z.shape[0]
        R = _responsibilities(Z, sigma, loo)
        Y = R @ X
        res = Y - X
        value = (np.sum(res * res) + lam * np.sum(Z * Z)) / N
        # B = (2/N) R * (e_n . x_m - e_n . y_n), reusing one N x N buffer
        B = res @ X.T
        B -= np.sum(res * Y, axis=1, keepdims=True)
        B *= R
        del R
        B += B.T  # S = B + B^T in place; NumPy buffers the overlapping transpose
        B *= 2.0 / N
        grad = (B @ Z - B.sum(axis=1, keepdims=True) * Z) / sigma**2
        if lam:
            grad += (2.0 * lam / N) * Z
        return value, grad

    def _predict_dense(self, Zq: Arr, Z: Arr, X: Arr, sigma: float) -> Arr:
        return _responsibilities(Z, sigma, False, Zq) @ X

    def _project_value_and_grad_dense(
        self, Zq: Arr, Xq: Arr, Z: Arr, X: Arr, sigma: float
    ) -> tuple[Any, Arr]:
        R = _responsibilities(Z, sigma, False, Zq)
        Y = R @ X
        res = Y - Xq
        value = np.sum(res * res)
        # B = 2 R * (e_q . x_m - e_q . y_q), in the M x N buffer of R
        B = res @ X.T
        B -= np.sum(res * Y, axis=1, keepdims=True)
        B *= R
        B *= 2.0
        grad = (B @ Z - B.sum(axis=1, keepdims=True) * Zq) / sigma**2
        return value, grad

    def workers(self) -> int:
        return _cpu_count()

    def _value_blocked(
        self, Z: Arr, X: Arr, sigma: float, lam: float, loo: bool, block: int
    ) -> Arr:
        value, _ = _objective_blocked(Z, X, sigma, loo, block, grad=False)
        return (value + lam * np.sum(Z * Z)) / Z.shape[0]

    def _value_and_grad_blocked(
        self, Z: Arr, X: Arr, sigma: float, lam: float, loo: bool, block: int
    ) -> tuple[Arr, Arr]:
        N = Z.shape[0]
        value, grad = _objective_blocked(Z, X, sigma, loo, block, grad=True)
        assert grad is not None  # asked for
        value = (value + lam * np.sum(Z * Z)) / N
        if lam:
            grad += (2.0 * lam / N) * Z
        return value, grad

    def _predict_blocked(self, Zq: Arr, Z: Arr, X: Arr, sigma: float, block: int) -> Arr:
        return _projection_blocked(Zq, None, Z, X, sigma, block)[0]

    def _project_value_and_grad_blocked(
        self, Zq: Arr, Xq: Arr, Z: Arr, X: Arr, sigma: float, block: int
    ) -> tuple[Arr, Arr]:
        _, value, grad = _projection_blocked(Zq, Xq, Z, X, sigma, block)
        assert grad is not None  # asked for, with Xq
        return value, grad

    def info(self) -> dict[str, object]:
        return {**super().info(), "numpy": np.__version__, "blocked_workers": self.workers()}


# -- blocked layout -------------------------------------------------------------------------------


def _cpu_count() -> int:
    """CPUs this process may run on (the harness pins workers with an affinity mask)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """One persistent pool per worker count: starting threads per call would cost ~0.1 ms."""
    with _POOLS_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="ukr-numpy")
        return _POOLS[workers]


def _map_blocks(
    rows: int, n: int, block: int, dtype: np.dtype, work: Callable[..., Any]
) -> list[Any]:
    """Run ``work(r0, r1, K, T, acc) -> acc`` on row blocks [r0, r1) of ``rows``; one result per worker.

    Worker ``w`` takes blocks ``w, w + W, ...`` (static, so the reduction order never depends on
    scheduling) with its own two (block x n) buffers ``K``, ``T``; ``acc`` starts as None.
    """
    starts = range(0, rows, block)
    workers = min(_cpu_count(), len(starts))

    def run(w: int) -> Any:
        K = np.empty((min(block, rows), n), dtype=dtype)
        T = np.empty_like(K)
        acc = None
        for r0 in starts[w::workers]:
            r1 = min(r0 + block, rows)
            acc = work(r0, r1, K[: r1 - r0], T[: r1 - r0], acc)
        return acc

    with _single_threaded_blas():
        if workers == 1:
            return [run(0)]
        return list(_pool(workers).map(run, range(workers)))


_BLAS: list[Any] = []


def _single_threaded_blas() -> contextlib.AbstractContextManager[Any]:
    """Limit BLAS to one thread while the blocks run (threadpoolctl, when it is installed).

    The blocks' products are thin ((b x N) by (N x D+1)); OpenBLAS threads them anyway, and
    its threads then compete with the block workers: at N = 10,000 float64 on 2 cores, blocks
    of 32-128 rows took 5-10x longer with OpenBLAS on 2 threads than on 1.
    """
    if not _BLAS:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS.append(ThreadpoolController())
        except ImportError:
            _BLAS.append(None)
    if _BLAS[0] is None:
        return contextlib.nullcontext()
    return _BLAS[0].limit(limits=1, user_api="blas")


def _kernel_block(Zq_t: Arr, Z_t: Arr, r0: int, loo: bool, K: Arr, T: Arr) -> None:
    """K <- exp(A - row max) of query block ``Zq_t`` (L x b) against ``Z_t`` (L x N), in place.

    Both are scaled by 1/(sqrt(2) sigma) and transposed (contiguous rows per latent dimension),
    so A = -squared distance; with ``loo`` the block's rows are rows r0.. of the objective and
    their diagonal entries (columns r0..) are excluded. ``T`` is scratch of K's shape.
    """
    L, b = Zq_t.shape
    np.subtract(Zq_t[0, :, None], Z_t[0, None, :], out=K)
    np.square(K, out=K)
    for l in range(1, L):
        np.subtract(Zq_t[l, :, None], Z_t[l, None, :], out=T)
        np.square(T, out=T)
        K += T
    if loo:
        idx = np.arange(b)
        K[idx, r0 + idx] = np.inf
    dmin = K.min(axis=1, keepdims=True)
    np.subtract(dmin, K, out=K)
    np.exp(K, out=K)


def _objective_blocked(
    Z: Arr, X: Arr, sigma: float, loo: bool, block: int, *, grad: bool
) -> tuple[Any, Arr | None]:
    """sum_n ||e_n||^2 and (with ``grad``) dE/dZ without the prior, over row blocks (see above)."""
    N, L = Z.shape
    # math.sqrt, not np.sqrt: a NumPy float64 scalar would promote a float32 Z to float64 and
    # every block's distances would be computed in float64 (1.3-2x slower; tests/test_float32.py)
    Zs_t = np.ascontiguousarray((Z / (math.sqrt(2.0) * sigma)).T)
    X1 = np.concatenate([X, np.ones((N, 1), dtype=X.dtype)], axis=1)
    Z1 = np.concatenate([Z, np.ones((N, 1), dtype=Z.dtype)], axis=1)
    row = np.empty_like(Z) if grad else None

    def work(r0: int, r1: int, K: Arr, T: Arr, acc: Any) -> Any:
        _kernel_block(Zs_t[:, r0:r1], Zs_t, r0, loo, K, T)
        KX1 = K @ X1  # [K X, row sums]
        s = KX1[:, -1:]
        Y = KX1[:, :-1] / s
        e = Y - X[r0:r1]
        sq = np.sum(e * e)
        if row is None:
            return sq if acc is None else acc + sq
        W = np.concatenate([e / s, -np.sum(e * Y, axis=1, keepdims=True) / s], axis=1)
        np.matmul(W, X1.T, out=T)
        T *= K  # B' = R * (e.x_m - e.y_n)
        BZ1 = T @ Z1  # [B'Z, row sums of B']
        row[r0:r1] = BZ1[:, :L] - BZ1[:, L:] * Z[r0:r1]
        col = T.T @ Z1[r0:r1]  # [B'^T Z_I, column sums of B'] (N x (L+1))
        if acc is None:
            return [sq, col]
        acc[0] += sq
        acc[1] += col
        return acc

    parts = _map_blocks(N, N, block, Z.dtype, work)
    if row is None:
        return sum(parts[1:], parts[0]), None
    value = sum((p[0] for p in parts[1:]), parts[0][0])
    col = parts[0][1]
    for p in parts[1:]:
        col += p[1]
    row += col[:, :L]
    row -= col[:, L:] * Z
    row *= 2.0 / (N * sigma**2)
    return value, row


def _projection_blocked(
    Zq: Arr, Xq: Arr | None, Z: Arr, X: Arr, sigma: float, block: int
) -> tuple[Arr, Any, Arr | None]:
    """f(Zq) and, given ``Xq``, E_q and dE_q/dZq, over query blocks (no column terms)."""
    (M, L), N = Zq.shape, Z.shape[0]
    scale = 1.0 / (math.sqrt(2.0) * sigma)  # a Python float: keeps float32 float32
    Zs_t = np.ascontiguousarray((Z * scale).T)
    Zqs_t = np.ascontiguousarray((Zq * scale).T)
    X1 = np.concatenate([X, np.ones((N, 1), dtype=X.dtype)], axis=1)
    Z1 = np.concatenate([Z, np.ones((N, 1), dtype=Z.dtype)], axis=1)
    Y = np.empty((M, X.shape[1]), dtype=X.dtype)
    grad = np.empty_like(Zq) if Xq is not None else None

    def work(r0: int, r1: int, K: Arr, T: Arr, acc: Any) -> Any:
        _kernel_block(Zqs_t[:, r0:r1], Zs_t, r0, False, K, T)
        KX1 = K @ X1
        s = KX1[:, -1:]
        Yb = Y[r0:r1]
        np.divide(KX1[:, :-1], s, out=Yb)
        if grad is None or Xq is None:
            return None
        e = Yb - Xq[r0:r1]
        sq = np.sum(e * e)
        W = np.concatenate([e / s, -np.sum(e * Yb, axis=1, keepdims=True) / s], axis=1)
        np.matmul(W, X1.T, out=T)
        T *= K
        BZ1 = T @ Z1
        grad[r0:r1] = (2.0 / sigma**2) * (BZ1[:, :L] - BZ1[:, L:] * Zq[r0:r1])
        return sq if acc is None else acc + sq

    parts = _map_blocks(M, N, block, Z.dtype, work)
    if grad is None:
        return Y, None, None
    return Y, sum(parts[1:], parts[0]), grad
