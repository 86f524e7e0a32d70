"""What the worker does instead of measuring: skip a configuration, or record its failure.

A configuration is skipped, with the reason in its row, when

* it is the fused layout on a CPU, where its kernels run in interpret mode, which is for
  correctness, not speed (:func:`interpreted_reason`; a dry run of a GPU benchmark measures
  them anyway with :data:`MEASURE_INTERPRETED_ENV` set);
* a smaller N of its series failed fatally (error, out of memory, time-out, crash): larger N
  would fail too, and each failure can cost a whole time-out;
* its memory estimate (:func:`ukr_bench.bench.estimates.memory_estimate`) exceeds the
  memory it may use;
* one value + gradient call is predicted to take longer than ``--max-call-seconds``.

A configuration whose measurement raises is recorded as ``oom`` when the exception is a
framework's out-of-memory error (:func:`is_oom`), as ``error`` otherwise; the sweep goes on.
"""

from __future__ import annotations

import os

from ukr_bench.bench.config import SweepConfig
from ukr_bench.devices import parse_devices
from ukr_bench.schema import ConfigKey, Row, Status

#: A failure's reason is cut to this many characters (a traceback's message can be long).
MAX_REASON_CHARS = 2000
#: ``=1`` in the environment of a sweep: measure the fused layout on a CPU too, in interpret
#: mode, as a dry run of a GPU benchmark (``benchmarks/gpu_check.sh``); its times mean nothing.
MEASURE_INTERPRETED_ENV = "UKR_BENCH_MEASURE_INTERPRETED"


def interpreted_reason(key: ConfigKey) -> str | None:
    """Why ``key`` is skipped as a fused configuration on a CPU, or None (it is not one, or
    :data:`MEASURE_INTERPRETED_ENV` is ``1``)."""
    if key.layout != "fused" or parse_devices(key.device)[0] != "cpu":
        return None
    if os.environ.get(MEASURE_INTERPRETED_ENV) == "1":
        return None
    return (
        "fused layout on a CPU: its kernels run in interpret mode, which is for correctness, "
        "not speed; it is measured on a GPU"
    )


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` says the device or the host ran out of memory, in any framework's words.

    Python's ``MemoryError``, JAX's ``RESOURCE_EXHAUSTED``, torch's ``OutOfMemoryError`` and
    any message with "out of memory" (CUDA's, KeOps').
    """
    if isinstance(exc, MemoryError):
        return True
    text = f"{type(exc).__name__}: {exc}"
    return "OutOfMemory" in text or "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def record_failure(row: Row, exc: BaseException) -> Row:
    """``row`` marked ``oom`` or ``error``, with the exception as its reason."""
    row.status = Status.OOM if is_oom(exc) else Status.ERROR
    row.reason = f"{type(exc).__name__}: {exc}"[:MAX_REASON_CHARS]
    return row


def predicted_call_seconds(key: ConfigKey, rows: list[Row], cfg: SweepConfig) -> str | None:
    """Why ``key`` is skipped for time, or None: the series' value + gradient median at its
    largest N measured, scaled by (N / that N)^2 (the cost is O(N^2)), beyond
    ``cfg.max_call_seconds``. Warm-up and the timed rounds cost several calls each, so one
    configuration predicted at a minute per call would hold the sweep for ten."""
    if not cfg.max_call_seconds:
        return None
    done = [
        r
        for r in rows
        if r.key.series == key.series
        and r.key.devices == key.devices
        and r.key.n < key.n
        and r.status == Status.OK
        and "value_and_grad" in r.timings
    ]
    if not done:
        return None
    last = max(done, key=lambda r: r.key.n)
    t = last.timings["value_and_grad"].median_s * (key.n / last.key.n) ** 2
    if t <= cfg.max_call_seconds:
        return None
    return (
        f"predicted {t:.3g} s per value + gradient call (O(N^2) from "
        f"{last.timings['value_and_grad'].median_s:.3g} s at N={last.key.n}) "
        f"> --max-call-seconds {cfg.max_call_seconds:g}"
    )


def skip_reason(
    key: ConfigKey, rows: list[Row], cfg: SweepConfig, estimate: int | None, limit: int | None
) -> str | None:
    """Why ``key`` is not measured, given the rows so far, or None: it is measured.

    ``estimate``: the bytes it is expected to need; ``limit``: the bytes it may use (None: no
    limit known).
    """
    if interpreted := interpreted_reason(key):
        return interpreted
    failed = [r for r in rows if r.key.series == key.series and r.status.fatal]
    if failed:
        first = min(failed, key=lambda r: r.key.n)
        return f"{first.status} at N={first.key.n}: larger N skipped"
    if limit is not None and (estimate or 0) > limit:
        return f"estimated {(estimate or 0) / 2**30:.1f} GiB > limit {limit / 2**30:.1f} GiB"
    return predicted_call_seconds(key, rows, cfg)
