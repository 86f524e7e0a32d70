"""``n_jobs``: validated, applied while the estimator computes, restored afterwards.

The thread counts are read inside the computation: ``get_backend`` is wrapped, in the modules
that call it, by a spy that records the BLAS/OpenMP pools (``threadpoolctl.threadpool_info``)
and torch's pool each time a fit, a projection or the map asks for the backend, which they do
within the limit. The limit asked for differs from the count found before, so a limit that is
not applied fails the test.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest
from error_model import TRAJECTORY_TOL

import ukr_bench
from backends.threads import block_workers, check_n_jobs, limit_threads, usable_cpu_count
from ukr_bench import relative_error
from ukr_bench.interface import get_backend

pytest.importorskip("sklearn")
threadpoolctl = pytest.importorskip("threadpoolctl")

from ukr_bench import UKR, estimator, training

X, _ = ukr_bench.make_dataset("saddle", 40, noise=0.05, random_state=0)


def pools() -> dict[str, int]:
    """Thread count of every BLAS/OpenMP pool loaded, and torch's where torch is imported."""
    info = {f"{p['internal_api']}:{p['filepath']}": p["num_threads"] for p in _info()}
    if "torch" in sys.modules:
        info["torch"] = sys.modules["torch"].get_num_threads()
    return info


def _info() -> list[dict[str, Any]]:
    return threadpoolctl.threadpool_info()


def a_limit_other_than(before: dict[str, int]) -> int:
    """A thread count that no pool has now, so that applying it is visible."""
    return 1 if max(before.values()) > 1 else 2


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, int]]:
    seen: list[dict[str, int]] = []
    real = get_backend

    def recording(*args: Any, **kwargs: Any) -> Any:
        backend = real(*args, **kwargs)
        seen.append(pools())
        return backend

    monkeypatch.setattr(training, "get_backend", recording)
    monkeypatch.setattr(estimator, "get_backend", recording)
    return seen


# -- validation -------------------------------------------------------------------------------


def test_check_n_jobs_follows_scikit_learns_convention() -> None:
    assert check_n_jobs(None) is None
    assert check_n_jobs(3) == 3
    assert check_n_jobs(np.int64(2)) == 2  # grids hold NumPy integers
    assert check_n_jobs(-1) == usable_cpu_count()
    assert check_n_jobs(-1, cpus=8) == 8
    assert check_n_jobs(-2, cpus=8) == 7  # joblib: all CPUs but one
    assert check_n_jobs(-8, cpus=8) == 1


@pytest.mark.parametrize(
    ("n_jobs", "error", "match"),
    [
        (0, ValueError, r"^n_jobs must be None or a nonzero integer \(-1: every CPU\), got 0$"),
        (-9, ValueError, r"^n_jobs=-9 leaves no thread: it means 8 CPUs \+ 1 \+ \(-9\) = 0$"),
        (1.5, TypeError, r"^n_jobs must be None or a nonzero integer, got 1\.5$"),
        (2.0, TypeError, r"^n_jobs must be None or a nonzero integer, got 2\.0$"),
        (True, TypeError, r"^n_jobs must be None or a nonzero integer, got True$"),
        ("4", TypeError, r"^n_jobs must be None or a nonzero integer, got '4'$"),
    ],
)
def test_bad_n_jobs_is_refused_naming_it(n_jobs: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        check_n_jobs(n_jobs, cpus=8)


@pytest.mark.parametrize("method", ["fit", "transform", "inverse_transform", "score"])
def test_the_estimator_refuses_bad_n_jobs_before_changing_anything(method: str) -> None:
    before = pools()
    model = UKR(max_iter=3).fit(X)
    model.set_params(n_jobs=0)
    arg = model.embedding_ if method == "inverse_transform" else X + 0.01
    with pytest.raises(ValueError, match=r"^n_jobs must be None or a nonzero integer"):
        getattr(model, method)(arg)
    assert pools() == before


def test_without_threadpoolctl_n_jobs_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import threadpoolctl fails
    with pytest.raises(
        ImportError,
        match=r"n_jobs \(the BLAS and OpenMP pools\) needs threadpoolctl.*ukr-bench\[sklearn\]",
    ):
        UKR(max_iter=3, n_jobs=1).fit(X)
    UKR(max_iter=3).fit(X)  # None needs nothing


# -- applied and restored -------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_n_jobs_holds_during_fit_and_projection_and_is_restored(
    backend: str, spy: list[dict[str, int]]
) -> None:
    if backend == "torch":
        pytest.importorskip("torch")
    ukr_bench.get_backend(backend)  # its libraries loaded, so that "before" sees their pools
    before = pools()
    k = a_limit_other_than(before)
    model = UKR(max_iter=3, backend=backend, n_jobs=k).fit(X)
    assert spy, "the fit never asked for its backend"
    assert pools() == before
    model.transform(X + 0.01)
    model.inverse_transform(model.embedding_)
    model.score(X + 0.01)
    assert len(spy) >= 4
    for during in spy:
        assert set(during) >= set(before)
        assert all(n == k for n in during.values()), during
    if backend == "torch":
        assert "torch" in spy[0]
    assert pools() == before


