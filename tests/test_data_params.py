"""Every parameter of ``make_dataset`` honoured, each data set against its documented closed form.

References: the parametrisations written out here from ``ukr_bench.data``'s documentation
(and, for ``s_curve`` and ``swiss_roll``, scikit-learn's ``make_s_curve``/``make_swiss_roll``
formulas), the distributions' moments (U(a, b): mean (a + b) / 2, variance (b - a)^2 / 12),
scikit-learn's ``load_digits`` for ``digits``, and for the noise the noiseless set drawn from
the same seed.
"""

from __future__ import annotations

import numpy as np
import pytest

from ukr_bench import DATASETS, make_dataset

# name -> (D, shape of t without n), as documented
SHAPES = {
    "saddle": (3, (2,)),
    "s_curve": (3, (2,)),
    "swiss_roll": (3, (2,)),
    "spiral": (2, (1,)),
    "digits": (64, ()),
}


def test_every_data_set_is_covered() -> None:
    assert sorted(SHAPES) == sorted(DATASETS)


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("n", [1, 7, 200])
def test_n_samples_gives_that_many_rows(name: str, n: int) -> None:
    D, t_shape = SHAPES[name]
    X, t = make_dataset(name, n, random_state=0)
    assert X.shape == (n, D)
    assert t.shape == (n, *t_shape)
    assert X.dtype == t.dtype == np.float64
    # numpy integers are integers too
    assert make_dataset(name, np.int64(n), random_state=0)[0].shape == (n, D)


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("noise", [0.01, 0.3])
def test_noise_is_gaussian_with_that_std_on_every_coordinate(name: str, noise: float) -> None:
    """noisy - clean (same seed) is N(0, noise^2) in every column, independently; t unchanged.

    n = 1797 * D >= 3594 draws per column for digits, 5000 otherwise: the sample std is within
    about 3 % (5 standard errors of sqrt(1 / 2n)) of ``noise``.
    """
    n = 1797 if name == "digits" else 5000
    clean, t0 = make_dataset(name, n, random_state=5)
    noisy, t1 = make_dataset(name, n, noise=noise, random_state=5)
    np.testing.assert_array_equal(t0, t1)
    diff = noisy - clean
    tol = 5 * np.sqrt(1 / (2 * n))
    np.testing.assert_allclose(diff.std(axis=0), noise, rtol=tol)
    assert np.all(np.abs(diff.mean(axis=0)) < 5 * noise / np.sqrt(n))
    corr = np.corrcoef(diff[:, :3].T)
    assert np.all(np.abs(corr - np.eye(len(corr))) < 5 / np.sqrt(n))
    # Gaussian: about 68.3 % within one std, 95.4 % within two
    frac = [np.mean(np.abs(diff) < k * noise) for k in (1, 2)]
    assert frac == pytest.approx([0.6827, 0.9545], abs=0.02)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_random_state_reproduces_and_differs(name: str) -> None:
    """Same int seed: the same data; another seed: other data; a Generator is used as given."""
    a = make_dataset(name, 40, noise=0.1, random_state=3)
    b = make_dataset(name, 40, noise=0.1, random_state=3)
    c = make_dataset(name, 40, noise=0.1, random_state=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    # a Generator seeded with 3 gives the int seed's draws, and its state advances
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(make_dataset(name, 40, noise=0.1, random_state=rng)[0], a[0])
    assert not np.array_equal(make_dataset(name, 40, noise=0.1, random_state=rng)[0], a[0])
    # None: fresh entropy each call
    assert not np.array_equal(
        make_dataset(name, 40, noise=0.1)[0], make_dataset(name, 40, noise=0.1)[0]
    )


def _uniform(v: np.ndarray, lo: float, hi: float) -> None:
    """Within [lo, hi], with the mean and variance of U(lo, hi) (5 standard errors)."""
    n = len(v)
    assert v.min() >= lo
    assert v.max() <= hi
    assert abs(v.mean() - (lo + hi) / 2) < 5 * (hi - lo) / np.sqrt(12 * n)
    assert v.var() == pytest.approx((hi - lo) ** 2 / 12, rel=5 * np.sqrt(0.8 / n))


N = 20000


def test_saddle_closed_form() -> None:
    """x = (z1, z2, z1^2 - z2^2), z ~ U(-1, 1)^2 (the tutorial's data)."""
    X, z = make_dataset("saddle", N, random_state=1)
    np.testing.assert_array_equal(X[:, :2], z)
    # the same three roundings (two squares, a difference) of values below 1: at most 3 eps / 2
    np.testing.assert_allclose(X[:, 2], z[:, 0] ** 2 - z[:, 1] ** 2, rtol=0, atol=1e-15)
    _uniform(z[:, 0], -1, 1)
    _uniform(z[:, 1], -1, 1)


def test_s_curve_closed_form() -> None:
    """x = (sin t, y, sign(t) (cos t - 1)), t ~ U(-3 pi / 2, 3 pi / 2), y ~ U(0, 2)."""
    X, ty = make_dataset("s_curve", N, random_state=1)
    t, y = ty.T
    np.testing.assert_allclose(X, np.column_stack([np.sin(t), y, np.sign(t) * (np.cos(t) - 1)]))
    _uniform(t, -1.5 * np.pi, 1.5 * np.pi)
    _uniform(y, 0, 2)


def test_swiss_roll_closed_form() -> None:
    """x = (t cos t, y, t sin t), t ~ U(3 pi / 2, 9 pi / 2), y ~ U(0, 21)."""
    X, ty = make_dataset("swiss_roll", N, random_state=1)
    t, y = ty.T
    np.testing.assert_allclose(X, np.column_stack([t * np.cos(t), y, t * np.sin(t)]))
    _uniform(t, 1.5 * np.pi, 4.5 * np.pi)
    _uniform(y, 0, 21)


def test_spiral_closed_form() -> None:
    """x = (0.2 + t) (cos 3 pi t, sin 3 pi t), t ~ U(0, 1): 1.5 turns, radius 0.2 to 1.2."""
    X, t = make_dataset("spiral", N, random_state=1)
    t = t[:, 0]
    r, a = 0.2 + t, 3 * np.pi * t
    np.testing.assert_allclose(X, np.column_stack([r * np.cos(a), r * np.sin(a)]))
    _uniform(t, 0, 1)


def test_digits_are_scikit_learns_scaled_to_unit_interval() -> None:
    """The full set is ``load_digits() / 16`` in order; a sample is distinct rows of it."""
    from sklearn.datasets import load_digits

    full_X, full_y = load_digits(return_X_y=True)
    X, y = make_dataset("digits", 1797, random_state=0)
    np.testing.assert_array_equal(X, full_X / 16)
    np.testing.assert_array_equal(y, full_y)
    assert X.min() == 0
    assert X.max() == 1
    Xs, ys = make_dataset("digits", 300, random_state=2)
    # every sampled row is a row of the full set with its label, and no index is drawn twice
    match = np.all(Xs[:, None, :] == full_X[None] / 16, axis=2) & (ys[:, None] == full_y[None])
    idx = match.argmax(axis=1)
    assert match.any(axis=1).all()
    assert len(set(idx)) == 300
    assert len(set(make_dataset("digits", 300, random_state=3)[1].tolist())) > 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "moons"}, ValueError, r"^name must be one of .*got 'moons'"),
        ({"name": None}, ValueError, r"^name must be one of"),
        ({"n_samples": 0}, ValueError, r"^n_samples must be an integer >= 1, got 0$"),
        ({"n_samples": -3}, ValueError, r"^n_samples must be an integer >= 1, got -3$"),
        # not integers: TypeError under ukr_bench.validation's policy (ValueError before)
        (
            {"n_samples": 2.0},
            TypeError,
            r"^n_samples must be an integer >= 1, got 2.0 of type float",
        ),
        (
            {"n_samples": True},
            TypeError,
            r"^n_samples must be an integer >= 1, got True of type bool",
        ),
        ({"n_samples": "5"}, TypeError, r"^n_samples must be an integer >= 1, got '5' of type str"),
        ({"noise": -0.1}, ValueError, r"^noise must be >= 0, got -0.1"),
        ({"noise": float("nan")}, ValueError, r"^noise must be finite"),
        ({"noise": "0.1"}, TypeError, r"^noise must be a real number"),
        ({"random_state": "abc"}, TypeError, r"^random_state must be an int"),
        ({"random_state": 1.5}, TypeError, r"^random_state must be an int"),
        ({"random_state": -1}, ValueError, r"^random_state must be an int"),
        (
            {"name": "digits", "n_samples": 1798},
            ValueError,
            r"^n_samples must be <= 1797 for data set 'digits', got 1798",
        ),
    ],
)
def test_errors_name_the_parameter(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make_dataset(**({"name": "saddle", "n_samples": 5} | kwargs))
