"""Argument validation for the whole package, with one exception policy.

* :class:`TypeError`: the argument is of the wrong type: a string where a number is wanted,
  ``2.5`` or ``True`` for a count, ``1`` for a flag, an integer array for data.
* :class:`ValueError`: the type is right, the value is not: a count below its minimum, a
  number that is not finite or out of its range, an array of the wrong shape or with NaN.
  Also an argument that names one of a fixed set of choices (a dtype, a layout, a device, an
  optimiser) and names none of them, whatever its type: the choices are values, as for
  scikit-learn, whose ``InvalidParameterError`` is a ``ValueError``.

Every message starts with the parameter's name as the caller spells it (``"--seed"`` on the
command line), so the command line can give its own names to a message. What is particular
to the objective (the ranges of sigma and lam, the inputs' magnitudes) is in
:mod:`ukr_bench.problem`; this module knows nothing of it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Literal, TypeGuard, TypeVar, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

DType = Literal["float32", "float64"]
DTYPES: tuple[DType, ...] = ("float32", "float64")

Choice = TypeVar("Choice", bound=str)


def is_int(value: object) -> TypeGuard[numbers.Integral]:
    """Whether ``value`` is an integer (a Python or NumPy one), booleans excluded.

    ``True`` is an ``int`` to Python, never a count to a user.
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as an int, or raise naming ``name`` unless it is an integer >= ``minimum``.

    TypeError for anything not an integer (:func:`is_int`: 2.0, "3", True), ValueError for an
    integer below ``minimum``.
    """
    if not is_int(value):
        msg = (
            f"{name} must be an integer >= {minimum}, got {value!r} of type {type(value).__name__}"
        )
        raise TypeError(msg)
    as_int = int(value)
    if as_int < minimum:
        msg = f"{name} must be an integer >= {minimum}, got {value!r}"
        raise ValueError(msg)
    return as_int


def check_real(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise naming ``name`` unless it is a finite real number.

    TypeError for anything not a real number (booleans, strings, complex), ValueError for NaN
    and infinities.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        msg = f"{name} must be a real number, got {value!r} of type {type(value).__name__}"
        raise TypeError(msg)
    as_float = float(value)
    if not math.isfinite(as_float):
        msg = f"{name} must be finite, got {as_float!r}"
        raise ValueError(msg)
    return as_float


def check_positive_float(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise naming ``name`` unless it is finite and > 0."""
    as_float = check_real(name, value)
    if as_float <= 0:
        msg = f"{name} must be > 0, got {as_float!r}"
        raise ValueError(msg)
    return as_float


def check_nonnegative_float(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise naming ``name`` unless it is finite and >= 0."""
    as_float = check_real(name, value)
    if as_float < 0:
        msg = f"{name} must be >= 0, got {as_float!r}"
        raise ValueError(msg)
    return as_float


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` as a bool, or raise a TypeError naming ``name`` unless it is one.

    NumPy's ``bool_`` is accepted; ``1`` and ``"yes"`` are not.
    """
    if not isinstance(value, (bool, np.bool_)):
        msg = f"{name} must be True or False, got {value!r}"
        raise TypeError(msg)
    return bool(value)


def check_choice(name: str, value: object, choices: Sequence[Choice]) -> Choice:
    """Return ``value``, or raise a ValueError naming ``name`` unless it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        msg = f"{name} must be one of {list(choices)}, got {value!r}"
        raise ValueError(msg)
    return cast(Choice, value)


def check_dtype(dtype: object) -> DType:
    """Normalise ``dtype`` ("float32"/"float64", or the numpy type) to its name.

    A ValueError for anything else, whatever its type (a choice, see the module's policy).
    """
    try:
        name = np.dtype(dtype).name  # type: ignore[call-overload]
    except (TypeError, ValueError):
        name = None
    if dtype is None or name not in DTYPES:
        msg = f"dtype must be one of {list(DTYPES)}, got {dtype!r}"
        raise ValueError(msg)
    return cast(DType, name)


def check_array(name: str, a: ArrayLike, dtype: DType, *, ndim: int = 2) -> NDArray[np.floating]:
    """Return ``a`` as a C-contiguous ``dtype`` array, or raise naming ``name``.

    The rule is on the values, not on the container: ``a`` is whatever ``np.asarray`` accepts
    (a NumPy array, a nested list, any object with ``__array__``), and it is accepted when NumPy
    makes a real floating-point array of it. So ``[[0.0, 1.0]]`` and ``[[0, 1.5]]`` are accepted
    (NumPy promotes the second to float64), while ``[[0, 1]]``, an integer array and a boolean
    one are rejected alike (TypeError): integer data for a latent point or a data point is
    almost always a mistake (labels, indices), and casting it would hide that. A 1-D array
    would be a silent broadcast (ValueError). Finiteness is checked
    *after* the conversion, so a float64 value that overflows float32 is reported rather than
    turned into ``inf``.
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
