"""Small contracts of the core modules that the objective tests pass through without seeing.

Found by mutation testing (docs/mutation.md): each assertion here fails for a mutant that every
other selected test let through. References: closed-form values worked out by hand.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import BACKENDS
from error_model import EPS, central_difference_tolerance

from ukr_bench import Params, get_backend, relative_error, value_and_grad


@pytest.mark.parametrize(
    ("a", "ref", "expected"),
    [
        ([0.6], [0.5], 0.2),  # |0.1| / 0.5: relative, and below a reference norm of 1
        ([3.0, 4.0], [0.0, 0.0], 5.0),  # reference 0: the absolute error
        ([2.0, 0.0], [1.0, 0.0], 1.0),
        ([[1.0, 2.0], [2.0, 4.0]], [[1.0, 2.0], [2.0, 2.0]], 2.0 / np.sqrt(13.0)),  # Frobenius
    ],
)
def test_relative_error_closed_forms(a: list, ref: list, expected: float) -> None:
    assert relative_error(a, ref) == pytest.approx(
        expected, rel=8 * EPS["float64"]
    )  # two norms, a difference, a ratio
    assert relative_error(a, a) == 0.0


def test_relative_error_is_computed_in_float64() -> None:
    # ||(1e20,)|| squared overflows float32: a float32 norm would give inf and an error of 0.
    a, ref = np.float32([2e20]), np.float32([1e20])
    assert relative_error(a, ref) == pytest.approx(
        1.0, rel=2 * EPS["float32"]
    )  # both inputs rounded to float32


def test_relative_error_shape_mismatch_names_the_shapes() -> None:
    with pytest.raises(ValueError, match=r"^shapes differ: \(2,\) against reference \(3,\)$"):
        relative_error(np.zeros(2), np.zeros(3))


def test_params_normalises_types() -> None:
    """sigma and lam become Python floats, loo a Python bool (NumPy scalars and ints accepted)."""
    p = Params(sigma=np.float32(0.5), lam=1, loo=np.bool_(False))
    assert (type(p.sigma), type(p.lam), type(p.loo)) == (float, float, bool)
    assert (p.sigma, p.lam, p.loo) == (0.5, 1.0, False)


def test_real_number_error_names_the_type() -> None:
    with pytest.raises(TypeError, match=r"^sigma must be a real number, got '1' of type str$"):
        Params(sigma="1")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_asarray_converts_to_the_backend_dtype(backend: str, dtype: str) -> None:
    """``asarray`` copies host arrays in the backend's dtype, whatever the input's."""
    b = get_backend(backend, dtype=dtype)
    for host in (np.ones((3, 2), dtype=np.float64), np.ones((3, 2), dtype=np.float32)):
        assert b.to_numpy(b.asarray(host)).dtype == np.dtype(dtype)


def test_numpy_info_records_its_version() -> None:
    assert get_backend("numpy").info() == {
        "backend": "numpy",
        "dtype": "float64",
        "device": "cpu",
        "gradient": "hand-derived",
        "layout": "auto",
        "block_size": None,
        "numpy": np.__version__,
        # the blocked layout's thread pool: one worker per CPU this process may use
        "blocked_workers": len(os.sched_getaffinity(0)),
    }


def test_x_is_checked_in_the_requested_dtype() -> None:
    """1e39 is finite in float64 and inf in float32: X must be converted before the check.

    Anchored: ``match`` searches, so r"X has" would also accept "XXXXX has".
    """
    Z, X = np.zeros((5, 2)), np.full((5, 3), 1e39)
    with pytest.raises(
        ValueError, match=r"^X has 15 non-finite value\(s\) \(NaN or inf, in float32\)$"
    ):
        value_and_grad(Z, X, dtype="float32")


def test_projection_gradient_at_training_latents_matches_finite_differences() -> None:
    """Queries on the training latents, some coordinates exactly 0 (the map's data points).

    Reference: central differences of E_q (h = 1e-6, accurate to ~1e-9 here).
    """
    rng = np.random.default_rng(8)
    Z = np.vstack([[0.0, 0.0], [0.0, 0.7], rng.normal(size=(6, 2))])
    X, Xq = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    b, h = get_backend("numpy"), 1e-6
    _, grad = b.project_value_and_grad(Z, Xq, Z, X, 0.8)
    fd = np.zeros_like(Z)
    for i in np.ndindex(Z.shape):
        e = np.zeros_like(Z)
        e[i] = h
        up = b.project_value_and_grad(Z + e, Xq, Z, X, 0.8)[0]
        down = b.project_value_and_grad(Z - e, Xq, Z, X, 0.8)[0]
        fd[i] = (up - down) / (2 * h)
    assert relative_error(grad, fd) < central_difference_tolerance(h)
