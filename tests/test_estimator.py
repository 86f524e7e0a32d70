"""The UKR estimator: scikit-learn conventions, backend agreement, fidelity, errors.

Fidelity measure: E(Z) sums the squared leave-one-out error over the D coordinates. Noise in the
L tangent directions of the manifold is absorbed by the latent coordinates, so only the D - L
normal directions are irreducible: a good fit has E close to (D - L) * noise_std^2, which for
the saddle (D = 3, L = 2) is the noise variance itself, 0.05^2 = 0.0025.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import BACKENDS, random_problem
from error_model import (
    FIT_TOL,
    TOL,
    TRAJECTORY_TOL,
    central_difference_tolerance,
    tolerance,
)
from hypothesis import given
from hypothesis import strategies as st

import ukr_bench
from ukr_bench import UKR, NotFittedError, get_backend, relative_error, value_and_grad

NOISE = 0.05


@pytest.fixture(scope="module")
def saddle() -> np.ndarray:
    X, _ = ukr_bench.make_dataset("saddle", 120, noise=NOISE, random_state=0)
    return X


@pytest.fixture(scope="module")
def fitted(saddle: np.ndarray) -> UKR:
    return UKR(sigma=0.3, max_iter=60).fit(saddle)


# -- new backend methods: the map f and the projection objective E_q -------------------------


def _projection_problem() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(3)
    return (
        rng.normal(size=(7, 2)),
        rng.normal(size=(7, 3)),
        rng.normal(size=(20, 2)),
        rng.normal(size=(20, 3)),
    )


@pytest.mark.parametrize("sigma", [0.3, 1.0])
def test_predict_and_projection_agree_across_backends(backend: str, sigma: float) -> None:
    arrays = _projection_problem()
    ref, b = get_backend("numpy"), get_backend(backend)
    v0, g0 = ref.project_value_and_grad(*arrays, sigma)
    p0 = ref.predict(arrays[0], arrays[2], arrays[3], sigma)
    dev = [b.asarray(a) for a in arrays]
    v, g = b.project_value_and_grad(*dev, sigma)
    p = b.predict(dev[0], dev[2], dev[3], sigma)
    assert relative_error(b.to_numpy(v), v0) < TOL["float64"]
    assert relative_error(b.to_numpy(g), g0) < TOL["float64"]
    assert relative_error(b.to_numpy(p), p0) < TOL["float64"]


def test_numpy_projection_gradient_matches_finite_differences() -> None:
    Zq, Xq, Z, X = _projection_problem()
    b, h = get_backend("numpy"), 1e-6
    _, grad = b.project_value_and_grad(Zq, Xq, Z, X, 0.7)
    fd = np.zeros_like(Zq)
    for i in np.ndindex(Zq.shape):
        e = np.zeros_like(Zq)
        e[i] = h
        up = b.project_value_and_grad(Zq + e, Xq, Z, X, 0.7)[0]
        down = b.project_value_and_grad(Zq - e, Xq, Z, X, 0.7)[0]
        fd[i] = (up - down) / (2 * h)
    assert relative_error(grad, fd) < central_difference_tolerance(h)


def test_predict_at_training_latents_without_loo_matches_objective() -> None:
    # E without loo and lam is the mean of ||x_n - f(z_n)||^2: one definition of f.
    _, _, Z, X = _projection_problem()
    b = get_backend("numpy")
    res = X - b.predict(Z, Z, X, 0.5)
    assert np.isclose(np.sum(res**2) / len(X), b.value(Z, X, 0.5, 0.0, False))


# -- scikit-learn conventions ---------------------------------------------------------------


def test_init_stores_parameters_unchanged_and_validates_nothing() -> None:
    model = UKR(n_components=-3, sigma="bad", optimizer="nope", init="nope")
    assert model.get_params()["n_components"] == -3
    assert model.get_params()["sigma"] == "bad"


def test_get_set_params_round_trip() -> None:
    model = UKR(sigma=0.5)
    params = model.get_params()
    assert params["sigma"] == 0.5
    assert set(params) >= {"n_components", "lam", "loo", "backend", "optimizer", "init"}
    assert model.set_params(max_iter=3, lam=0.1) is model
    assert (model.max_iter, model.lam) == (3, 0.1)
    # scikit-learn's BaseEstimator.set_params and its message
    with pytest.raises(ValueError, match=r"Invalid parameter 'bogus' for estimator UKR"):
        model.set_params(bogus=1)
    assert repr(UKR(sigma=0.5)) == "UKR(sigma=0.5)"


def test_fit_returns_self_and_sets_trailing_underscore_attributes(saddle: np.ndarray) -> None:
    model = UKR(sigma=0.3, max_iter=5, snapshot_every=2)
    assert model.fit(saddle) is model
    assert model.embedding_.shape == (120, 2)
    assert model.embedding_.dtype == np.float64
    assert model.history_.shape == (6,)
    assert model.n_iter_ == 5
    assert model.snapshots_.shape == (3, 120, 2)  # init, after 2 and after 4 iterations
    assert model.n_features_in_ == 3
    # history_[-1] is the objective at the embedding
    value, _ = ukr_bench.value_and_grad(model.embedding_, saddle, sigma=0.3)
    assert np.isclose(model.history_[-1], value)


def test_sklearn_clone_and_grid_search(saddle: np.ndarray) -> None:
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV

    model = UKR(sigma=0.3, max_iter=5)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    # A grid with a clear winner; test_parameters_matter.py searches every parameter.
    grid = {"max_iter": [1, 30]}
    search = GridSearchCV(UKR(sigma=0.3), grid, cv=2).fit(saddle)
    # Reference: the held-out reconstruction error computed here, on GridSearchCV's folds
    # (KFold(2), unshuffled): the search must pick the sigma with the lower error, and its score
    # must be minus that error (score is higher-better).
    half = len(saddle) // 2
    folds = [(slice(half, None), slice(None, half)), (slice(None, half), slice(half, None))]
    mse = {}
    for max_iter in grid["max_iter"]:
        errors = []
        for train, test in folds:
            m = UKR(sigma=0.3, max_iter=max_iter).fit(saddle[train])
            res = saddle[test] - m.inverse_transform(m.transform(saddle[test]))
            errors.append(np.mean(np.sum(res**2, axis=1)))
        mse[max_iter] = np.mean(errors)
    assert mse[1] != pytest.approx(mse[30], rel=0.05)  # a clear winner
    assert search.best_params_["max_iter"] == min(mse, key=mse.get)
    # the same fits and folds, the mean taken in another order
    assert search.best_score_ == pytest.approx(-min(mse.values()), rel=TOL["float64"])


def test_fit_transform_is_embedding(saddle: np.ndarray) -> None:
    model = UKR(sigma=0.3, max_iter=3)
    np.testing.assert_array_equal(model.fit_transform(saddle), model.embedding_)


# -- optimisers, inits, constraints -----------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["gd", "rprop", "lbfgs"])
@pytest.mark.parametrize("init", ["pca", "random"])
@pytest.mark.parametrize("constraint", ["none", "box"])
def test_every_optimizer_decreases_objective(
    saddle: np.ndarray, optimizer: str, init: str, constraint: str
) -> None:
    model = UKR(
        sigma=0.3,
        optimizer=optimizer,
        init=init,
        constraint=constraint,
        max_iter=30,
        random_state=0,
    ).fit(saddle)
    assert model.history_[-1] < model.history_[0]
    assert np.all(np.isfinite(model.embedding_))
    if constraint == "box":
        assert np.abs(model.embedding_).max() <= 1.0
    else:
        # centred at every step: what remains is the rounding of an N-term mean of |z| <= 10
        atol = 10 * tolerance("float64", len(saddle))
        np.testing.assert_allclose(model.embedding_.mean(axis=0), 0.0, atol=atol)


def test_lbfgs_leaves_the_stationary_point_near_zero() -> None:
    # Z = 0 is stationary; from a small random start at large N the gradient is below scipy's
    # absolute gtol (1e-5) at once, and L-BFGS used to stop after 0 iterations.
    X, _ = ukr_bench.make_dataset("saddle", 1000, noise=0.05, random_state=0)
    model = UKR(sigma=0.5, optimizer="lbfgs", init="random", max_iter=10, random_state=0).fit(X)
    assert model.n_iter_ == 10
    assert model.history_[-1] < 0.1 * model.history_[0]


def test_prior_shrinks_latents(saddle: np.ndarray) -> None:
    free = UKR(sigma=0.3, max_iter=100).fit(saddle)
    prior = UKR(sigma=0.3, lam=0.01, max_iter=100).fit(saddle)
    assert np.linalg.norm(prior.embedding_) < 0.8 * np.linalg.norm(free.embedding_)


def test_auto_sigma_is_the_fit_with_the_bandwidth_it_chose(saddle: np.ndarray) -> None:
    auto = UKR(max_iter=10).fit(saddle)
    assert auto.sigma == "auto"
    assert auto.sigma_ in 2.0 ** np.arange(-5, 4)  # the PCA start's half-width is 1
    given = UKR(sigma=auto.sigma_, max_iter=10).fit(saddle)
    assert given.sigma_ == auto.sigma_
    np.testing.assert_array_equal(given.embedding_, auto.embedding_)
    np.testing.assert_array_equal(given.transform(saddle + 0.01), auto.transform(saddle + 0.01))


def test_a_model_without_sigma_uses_its_number_or_says_what_is_missing(fitted: UKR) -> None:
    """A model pickled before ``sigma_`` existed has only its number ``sigma``: its map is
    the same; with ``sigma="auto"`` and no ``sigma_`` there is no bandwidth, and it says so."""
    import pickle

    old = pickle.loads(pickle.dumps(fitted))
    del old.sigma_
    Z = fitted.embedding_[:5] * 0.9
    np.testing.assert_array_equal(old.inverse_transform(Z), fitted.inverse_transform(Z))
    np.testing.assert_array_equal(
        old.transform(fitted.X_fit_[:5] + 0.01), fitted.transform(fitted.X_fit_[:5] + 0.01)
    )
    old.set_params(sigma="auto")
    with pytest.raises(ValueError, match=r"^sigma='auto' and the model has no sigma_: fit it"):
        old.inverse_transform(Z)


def test_array_init_is_used(saddle: np.ndarray) -> None:
    Z0 = np.random.default_rng(0).normal(size=(120, 2))
    model = UKR(init=Z0, max_iter=0).fit(saddle)
    np.testing.assert_array_equal(model.embedding_, Z0)


# -- the same fit on every backend follows the same trajectory --------------------------------


@pytest.mark.parametrize(("optimizer", "rate"), [("gd", 0.05), ("rprop", 0.001)])
def test_trajectory_agrees_across_backends(saddle: np.ndarray, optimizer: str, rate: float) -> None:
    # Small steps over 10 iterations: the trajectories of this objective are chaotic over long
    # runs at large steps (rounding differences grow exponentially), not over this horizon.
    kw = {
        "sigma": 0.3,
        "optimizer": optimizer,
        "learning_rate": rate,
        "max_iter": 10,
        "snapshot_every": 1,
        "init": "random",
        "random_state": 1,
    }
    ref = UKR(backend="numpy", **kw).fit(saddle)
    for backend in BACKENDS:
        model = UKR(backend=backend, **kw).fit(saddle)
        assert relative_error(model.snapshots_, ref.snapshots_) < TRAJECTORY_TOL, backend
        assert relative_error(model.history_, ref.history_) < TRAJECTORY_TOL, backend


def test_float32_fit_runs(saddle: np.ndarray, backend: str) -> None:
    model = UKR(sigma=0.3, max_iter=10, backend=backend, dtype="float32").fit(saddle)
    assert model.embedding_.dtype == np.float32
    assert model.history_[-1] < model.history_[0]


# -- fidelity on the noisy saddle -------------------------------------------------------------


@pytest.mark.slow
def test_loo_error_reaches_noise_variance(backend: str) -> None:
    # N = 500, L-BFGS for 200 iterations: E ~ 0.0024 against (D - L) * 0.05^2 = 0.0025.
    X, _ = ukr_bench.make_dataset("saddle", 500, noise=NOISE, random_state=0)
    model = UKR(sigma=0.2, optimizer="lbfgs", max_iter=200, backend=backend).fit(X)
    target = (X.shape[1] - 2) * NOISE**2
    assert abs(model.history_[-1] - target) < 0.25 * target


def test_without_loo_latents_spread_and_training_error_vanishes(saddle: np.ndarray) -> None:
    # The pitfall: without leave-one-out or a prior every point learns to predict itself.
    loo = UKR(sigma=0.3, max_iter=150).fit(saddle)
    no_loo = UKR(sigma=0.3, loo=False, max_iter=150).fit(saddle)
    assert no_loo.history_[-1] < 0.1 * NOISE**2
    assert no_loo.history_[-1] < 0.1 * no_loo.history_[0]
    assert np.ptp(no_loo.embedding_) > 2 * np.ptp(loo.embedding_)
    assert loo.history_[-1] > 0.5 * NOISE**2


# -- transform, inverse_transform, score ------------------------------------------------------


def test_transform_inverse_transform_round_trip(fitted: UKR) -> None:
    X_new, _ = ukr_bench.make_dataset("saddle", 60, noise=NOISE, random_state=7)
    Z = fitted.transform(X_new)
    assert Z.shape == (60, 2)
    # The bounding-box clip, where it binds: queries 3 units beyond the saddle's corners are
    # pulled outward (f is flat outside the latents' box); measured, 3 of these 4 end on the
    # box (a coordinate equal to the training latents' min or max), none outside it.
    lo, hi = fitted.embedding_.min(axis=0), fitted.embedding_.max(axis=0)
    far = fitted.transform(np.array([[3.0, 3, 0], [-3, 3, 0], [3, -3, 0], [-3, -3, 0]]))
    assert np.all((lo <= far) & (far <= hi))
    assert np.sum(np.any((far == lo) | (far == hi), axis=1)) >= 2
    # Projecting points on the learned surface gives them back.
    on_surface = fitted.inverse_transform(fitted.embedding_[:20] * 0.9)
    back = fitted.inverse_transform(fitted.transform(on_surface))
    # not rounding: transform stops at its optimiser's tolerance; 1e-4 is 1 % of the squared
    # distance between neighbouring training points' images here
    assert np.mean(np.sum((back - on_surface) ** 2, axis=1)) < 1e-4
    # Projection refines the nearest-neighbour start: error no larger than at the start, and
    # smaller overall (it moved).
    nearest = np.argmin(((X_new[:, None] - fitted.X_fit_[None]) ** 2).sum(-1), axis=1)
    start = np.sum((X_new - fitted.inverse_transform(fitted.embedding_[nearest])) ** 2, axis=1)
    refined = np.sum((X_new - fitted.inverse_transform(Z)) ** 2, axis=1)
    assert np.all(refined <= start + 1e-12)
    assert refined.sum() < 0.9 * start.sum()


def test_transform_agrees_across_backends(fitted: UKR) -> None:
    X_new, _ = ukr_bench.make_dataset("saddle", 30, noise=NOISE, random_state=7)
    ref = fitted.transform(X_new)
    for backend in BACKENDS:
        other = UKR(**{**fitted.get_params(), "backend": backend})
        other.embedding_, other.X_fit_, other.n_features_in_ = (
            fitted.embedding_,
            fitted.X_fit_,
            fitted.n_features_in_,
        )
        assert relative_error(other.transform(X_new), ref) < FIT_TOL, backend  # L-BFGS


@pytest.mark.parametrize("optimizer", ["rprop", "lbfgs"])
def test_transform_of_training_data_is_the_embedding(
    saddle: np.ndarray, backend: str, optimizer: str
) -> None:
    # scikit-learn's fit_transform(X) == fit(X).transform(X): a training observation's latent
    # point is its embedding (found jointly, with leave-one-out), not re-projected. The old
    # projection moved it (55 of 60 coordinates beyond 0.01 in check_transformer_general).
    model = UKR(sigma=0.3, max_iter=20, optimizer=optimizer, backend=backend)
    Z = model.fit_transform(saddle)
    np.testing.assert_array_equal(model.transform(saddle), Z)
    np.testing.assert_array_equal(model.transform(saddle[::-1][:7]), Z[::-1][:7])
    # A query off the training data is projected: it leaves the nearest latent point, which
    # is not a minimiser of ||x - f(z)||^2, and lowers that error.
    x = saddle[:5] + 0.01
    moved = model.transform(x)
    assert np.all(np.abs(moved - Z[:5]).max(axis=1) > 1e-6)
    err = lambda z: np.sum((x - model.inverse_transform(z)) ** 2, axis=1)
    assert np.all(err(moved) < err(Z[:5]))


def test_transform_duplicates_take_the_first_latent() -> None:
    X = np.random.default_rng(1).normal(size=(12, 3))
    X[7] = X[2]
    model = UKR(max_iter=20).fit(X)
    np.testing.assert_array_equal(model.transform(X[[7]]), model.embedding_[[2]])


def test_score_is_negative_reconstruction_error(fitted: UKR) -> None:
    X_new, _ = ukr_bench.make_dataset("saddle", 50, noise=NOISE, random_state=7)
    score = fitted.score(X_new)
    assert score < 0
    assert -score < 5 * NOISE**2  # close to the surface: the normal noise and a little more
    res = X_new - fitted.inverse_transform(fitted.transform(X_new))
    assert np.isclose(score, -np.mean(np.sum(res**2, axis=1)))


@given(
    st.lists(st.floats(-3, 3), min_size=2, max_size=2).map(np.array),
)
def test_inverse_transform_stays_in_data_hull(z: np.ndarray) -> None:
    model = _small_model()
    x = model.inverse_transform(z[None, :])
    X = model.X_fit_
    assert np.all(x >= X.min(axis=0) - 1e-9)
    assert np.all(x <= X.max(axis=0) + 1e-9)


_SMALL: list[UKR] = []


def _small_model() -> UKR:
    if not _SMALL:
        X, _ = ukr_bench.make_dataset("saddle", 40, noise=NOISE, random_state=2)
        _SMALL.append(UKR(sigma=0.5, max_iter=10).fit(X))
    return _SMALL[0]


# -- errors -------------------------------------------------------------------------------------

X5 = np.random.default_rng(0).normal(size=(5, 3))


@pytest.mark.parametrize(
    ("params", "X", "error", "match"),
    [
        # scikit-learn's validation and messages (validate_data)
        ({}, np.ones(5), ValueError, r"Expected 2D array, got 1D array instead"),
        ({}, np.full((5, 3), np.nan), ValueError, r"Input X contains NaN"),
        ({}, np.full((5, 3), np.inf), ValueError, r"Input X contains infinity"),
        ({}, np.ones((5, 3), dtype=complex), ValueError, r"Complex data not supported"),
        ({}, np.array([["a", "b", "c"]] * 5, dtype=object), ValueError, r"could not convert"),
        ({}, np.ones((0, 3)), ValueError, r"0 sample\(s\) \(shape=\(0, 3\)\)"),
        ({}, np.ones((5, 0)), ValueError, r"0 feature\(s\) \(shape=\(5, 0\)\)"),
        # a float64 value that float32 cannot hold is reported, not turned into inf
        (
            {"dtype": "float32"},
            np.full((5, 3), 1e39),
            ValueError,
            r"X has 15 non-finite value\(s\) \(NaN or inf, in float32\)",
        ),
        ({}, X5[:2], ValueError, r"X has 2 samples, too few: n_components=2 .* at least 3"),
        ({"n_components": 1}, X5[:1], ValueError, r"X has 1 samples, too few"),
        ({"n_components": 0}, X5, ValueError, r"n_components must be an integer >= 1, got 0"),
        ({"n_components": 1.5}, X5, TypeError, r"n_components must be an integer"),
        ({"n_components": 4}, X5, ValueError, r"init='pca' needs n_components <= n_features"),
        ({"optimizer": "adam"}, X5, ValueError, r"optimizer must be one of"),
        ({"init": "spectral"}, X5, ValueError, r"init must be one of"),
        ({"init": np.zeros((4, 2))}, X5, ValueError, r"init must have shape"),
        ({"constraint": "sphere"}, X5, ValueError, r"constraint must be one of"),
        ({"sigma": 0.0}, X5, ValueError, r"sigma must be > 0"),
        (
            {"sigma": "scott"},
            X5,
            ValueError,
            r"^sigma must be 'auto' or a number > 0, got 'scott'$",
        ),
        ({"n_jobs": 0}, X5, ValueError, r"^n_jobs must be None or a nonzero integer"),
        ({"n_jobs": 1.5}, X5, TypeError, r"^n_jobs must be None or a nonzero integer, got 1\.5"),
        ({"lam": -1.0}, X5, ValueError, r"lam must be >= 0"),
        ({"loo": "yes"}, X5, TypeError, r"loo must be True or False"),
        ({"max_iter": -1}, X5, ValueError, r"max_iter must be an integer >= 0"),
        ({"learning_rate": 0.0}, X5, ValueError, r"learning_rate must be > 0"),
        ({"snapshot_every": -2}, X5, ValueError, r"snapshot_every must be an integer >= 0"),
        ({"verbose": -1}, X5, ValueError, r"verbose must be an integer >= 0"),
        ({"verbose": 0.5}, X5, TypeError, r"verbose must be an integer"),
        ({"backend": "tensorflow"}, X5, ValueError, r"backend must be one of"),
        ({"dtype": "float16"}, X5, ValueError, r"dtype must be one of"),
        ({"device": "tpu"}, X5, ValueError, r"device must be"),
    ],
)
def test_fit_errors(params: dict, X: np.ndarray, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        UKR(**params).fit(X)


@pytest.mark.parametrize("method", ["transform", "inverse_transform", "score"])
def test_use_before_fit_raises_not_fitted(method: str) -> None:
    with pytest.raises(NotFittedError, match=r"not fitted yet: call fit"):
        getattr(UKR(), method)(X5)
    assert issubclass(NotFittedError, ValueError)
    assert issubclass(NotFittedError, AttributeError)


def test_query_shape_errors(fitted: UKR) -> None:
    with pytest.raises(ValueError, match=r"X has 2 features, but UKR is expecting 3 features"):
        fitted.transform(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"Z has 3 columns, but the model has 2 latent"):
        fitted.inverse_transform(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"Input X contains NaN"):
        fitted.score(np.full((1, 3), np.nan))


# -- read-only inputs: never written to, no warning (filterwarnings = error) -----------------

READ_ONLY = ["writeable=False", "memmap-r", "broadcast_to"]


def read_only(a: np.ndarray, how: str, path: Path) -> np.ndarray:
    """``a``'s values in a read-only array of kind ``how``."""
    if how == "writeable=False":
        out = a.copy()
        out.flags.writeable = False
    elif how == "memmap-r":
        a.tofile(path)
        out = np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape)
    else:  # a view np.broadcast_to makes read-only (the first of two copies of a)
        out = np.broadcast_to(a, (2, *a.shape))[0]
    assert not out.flags.writeable
    np.testing.assert_array_equal(out, a)
    return out


