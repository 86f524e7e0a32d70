"""The harness's decisions without running a worker: estimates and bound, skip and failure policy.

tests/test_bench.py runs the same decisions end to end through workers; here each is a
function of its inputs.
"""

from __future__ import annotations

import pytest

from ukr_bench.bench.bound import Rates, bound, work_per_pair
from ukr_bench.bench.config import SweepConfig
from ukr_bench.bench.estimates import memory_estimate, memory_limit
from ukr_bench.bench.policy import MAX_REASON_CHARS, is_oom, record_failure, skip_reason
from ukr_bench.bench.timing import base_row, fits_timed
from ukr_bench.schema import ConfigKey, Row, RunMeta, Status, Timing

CFG = SweepConfig(backends=["numpy"], ns=[8, 16, 32], max_call_seconds=1.0)


def key(n: int, layout: str = "dense", device: str = "cpu") -> ConfigKey:
    return ConfigKey("numpy", layout, "manual", "float64", device, n)


def ok_row(n: int, median_s: float) -> Row:
    row = base_row(key(n), CFG)
    row.status = Status.OK
    row.timings["value_and_grad"] = Timing.from_samples(
        [median_s] * 3, first_s=median_s, compile_s=0.0
    )
    return row


@pytest.mark.parametrize(
    ("exc", "oom"),
    [
        (MemoryError(), True),
        (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), True),
        (RuntimeError("RESOURCE_EXHAUSTED: while allocating"), True),
        (type("OutOfMemoryError", (RuntimeError,), {})("no room"), True),
        (ValueError("boom"), False),
    ],
)
def test_is_oom(exc: BaseException, oom: bool) -> None:
    assert is_oom(exc) is oom
    row = record_failure(base_row(key(8), CFG), exc)
    assert row.status is (Status.OOM if oom else Status.ERROR)
    assert row.reason.startswith(type(exc).__name__)


def test_a_failures_reason_is_cut() -> None:
    row = record_failure(base_row(key(8), CFG), ValueError("x" * 5000))
    assert len(row.reason) == MAX_REASON_CHARS


def test_skip_reasons_in_order() -> None:
    assert skip_reason(key(8), [], CFG, 10, None) is None
    assert skip_reason(key(8), [], CFG, 10, 100) is None
    assert skip_reason(key(8), [], CFG, 3 * 2**30, 2**30) == "estimated 3.0 GiB > limit 1.0 GiB"
    # O(N^2) from the largest N measured: 0.2 s at N = 8 is 0.8 s at 16 and 3.2 s at 32
    rows = [ok_row(8, 0.2)]
    assert skip_reason(key(16), rows, CFG, 10, None) is None
    slow = skip_reason(key(32), rows, CFG, 10, None)
    assert slow is not None
    assert slow.startswith("predicted 3.2 s per value + gradient call")
    assert skip_reason(key(32), rows, SweepConfig(backends=["numpy"], max_call_seconds=0), 10, None) is None  # fmt: skip
    # a fatal failure at a smaller N comes first
    failed = base_row(key(16), CFG)
    failed.status = Status.TIMEOUT
    assert skip_reason(key(32), [*rows, failed], CFG, 3 * 2**30, 2**30) == (
        "timeout at N=16: larger N skipped"
    )


def test_memory_limit_and_estimate() -> None:
    meta = RunMeta(machine={"memory_available_bytes": 1000, "gpus": [{"memory.total": "2 MiB"}]})
    assert memory_limit(key(8), CFG, meta) == int(CFG.memory_fraction * 1000)
    assert memory_limit(key(8, device="cuda"), CFG, meta) == int(CFG.memory_fraction * 2**21)
    assert memory_limit(key(8, device="cuda:1"), CFG, meta) is None  # no such GPU recorded
    assert memory_limit(key(8), CFG, RunMeta()) is None
    # dense grows as N^2, blocked as N (rows per block fixed by the cache target)
    dense = [memory_estimate(key(n), CFG) for n in (1000, 2000)]
    blocked = [memory_estimate(key(n, "blocked"), CFG) for n in (1000, 2000)]
    assert 3.9 < dense[1] / dense[0] < 4.1
    assert blocked[1] < 2.5 * blocked[0]
    assert blocked[0] < dense[0]


def test_bound_counts_pairs() -> None:
    """N^2 ordered pairs, each its layout's work at the rates (tests/test_bound.py: the rest)."""
    rates = Rates(exp=1e9, fma=1e10, gemm=1e11)
    for layout in ("dense", "blocked"):
        w = work_per_pair("numpy", layout, "manual", "float64", CFG.latent_dim, 3)
        one = bound(key(10, layout), rates)
        assert one == pytest.approx(100 * (1e-9 + w.elementwise / 1e10 + w.matmul / 1e11))
        assert bound(key(20, layout), rates) == pytest.approx(4 * one)


def test_time_to_fit_once_per_backend_dtype_and_n() -> None:
    assert fits_timed(key(8), CFG)
    assert not fits_timed(key(8, "blocked"), CFG)
    assert not fits_timed(key(4000), CFG)  # above fit_max_n
    assert not fits_timed(key(8), SweepConfig(backends=["numpy"], fit_iters=0))


def test_precision_is_measured_up_to_reference_max_n() -> None:
    """Above ``reference_max_n`` no host reference is computed: the errors stay empty, and the
    row says why."""
    from ukr_bench.bench.timing import measure_case
    from ukr_bench.bench.worker import references

    cfg = SweepConfig(
        backends=["numpy"], ns=[8, 16], reference_max_n=8, fit_iters=0, min_rounds=1,
        max_rounds=1, min_time=0.0, warmup=0,
    )  # fmt: skip
    real = references(cfg)
    asked: list[int] = []

    def reference(k: ConfigKey) -> tuple[float, object]:
        asked.append(k.n)
        return real(k)

    small, large = (measure_case(key(n), cfg, reference) for n in (8, 16))
    assert asked == [8]
    assert small.grad_rel_error is not None
    assert small.value_rel_error is not None
    assert small.grad_rel_error < 1e-12  # float64 NumPy against itself
    assert large.grad_rel_error is None
    assert large.value_rel_error is None
    assert large.info["precision"] == "not measured: N > --reference-max-n 8"
    with pytest.raises(ValueError, match="reference_max_n"):
        SweepConfig(backends=["numpy"], reference_max_n=-1)
