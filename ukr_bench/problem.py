r"""The UKR objective, defined once, and the validation every entry point shares.

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

Reduction to the original tutorial (``../shared/seed-tutorial.md``): with ``sigma=1``,
``lam=0`` and ``loo=False``, ``N * E(Z)`` equals the tutorial's ``sum((X - R X)^2)``.

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
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

DType = Literal["float32", "float64"]
DTYPES: tuple[DType, ...] = ("float32", "float64")

_DEVICE_RE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


@dataclass(frozen=True)
class Params:
    """Hyper-parameters of the objective: bandwidth, prior weight, leave-one-out."""

    sigma: float = 1.0
    lam: float = 0.0
    loo: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", check_positive_float("sigma", self.sigma))
        object.__setattr__(self, "lam", check_nonnegative_float("lam", self.lam))
        if not isinstance(self.loo, (bool, np.bool_)):
            msg = f"loo must be True or False, got {self.loo!r}"
            raise TypeError(msg)
        object.__setattr__(self, "loo", bool(self.loo))

    @property
    def min_samples(self) -> int:
        """Smallest N for which the objective is defined: loo needs another point to predict from."""
        return 2 if self.loo else 1


def _check_real(name: str, value: object) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        msg = f"{name} must be a real number, got {value!r} of type {type(value).__name__}"
        raise TypeError(msg)
    value = float(value)
    if not math.isfinite(value):
        msg = f"{name} must be finite, got {value!r}"
        raise ValueError(msg)
    return value


def check_positive_float(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise naming ``name`` unless it is finite and > 0."""
    value = _check_real(name, value)
    if value <= 0:
        msg = f"{name} must be > 0, got {value!r}"
        raise ValueError(msg)
    return value


def check_nonnegative_float(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise naming ``name`` unless it is finite and >= 0."""
    value = _check_real(name, value)
    if value < 0:
        msg = f"{name} must be >= 0, got {value!r}"
        raise ValueError(msg)
    return value


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as an int, or raise naming ``name`` unless it is an integer >= ``minimum``.

    Booleans are rejected (``True`` is an ``int`` to Python, never a count to a user).
    """
    as_int = (
        int(value)
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
        else None
    )
    if as_int is None or as_int < minimum:
        msg = f"{name} must be an integer >= {minimum}, got {value!r}"
        raise ValueError(msg)
    return as_int


def check_dtype(dtype: object) -> DType:
    """Normalise ``dtype`` ("float32"/"float64", or the numpy type) to its name."""
    try:
        name = np.dtype(dtype).name  # type: ignore[call-overload]
    except (TypeError, ValueError):
        name = None
    if dtype is None or name not in DTYPES:
        msg = f"dtype must be one of {list(DTYPES)}, got {dtype!r}"
        raise ValueError(msg)
    return cast(DType, name)


def parse_device(device: object) -> tuple[str, int]:
    """Split ``"cpu"``, ``"cuda"`` or ``"cuda:1"`` into (kind, index)."""
    match = _DEVICE_RE.match(device) if isinstance(device, str) else None
    if match is None:
        msg = f"device must be 'cpu', 'cuda' or 'cuda:<index>', got {device!r}"
        raise ValueError(msg)
    return match.group(1), int(match.group(2) or 0)


def check_array(name: str, a: ArrayLike, dtype: DType, *, ndim: int = 2) -> NDArray[np.floating]:
    """Return ``a`` as a C-contiguous ``dtype`` array, or raise naming ``name``.

    Only real floating-point input is accepted: an integer or boolean array would be a silent
    cast, and a 1-D array a silent broadcast. Finiteness is checked *after* the conversion, so a
    float64 value that overflows float32 is reported rather than turned into ``inf``.
    """
    arr = np.asarray(a)
    if arr.dtype.kind != "f":
        msg = f"{name} must be a real floating-point array, got dtype {arr.dtype}"
        raise TypeError(msg)
    if arr.ndim != ndim:
        msg = f"{name} must be {ndim}-D, got shape {arr.shape}"
        raise ValueError(msg)
    if 0 in arr.shape:
        msg = f"{name} must not be empty, got shape {arr.shape}"
        raise ValueError(msg)
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    if not np.all(np.isfinite(out)):
        bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
        msg = f"{name} has {bad} non-finite value(s) (NaN or inf, in {dtype})"
        raise ValueError(msg)
    return out


def check_inputs(
    Z: ArrayLike, X: ArrayLike, params: Params, dtype: DType
) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
    """Validate latent points ``Z`` (N x L) and data ``X`` (N x D) for the objective."""
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
    return Z, X


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