@pytest.mark.parametrize("how", READ_ONLY)
def test_read_only_inputs_to_backends(backend: str, how: str, tmp_path: Path) -> None:
    # torch's asarray warned "The given NumPy array is not writable" and aliased the array
    # (once per process: torch silences the warning after the first time).
    Z, X = random_problem(9, 2, 3, seed=11)
    Zq, Xq = random_problem(4, 2, 3, seed=12)
    Zr, Xr, Zqr, Xqr = (
        read_only(a, how, tmp_path / f"{i}.dat") for i, a in enumerate((Z, X, Zq, Xq))
    )
    for dtype in ["float64", "float32"]:
        v, g = value_and_grad(Zr, Xr, backend=backend, dtype=dtype, sigma=0.7)
        v0, g0 = value_and_grad(Z, X, backend=backend, dtype=dtype, sigma=0.7)
        assert v == v0
        np.testing.assert_array_equal(g, g0)
        b = get_backend(backend, dtype=dtype)
        dev = [b.asarray(a) for a in (Zqr, Xqr, Zr, Xr)]
        ref = [b.asarray(a) for a in (Zq, Xq, Z, X)]
        np.testing.assert_array_equal(
            b.to_numpy(b.predict(dev[0], dev[2], dev[3], 0.7)),
            b.to_numpy(b.predict(ref[0], ref[2], ref[3], 0.7)),
        )
        pv, pg = b.project_value_and_grad(*dev, 0.7)
        pv0, pg0 = b.project_value_and_grad(*ref, 0.7)
        assert b.to_numpy(pv) == b.to_numpy(pv0)
        np.testing.assert_array_equal(b.to_numpy(pg), b.to_numpy(pg0))
    # the caller's arrays are untouched (a write would also have raised: they are read-only)
    for ro, orig in zip((Zr, Xr, Zqr, Xqr), (Z, X, Zq, Xq), strict=True):
        np.testing.assert_array_equal(ro, orig)


