"""scikit-learn's own estimator checks (``check_estimator``) on ``ukr_bench.UKR``, every one.

No check is marked as an expected failure; the one skip is scikit-learn's own (its array API
check runs only with SCIPY_ARRAY_API set). The checks fit many times on data of up to a few
hundred samples. ``UKR()`` is checked with its defaults (numpy backend, 200 iterations of
iRprop+): a few seconds here. The torch backend is checked too (read-only memory maps, dtype
conversion on another framework's arrays), with ``max_iter=10`` to keep its eager per-step
overhead to about 15 s on this project's 2-core machine; JAX is left out of this file because
it compiles for every new data shape the checks use (about 30 s even at ``max_iter=10``), and
its read-only inputs are tested in test_estimator.py. The third estimator sets the parameters
whose defaults the first leaves: a number for ``sigma`` and a thread limit (``n_jobs``), which
every method applies and restores.
"""

from __future__ import annotations

from collections.abc import Callable

from sklearn.utils.estimator_checks import parametrize_with_checks

from ukr_bench import UKR


@parametrize_with_checks(
    [UKR(), UKR(backend="torch", max_iter=10), UKR(sigma=0.5, n_jobs=1, max_iter=20)]
)
def test_sklearn_check(estimator: UKR, check: Callable[[UKR], None]) -> None:
    check(estimator)
