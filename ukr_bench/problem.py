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
import os
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


_DEVICES_RE = re.compile(r"^(cpu|cuda)(?::(\d+)(?:-(\d+))?)?$")


def parse_devices(device: object) -> tuple[str, tuple[int, ...]]:
    """Split a device or a set of devices into (kind, indices).

    Accepts what :func:`parse_device` accepts (one device), a range ``"cuda:0-3"`` /
    ``"cpu:0-3"`` (both ends included) and a list or tuple of single devices of one kind
    (``["cuda:0", "cuda:2"]``). Indices are distinct and in the order given. Several ``cpu``
    devices are JAX's forced host devices or torch.distributed ranks on the host.
    """
    several = "several: a range 'cuda:<i>-<j>' / 'cpu:<i>-<j>' or a list of devices of one kind"
    if isinstance(device, str):
        match = _DEVICES_RE.match(device)
        if match is None:
            msg = f"device must be 'cpu', 'cuda' or 'cuda:<index>', got {device!r} (or, for {several})"
            raise ValueError(msg)
        first = int(match.group(2) or 0)
        last = int(match.group(3)) if match.group(3) is not None else first
        if last < first:
            raise ValueError(
                f"device range {device!r} is empty: write '<first>-<last>', first <= last"
            )
        return match.group(1), tuple(range(first, last + 1))
    if isinstance(device, (list, tuple)) and device:
        parsed = [parse_device(d) for d in device]
        kinds = {kind for kind, _ in parsed}
        if len(kinds) > 1:
            raise ValueError(f"device list {device!r} mixes kinds {sorted(kinds)}: use one kind")
        indices = tuple(index for _, index in parsed)
        if len(set(indices)) != len(indices):
            raise ValueError(f"device list {device!r} names a device twice")
        return parsed[0][0], indices
    msg = f"device must be 'cpu', 'cuda' or 'cuda:<index>', got {device!r} (or, for {several})"
    raise ValueError(msg)


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


# -- memory layout: dense N x N arrays or row blocks ------------------------------------------

Layout = Literal["dense", "blocked", "auto"]
LAYOUTS: tuple[Layout, ...] = ("dense", "blocked", "auto")

#: ``auto`` keeps the dense form up to this many (query row x training point) pairs, N = 1024
#: for the objective (8 MiB per float64 N x N array). Measured on the 2-core Xeon (value +
#: gradient, dense / blocked time): at N = 1000 blocked was 1.5-5x faster on every backend and
#: dtype, at N = 2000 2-6x on NumPy and JAX; at N = 250-500 the ratio was 0.6-10x (noisy, the
#: machine shared), so dense stays where per-call overhead matters and its arrays are small.
AUTO_DENSE_MAX_PAIRS = 1024 * 1024
#: ... and only while its N x N arrays (``DENSE_BUFFERS`` of them) take at most this fraction of
#: the available memory.
DENSE_MEMORY_FRACTION = 0.25
DENSE_BUFFERS = 8
#: Block arrays alive per block (logits/kernel, the gradient's B, a temporary), per worker.
BLOCK_BUFFERS = 4
#: Target bytes of one block's arrays together (``BLOCK_BUFFERS`` arrays of block rows x N): on
#: the host a block that stays in the caches (see benchmarks/large_n.py), on a GPU a block large
#: enough to keep the device busy.
BLOCK_TARGET_BYTES = {"cpu": 4 * 2**20, "cuda": 1024 * 2**20}
#: Blocks never take more than this fraction of the available memory, all workers together.
BLOCK_MEMORY_FRACTION = 0.25
#: Fewer rows per block only when memory leaves no choice: each block costs a few framework
#: calls, which would dominate one-row blocks at N = 100,000.
BLOCK_MIN_ROWS = 8


def check_layout(layout: object) -> Layout:
    """Return ``layout`` or raise naming it unless it is one of :data:`LAYOUTS`."""
    if not isinstance(layout, str) or layout not in LAYOUTS:
        msg = f"layout must be one of {list(LAYOUTS)}, got {layout!r}"
        raise ValueError(msg)
    return layout


def check_block_size(block_size: object) -> int | None:
    """Return ``block_size`` (rows per block, an int >= 1, or None for the rule) or raise."""
    if block_size is None:
        return None
    if isinstance(block_size, (bool, np.bool_)) or not isinstance(block_size, numbers.Integral):
        msg = f"block_size must be a positive integer or None, got {block_size!r}"
        raise TypeError(msg)
    if block_size < 1:
        msg = f"block_size must be >= 1, got {block_size!r}"
        raise ValueError(msg)
    return int(block_size)


def plan_layout(
    rows: int,
    n: int,
    latent_dim: int,
    data_dim: int,
    dtype: DType,
    available_bytes: int,
    *,
    layout: Layout = "auto",
    block_size: int | None = None,
    device_kind: str = "cpu",
    workers: int = 1,
) -> tuple[Literal["dense", "blocked"], int | None]:
    """Which layout, and how many rows per block, a call over ``rows`` x ``n`` pairs uses.

    The one rule every backend follows (``rows`` query rows against ``n`` training points:
    ``rows = n`` for the objective). With ``s`` the item size of ``dtype``:

    * ``layout="dense"`` gives ``("dense", None)``; ``"blocked"`` gives blocks; ``"auto"`` gives
      dense when ``rows * n <= AUTO_DENSE_MAX_PAIRS`` and the dense arrays,
      ``DENSE_BUFFERS * rows * n * s`` bytes, are at most ``DENSE_MEMORY_FRACTION`` of
      ``available_bytes``; blocks otherwise.
    * The block size is ``block_size`` when given (capped at ``rows``: a block never holds more
      rows than there are). Otherwise one block row costs
      ``row_bytes = s * (BLOCK_BUFFERS * n + 2 * data_dim + 2 * latent_dim)``; a block gets
      ``BLOCK_TARGET_BYTES[device_kind] // row_bytes`` rows, at least ``BLOCK_MIN_ROWS``, but
      never more than ``BLOCK_MEMORY_FRACTION * available_bytes / workers // row_bytes`` (and at
      least 1, at most ``rows``).

    Memory of the blocked form: ``workers * BLOCK_BUFFERS * block * n * s`` plus O(n (L + D)).
    """
    itemsize = np.dtype(dtype).itemsize
    if layout == "dense" or (
        layout == "auto"
        and rows * n <= AUTO_DENSE_MAX_PAIRS
        and DENSE_BUFFERS * rows * n * itemsize <= DENSE_MEMORY_FRACTION * available_bytes
    ):
        return "dense", None
    if block_size is not None:
        return "blocked", min(block_size, rows)
    row_bytes = itemsize * (BLOCK_BUFFERS * n + 2 * data_dim + 2 * latent_dim)
    target = BLOCK_TARGET_BYTES.get(device_kind, BLOCK_TARGET_BYTES["cpu"]) // row_bytes
    cap = BLOCK_MEMORY_FRACTION * available_bytes / max(workers, 1) // row_bytes
    return "blocked", int(min(max(min(max(target, BLOCK_MIN_ROWS), cap), 1), rows))


def host_available_memory() -> int:
    """Bytes of host memory available to a new allocation (Linux: ``MemAvailable``)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:  # other POSIX systems: physical memory, an upper bound
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 8 * 2**30