def test_zero_stride_broadcast_latents(backend: str) -> None:
    # np.broadcast_to with a stride-0 axis: N coincident latents, the closed form of
    # test_objective (Y is the mean of X, the gradient vanishes).
    X = np.arange(12.0).reshape(4, 3)
    Z = np.broadcast_to(np.array([0.3, -0.2]), (4, 2))
    value, grad = value_and_grad(Z, X, backend=backend, loo=False)
    tol = tolerance("float64", 4)  # N = 4; the gradient's differences are exactly 0
    assert value == pytest.approx(np.sum((X - X.mean(0)) ** 2) / 4, rel=tol)
    np.testing.assert_allclose(grad, 0.0, atol=tol)


@pytest.mark.parametrize("how", READ_ONLY)
def test_read_only_inputs_to_the_estimator(backend: str, how: str, tmp_path: Path) -> None:
    X, _ = ukr_bench.make_dataset("saddle", 40, noise=NOISE, random_state=3)
    X_new, _ = ukr_bench.make_dataset("saddle", 6, noise=NOISE, random_state=4)
    Xr, Xnr = read_only(X, how, tmp_path / "X.dat"), read_only(X_new, how, tmp_path / "Xn.dat")
    kw = {"sigma": 0.5, "max_iter": 10, "backend": backend}
    model, ref = UKR(**kw).fit(Xr), UKR(**kw).fit(X)
    np.testing.assert_array_equal(model.embedding_, ref.embedding_)
    np.testing.assert_array_equal(model.transform(Xnr), ref.transform(X_new))
    Zr = read_only(ref.transform(X_new), how, tmp_path / "Z.dat")
    np.testing.assert_array_equal(model.inverse_transform(Zr), ref.inverse_transform(Zr.copy()))
    assert model.score(Xnr) == ref.score(X_new)
    np.testing.assert_array_equal(Xr, X)
    np.testing.assert_array_equal(Xnr, X_new)
    # The model keeps its own copy of the training data, a plain array.
    assert type(model.X_fit_) is np.ndarray
    assert not np.shares_memory(model.X_fit_, Xr)


