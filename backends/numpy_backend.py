"""NumPy backend: the gradient derived by hand, the baseline the autodiff backends are checked against.

The objective of :mod:`ukr_bench.problem` and its gradient
``dE/dz_k = -(1/sigma^2) sum_m S_km (z_k - z_m) + (2 lam / N) z_k`` with ``S = B + B^T``, in
both layouts: dense (N x N arrays, distances accumulated one latent dimension at a time, so no
N x N x L array is formed) and blocked (one pass over row blocks on a thread pool, one worker per
CPU or ``n_jobs``, results independent of scheduling; helpers below the class), plus the map and
the projection. The gradient is summed from latent differences, as autodiff does, because the
cheaper matrix-product form cancels in float32; float64 blocks use that form where
:data:`GEMM_MAX_SQNORM` bounds its rounding. Derivation and reasons: ``docs/backends.md``.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from backends import Computations, Instrumented, Variant
from backends.threads import block_workers
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


def _softmax_backward(K: Arr, e: Arr, X: Arr, s: Arr | None = None, out: Arr | None = None) -> Arr:
    """B' = R * (e_n.x_m - e_n.y_n) (M x N) for weights R = K / s (M x N; ``s`` M x 1, None
    for R = K) and residuals e (M x D), into ``out`` (a new array by default).

    Formed as autodiff's softmax backward does: ``T = R * (e X^T)``, then ``c_n = sum_m T_nm``
    (= e_n.y_n) reduced from the same weights, and ``B' = T - R c``; ``K`` is overwritten
    (scratch afterwards). Error model: ``sum_m B'_nm`` is 0 in exact arithmetic and multiplies
    the latent offsets in the gradient; with ``c`` reduced from ``T`` itself it vanishes to the
    reduction's log2(N) eps, while ``e.y`` with ``y`` from a GEMM leaves the GEMM's own
    summation error, up to N eps (``benchmarks/float32_accuracy.py`` measures both).
    """
    T = np.matmul(e if s is None else e / s, X.T, out=out)
    T *= K
    c = T.sum(axis=1, keepdims=True)
    if s is not None:
        c /= s
    K *= c
    T -= K
    return T


def _weighted_differences(S: Arr, Z: Arr) -> Arr:
    """sum_m S_km (z_m - z_k) (N x L) for a symmetric S (N x N), from the differences.

    One N x N scratch buffer; see step 3 of the derivation for why not ``SZ - rowsum(S) Z``.
    """
    T = np.empty_like(S)
    out = np.empty_like(Z)
    for l in range(Z.shape[1]):
        np.subtract(Z[None, :, l], Z[:, l, None], out=T)
        T *= S
        out[:, l] = T.sum(axis=1)
    return out


class NumpyBackend(Backend, Instrumented):
    """Hand-derived gradient in NumPy, dense or in row blocks on a thread pool; host only."""

    name = "numpy"
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
        B = _softmax_backward(R, res, X)  # B' = R * (e_n.x_m - e_n.y_n); R is scratch after
        del R
        B += B.T  # S = B + B^T in place; NumPy buffers the overlapping transpose
        B *= 2.0 / N
        grad = _weighted_differences(B, Z)
        grad /= sigma**2
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
        B = _softmax_backward(R, res, X)  # B' = R * (e_q.x_m - e_q.y_q); R is scratch after
        grad = np.empty_like(Zq)
        for l in range(Zq.shape[1]):  # sum_m B'_qm (z_m - z_q), from the differences
            np.subtract(Z[None, :, l], Zq[:, l, None], out=R)
            R *= B
            grad[:, l] = R.sum(axis=1)
        grad *= 2.0 / sigma**2
        return value, grad

    def workers(self) -> int:
        return block_workers()

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

    COMPUTATIONS = (
        Computations("dense", _value_dense, _predict_dense, _project_value_and_grad_dense),
        Computations("blocked", _value_blocked, _predict_blocked, _project_value_and_grad_blocked),
    )
    VARIANTS = (
        Variant("dense", "manual", _value_and_grad_dense, "hand-derived"),
        Variant("blocked", "manual", _value_and_grad_blocked, "hand-derived"),
    )

    def info(self) -> dict[str, object]:
        return {**super().info(), "numpy": np.__version__, "blocked_workers": self.workers()}


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
    workers = min(block_workers(), len(starts))

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

    The blocks' products are thin ((b x N) by (N x D+1)); OpenBLAS threads them anyway, and its
    threads compete with the block workers (``benchmarks/large_n.py`` times either setting).
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


#: float64 blocks use the GEMM forms when the latents' squared norm (in units of 2 sigma^2, after
#: centring) is at most this: logits ``2 z_q.z_m - |z_m|^2 - |z_q|^2`` from one matrix product, the
#: latent gradient as ``(B'Z)_k - z_k sum_m B'_km``. Both cancel: their rounding is about eps *
#: |z|^2 in the logits (here <= 1e4 * 1.1e-16 ~ 1e-12) and eps * |z| / (neighbour distance) relative
#: in the gradient; they replace 4L + 1 elementwise passes per block (benchmarks/large_n.py times
#: both). float32 (and latents spread wider) keep the differences: its eps * |z|^2 logit error would
#: be 1e-6 here, and the cancelling form would multiply its error (benchmarks/gradient_forms.py).
GEMM_MAX_SQNORM = 1e4


def _column_sums(P: Arr) -> Arr:
    """``P.sum(axis=0)`` (N,) of a block ``P`` (b x N) by pairwise summation; overwrites ``P``.

    Error model: NumPy reduces along a non-contiguous axis one row after another (a tree of
    depth b: relative error up to (b - 1) eps of ``sum |P|``), pairwise only along the
    contiguous one. Halves give a tree of depth ceil(log2 b) for the same b - 1 additions
    (float32, b = 512: median relative error 3e-8 against 2e-7; torch's and XLA's are pairwise).
    """
    n = len(P)
    while n > 1:
        h = n // 2
        P[:h] += P[n - h : n]
        n -= h
    return P[0]


class _Blocks:
    """Per-call data for the kernel of query rows ``Zq`` against training latents ``Z``.

    Fills a block's ``K[n, m] = exp(-||zq_n - z_m||^2 / (2 sigma^2))`` *without* the usual
    row-max shift: the logits are <= 0, so nothing overflows, and the shift's two passes over
    the block are saved. A row whose nearest latent is so far that its row sum ``s_n`` falls
    below ``sqrt(tiny)`` (nearest latent beyond about 27 sigma in float64, 9 sigma in float32)
    is recomputed with the shift by :meth:`rescue`: there the unshifted weights underflow. Above
    that threshold, weights that underflow are below ``tiny / sqrt(tiny) = sqrt(tiny)``
    relative to ``s_n`` (1e-154, 1e-19), so they change nothing.
    """

    def __init__(self, Zq: Arr, Z: Arr, sigma: float, loo: bool) -> None:
        self.loo = loo
        # a Python float: a NumPy float64 scalar would promote float32 blocks to float64
        # (every distance in float64; tests/test_float32.py checks the dtype)
        scale = 1.0 / (math.sqrt(2.0) * sigma)
        # The GEMM forms see the latents centred (the objective only sees differences), so that
        # they cancel less. The differences form sees them as given: centring rounds every z
        # once more, by eps |z|, which a neighbour's difference z_n - z_m (<< |z|) then carries
        # (benchmarks/float32_accuracy.py measures the gradient's error).
        centre = Z.sum(axis=0) * (1.0 / len(Z))  # not mean(): it divides by a float64 count
        Zc = Z - centre
        Zqc = Zc if Zq is Z else Zq - centre
        Zs, Zqs = Zc * scale, Zqc * scale
        Zs_sq = np.einsum("nl,nl->n", Zs, Zs)
        Zqs_sq = Zs_sq if Zq is Z else np.einsum("nl,nl->n", Zqs, Zqs)
        self.tiny = math.sqrt(np.finfo(Z.dtype).tiny)
        self.gemm = Z.dtype == np.float64 and max(Zs_sq.max(), Zqs_sq.max()) <= GEMM_MAX_SQNORM
        if self.gemm:
            self.Z, self.Zq = Zc, Zqc
        else:
            self.Z, self.Zq = Z, Zq
            Zs = Z * scale
            Zqs = Zs if Zq is Z else Zq * scale
        # transposed: contiguous rows per latent dimension for the differences
        self.Zs_t, self.Zqs_t = np.ascontiguousarray(Zs.T), np.ascontiguousarray(Zqs.T)
        if self.gemm:
            ones = np.ones((len(Zqs), 1), dtype=Z.dtype)
            # [2 z_q, -|z_q|^2, -1] . [z_m, 1, |z_m|^2] = -||z_q - z_m||^2
            self.Q = np.concatenate([2.0 * Zqs, -Zqs_sq[:, None], -ones], axis=1)
            self.P_t = np.ascontiguousarray(
                np.concatenate([Zs, np.ones_like(Zs_sq)[:, None], Zs_sq[:, None]], axis=1).T
            )

    def fill(self, r0: int, r1: int, K: Arr, T: Arr) -> None:
        """K <- the unshifted kernel of query rows [r0, r1); ``T`` is scratch of K's shape."""
        if self.gemm:
            np.matmul(self.Q[r0:r1], self.P_t, out=K)
        else:
            Zq_t = self.Zqs_t
            np.subtract(Zq_t[0, r0:r1, None], self.Zs_t[0, None, :], out=K)
            np.square(K, out=K)
            for l in range(1, Zq_t.shape[0]):
                np.subtract(Zq_t[l, r0:r1, None], self.Zs_t[l, None, :], out=T)
                np.square(T, out=T)
                K += T
            np.negative(K, out=K)
        if self.loo:  # rows r0.. of the objective: their diagonal entries are columns r0..
            idx = np.arange(r1 - r0)
            K[idx, r0 + idx] = -np.inf
        np.exp(K, out=K)

    def sums(self, r0: int, K: Arr, X: Arr, X1: Arr) -> tuple[Arr, Arr]:
        """``(K X, s)`` (b x D, b x 1) of a block filled by :meth:`fill`, ``X1 = [X, 1]``.

        The row sums ``s`` come from a reduction; the float64 GEMM form takes them as the ones
        column of ``K X1``, one product for both (sequential summation there costs at most N eps
        = 1e-12 relative at N = 10,000). Rows whose sum underflowed are recomputed first.
        """
        if not self.gemm:
            s = K.sum(axis=1, keepdims=True)
            self.rescue(r0, K, s)
            return K @ X, s
        KX1 = K @ X1
        s = KX1[:, -1:]
        if self.rescue(r0, K, s):  # rows of K changed: their products too
            return K @ X, s
        return KX1[:, :-1], s

    def rescue(self, r0: int, K: Arr, s: Arr) -> bool:
        """Recompute, with the row-max shift, the rows of a block whose row sum underflowed.

        ``s`` (b x 1): the row sums. Rows of ``K`` and ``s`` are updated in place; whether any was.
        """
        rows = np.flatnonzero(~(s[:, 0] >= self.tiny))  # also catches NaN
        for i in rows:
            d = self.Zs_t - self.Zqs_t[:, r0 + i, None]
            a = -np.einsum("ln,ln->n", d, d)
            if self.loo:
                a[r0 + i] = -np.inf
            np.exp(a - a.max(), out=K[i])
            s[i] = K[i].sum()
        return len(rows) > 0

    def softmax_backward(self, K: Arr, s: Arr, e: Arr, Y: Arr, X: Arr, X1: Arr, T: Arr) -> None:
        """T <- B' = R * (e_n.x_m - e_n.y_n) (b x N), R = K / s; ``K`` is scratch afterwards.

        The float64 GEMM form takes it from one product, ``K * ([e/s, -(e.y)/s] [X, 1]^T)``
        (its e.y from y costs float64 1e-12 at N = 10,000); otherwise :func:`_softmax_backward`.
        """
        if not self.gemm:
            _softmax_backward(K, e, X, s, out=T)
            return
        W = np.concatenate([e / s, -np.sum(e * Y, axis=1, keepdims=True) / s], axis=1)
        np.matmul(W, X1.T, out=T)
        T *= K


