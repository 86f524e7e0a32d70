"""What the objective and the learned map mean outside ``value_and_grad``.

* ``value()`` (and its compiled form, the one the harness times and the estimator records) is
  the same E(Z) as ``value_and_grad()[0]``, and both equal a hand-worked N = 3 case.
* The estimator's ``history_`` is the objective it optimises, the prior included.
* The learned map f, ``inverse_transform`` and the projection far (40 sigma and more) from every
  training latent: finite, and equal to their nearest-neighbour limit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import random_problem
from error_model import tolerance

from ukr_bench import UKR, Params, get_backend, relative_error, value_and_grad

DTYPES = ["float32", "float64"]
# Same computation in the same precision, or a limit the weights reach exactly (exp(-290)):
# problems of at most 16 points, so sums of at most 16 terms (error_model.tolerance).
SAME = {dtype: tolerance(dtype, 16) for dtype in DTYPES}


# -- value() is the objective value_and_grad() differentiates --------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("loo", "lam"), [(True, 0.0), (True, 0.4), (False, 0.0), (False, 0.4)])
def test_value_equals_value_and_grad(backend: str, dtype: str, loo: bool, lam: float) -> None:
    """``value`` == ``value_and_grad()[0]``, through the method and through ``compile``.

    Independent reference: ``value_and_grad``'s value, which the agreement and finite-difference
    tests pin down; with lam = 0.4 the prior term is ~15 % of E, so a value() without it fails.
    """
    Z, X = random_problem(9, 2, 3, seed=11, z_scale=0.8)
    b = get_backend(backend, dtype=dtype)
    Zd, Xd = b.asarray(Z), b.asarray(X)
    params = Params(sigma=0.8, lam=lam, loo=loo)
    ref = float(b.to_numpy(b.value_and_grad(Zd, Xd, 0.8, lam, loo)[0]))
    method = float(b.to_numpy(b.sync(b.value(Zd, Xd, 0.8, lam, loo))))
    compiled_value = b.compile("value", Zd, Xd, params)
    compiled_vag = b.compile("value_and_grad", Zd, Xd, params)
    compiled = float(b.to_numpy(b.sync(compiled_value(Zd, Xd))))
    compiled_ref = float(b.to_numpy(b.sync(compiled_vag(Zd, Xd))[0]))
    assert relative_error(method, ref) <= SAME[dtype]
    assert relative_error(compiled, ref) <= SAME[dtype]
    assert relative_error(compiled_ref, ref) <= SAME[dtype]
    # The prior term is part of both: it is lam * sum(Z^2) / N of the float64 data.
    if lam:
        no_prior = float(b.to_numpy(b.value(Zd, Xd, 0.8, 0.0, loo)))
        # a difference of two E's (cancellation by |E| / prior <= 1e2 here) of SAME's accuracy
        assert method - no_prior == pytest.approx(lam * np.sum(Z**2) / 9, rel=1e2 * SAME[dtype])


def _hand_worked(loo: bool, lam: float) -> float:
    """E(Z) for Z = (0, 1, 3)^T, X = (1, -1, 2)^T (N = 3, L = D = 1), sigma = 1, by hand.

    Kernels exp(-d^2 / 2): d^2 = 1 between z = 0 and 1, 4 between 1 and 3, 9 between 0 and 3.
    """
    e1, e4, e9 = math.exp(-0.5), math.exp(-2.0), math.exp(-4.5)
    if loo:  # each point from the other two
        y0 = (e1 * -1 + e9 * 2) / (e1 + e9)
        y1 = (e1 * 1 + e4 * 2) / (e1 + e4)
        y2 = (e9 * 1 + e4 * -1) / (e9 + e4)
    else:  # the point itself enters with kernel 1
        y0 = (1 * 1 + e1 * -1 + e9 * 2) / (1 + e1 + e9)
        y1 = (e1 * 1 + 1 * -1 + e4 * 2) / (e1 + 1 + e4)
        y2 = (e9 * 1 + e4 * -1 + 1 * 2) / (e9 + e4 + 1)
    squared_errors = (1 - y0) ** 2 + (-1 - y1) ** 2 + (2 - y2) ** 2
    return (squared_errors + lam * (0**2 + 1**2 + 3**2)) / 3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("loo", "lam"), [(True, 0.0), (True, 0.5), (False, 0.5)])
def test_value_matches_hand_worked_case(backend: str, dtype: str, loo: bool, lam: float) -> None:
    """Every entry point against E written out by hand for N = 3 (:func:`_hand_worked`)."""
    Z, X = np.array([[0.0], [1.0], [3.0]]), np.array([[1.0], [-1.0], [2.0]])
    expected = _hand_worked(loo, lam)
    tol = tolerance(dtype, 4)  # N = 3: sums of at most 4 terms
    assert value_and_grad(Z, X, backend=backend, dtype=dtype, lam=lam, loo=loo)[0] == (
        pytest.approx(expected, rel=tol)
    )
    b = get_backend(backend, dtype=dtype)
    Zd, Xd = b.asarray(Z), b.asarray(X)
    f = b.compile("value", Zd, Xd, Params(sigma=1.0, lam=lam, loo=loo))
    assert float(b.to_numpy(b.sync(f(Zd, Xd)))) == pytest.approx(expected, rel=tol)
    assert float(b.to_numpy(b.value(Zd, Xd, 1.0, lam, loo))) == pytest.approx(expected, rel=tol)


@pytest.mark.parametrize("optimizer", ["gd", "rprop", "lbfgs"])
def test_history_is_the_optimised_objective_with_prior(backend: str, optimizer: str) -> None:
    """``history_[i]`` is E(``snapshots_[i]``) with the prior, for every iteration.

    Independent reference: the public ``value_and_grad`` (NumPy, float64) at each snapshot.
    """
    X, _ = random_problem(30, 3, 3, seed=2)
    lam = 0.3
    model = UKR(
        sigma=0.5,
        lam=lam,
        backend=backend,
        optimizer=optimizer,
        max_iter=5,
        snapshot_every=1,
        init="random",
        random_state=0,
    ).fit(X)
    assert len(model.snapshots_) == len(model.history_) == model.n_iter_ + 1
    expected = [value_and_grad(Z, X, sigma=0.5, lam=lam)[0] for Z in model.snapshots_]
    np.testing.assert_allclose(model.history_, expected, rtol=SAME["float64"])  # same E, again
    np.testing.assert_array_equal(model.snapshots_[-1], model.embedding_)


# -- far from the data: the nearest-neighbour limit ------------------------------------------

SIGMA = 0.1
# Training latents: the corners of the unit square (10 sigma apart), data distinct.
Z_TRAIN = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
X_TRAIN = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0], [4.0, -2.0, 1.0], [0.0, 0.0, -3.0]])


def _far_queries() -> tuple[np.ndarray, np.ndarray]:
    """Queries 40, 100, 1000 and 10^4 sigma from every training latent, and the index of the
    nearest one, by hand: outward past corner k, diagonally or along a skew direction.

    Diagonally (distance r), the next corner is at squared distance r^2 + sqrt(2) r + 1; along
    the skew directions (0.6, 0.8) up to the square's symmetries, at r^2 + 1.2 r + 1 or more.
    From r = 40 sigma = 4 the gap is > 5.8, 290 in the logits (exp(-290) ~ 1e-126).
    """
    rows, nearest = [], []
    for r in [40 * SIGMA, 100 * SIGMA, 1000 * SIGMA, 1e4 * SIGMA]:
        s = r / math.sqrt(2)
        corner_queries = [(-s, -s), (1 + s, -s), (-s, 1 + s), (1 + s, 1 + s)]
        for k, q in enumerate(corner_queries):
            rows.append(q)
            nearest.append(k)
        skew = [(-0.6 * r, -0.8 * r), (1 + 0.8 * r, -0.6 * r)]
        skew += [(-0.8 * r, 1 + 0.6 * r), (1 + 0.6 * r, 1 + 0.8 * r)]
        rows += skew
        nearest += [0, 1, 2, 3]
    return np.array(rows), np.array(nearest)


def _min_distance_in_sigma(Zq: np.ndarray) -> float:
    return float(np.sqrt(((Zq[:, None] - Z_TRAIN[None]) ** 2).sum(-1)).min() / SIGMA)


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_far_from_training_latents_is_nearest_neighbour(backend: str, dtype: str) -> None:
    """f(z) 40 sigma and more from every training latent is x of the nearest one.

    Independent reference: the limit of the Nadaraya-Watson map, indices worked out by hand in
    :func:`_far_queries`. The gap to the second-nearest latent is at least 290 in the logits
    (exp(-290) ~ 1e-126), so the limit is exact in both precisions; the naive
    exp/sum(exp) form gives 0/0 here (every kernel underflows from 40 sigma in float64).
    """
    Zq, nearest = _far_queries()
    assert _min_distance_in_sigma(Zq) >= 40 - 1e-9
    b = get_backend(backend, dtype=dtype)
    f = b.to_numpy(b.predict(b.asarray(Zq), b.asarray(Z_TRAIN), b.asarray(X_TRAIN), SIGMA))
    assert np.all(np.isfinite(f))
    np.testing.assert_allclose(f, X_TRAIN[nearest], rtol=0, atol=SAME[dtype])
    # the same through the estimator (the demo's grid goes through inverse_transform)
    model = _model_with(Z_TRAIN, X_TRAIN, backend, dtype)
    np.testing.assert_allclose(model.inverse_transform(Zq), X_TRAIN[nearest], atol=SAME[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_projection_far_from_training_latents_is_nearest_neighbour(
    backend: str, dtype: str
) -> None:
    """E_q at far queries is sum_q ||x_q - x_nearest(q)||^2, and its gradient is 0.

    Independent reference: the nearest-neighbour limit worked out by hand; with the weights
    saturated (0 and 1 to within exp(-290)) E_q does not change under small moves, so the exact
    gradient is 0. Computed, it is rounding noise: the hand-derived form takes
    e.x_m - e.y_q = 0 as a difference of two rounded dot products (measured 5e-4 in float32 at
    40 sigma), which dE_q/dz_q multiplies by |z_q - z_m| / sigma^2. So the bound is the unit
    roundoff times the gradient's term 2 |e_q| (|x_m| + |y_q|) |z_q - z_m| / sigma^2.
    """
    Zq, nearest = _far_queries()
    Xq = np.random.default_rng(0).normal(size=(len(Zq), 3))
    b = get_backend(backend, dtype=dtype)
    dev = [b.asarray(a) for a in (Zq, Xq, Z_TRAIN, X_TRAIN)]
    v, g = b.project_value_and_grad(*dev, SIGMA)
    v, g = float(b.to_numpy(v)), b.to_numpy(g)
    assert np.isfinite(v)
    assert np.all(np.isfinite(g))
    assert v == pytest.approx(np.sum((Xq - X_TRAIN[nearest]) ** 2), rel=SAME[dtype])
    e = X_TRAIN[nearest] - Xq
    term = (
        2
        * np.linalg.norm(e, axis=1)
        * 2
        * np.linalg.norm(X_TRAIN[nearest], axis=1)
        * np.linalg.norm(Zq - Z_TRAIN[nearest], axis=1)
        / SIGMA**2
    )
    noise = 8 * np.finfo(dtype).eps * term
    assert np.all(np.linalg.norm(g, axis=1) <= noise), np.linalg.norm(g, axis=1) / noise


def _model_with(Z: np.ndarray, X: np.ndarray, backend: str, dtype: str) -> UKR:
    model = UKR(sigma=SIGMA, backend=backend, dtype=dtype)
    model.embedding_ = Z.astype(dtype)
    model.X_fit_ = X.astype(dtype)
    model.n_features_in_ = X.shape[1]
    return model


@pytest.mark.parametrize("dtype", DTYPES)
def test_transform_with_latents_far_apart_is_nearest_neighbour(backend: str, dtype: str) -> None:
    """Training latents 100 sigma apart: transform(x) is the latent of the nearest x_m.

    ``transform`` starts at that latent and follows the gradient of E_q, which is exactly 0
    there when every other latent is 100 sigma away (exp(-5000) underflows): the projection
    stays put, and f of it is x_m. (A query latent cannot itself get far from every training
    latent: it starts on one, is clipped to their bounding box and stops where the gradient
    vanishes; the far regime of E_q is the test above.) Independent reference: the nearest
    neighbour in data space, by hand (the queries are x_m plus small offsets).
    """
    Z = 100 * SIGMA * Z_TRAIN
    model = _model_with(Z, X_TRAIN, backend, dtype)
    offsets = 0.1 * np.random.default_rng(1).normal(size=X_TRAIN.shape)
    order = [2, 0, 3, 1]
    Zq = model.transform(X_TRAIN[order] + offsets)
    assert np.all(np.isfinite(Zq))
    np.testing.assert_array_equal(Zq, Z[order].astype(dtype))
    np.testing.assert_allclose(model.inverse_transform(Zq), X_TRAIN[order], atol=SAME[dtype])


def test_far_queries_are_far_and_tie_free() -> None:
    """The hand-picked nearest indices of :func:`_far_queries` against a brute-force search."""
    Zq, nearest = _far_queries()
    d2 = ((Zq[:, None] - Z_TRAIN[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(d2.argmin(1), nearest)
    gap = np.sort(d2, axis=1)[:, 1] - d2.min(1)
    assert gap.min() / (2 * SIGMA**2) >= 290 - 1e-9
