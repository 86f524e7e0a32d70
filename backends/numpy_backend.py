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
"""

from __future__ import annotations

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
    """Hand-derived gradient in NumPy; host only."""

    name = "numpy"
    gradient = "hand-derived"
    xp: ClassVar[Any] = np

    def asarray(self, a: Arr) -> Arr:
        return np.ascontiguousarray(a, dtype=self.dtype)

    def to_numpy(self, a: Arr) -> Arr:
        return np.asarray(a)

    def value(self, Z: Arr, X: Arr, sigma: float, lam: float, loo: bool) -> Arr:
        R = _responsibilities(Z, sigma, loo)
        res = R @ X
        res -= X
        return (np.sum(res * res) + lam * np.sum(Z * Z)) / Z.shape[0]

    def value_and_grad(
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

    def predict(self, Zq: Arr, Z: Arr, X: Arr, sigma: float) -> Arr:
        return _responsibilities(Z, sigma, False, Zq) @ X

    def project_value_and_grad(
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

    def info(self) -> dict[str, object]:
        return {**super().info(), "numpy": np.__version__}