def _objective_blocked(
    Z: Arr, X: Arr, sigma: float, loo: bool, block: int, *, grad: bool
) -> tuple[Any, Arr | None]:
    """sum_n ||e_n||^2 and (with ``grad``) dE/dZ without the prior, over row blocks (see above)."""
    N, L = Z.shape
    kernel = _Blocks(Z, Z, sigma, loo)
    Zc = kernel.Z
    Z_t = np.ascontiguousarray(Zc.T)
    X1 = np.concatenate([X, np.ones((N, 1), dtype=X.dtype)], axis=1)
    Z1 = np.concatenate([Zc, np.ones((N, 1), dtype=Z.dtype)], axis=1)
    row = np.empty_like(Z) if grad else None

    def work(r0: int, r1: int, K: Arr, T: Arr, acc: Any) -> Any:
        kernel.fill(r0, r1, K, T)
        KX, s = kernel.sums(r0, K, X, X1)
        Y = KX / s
        e = Y - X[r0:r1]
        sq = np.sum(e * e)
        if row is None:
            return sq if acc is None else acc + sq
        kernel.softmax_backward(K, s, e, Y, X, X1, T)  # T <- B'; K is scratch from here on
        if kernel.gemm:
            # row terms sum_m B'_nm (z_m - z_n) from [B'Z, B'1] (B'1 = e.y_n - e.y_n = 0 but
            # for rounding: subtracting it keeps the sum translation invariant); column terms
            # accumulated as [B'^T Z_I, B'^T 1] (N x (L + 1)) and assembled once at the end
            BZ1 = T @ Z1
            row[r0:r1] = BZ1[:, :L] - BZ1[:, L:] * Zc[r0:r1]
            col = T.T @ Z1[r0:r1]
        else:
            col = np.empty((N, L), dtype=Z.dtype)
            for l in range(L):
                np.subtract(Z_t[l, r0:r1, None], Z_t[l, None, :], out=K)
                K *= T  # P^l
                row[r0:r1, l] = -K.sum(axis=1)
                col[:, l] = _column_sums(K)  # destroys K, scratch from here on
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
    if kernel.gemm:  # sum_n B'_nm (z_n - z_m)
        col = col[:, :L] - col[:, L:] * Zc
    row += col
    row *= 2.0 / (N * sigma**2)
    return value, row


