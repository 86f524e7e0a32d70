r"""The UKR objective, defined once, and the checks of what it is defined for.

Unsupervised Kernel Regression (Meinicke, Klanke, Memisevic & Ritter, 2005) learns latent
points ``Z`` (N x L) for data ``X`` (N x D) by minimising the reconstruction error of the
Nadaraya-Watson estimator with a Gaussian kernel of bandwidth ``sigma``:

.. math::

    K_{nm} = \exp\!\Big(-\frac{\lVert z_n - z_m\rVert^2}{2\sigma^2}\Big),
    \qquad K_{nn} = 0 \ \text{with leave-one-out (loo)},

    R_{nm} = \frac{K_{nm}}{\sum_k K_{nk}}, \qquad Y = R X,

    E(Z) = \frac{1}{N} \sum_{n=1}^{N} \Big( \lVert x_n - y_n \rVert^2
           + \lambda \lVert z_n \rVert^2 \Big).

``y_n`` is the estimate of ``x_n`` from the other points (with ``loo``) or from all of them.
``lam`` (:math:`\lambda \ge 0`) weighs a Gaussian prior on the latent points.

Every backend must compute ``R`` as a row-wise softmax of the logits
``A_nm = -||z_n - z_m||^2 / (2 sigma^2)`` (row maximum subtracted, ``A_nn = -inf`` with loo),
never as ``exp(A) / sum(exp(A))``: when latent distances are large against ``sigma`` all of a
row's kernels underflow and the naive form gives 0/0. Squared distances are computed from
differences, not as ``|a|^2 + |b|^2 - 2ab``, which cancels catastrophically in float32.

The lab tutorial's ``sum((X - R X)^2)`` is ``N * E(Z)`` with ``sigma=1``, ``lam=0``, ``loo=False``.

The learned map and projection (used by :class:`ukr_bench.UKR` after training). With training
latents ``Z`` (N x L) and data ``X`` (N x D) fixed, the Nadaraya-Watson map of a latent point
``z`` is ``f(z) = sum_m softmax_m(-||z - z_m||^2 / (2 sigma^2)) x_m`` (all N training points,
no leave-one-out: a query is not a training point). Projecting queries ``X_q`` (M x D) minimises
the projection error over their latents ``Z_q`` (M x L):

.. math::

    E_q(Z_q) = \sum_{q=1}^{M} \lVert x_q - f(z_q) \rVert^2 ,

a sum, not a mean, so each query's gradient is independent of M. Both use the same
max-subtracted softmax and difference-based distances as ``E``.

The formula lives here in words; each module in :mod:`backends` writes it in code once.
The memory layouts a call may use and the rule among them are :mod:`ukr_bench.layouts`'s
(re-exported here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ukr_bench.layouts import (
    AUTO_DENSE_MAX_PAIRS,
    BLOCK_BUFFERS,
    BLOCK_MEMORY_FRACTION,
    BLOCK_MIN_ROWS,
    BLOCK_TARGET_BYTES,
    DENSE_BUFFERS,
    DENSE_MEMORY_FRACTION,
    LAYOUTS,
    Layout,
    check_block_size,
    check_layout,
    plan_layout,
)
from ukr_bench.validation import (
    DType,
    check_array,
    check_bool,
    check_nonnegative_float,
    check_positive_float,
)

__all__ = [
    "AUTO_DENSE_MAX_PAIRS",
    "BLOCK_BUFFERS",
    "BLOCK_MEMORY_FRACTION",
    "BLOCK_MIN_ROWS",
    "BLOCK_TARGET_BYTES",
    "DENSE_BUFFERS",
    "DENSE_MEMORY_FRACTION",
    "LATENT_RESOLUTION",
    "LAYOUTS",
    "MAGNITUDE_HEADROOM",
    "PARAM_HEADROOM_BITS",
    "Layout",
    "Params",
    "check_block_size",
    "check_inputs",
    "check_lam",
    "check_layout",
    "check_magnitudes",
    "check_sigma",
    "lam_range",
    "param_exponent",
    "plan_layout",
    "relative_error",
    "sigma_range",
]


@dataclass(frozen=True)
class Params:
    """Hyper-parameters of the objective: bandwidth, prior weight, leave-one-out.

    ``sigma`` and ``lam`` are checked here against the float64 ranges of :func:`sigma_range`
    and :func:`lam_range` (no dtype is known yet); :meth:`check`, against a dtype's.
    """

    sigma: float = 1.0
    lam: float = 0.0
    loo: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", check_sigma(self.sigma))
        object.__setattr__(self, "lam", check_lam(self.lam))
        object.__setattr__(self, "loo", check_bool("loo", self.loo))

    @property
    def min_samples(self) -> int:
        """Smallest N for which the objective is defined: loo needs another point to predict from."""
        return 2 if self.loo else 1

    def check(self, dtype: DType) -> Params:
        """Return self, or raise naming the parameter unless sigma and lam suit ``dtype``."""
        check_sigma(self.sigma, dtype)
        check_lam(self.lam, dtype)
        return self


# -- the representable range of sigma and lam, per dtype ------------------------------------
#
# Error model. In a dtype with smallest normal number ``tiny = 2^-m`` (m = 126 for float32,
# 1022 for float64) and largest ``max`` just below ``2^(m + 2)``, the backends form from sigma
# the constants sigma^2, 2 sigma^2, N sigma^2, sqrt(2) sigma and their reciprocals
# 1/(2 sigma^2), 1/sigma^2, 2/sigma^2, 2/(N sigma^2), 1/(sqrt(2) sigma) (NumPy in Python
# float64, then cast to the dtype; JAX and torch in the dtype itself), and from lam the
# constants 2 lam / N and lam ||Z||^2. Each must be finite and *normal* in the dtype: an
# overflow is inf, and inf * 0 or inf - inf a silent NaN; an underflow to 0 is a division by
# zero (NumPy: ZeroDivisionError) or a lost term; and a subnormal is where backends disagree
# (XLA on the CPU flushes subnormals to zero, NumPy and torch do not: lam = 1e-40 in float32
# gave the prior 0 in JAX and 1.2e-34 in the others).
#
# The rule: sigma^2 and lam lie in [2^-2e, 2^2e] (lam may also be exactly 0), with
# 2e = m - PARAM_HEADROOM_BITS, i.e. 2^34 = 4 * 2^32 of room at each end:
#
# * sigma^2 >= 2^34 tiny: sigma^2 is normal and the largest reciprocal, 2/sigma^2, is at most
#   2^(m - 33), far below max;
# * sigma^2 <= 2^(m - 34): for N <= 2^32 samples N sigma^2 <= 2^(m - 2) < max, and
#   2/(N sigma^2) >= 2^(3 - m) = 8 tiny is normal;
# * sqrt(2) sigma and 1/(sqrt(2) sigma) lie within [2^-(e + 1), 2^(e + 1)];
# * the logits -||z - z'||^2 / (2 sigma^2) stay finite for latent distances up to
#   sqrt(2 max) sigma (2.6e19 bandwidths in float32), at the smallest sigma up to 2^18.5
#   = 3.7e5 latent units: farther points get logit -inf, which the max-subtracted softmax
#   turns into a weight of 0, unless a point's *nearest* neighbour is that far (see
#   :func:`check_magnitudes`);
# * 2 lam / N >= 2^(3 - m) is normal for N <= 2^32, and lam ||Z||^2 < max for ||Z||^2 <= 2^35.
#
# The range is symmetric in log scale because E(Z) with lam = 0 depends on Z / sigma only:
# nothing singles out sigma = 1. float32: sigma in [2^-46, 2^46] = [1.4e-14, 7.0e13], lam in
# [2^-92, 2^92] = [2.0e-28, 5.0e27]; float64: sigma in [2^-494, 2^494] = [2.0e-149, 5.1e148].

#: Room, as a power of two, that the ranges of sigma^2 and lam leave below ``max`` and above
#: ``tiny`` of the dtype: 2^32 for the number of samples N, 4 for the constants 2 and tiny * max.
PARAM_HEADROOM_BITS = 34


def param_exponent(dtype: DType) -> int:
    """``e`` of the ranges ``sigma in [2^-e, 2^e]`` and ``lam in {0} | [2^-2e, 2^2e]``.

    ``e = (m - PARAM_HEADROOM_BITS) / 2`` where ``2^-m`` is the dtype's smallest normal number:
    46 for float32, 494 for float64 (the error model is in the comment above this function).
    """
    m = -int(np.finfo(dtype).minexp)
    return (m - PARAM_HEADROOM_BITS) // 2


def sigma_range(dtype: DType) -> tuple[float, float]:
    """The valid bandwidths ``[lo, hi]`` in ``dtype``: ``[2^-e, 2^e]`` (:func:`param_exponent`)."""
    e = param_exponent(dtype)
    return math.ldexp(1.0, -e), math.ldexp(1.0, e)


def lam_range(dtype: DType) -> tuple[float, float]:
    """The valid positive prior weights ``[lo, hi]`` in ``dtype`` (and 0): sigma_range squared."""
    e = param_exponent(dtype)
    return math.ldexp(1.0, -2 * e), math.ldexp(1.0, 2 * e)


def _range_text(lo: float, hi: float) -> str:
    # The exact powers of two, then their decimal values (rounded, so only approximately).
    return f"[2^{math.frexp(lo)[1] - 1}, 2^{math.frexp(hi)[1] - 1}] (about {lo:.3g} to {hi:.3g})"


def check_sigma(value: object, dtype: DType = "float64", name: str = "sigma") -> float:
    """Return ``value`` as a float, or raise naming ``name`` unless it lies in :func:`sigma_range`.

    The checks of :func:`check_positive_float` (real, finite, > 0) first, then ``dtype``'s range.
    """
    sigma = check_positive_float(name, value)
    lo, hi = sigma_range(dtype)
    if not lo <= sigma <= hi:
        msg = (
            f"{name} must lie in {_range_text(lo, hi)} for {dtype}, got {sigma!r}: outside it "
            f"sigma^2, 1/sigma^2 or N sigma^2 is not a normal {dtype} number "
            f"(ukr_bench.problem.sigma_range)"
        )
        raise ValueError(msg)
    return sigma


def check_lam(value: object, dtype: DType = "float64", name: str = "lam") -> float:
    """Return ``value`` as a float, or raise naming ``name`` unless 0 or in :func:`lam_range`."""
    lam = check_nonnegative_float(name, value)
    lo, hi = lam_range(dtype)
    if lam != 0 and not lo <= lam <= hi:
        msg = (
            f"{name} must be 0 or lie in {_range_text(lo, hi)} for {dtype}, got {lam!r}: "
            f"outside it 2 lam / N is not a normal {dtype} number or lam ||Z||^2 overflows "
            f"(ukr_bench.problem.lam_range)"
        )
        raise ValueError(msg)
    return lam


def check_inputs(
    Z: ArrayLike, X: ArrayLike, params: Params, dtype: DType
) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
    """Validate latent points ``Z`` (N x L) and data ``X`` (N x D) for the objective.

    Also checks ``params`` against ``dtype``'s ranges (:meth:`Params.check`) and the inputs'
    magnitudes (:func:`check_magnitudes`): what the functional API needs before it computes.
    """
    params.check(dtype)
    Z = check_array("Z", Z, dtype)
    X = check_array("X", X, dtype)
    if Z.shape[0] != X.shape[0]:
        msg = (
            f"Z and X must have the same number of rows N, got Z with {Z.shape[0]} "
            f"and X with {X.shape[0]}"
        )
        raise ValueError(msg)
    if Z.shape[0] < params.min_samples:
        msg = (
            f"N = {Z.shape[0]} is too small: loo={params.loo} needs at least "
            f"{params.min_samples} samples"
        )
        raise ValueError(msg)
    check_magnitudes(Z, X, params, dtype)
    return Z, X


#: :func:`check_magnitudes` keeps its bounds this factor below the dtype's ``max``: room for the
#: order in which a backend forms its sums and products, which the bounds do not follow.
MAGNITUDE_HEADROOM = 16.0
#: ... and refuses latents whose coordinates ``dtype`` cannot resolve to 1 / LATENT_RESOLUTION
#: of a bandwidth: a coordinate z is rounded by up to eps |z| (eps the dtype's machine epsilon),
#: so beyond ``max |Z| / sigma = 1 / (LATENT_RESOLUTION eps)`` (1.0e6 in float32, 5.6e14 in
#: float64) a latent distance's rounding exceeds a bandwidth. There even a point's distance to
#: itself came out as hundreds of bandwidths in JAX's blocked float32 layout (1e9 sigma from the
#: origin), whose every weight then underflowed to a 0 / 0.
LATENT_RESOLUTION = 8.0


def check_magnitudes(
    Z: NDArray[np.floating] | None,
    X: NDArray[np.floating],
    params: Params,
    dtype: DType,
    *,
    z_name: str = "Z",
) -> None:
    """Raise, naming the input, where finite ``Z`` or ``X`` are too large for E(Z) in ``dtype``.

    With sigma and lam in range (:func:`check_sigma`, :func:`check_lam`) the constants are
    representable, but terms that grow with the data can still overflow: float32 latents of
    1e20 gave NaN on every backend (each logit -inf, the softmax 0/0), data of 1e20 an infinite
    E and a non-finite gradient. Bounds, in float64, from the largest magnitudes
    ``z = max |Z|`` and ``x = max |X|`` (Z is N x L, X is N x D):

    * latent points: every squared latent distance or norm a backend forms, plain or in units
      of ``2 sigma^2`` (the logits; the blocked layout's ``Z / (sqrt(2) sigma)``), is at most
      ``L (2 z)^2 max(1, 1/(2 sigma^2))``;
    * data: the data term sums N squared residuals ``||x_n - y_n||^2``, each at most
      ``D (2 x)^2`` (``y_n`` is a weighted mean of rows of X): ``S = N D (2 x)^2``;
    * prior: ``lam ||Z||^2 <= lam N L z^2``;
    * gradient: its terms, before the division by N, are at most
      ``4 S max(1, 1/sigma^2) max(1, 2 sqrt(L) z) + 2 lam z`` (the softmax's back-propagated
      residuals, at most ``S``, times ``(z_n - z_m) / sigma^2``, in either order).

    Each must stay below ``max / MAGNITUDE_HEADROOM`` of ``dtype``. The bounds are sufficient,
    not necessary: they use the largest magnitude, so they may refuse data far from the origin
    that the computation would just have handled; in float64 they refuse nothing short of
    magnitudes near 1e150. O(N (L + D)) on the host, against the objective's O(N^2).

    ``Z=None`` checks the data's terms alone (``z = 0``, L = 1), for a fit whose latent points
    are not chosen yet; ``z_name`` is how the messages call Z (``init`` for a fit's start).
    """
    bounds = _magnitude_bounds(Z, X, params)
    limit = float(np.finfo(dtype).max) / MAGNITUDE_HEADROOM
    where = f"exceed {dtype}'s largest number / {MAGNITUDE_HEADROOM:g} = {limit:.3g}"
    _check_latent_magnitude(bounds, Z is not None, params, dtype, z_name, limit, where)
    _check_data_magnitudes(bounds, X.shape[0], params, dtype, z_name, limit, where)


class _Bounds(NamedTuple):
    """The largest magnitudes of :func:`check_magnitudes` and the bounds it derives from them."""

    z: float  # max |Z|
    x: float  # max |X|
    latent: float  # squared latent distances, plain or in units of 2 sigma^2
    data: float  # the sum of squared residuals
    prior: float  # lam ||Z||^2
    grad: float  # the gradient's terms, before the division by N


def _magnitude_bounds(
    Z: NDArray[np.floating] | None, X: NDArray[np.floating], params: Params
) -> _Bounds:
    N, D = X.shape
    L = 1 if Z is None else Z.shape[1]
    sigma, lam = params.sigma, params.lam
    # Products, not powers: a float64 overflow is then inf, which fails the checks below
    # (Python's ** raises OverflowError instead).
    z = 0.0 if Z is None else float(np.max(np.abs(Z)))
    x = float(np.max(np.abs(X)))
    inv_var = 1.0 / (sigma * sigma)
    latent = L * (2.0 * z) * (2.0 * z) * max(1.0, 0.5 * inv_var)
    data = N * D * (2.0 * x) * (2.0 * x)
    prior = lam * N * L * z * z
    grad = 4.0 * data * max(1.0, inv_var) * max(1.0, 2.0 * math.sqrt(L) * z) + 2.0 * lam * z
    return _Bounds(z, x, latent, data, prior, grad)


def _check_latent_magnitude(
    b: _Bounds, has_z: bool, params: Params, dtype: DType, z_name: str, limit: float, where: str
) -> None:
    sigma = params.sigma
    if not b.latent <= limit:
        msg = (
            f"{z_name} is too large for {dtype} with sigma = {sigma!r}: max |{z_name}| = "
            f"{b.z:.3g}, and the squared latent distances in units of 2 sigma^2, up to "
            f"{b.latent:.3g}, can {where}; scale {z_name} and sigma down together"
        )
        raise ValueError(msg)
    resolved = 1.0 / (LATENT_RESOLUTION * float(np.finfo(dtype).eps))
    if has_z and not b.z <= resolved * sigma:
        msg = (
            f"{z_name} is too far from the origin for {dtype} with sigma = {sigma!r}: "
            f"max |{z_name}| / sigma = {b.z / sigma:.3g} exceeds 1 / ({LATENT_RESOLUTION:g} eps) "
            f"= {resolved:.3g}, beyond which {dtype} cannot resolve the latents to a fraction of "
            f"a bandwidth; centre {z_name}" + (", or use float64" if dtype == "float32" else "")
        )
        raise ValueError(msg)


def _check_data_magnitudes(
    b: _Bounds, N: int, params: Params, dtype: DType, z_name: str, limit: float, where: str
) -> None:
    sigma, lam = params.sigma, params.lam
    if not b.data <= limit:
        msg = (
            f"X is too large for {dtype}: max |X| = {b.x:.3g}, and the sum of N = {N} squared "
            f"residuals, up to {b.data:.3g}, can {where}; scale X down or use float64"
        )
        raise ValueError(msg)
    if not b.prior <= limit:
        msg = (
            f"lam = {lam!r} is too large for these {z_name} in {dtype}: the prior "
            f"lam ||Z||^2, up to {b.prior:.3g}, can {where}"
        )
        raise ValueError(msg)
    if not b.grad <= limit:
        msg = (
            f"{z_name} and X are too large for {dtype} with sigma = {sigma!r} and "
            f"lam = {lam!r}: the gradient's terms, up to {b.grad:.3g}, can {where}"
        )
        raise ValueError(msg)


def relative_error(a: ArrayLike, ref: ArrayLike) -> float:
    """Norm-wise relative error ``||a - ref|| / ||ref||`` in float64 (absolute where ``ref`` is 0).

    The one error measure of the suite: tests compare backends with it and benchmarks report it.
    """
    a64, ref64 = np.asarray(a, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if a64.shape != ref64.shape:
        msg = f"shapes differ: {a64.shape} against reference {ref64.shape}"
        raise ValueError(msg)
    err = float(np.linalg.norm(a64 - ref64))
    scale = float(np.linalg.norm(ref64))
    return err / scale if scale > 0 else err
