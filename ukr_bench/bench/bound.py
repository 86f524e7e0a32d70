r"""A lower bound on one value + gradient call: its pairs' arithmetic at the device's best rates.

:func:`pair_rates` measures, once per worker and (backend, dtype, device), the fastest exp,
elementwise-FMA and GEMM rates the backend's framework reaches on its device (:class:`Rates`);
:func:`work_per_pair` says how much arithmetic each layout does per ordered pair of points
(:class:`Work`); :func:`bound` turns both into seconds with the formula of
:mod:`ukr_bench.bound_model`; :func:`record_bound` writes the rates, the work and the bound
into a row, from which the report recomputes every row's bound at the best rates any backend
of the run measured on that device (one process per framework: each can only time its own).

**The rates.** A UKR kernel never writes its exps out: it reduces them at once, over data in
cache. So the exp rate is that of ``sum_k sum_i exp(a_i - k / S)`` over a block that fits in
the L2 cache (:data:`HOST`: its elements, and exps per element read, so that neither memory
nor the cache limits it), in the form the framework runs fastest
(:meth:`backends.Instrumented.exp_sum`: one XLA fusion for JAX; NumPy and eager torch into one
preallocated buffer); on a GPU a larger array, more exps per element (:data:`DEVICE`) fill
the device for longer than a kernel launch takes, and the rate is that of its
special-function units. The FMA rate is that of independent chains of multiply-adds per
element (:meth:`backends.Instrumented.fma_chain`, 2 flops each; several chains, so that the
units never wait on one result): the non-tensor-core rate on a GPU, the vector units' on a
CPU. The GEMM rate is a :data:`GEMM_SIZE`-square matrix product at the
precision the backend computes its own products in (:meth:`backends.Instrumented.matmul`:
float32 "highest", no TF32). Each is the best of 5
synchronised calls after one untimed call. The exp rate includes the subtraction and the
add that go with each exp, which every layout does too (the shift and the row sum) and
which its flop count holds again: the bound charges those two flops twice, a few per cent of
its flop term, which this model accepts rather than guess which exps fuse with what.

**The work** (:data:`FORMS`), per ordered pair (q, m) of one value + gradient call, counted
from each backend's code: adds, subtractions, multiplies, divides and min/max, one each
(an FMA is 2); selects and masks are not counted; work per point (O(N (L + D))) is not
counted. ``elementwise`` flops act on N x N (or block x N) arrays one element at a time,
``matmul`` flops are inside matrix products (``K X``, ``e X^T``: 2 D each, a multiply and an
add per data dimension). L latent and D data dimensions:

* **numpy dense** (``_value_and_grad_dense``): the logits from differences (a difference, a
  square and an add per latent dimension: 3L), the scale, the row max, its subtraction, the
  row sum and the division (5), 1 exp; ``R X`` (2D); the softmax backward ``T = R (e X^T)``
  (2D), ``T * K``, its row sum, ``K c`` and ``T - K c`` (4); ``B + B^T`` and the scale (2);
  ``sum_m S_km (z_m - z_k)``: a difference, a multiply and a row sum per latent dimension
  (3L). **6L + 11 elementwise, 4D matmul, 1 exp.**
* **numpy blocked, float32** (``_objective_blocked``, the differences form): 3L - 1 for the
  squared distances and their negation (3L; no row-max shift), 1 exp, the row sum (1); ``K
  X`` (2D); the softmax backward as above (2D matmul, 4); per latent dimension the
  difference, the multiply, the row sum and the column sum (4L). **7L + 5 elementwise, 4D
  matmul, 1 exp.**
* **numpy blocked, float64** (the GEMM forms, used where the latents' spread allows:
  ``GEMM_MAX_SQNORM``, which the benchmark's problem does): the logits as one product
  ``[2 z_q, -|z_q|^2, -1] [z_m, 1, |z_m|^2]^T`` (2 (L + 2)), 1 exp, ``K [X, 1]`` (2 (D + 1):
  the row sum is its last column), the softmax backward ``K * ([e/s, -e.y/s] [X, 1]^T)``
  (2 (D + 1) matmul, 1 elementwise), the row terms ``B' [Z, 1]`` and the column terms ``B'^T
  [Z, 1]`` (2 (L + 1) each). **1 elementwise, 6L + 4D + 12 matmul, 1 exp.**
* **blocked, hand-derived** (``jax_blocked.compute_block``, ``torch_blocked.compute_block``):
  3L - 1 for the squared distances, the row min and its subtraction (2), 1 exp, the row sum
  (1); ``K X`` (2D); the softmax backward (2D matmul, 4); per latent dimension the
  difference, the multiply, the row and the column sum (4L). **7L + 6 elementwise, 4D
  matmul, 1 exp.** A backend whose code is not counted here (KeOps: its compiled formulas)
  gets this count, the least of any blocked form, so that its bound stays a lower bound.
* **dense, hand-derived** (``value_and_grad_manual``): torch: 3L - 1, the scale (1), the
  softmax's max, subtraction, sum and division (4), 1 exp; ``R X``; the softmax backward (2D
  matmul, 4); per latent dimension the difference, the multiply, the column and the row sum
  (4L): **7L + 8 elementwise, 4D matmul, 1 exp**; JAX negates before it scales (one more:
  **7L + 9**).
* **dense, autodiff**: the forward as the hand-derived one (torch 3L + 4, JAX 3L + 5; 2D
  matmul; 1 exp, kept for the backward), the backward of ``R X`` (2D matmul), of the softmax
  (``R (g - sum(g R))``: 4), of the scale (1; JAX's negation 1 more), and of each squared
  difference (2 multiplies, a row and a column sum: 4L). **torch 7L + 9, JAX 7L + 11
  elementwise, 4D matmul, 1 exp.**
* **blocked, autodiff** (checkpointed per block): the block's forward (JAX: 3L - 1, min and
  subtraction, row sum, division: 3L + 3; torch: 3L - 1, scale, softmax: 3L + 4; 2D matmul,
  1 exp) twice, once recomputed in the backward, then the backward (2D matmul; JAX: the
  division's 3, the sum's 1, the exp's 1, the subtraction's 1, 4L; torch: the softmax's 4,
  the scale's 1, 4L). **JAX 10L + 12, torch 10L + 13 elementwise, 6D matmul, 2 exps.**
* **fused** (the Pallas and Triton kernels): as derived in ``backends/jax_fused.py`` and
  ``backends/torch_fused.py`` (passes 1 and 2): **JAX 8L + 8D + 4, torch 9L + 8D + 4
  elementwise (their contractions over D are elementwise multiply-adds), no matmul, 3
  exps**; ``tests/test_bound.py`` checks these against the modules' own constants.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ukr_bench.bound_model import on_host, pair_seconds
from ukr_bench.interface import Backend, instrumented
from ukr_bench.schema import ConfigKey, Row


@dataclass(frozen=True)
class RateSizes:
    """How much work one timed call of a rate measurement does.

    ``elements`` of the block; ``shifts`` exps per element read
    (:meth:`backends.Instrumented.exp_sum`); ``steps`` multiply-adds per element in each of
    ``chains`` independent chains (:meth:`backends.Instrumented.fma_chain`).
    """

    elements: int
    shifts: int
    steps: int
    chains: int

    @property
    def fma_flops(self) -> int:
        """The flops of one :meth:`backends.Instrumented.fma_chain` call."""
        return ((2 * self.steps + 2) * self.chains - 1) * self.elements


#: On the host: 2^16 elements (256 KiB in float32, 512 KiB in float64) fit in the L2 cache of
#: current x86 and Arm server cores; 16 exps per element read make loading the block cost a
#: sixteenth of an exp per exp, and 64 multiply-adds per element and chain make one read and
#: write of it weigh little beside them in a fused form; 8 independent chains cover the
#: latency of a multiply-add on two FMA units (4 cycles each on current x86 cores); a call
#: takes a few milliseconds.
HOST = RateSizes(elements=2**16, shifts=16, steps=64, chains=8)
#: On a device: 2^22 elements keep every core of a GPU busy (an H100 has about 2^18 threads in
#: flight) and stay within an H100's or H200's 50 MB L2 cache; 64 exps and 8 chains of 64
#: multiply-adds per element make one call (at about 4e12 exps/s and 6e13 flop/s, the rates an
#: H100's special-function units and float32 FMA pipes allow) last about 70 microseconds, well
#: above a kernel launch.
DEVICE = RateSizes(elements=2**22, shifts=64, steps=64, chains=8)
#: The GEMM rate's square matrices: large enough for a BLAS (or cuBLAS) to reach its rate.
GEMM_SIZE = 1024


@dataclass(frozen=True)
class Rates:
    """What a device reached: exps, elementwise flops (FMA chains) and GEMM flops per second."""

    exp: float
    fma: float
    gemm: float


@dataclass(frozen=True)
class Work:
    """Arithmetic per ordered pair of points in one value + gradient call (module docstring).

    ``form`` names the counted code; ``exps``; ``elementwise`` and ``matmul`` flops.
    """

    form: str
    exps: int
    elementwise: int
    matmul: int

    @property
    def flops(self) -> int:
        return self.elementwise + self.matmul


_Count = Callable[[int, int], tuple[int, int, int]]  # (L, D) -> (exps, elementwise, matmul)

#: The counted forms (module docstring), each ``(L, D) -> (exps, elementwise, matmul)``.
FORMS: dict[str, _Count] = {
    "numpy dense": lambda L, D: (1, 6 * L + 11, 4 * D),
    "numpy blocked": lambda L, D: (1, 7 * L + 5, 4 * D),
    "numpy blocked gemm": lambda L, D: (1, 1, 6 * L + 4 * D + 12),
    "blocked manual": lambda L, D: (1, 7 * L + 6, 4 * D),
    "torch dense manual": lambda L, D: (1, 7 * L + 8, 4 * D),
    "jax dense manual": lambda L, D: (1, 7 * L + 9, 4 * D),
    "torch dense autodiff": lambda L, D: (1, 7 * L + 9, 4 * D),
    "jax dense autodiff": lambda L, D: (1, 7 * L + 11, 4 * D),
    "torch blocked autodiff": lambda L, D: (2, 10 * L + 13, 6 * D),
    "jax blocked autodiff": lambda L, D: (2, 10 * L + 12, 6 * D),
    "jax fused": lambda L, D: (3, 8 * L + 8 * D + 4, 0),
    "torch fused": lambda L, D: (3, 9 * L + 8 * D + 4, 0),
}

#: (backend, layout, gradient) -> form; ``*`` matches any gradient. Others: "blocked manual".
_FORM_OF: dict[tuple[str, str, str], str] = {
    ("numpy", "dense", "manual"): "numpy dense",
    ("jax", "dense", "manual"): "jax dense manual",
    ("torch", "dense", "manual"): "torch dense manual",
    ("jax", "dense", "autodiff"): "jax dense autodiff",
    ("torch", "dense", "autodiff"): "torch dense autodiff",
    ("jax", "blocked", "autodiff"): "jax blocked autodiff",
    ("torch", "blocked", "autodiff"): "torch blocked autodiff",
    ("jax", "fused", "*"): "jax fused",
    ("torch", "fused", "*"): "torch fused",
}


def work_per_pair(
    backend: str, layout: str, gradient: str, dtype: str, latent_dim: int, data_dim: int
) -> Work:
    """The exps and flops per ordered pair that ``backend``'s ``layout`` and ``gradient`` do in
    one value + gradient call, for L = ``latent_dim``, D = ``data_dim`` (module docstring)."""
    dims: tuple[tuple[str, object], ...] = (("latent_dim", latent_dim), ("data_dim", data_dim))
    for name, value in dims:
        if not (isinstance(value, int | np.integer) and value >= 1):
            msg = f"{name} must be a positive integer, got {value!r}"
            raise ValueError(msg)
    if (backend, layout) == ("numpy", "blocked"):
        form = "numpy blocked gemm" if dtype == "float64" else "numpy blocked"
    else:
        form = _FORM_OF.get(
            (backend, layout, gradient), _FORM_OF.get((backend, layout, "*"), "blocked manual")
        )
    exps, elementwise, matmul = FORMS[form](int(latent_dim), int(data_dim))
    return Work(form, exps, elementwise, matmul)


_RATES: dict[tuple[str, str, str], Rates] = {}


def _best_of_5(backend: Backend, f: Callable[[], Any]) -> float:
    """The shortest of 5 synchronised calls of ``f``, after one untimed call."""
    backend.sync(f())
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        backend.sync(f())
        times.append(time.perf_counter() - t0)
    return min(times)


def pair_rates(backend: Backend) -> Rates:
    """The exp, FMA and GEMM rates this backend reaches on its device and dtype (module
    docstring); measured once per process and (backend, dtype, device)."""
    key = (backend.name, backend.dtype, backend.device)
    if key in _RATES:
        return _RATES[key]
    rng = np.random.default_rng(0)
    sizes = HOST if on_host(backend.device) else DEVICE
    size, shifts = sizes.elements, sizes.shifts
    hooks = instrumented(backend)
    with backend.context():
        a = backend.asarray(-rng.random(size).astype(backend.dtype))
        m = backend.asarray(rng.random((GEMM_SIZE, GEMM_SIZE)).astype(backend.dtype))
        exp_rate = shifts * size / _best_of_5(backend, hooks.exp_sum(a, shifts))
        fma = hooks.fma_chain(a, sizes.steps, sizes.chains)
        fma_rate = sizes.fma_flops / _best_of_5(backend, fma)
        gemm_rate = 2 * GEMM_SIZE**3 / _best_of_5(backend, hooks.matmul(m, m))
    _RATES[key] = Rates(exp_rate, fma_rate, gemm_rate)
    return _RATES[key]


def _work(key: ConfigKey) -> Work:
    return work_per_pair(
        key.backend, key.layout, key.gradient, key.dtype, key.latent_dim, key.data_dim
    )


def bound(key: ConfigKey, rates: Rates) -> float:
    """A lower bound on one value + gradient, in seconds: N^2 ordered pairs, each the
    :func:`work_per_pair` of ``key``'s layout, L and D at ``rates``
    (:func:`ukr_bench.bound_model.pair_seconds`)."""
    w = _work(key)
    per_pair = pair_seconds(
        w.exps, w.elementwise, w.matmul, exp_rate=rates.exp, fma_rate=rates.fma,
        gemm_rate=rates.gemm, host=on_host(key.device),
    )  # fmt: skip
    return float(key.n) ** 2 * per_pair


def record_bound(row: Row, key: ConfigKey, backend: Backend) -> None:
    """Measure (once per process) the backend's rates and write the bound into ``row``.

    ``exp_rate`` and ``flop_rate`` (the FMA rate), ``exps_per_pair`` and ``flops_per_pair``
    (elementwise + matmul), ``bound_s``; ``info["bound"]`` holds what the report needs beside
    them: ``gemm_rate``, ``matmul_flops_per_pair`` and the counted ``form``.
    """
    rates = pair_rates(backend)
    w = _work(key)
    row.exp_rate, row.flop_rate = rates.exp, rates.fma
    row.exps_per_pair, row.flops_per_pair = float(w.exps), float(w.flops)
    row.info["bound"] = {"gemm_rate": rates.gemm, "matmul_flops_per_pair": w.matmul, "form": w.form}
    row.bound_s = bound(key, rates)
