"""Presets: named sets of :class:`~ukr_bench.bench.config.SweepConfig` overrides, applied under
the options the user gives (``ukr-bench bench --preset NAME``, ``--quick``)."""

from __future__ import annotations

from typing import Any

from ukr_bench.bench.config import SweepConfig
from ukr_bench.validation import check_choice

#: Presets: named sets of overrides, applied under the options the user gives.
PRESETS: dict[str, dict[str, Any]] = {
    # The smoke test (CI): three small N, few rounds, well under two minutes.
    "quick": {
        "ns": [64, 128, 256],
        "min_rounds": 3,
        "min_time": 0.05,
        "warmup": 1,
        "fit_iters": 5,
        "fit_rounds": 1,
    },
    # Large N on this 2-core CPU (N up to 100,000; the dense layout stops where memory does and
    # is skipped beyond), float32, no time-to-fit: about 20 min with jax, numpy and torch.
    "large": {
        "ns": [1000, 4000, 16000, 32000, 100000],
        "dtypes": ["float32"],
        "min_rounds": 3,
        "max_rounds": 20,
        "min_time": 0.5,
        "warmup": 1,
        "fit_iters": 0,
        "timeout": 900.0,
    },
    # Large N on a GPU: up to 1,000,000 points, at the saddle's D and at digits' D = 64.
    "large-gpu": {
        "ns": [10000, 32000, 100000, 300000, 1000000],
        "data_dims": [3, 64],
        "devices": ["cuda"],
        "dtypes": ["float32"],
        "min_rounds": 3,
        "max_rounds": 50,
        "min_time": 0.5,
        "warmup": 1,
        "fit_iters": 0,
        "timeout": 600.0,
    },
}


# The data's dimension on this 2-core CPU: the saddle embedded in D = 3 (itself), 16, 64 (as
# many as digits) and 256 (an image's or an expression profile's order), N up to 8000, both
# layouts, each backend's own gradient, both dtypes, no time-to-fit. Estimated from the per-pair
# model (one exp and 5L + 4D + 6 flops per pair, ukr_bench.bench.bound; the dense layout's
# memory traffic about three times the blocked's from N = 2000) at the reference runs' rates:
# about 20-30 min with jax, numpy and torch (192 configurations).
PRESETS["dims"] = {
    "ns": [1000, 2000, 4000, 8000],
    "data_dims": [3, 16, 64, 256],
    "gradients": ["auto"],
    # 5, not 3: with 3 samples a side the Mann-Whitney test's smallest p is 0.1, so a slow call
    # (3 rounds fill min_time) could never be called faster at p < 0.01; with 5 it is 0.008.
    "min_rounds": 5,
    "warmup": 1,
    "fit_iters": 0,
}


def preset(name: str | None, **overrides: Any) -> SweepConfig:
    """A configuration from a preset (or the defaults) with ``overrides`` on top."""
    if name is not None:
        check_choice("preset", name, sorted(PRESETS))
    return SweepConfig(**((PRESETS[name] if name else {}) | overrides))