def _projection_blocked(
    Zq: Arr, Xq: Arr | None, Z: Arr, X: Arr, sigma: float, block: int
) -> tuple[Arr, Any, Arr | None]:
    """f(Zq) and, given ``Xq``, E_q and dE_q/dZq, over query blocks (no column terms)."""
    (M, L), N = Zq.shape, Z.shape[0]
    kernel = _Blocks(Zq, Z, sigma, False)
    X1 = np.concatenate([X, np.ones((N, 1), dtype=X.dtype)], axis=1)
    Z1 = np.concatenate([kernel.Z, np.ones((N, 1), dtype=Z.dtype)], axis=1)
    Z_t, Zq_t = np.ascontiguousarray(kernel.Z.T), np.ascontiguousarray(kernel.Zq.T)
    Y = np.empty((M, X.shape[1]), dtype=X.dtype)
    grad = np.empty_like(Zq) if Xq is not None else None

    def work(r0: int, r1: int, K: Arr, T: Arr, acc: Any) -> Any:
        kernel.fill(r0, r1, K, T)
        KX, s = kernel.sums(r0, K, X, X1)
        Yb = Y[r0:r1]
        np.divide(KX, s, out=Yb)
        if grad is None or Xq is None:
            return None
        e = Yb - Xq[r0:r1]
        sq = np.sum(e * e)
        kernel.softmax_backward(K, s, e, Yb, X, X1, T)  # T <- B'; K is scratch from here on
        g = grad[r0:r1]
        if kernel.gemm:  # sum_m B'_qm (z_m - z_q) from [B'Z, B'1]
            BZ1 = T @ Z1
            np.subtract(BZ1[:, :L], BZ1[:, L:] * kernel.Zq[r0:r1], out=g)
        else:  # from the differences, as the objective's row terms
            for l in range(L):
                np.subtract(Zq_t[l, r0:r1, None], Z_t[l, None, :], out=K)
                K *= T
                g[:, l] = -K.sum(axis=1)
        g *= 2.0 / sigma**2
        return sq if acc is None else acc + sq

    parts = _map_blocks(M, N, block, Z.dtype, work)
    if grad is None:
        return Y, None, None
    return Y, sum(parts[1:], parts[0]), grad
