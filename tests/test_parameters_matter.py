"""Every parameter of the model changes the fit under the defaults: a grid search over it on
the digits gives a different held-out score for each value.

With ``lam = 0`` and no box, E(Z; sigma) = E(Z / sigma; 1), and a start scaled with sigma made
every sigma give the same fit up to scale (the scores of ``sigma`` in {0.5, 1, 2} agreed to the
last bit): the grid of ``sigma`` pins that this cannot happen again. Its values are powers of
two, for which that scaling is exact in floating point, so a regression would give equal
scores, not nearly equal ones.

Reference for "different": two evaluations of the same fit differ by rounding, at most
``FIT_TOL`` relative (error_model.py); two values of a parameter must give held-out scores
that differ by more. The parameters that say where and how the fit runs (backend, dtype,
device, gradient, layout, n_jobs, verbose, snapshot_every) change its rounding, not the model:
the last test here, test_threads.py and test_estimator.py check that.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from error_model import FIT_TOL

import ukr_bench
from ukr_bench import UKR

pytest.importorskip("sklearn")

N_DIGITS = 300
BASE: dict[str, Any] = {
    "max_iter": 15,
    "n_jobs": 1,
}  # few iterations, one thread: the machine is shared

GRIDS: dict[str, list[Any]] = {
    "n_components": [1, 2, 3],
    "sigma": ["auto", 0.25, 0.5, 1.0],
    "lam": [0.0, 0.01, 0.1],
    "loo": [True, False],
    "optimizer": ["rprop", "gd", "lbfgs"],
    "max_iter": [3, 15],
    "learning_rate": [None, 0.002, 0.05],
    "init": ["pca", "random"],
    "constraint": ["none", "box"],
}
#: random_state seeds init="random" only (the PCA start has no randomness): its grid is there.
WITH_RANDOM_INIT: dict[str, list[Any]] = {"random_state": [0, 1, 2]}


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    X, _ = ukr_bench.make_dataset("digits", N_DIGITS, random_state=0)
    return X


def _scores(X: np.ndarray, base: dict[str, Any], grid: dict[str, list[Any]]) -> np.ndarray:
    from sklearn.model_selection import GridSearchCV

    search = GridSearchCV(UKR(**base), grid, cv=2, error_score="raise").fit(X)
    return np.asarray(search.cv_results_["mean_test_score"])


def _assert_all_different(scores: np.ndarray, name: str) -> None:
    assert np.all(np.isfinite(scores)), (name, scores)
    for (i, a), (j, b) in itertools.combinations(enumerate(scores), 2):
        gap = abs(a - b) / max(abs(a), abs(b))
        assert gap > FIT_TOL, f"{name}: values {i} and {j} give the same score {a!r}, {b!r}"


def test_the_defaults_are_what_the_grids_vary_from() -> None:
    defaults = UKR().get_params()
    for name, values in GRIDS.items():  # random_state's default, None, draws a fresh seed
        if name != "max_iter":  # the base is shortened to keep the test fast
            assert defaults[name] in values, name
    assert set(GRIDS) | set(WITH_RANDOM_INIT) | {
        "backend",
        "dtype",
        "device",
        "gradient",
        "layout",
        "n_jobs",
        "verbose",
        "snapshot_every",
    } == set(defaults)


@pytest.mark.parametrize("name", list(GRIDS))
def test_a_grid_search_over_each_parameter_gives_different_scores(
    digits: np.ndarray, name: str
) -> None:
    _assert_all_different(_scores(digits, BASE, {name: GRIDS[name]}), name)


def test_random_state_changes_the_random_start(digits: np.ndarray) -> None:
    scores = _scores(digits, {**BASE, "init": "random"}, WITH_RANDOM_INIT)
    _assert_all_different(scores, "random_state")


def test_sigma_auto_is_the_best_start_of_its_candidates(digits: np.ndarray) -> None:
    """``"auto"`` picks, among the start's half-width times AUTO_SIGMAS, the bandwidth with the
    lowest E at the start; reference: E of the PCA start at every candidate, evaluated here
    with the public value_and_grad."""
    from ukr_bench.starts import AUTO_SIGMAS

    model = UKR(max_iter=0).fit(digits)
    Z0 = model.embedding_  # max_iter=0: the start, max |z| = 1
    assert np.abs(Z0).max() == 1.0
    errors = [ukr_bench.value_and_grad(Z0, digits, sigma=c)[0] for c in AUTO_SIGMAS]
    assert model.sigma_ == AUTO_SIGMAS[int(np.argmin(errors))]
    assert model.history_[0] == pytest.approx(min(errors), rel=FIT_TOL)
    # a number is used as it is, and is sigma_
    assert UKR(sigma=0.3, max_iter=0).fit(digits).sigma_ == 0.3


def test_verbose_and_snapshots_leave_the_fit_unchanged(digits: np.ndarray) -> None:
    ref = UKR(max_iter=6).fit(digits[:100])
    other = UKR(max_iter=6, snapshot_every=2, verbose=3).fit(digits[:100])
    np.testing.assert_array_equal(other.embedding_, ref.embedding_)
    np.testing.assert_array_equal(other.history_, ref.history_)