def test_n_jobs_none_changes_nothing(spy: list[dict[str, int]]) -> None:
    ukr_bench.get_backend("numpy")
    before = pools()
    UKR(max_iter=3).fit(X).transform(X + 0.01)
    assert spy
    assert all(during == before for during in spy)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_the_limit_is_restored_when_the_fit_raises(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend == "torch":
        pytest.importorskip("torch")
    ukr_bench.get_backend(backend)
    before = pools()
    k = a_limit_other_than(before)
    seen = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        seen.append(pools())
        raise RuntimeError("planted failure in the optimiser")

    monkeypatch.setattr(training, "_fit_first_order", failing)
    with pytest.raises(RuntimeError, match="planted failure"):
        UKR(max_iter=3, backend=backend, n_jobs=k).fit(X)
    assert seen
    assert all(n == k for n in seen[0].values())
    assert pools() == before


def test_n_jobs_bounds_numpys_block_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """NumPy's blocked layout starts at most n_jobs block workers during a fit, then as many
    as before; the limit is the calling context's, not another thread's."""
    import concurrent.futures

    from ukr_bench.system import cpu_count

    backend = get_backend("numpy", layout="blocked", block_size=8)
    assert backend.workers() == block_workers() == cpu_count()
    seen: list[int] = []
    real = training.get_backend

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(block_workers())
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "get_backend", recording)
    UKR(max_iter=2, layout="blocked", n_jobs=1).fit(X)
    assert seen
    assert set(seen) == {1}
    with limit_threads(1), concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert backend.workers() == 1
        assert pool.submit(block_workers).result() == cpu_count()  # another thread's context
    assert backend.workers() == cpu_count()


def test_limit_threads_yields_the_count_and_nests() -> None:
    before = pools()
    k = a_limit_other_than(before)
    with limit_threads(k) as outer:
        assert outer == k
        with limit_threads(-1) as inner:
            assert inner == usable_cpu_count()
        assert all(n == k for n in pools().values())
    assert pools() == before
    with limit_threads(None) as none:
        assert none is None


# -- the model does not depend on it ----------------------------------------------------------


def test_n_jobs_changes_the_rounding_not_the_fit() -> None:
    """Small steps over 10 iterations (test_estimator's trajectory test): threads change only
    the order of the BLAS sums, which the trajectory tolerance covers."""
    kw: dict[str, Any] = {
        "optimizer": "rprop",
        "learning_rate": 0.001,
        "max_iter": 10,
        "snapshot_every": 1,
    }
    ref = UKR(**kw, init="random", random_state=1).fit(X)
    one = UKR(**kw, init="random", random_state=1, n_jobs=1).fit(X)
    assert relative_error(one.snapshots_, ref.snapshots_) < TRAJECTORY_TOL
    assert relative_error(one.history_, ref.history_) < TRAJECTORY_TOL


def test_the_thread_benchmark_runs_at_a_small_size() -> None:
    """benchmarks/estimator_threads.py at a tiny size: it runs and times every setting (its
    times are printed, never checked)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "estimator_threads.py"
    spec = importlib.util.spec_from_file_location("estimator_threads", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--n", "30", "--max-iter", "2", "--repeats", "2", "--backends", "numpy"]
    times = module.main([*argv, "--n-jobs", "1", "-1"])
    assert list(times) == ["numpy"]
    assert list(times["numpy"]) == ["None", "1", "-1"]
    assert all(len(v) == 2 for v in times["numpy"].values())