def test_fitted_model_owns_its_arrays(saddle: np.ndarray) -> None:
    X = saddle.copy()
    model = UKR(sigma=0.3, max_iter=5)
    Z = model.fit_transform(X)
    before = model.transform(saddle[:3] + 0.01)
    X += 1.0  # the caller changes its data and the returned embedding afterwards
    Z[:] = 0.0
    assert not np.array_equal(model.embedding_, Z)
    np.testing.assert_array_equal(model.X_fit_, saddle)
    np.testing.assert_array_equal(model.transform(saddle[:3] + 0.01), before)


# -- scikit-learn's input conventions, and the engine without scikit-learn --------------------


def test_integer_input_is_converted_like_scikit_learn() -> None:
    # scikit-learn's estimators convert integer X to float64 (validate_data); UKR used to
    # reject it. The fit is exactly the fit of the converted data.
    X = np.random.default_rng(0).integers(-5, 6, size=(20, 3))
    for dtype in (np.int64, np.int32, np.uint8):
        Xi = (X + 5).astype(dtype)
        Z = UKR(max_iter=10).fit_transform(Xi)
        np.testing.assert_array_equal(Z, UKR(max_iter=10).fit_transform(Xi.astype(np.float64)))
        assert Z.dtype == np.float64
    assert UKR(max_iter=10, dtype="float32").fit_transform(X).dtype == np.float32


