"""How every figure draws a series: colour per backend (declared by the backend), line style per
dtype, marker per device kind; and how series are named."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from backends import REGISTRY

#: Colours for backends the registry does not know (e.g. a run made by a newer version).
EXTRA_COLORS = ("#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
LINESTYLES = {"float64": "-", "float32": "--"}
DEVICE_MARKERS = {"cpu": "o", "cuda": "s"}
RUN_LINESTYLES = ("-", "--", ":", "-.")
#: Columns naming a series (everything in the configuration key but N and the problem's).
SERIES = ("backend", "layout", "gradient", "dtype", "device")
#: The key's columns of the problem besides N: D (``data_dim``) and L (``latent_dim``).
PROBLEM = ("data_dim", "latent_dim")


def problems(df: Any) -> list[str]:
    """The columns of :data:`PROBLEM` that take more than one value in the DataFrame ``df``.

    The report groups by these as well: a run of several D keeps them apart, and a run of one
    D (every committed run) groups, and so reads, exactly as without them.
    """
    return [c for c in PROBLEM if c in df.columns and df[c].nunique(dropna=False) > 1]


def color(backend: str) -> str:
    if backend in REGISTRY:
        return REGISTRY[backend].color
    # A stable hash (Python's hash() of a str is salted per process): the same colour each time.
    return EXTRA_COLORS[zlib.crc32(backend.encode()) % len(EXTRA_COLORS)]


def backend_marker(backend: str) -> str:
    return REGISTRY[backend].marker if backend in REGISTRY else "D"


def device_kind(device: str) -> str:
    return device.split(":", maxsplit=1)[0]


def label(series: Sequence[str]) -> str:
    """``jax float32 cpu``, ``jax blocked manual float32 cpu``: the layout is named where not
    dense, the gradient source where it is not the backend's default kind (its dense one:
    autodiff for jax, torch and keops, manual for numpy), so an unnamed jax or torch gradient
    is autodiff in either layout and no two series of a run share a label."""
    backend, layout, gradient, dtype, device = series
    parts = [backend]
    if layout != "dense":
        parts.append(layout)
    if is_alternative_gradient(series):
        parts.append(gradient)
    return " ".join([*parts, dtype, device])


def is_alternative_gradient(series: Sequence[str]) -> bool:
    """Whether ``series``' gradient is not its backend's default kind (named in its label)."""
    backend, gradient = series[0], series[2]
    return backend not in REGISTRY or gradient != REGISTRY[backend].gradient


def baseline_backend() -> str | None:
    """The backend the speed-up figure divides by: the registry's declared baseline."""
    return next((name for name, spec in REGISTRY.items() if spec.baseline), None)
