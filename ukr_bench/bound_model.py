r"""The per-pair lower bound's formula, which the harness and the report share.

A value + gradient call of a layout does, per ordered pair of points, ``exps`` exps,
``elementwise`` flops one array element at a time and ``matmul`` flops inside matrix products
(counted per layout in :mod:`ukr_bench.bench.bound`). A device reaches at most ``exp_rate``
exps per second, ``fma_rate`` elementwise flops per second (a chain of fused multiply-adds,
each 2 flops, on data in cache) and ``gemm_rate`` flops per second in a matrix product. Then
one call on N points takes at least N^2 times

.. math::

    t_{exp} = \frac{exps}{exp\_rate}, \qquad
    t_{flop} = \frac{elementwise}{fma\_rate} + \frac{matmul}{\max(gemm\_rate, fma\_rate)}

combined as ``t_exp + t_flop`` on the host CPU, whose exp is a polynomial evaluated on the
same vector FMA units as the flops (the two cannot overlap), and as ``max(t_exp, t_flop)``
on a GPU, whose exps run on the special-function units beside the FMA pipes (they can).
Memory traffic is not counted: the bound is what the arithmetic alone needs. A matrix
product's flops could also run elementwise, hence the ``max`` in their rate.
"""

from __future__ import annotations

import math


def on_host(device: str) -> bool:
    """Whether ``device`` (``cpu``, ``cpu:0-3``, ``cuda:1``) is the host CPU."""
    return device.split(":", 1)[0] == "cpu"


def pair_seconds(
    exps: float, elementwise: float, matmul: float, *,
    exp_rate: float, fma_rate: float, gemm_rate: float, host: bool,
) -> float:  # fmt: skip
    """Seconds per ordered pair at least (module docstring); every rate positive (per second).

    Raises ValueError naming the rate that is not a positive finite number.
    """
    for name, rate in (("exp_rate", exp_rate), ("fma_rate", fma_rate), ("gemm_rate", gemm_rate)):
        if not (math.isfinite(rate) and rate > 0):
            msg = f"{name} must be a positive finite number of operations per second, got {rate!r}"
            raise ValueError(msg)
    t_exp = exps / exp_rate
    t_flop = elementwise / fma_rate + matmul / max(gemm_rate, fma_rate)
    return t_exp + t_flop if host else max(t_exp, t_flop)