def test_sparse_input_is_rejected_saying_so() -> None:
    from scipy import sparse

    with pytest.raises(
        TypeError, match=r"Sparse data was passed for X, but dense data is required"
    ):
        UKR().fit(sparse.csr_array(X5))
    model = UKR(max_iter=3).fit(X5)
    with pytest.raises(TypeError, match=r"Sparse data was passed"):
        model.transform(sparse.csr_matrix(X5))


def test_engine_defaults_are_the_estimators() -> None:
    # UKR.fit passes get_params() to ukr_bench.training.fit, which the harness calls directly.
    import inspect

    from ukr_bench import training

    def defaults(f: object) -> dict:
        return {
            k: p.default
            for k, p in inspect.signature(f).parameters.items()  # type: ignore[arg-type]
            if p.default is not p.empty
        }

    assert defaults(UKR.__init__) == defaults(training.fit)
    result = training.fit(X5, max_iter=4, sigma=0.7)
    model = UKR(max_iter=4, sigma=0.7).fit(X5)
    np.testing.assert_array_equal(result.embedding, model.embedding_)
    np.testing.assert_array_equal(result.history, model.history_)
    assert result.n_iter == model.n_iter_ == 4


def test_feature_names_out() -> None:
    model = UKR(n_components=2, max_iter=3).fit(X5)
    assert list(model.get_feature_names_out()) == ["ukr0", "ukr1"]


