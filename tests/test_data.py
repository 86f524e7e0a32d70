"""Data generators: shapes, seeds, the manifolds' defining equations, noise, errors."""

from __future__ import annotations

import numpy as np
import pytest

from ukr_bench import DATASETS, make_dataset


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_shapes_dtype_and_seed(name: str) -> None:
    X, t = make_dataset(name, 50, random_state=3)
    assert X.shape[0] == t.shape[0] == 50
    assert X.dtype == np.float64
    assert np.all(np.isfinite(X))
    X2, _ = make_dataset(name, 50, random_state=3)
    np.testing.assert_array_equal(X, X2)
    X3, _ = make_dataset(name, 50, random_state=4)
    assert not np.array_equal(X, X3)


def test_saddle_is_the_tutorials_surface() -> None:
    X, z = make_dataset("saddle", 500, random_state=0)
    np.testing.assert_allclose(X[:, 2], z[:, 0] ** 2 - z[:, 1] ** 2)
    np.testing.assert_array_equal(X[:, :2], z)
    assert z.min() >= -1
    assert z.max() <= 1


def test_spiral_and_rolls_follow_their_parametrisation() -> None:
    X, t = make_dataset("spiral", 100, random_state=0)
    np.testing.assert_allclose(np.hypot(X[:, 0], X[:, 1]), 0.2 + t[:, 0])
    X, t = make_dataset("swiss_roll", 100, random_state=0)
    np.testing.assert_allclose(np.hypot(X[:, 0], X[:, 2]), t[:, 0])
    X, t = make_dataset("s_curve", 100, random_state=0)
    np.testing.assert_allclose(X[:, 0], np.sin(t[:, 0]))


def test_noise_has_the_requested_standard_deviation() -> None:
    clean, _ = make_dataset("saddle", 20000, random_state=1)
    noisy, _ = make_dataset("saddle", 20000, noise=0.05, random_state=1)
    # a sample standard deviation of n = 60,000 values errs by 1 / sqrt(2 n) = 0.3 % (one sd)
    assert np.std(noisy - clean) == pytest.approx(0.05, rel=0.02)


def test_digits_is_scaled_and_labelled() -> None:
    X, y = make_dataset("digits", 300, random_state=0)
    assert X.shape == (300, 64)
    assert X.min() >= 0
    assert X.max() <= 1
    assert set(np.unique(y)) <= set(range(10))
    full, _ = make_dataset("digits", 1797)
    assert full.shape == (1797, 64)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "moons"}, ValueError, r"name must be one of .*got 'moons'"),
        ({"n_samples": 0}, ValueError, r"n_samples must be an integer >= 1, got 0"),
        # a type, not a value: TypeError (ukr_bench.validation's policy; was ValueError)
        (
            {"n_samples": 2.5},
            TypeError,
            r"n_samples must be an integer >= 1, got 2.5 of type float",
        ),
        ({"noise": -1.0}, ValueError, r"noise must be >= 0"),
        (
            {"name": "digits", "n_samples": 2000},
            ValueError,
            r"n_samples must be <= 1797 for data set 'digits'",
        ),
    ],
)
def test_bad_arguments(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make_dataset(**kwargs)