# -- progress and persistence ---------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["rprop", "gd", "lbfgs"])
def test_verbose_prints_e_after_every_kth_iteration(
    saddle: np.ndarray, optimizer: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reference: the fit's own history_ (E after each iteration), printed as it runs."""
    model = UKR(sigma=0.3, optimizer=optimizer, max_iter=12, verbose=4).fit(saddle)
    lines = capsys.readouterr().out.splitlines()
    due = [k for k in (4, 8, 12) if k <= model.n_iter_]
    assert [int(line.split()[1]) for line in lines] == due
    for k, line in zip(due, lines, strict=True):
        printed = float(line.split("E = ")[1].split()[0])
        assert printed == pytest.approx(model.history_[k], rel=1e-5)  # %.6g
        assert "sigma" in line
        assert line.endswith(" s")
    UKR(sigma=0.3, optimizer=optimizer, max_iter=12).fit(saddle)
    assert capsys.readouterr().out == ""  # verbose=0: silent


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_fitted_model_pickles_to_numpy_and_loads_without_its_framework(
    saddle: np.ndarray, backend: str, tmp_path: Path
) -> None:
    """Every fitted attribute is a NumPy array, so a model fitted on JAX or torch loads where
    neither is installed; transform there names what to install, or runs on NumPy."""
    import os
    import pickle
    import subprocess
    import sys

    model = UKR(sigma=0.3, max_iter=20, backend=backend).fit(saddle)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    for name in ("embedding_", "history_", "snapshots_", "X_fit_"):
        assert type(getattr(model, name)) is np.ndarray, name
    # A site-packages without jax and torch: links to everything else in this one (no .pth
    # files run under -S, so the project comes from PYTHONPATH).
    site = Path(np.__file__).resolve().parents[1]
    shadow = tmp_path / "site"
    shadow.mkdir()
    for entry in site.iterdir():
        if not entry.name.lower().startswith(("jax", "torch", "functorch", "triton")):
            (shadow / entry.name).symlink_to(entry)
    code = f"""
import pickle
import numpy as np
model = pickle.loads(open({str(path)!r}, "rb").read())
X = model.X_fit_[:5] + 0.01  # new points: the training points' latents need no backend
try:
    model.transform(X)
    print("transformed")
except Exception as exc:
    print(type(exc).__name__, exc)
model.set_params(backend="numpy")
np.save({str(tmp_path / "z.npy")!r}, model.transform(X))
"""
    root = Path(__file__).resolve().parents[1]
    env = {"PYTHONPATH": f"{shadow}{os.pathsep}{root}", "PATH": os.environ.get("PATH", "")}
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, check=False, env=env
    )
    assert out.returncode == 0, out.stderr
    if backend == "numpy":
        assert out.stdout.strip() == "transformed"
    else:
        assert out.stdout.startswith("BackendNotInstalledError")
        assert f"ukr-bench[{backend}]" in out.stdout
    # on NumPy, the loaded model transforms as the fitted one does on its backend
    np.testing.assert_allclose(
        np.load(tmp_path / "z.npy"), model.transform(saddle[:5] + 0.01), rtol=1e-6, atol=1e-9
    )
