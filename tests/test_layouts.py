"""The blocked layout against the dense one; the ``auto`` rule; memory; layout errors."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from conftest import BACKENDS, device_backends, random_problem
from error_model import FIT_TOL, TOL, assert_objective_agrees, objective_tolerances
from test_objective import GRID

import ukr_bench
from backends import REGISTRY
from ukr_bench import Params, get_backend, relative_error, value_and_grad
from ukr_bench import layouts as layouts_module
from ukr_bench.problem import BLOCK_MIN_ROWS, plan_layout


def blocks_for(n: int) -> list[int]:
    # A size that does not divide N (3 divides none of 2, 10, 50); more rows than N (a single
    # block); one row per block up to N = 10 (at N = 50 it only costs time: the boundary and
    # projection tests below have one-row blocks too).
    return [3, n + 5] + ([1] if n <= 10 else [])


@pytest.mark.parametrize(("n", "l", "d", "loo"), GRID)
def test_blocked_matches_dense_on_grid(n: int, l: int, d: int, loo: bool) -> None:
    Z0, X = random_problem(n, l, d, seed=n * 100 + l * 10 + d)
    for sigma, lam in itertools.product([0.5, 1.0, 2.0], [0.0, 0.3]):
        Z = sigma * Z0
        kw = {"sigma": sigma, "lam": lam, "loo": loo}
        ref_v, ref_g = value_and_grad(Z, X, backend="numpy", layout="dense", **kw)
        bounds = {dtype: objective_tolerances(Z, X, kw, dtype) for dtype in TOL}
        for backend, dtype, block in itertools.product(BACKENDS, TOL, blocks_for(n)):
            v, g = value_and_grad(
                Z, X, backend=backend, dtype=dtype, layout="blocked", block_size=block, **kw
            )
            case = f"{backend} {dtype} block={block} sigma={sigma} lam={lam}"
            assert g.dtype == np.dtype(dtype), case
            assert_objective_agrees(v, g, ref_v, ref_g, bounds[dtype], case)


@pytest.mark.parametrize("block", [4, 5, 6, 12])
def test_leave_one_out_at_block_boundaries(backend: str, block: int) -> None:
    # Points come in pairs (0, 1), (2, 3), ... 0.5 sigma apart, the pairs 30 sigma from each
    # other: each point's leave-one-out estimate is its partner's x. A diagonal entry kept, or a
    # neighbour excluded instead (an off-by-one in a block's offset), changes E by O(1); with
    # these block sizes the first and last rows of the blocks cover both members of a pair and
    # pairs split across two blocks (sizes 5).
    # At 2.5 sigma the pairs interact, so the gradient is not ~0 and is compared too.
    n = 12
    _, X = random_problem(n, 2, 3, seed=11)
    partner = np.arange(n) ^ 1
    for spacing in [30.0, 2.5]:
        Z = np.zeros((n, 2))
        Z[:, 0] = spacing * (np.arange(n) // 2)
        Z[1::2, 1] = 0.5
        ref_v, ref_g = value_and_grad(Z, X, layout="dense")
        v, g = value_and_grad(Z, X, backend=backend, layout="blocked", block_size=block)
        assert relative_error(v, ref_v) <= TOL["float64"]
        if spacing == 30.0:
            assert v == pytest.approx(np.sum((X - X[partner]) ** 2) / n, rel=TOL["float64"])
            assert np.linalg.norm(g) <= TOL["float64"]
        else:
            assert np.linalg.norm(ref_g) > 1e-3
            assert relative_error(g, ref_g) <= TOL["float64"]


def test_far_apart_latents_stay_finite_blocked(backend: str) -> None:
    Z, X = random_problem(20, 2, 3, seed=5, z_scale=1000.0)
    dist = ((Z[:, None] - Z[None]) ** 2).sum(-1) + np.diag(np.full(20, np.inf))
    expected = np.sum((X - X[dist.argmin(1)]) ** 2) / 20
    for dtype in TOL:
        v, g = value_and_grad(Z, X, backend=backend, dtype=dtype, layout="blocked", block_size=6)
        assert v == pytest.approx(expected, rel=TOL[dtype])
        assert np.linalg.norm(g) <= TOL[dtype]


@pytest.mark.parametrize(("n", "l", "d", "loo"), [(7, 2, 3, True), (50, 1, 4, False)])
def test_every_layout_and_gradient_agrees_on_device(
    n: int, l: int, d: int, loo: bool, device: str
) -> None:
    # Each backend's every layout and gradient kind on "cpu" and, where the backend sees one,
    # "cuda" (the grid test in test_objective.py runs the GPU in the default layout only),
    # against float64 NumPy dense on the host; blocks of 3 rows, which divide neither N. The
    # fused kernels too: on CUDA compiled, on the CPU interpreted (slow, so at the smaller N;
    # torch's only where it sees no CUDA device, for which its kernels are then compiled).
    Z0, X = random_problem(n, l, d, seed=n + l + d)
    kw = {"sigma": 0.8, "lam": 0.2, "loo": loo}
    ref_v, ref_g = value_and_grad(0.8 * Z0, X, layout="dense", **kw)
    bounds = {dtype: objective_tolerances(0.8 * Z0, X, kw, dtype) for dtype in TOL}
    on_cuda = [b for b in device_backends("cuda") if b == "torch"]
    for backend in device_backends(device):
        spec = REGISTRY[backend]
        kinds = [(layout, k) for layout in spec.layouts for k in spec.gradients_in(layout)]
        for (layout, gradient), dtype in itertools.product(kinds, TOL):
            if layout == "fused" and device == "cpu" and (n > 10 or backend in on_cuda):
                continue
            v, g = value_and_grad(
                0.8 * Z0, X, backend=backend, dtype=dtype, device=device, layout=layout,
                gradient=gradient, block_size=3 if layout == "blocked" else None, **kw,
            )  # fmt: skip
            case = f"{backend} {layout} {gradient} {dtype} {device}"
            assert g.dtype == np.dtype(dtype), case
            assert_objective_agrees(v, g, ref_v, ref_g, bounds[dtype], case)


@pytest.mark.parametrize("block", [1, 4, 9])
def test_isolated_points_among_neighbours_blocked(backend: str, block: int) -> None:
    # A cluster (within 3 sigma) and three points 40 sigma from it and from each other: their
    # rows' weights all underflow unshifted (exp(-800)), the cluster's do not. NumPy's blocks
    # form exp(A) without the row-max shift and recompute such rows with it; here they share
    # blocks with ordinary rows. Reference: the dense form, which always shifts.
    rng = np.random.default_rng(8)
    sigma = 0.5
    Z = sigma * rng.uniform(-1.5, 1.5, size=(20, 2))
    Z = np.concatenate([Z[:7], [[20.0, 0.0], [0.0, 20.0], [-20.0, 0.0]], Z[7:]])
    X = rng.normal(size=(len(Z), 3))
    Zq = np.concatenate([Z[:5] + 0.1, [[0.0, -20.0]]])
    Xq = rng.normal(size=(len(Zq), 3))
    for loo in [True, False]:
        kw = {"sigma": sigma, "lam": 0.1, "loo": loo}
        ref_v, ref_g = value_and_grad(Z, X, layout="dense", **kw)
        for dtype in TOL:
            v, g = value_and_grad(
                Z, X, backend=backend, dtype=dtype, layout="blocked", block_size=block, **kw
            )
            bounds = objective_tolerances(Z, X, kw, dtype)
            assert_objective_agrees(v, g, ref_v, ref_g, bounds, f"{dtype} loo={loo}")
    dense = get_backend("numpy", layout="dense")
    ref_pv, ref_pg = dense.project_value_and_grad(Zq, Xq, Z, X, sigma)
    for dtype in TOL:
        b = get_backend(backend, dtype=dtype, layout="blocked", block_size=block)
        args = [b.asarray(a) for a in (Zq, Xq, Z, X)]
        y = b.to_numpy(b.sync(b.predict(args[0], args[2], args[3], sigma)))
        pv, pg = b.sync(b.project_value_and_grad(*args, sigma))
        assert relative_error(y, dense.predict(Zq, Z, X, sigma)) <= TOL[dtype]
        assert relative_error(float(b.to_numpy(pv)), ref_pv) <= TOL[dtype]
        assert relative_error(b.to_numpy(pg), ref_pg) <= TOL[dtype]


def test_numpy_blocked_forms_follow_dtype_and_spread() -> None:
    # The tests above reach both of NumPy's blocked forms: float64 takes the matrix-product
    # forms while the latents' squared norm (units of 2 sigma^2, centred) is at most
    # GEMM_MAX_SQNORM, float32 and wider spreads take the differences.
    from backends.numpy_backend import GEMM_MAX_SQNORM, _Blocks

    Z = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    r = math.sqrt(GEMM_MAX_SQNORM * 2) * 0.5  # r^2 / (2 sigma^2) = GEMM_MAX_SQNORM at sigma = 0.5
    assert _Blocks(Z, Z, 0.5, True).gemm
    assert not _Blocks(Z.astype(np.float32), Z.astype(np.float32), 0.5, True).gemm
    wide = np.array([[0.0, 0.0], [2 * r, 0.0]])  # centred: +-r
    assert not _Blocks(wide * 1.001, wide * 1.001, 0.5, True).gemm
    assert _Blocks(wide * 0.999, wide * 0.999, 0.5, True).gemm
    assert not _Blocks(Z, wide * 1.001, 0.5, False).gemm  # the training latents count too


@pytest.mark.parametrize("block", [1, 7, 500])
def test_value_equals_value_and_grad_blocked(backend: str, block: int) -> None:
    Z, X = random_problem(40, 2, 3, seed=2)
    for dtype in TOL:
        b = get_backend(backend, dtype=dtype, layout="blocked", block_size=block)
        Zd, Xd = b.asarray(Z), b.asarray(X)
        v = float(b.to_numpy(b.sync(b.value(Zd, Xd, 0.7, 0.2, True))))
        vg = float(b.to_numpy(b.sync(b.value_and_grad(Zd, Xd, 0.7, 0.2, True))[0]))
        assert v == pytest.approx(vg, rel=10 * float(np.finfo(dtype).eps))


@pytest.mark.parametrize("block", [1, 4, 100])
def test_predict_and_projection_blocked_match_dense(backend: str, block: int) -> None:
    Z, X = random_problem(30, 2, 3, seed=3)
    Zq, Xq = random_problem(11, 2, 3, seed=4)  # 11 queries: no block size here divides them
    dense = get_backend("numpy", layout="dense")
    ref_y = dense.predict(Zq, Z, X, 0.6)
    ref_v, ref_g = dense.project_value_and_grad(Zq, Xq, Z, X, 0.6)
    for dtype in TOL:
        b = get_backend(backend, dtype=dtype, layout="blocked", block_size=block)
        assert b.resolve_layout(30, 2, 3, rows=11) == ("blocked", min(block, 11))
        args = [b.asarray(a) for a in (Zq, Xq, Z, X)]
        y = b.to_numpy(b.sync(b.predict(args[0], args[2], args[3], 0.6)))
        v, g = b.sync(b.project_value_and_grad(*args, 0.6))
        assert relative_error(y, ref_y) <= TOL[dtype]
        assert relative_error(float(b.to_numpy(v)), ref_v) <= TOL[dtype]
        assert relative_error(b.to_numpy(g), ref_g) <= TOL[dtype]


def test_compiled_blocked_matches(backend: str) -> None:
    # compile() resolves the layout once; JAX lowers the blocked program ahead of time.
    Z, X = random_problem(33, 2, 3, seed=6)
    b = get_backend(backend, layout="blocked", block_size=8)
    Zd, Xd = b.asarray(Z), b.asarray(X)
    params = Params(sigma=0.8, lam=0.1)
    f = b.compile("value_and_grad", Zd, Xd, params)
    before = b.compile_count()
    v, g = b.sync(f(Zd, Xd))
    assert b.compile_count() == before
    ref_v, ref_g = value_and_grad(Z, X, sigma=0.8, lam=0.1, layout="dense")
    assert relative_error(float(b.to_numpy(v)), ref_v) <= TOL["float64"]
    assert relative_error(b.to_numpy(g), ref_g) <= TOL["float64"]
    value = b.compile("value", Zd, Xd, params)
    assert relative_error(float(b.to_numpy(value(Zd, Xd))), ref_v) <= TOL["float64"]


# -- the auto rule ---------------------------------------------------------------------------


def test_plan_layout_rule() -> None:
    gib = 2**30
    # dense while small and it fits; blocked above the pair threshold or without the memory
    assert plan_layout(1000, 1000, 2, 3, "float64", 8 * gib) == ("dense", None)
    n = int(np.sqrt(layouts_module.AUTO_DENSE_MAX_PAIRS)) + 1
    layout, block = plan_layout(n, n, 2, 3, "float64", 8 * gib)
    assert layout == "blocked"
    row_bytes = 8 * (layouts_module.BLOCK_BUFFERS * n + 2 * 3 + 2 * 2)
    assert block == max(layouts_module.BLOCK_TARGET_BYTES["cpu"] // row_bytes, BLOCK_MIN_ROWS)
    assert plan_layout(1000, 1000, 2, 3, "float64", 1000 * 1000 * 8)[0] == "blocked"
    # float32 rows cost half: twice the rows per block (before the minimum)
    n = 100_000
    b64 = plan_layout(n, n, 2, 3, "float64", 8 * gib, layout="blocked")[1]
    b32 = plan_layout(n, n, 2, 3, "float32", 8 * gib, layout="blocked")[1]
    assert b32 >= b64 >= BLOCK_MIN_ROWS
    # a GPU gets larger blocks; memory caps them (here: room for 2 rows per worker)
    big = plan_layout(n, n, 2, 3, "float32", 80 * gib, layout="blocked", device_kind="cuda")[1]
    assert big > b32
    row32 = 4 * (layouts_module.BLOCK_BUFFERS * n + 10)
    tight = 2 * row32 / layouts_module.BLOCK_MEMORY_FRACTION
    assert plan_layout(n, n, 2, 3, "float32", int(tight), layout="blocked")[1] == 2
    assert plan_layout(n, n, 2, 3, "float32", 10, layout="blocked")[1] == 1
    # overrides: dense always dense; block_size capped at the rows there are
    assert plan_layout(n, n, 2, 3, "float32", 10, layout="dense") == ("dense", None)
    assert plan_layout(5, 50, 2, 3, "float32", gib, layout="blocked", block_size=9) == (
        "blocked",
        5,
    )


def test_auto_picks_blocked_above_the_threshold(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = get_backend(backend)
    assert b.layout == "auto"
    assert b.resolve_layout(500)[0] == "dense"
    layout, block = b.resolve_layout(4000)
    assert layout == "blocked"
    assert BLOCK_MIN_ROWS <= block < 4000
    assert get_backend(backend, block_size=17).resolve_layout(4000) == ("blocked", 17)
    # A call at N above the threshold must take the blocked path: make the dense one fail.
    Z, X = random_problem(20, 2, 3, seed=1)
    ref_v, ref_g = value_and_grad(Z, X, backend="numpy", sigma=0.5, layout="dense")
    monkeypatch.setattr(layouts_module, "AUTO_DENSE_MAX_PAIRS", 100)
    cls = type(b)

    def fail(*_: object, **__: object) -> None:
        pytest.fail("dense path taken")

    for table, field in [("COMPUTATIONS", "value"), ("VARIANTS", "value_and_grad")]:
        entries = tuple(
            dataclasses.replace(e, **{field: fail}) if e.layout == "dense" else e
            for e in getattr(cls, table)
        )
        monkeypatch.setattr(cls, table, entries)
    v, g = value_and_grad(Z, X, backend=backend, sigma=0.5)
    assert relative_error(v, ref_v) <= TOL["float64"]
    assert relative_error(g, ref_g) <= TOL["float64"]


def test_describe_gradient_keeps_hand_derived_apart() -> None:
    assert get_backend("numpy").describe_gradient("blocked") == "hand-derived"
    for name in ["jax", "torch"]:
        b = get_backend(name)
        assert b.describe_gradient("dense").startswith("autodiff")
        assert b.describe_gradient("blocked").startswith("hand-derived (blocked")


def test_estimator_fits_in_blocked_layout(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Force auto to blocks at this small N: the fit must follow the dense fit's trajectory.
    X, _ = ukr_bench.make_dataset("saddle", 120, noise=0.05, random_state=0)
    kw = {"sigma": 0.3, "max_iter": 5, "backend": backend, "random_state": 0}
    dense = ukr_bench.UKR(2, **kw).fit(X)
    monkeypatch.setattr(layouts_module, "AUTO_DENSE_MAX_PAIRS", 0)
    blocked = ukr_bench.UKR(2, **kw).fit(X)
    np.testing.assert_allclose(blocked.history_, dense.history_, rtol=FIT_TOL)  # L-BFGS
    np.testing.assert_allclose(blocked.embedding_, dense.embedding_, atol=FIT_TOL)
    Xq = X[:7] + 0.01
    np.testing.assert_allclose(blocked.transform(Xq), dense.transform(Xq), atol=FIT_TOL)


# -- memory ------------------------------------------------------------------------------------


def test_numpy_blocked_never_allocates_n_by_n() -> None:
    import tracemalloc

    from backends.numpy_backend import NumpyBackend
    from ukr_bench.system import cpu_count

    n, block = 2000, 16
    Z, X = random_problem(n, 3, 10, seed=9)
    b = NumpyBackend(layout="blocked", block_size=block)
    b.value_and_grad(Z, X, 1.0, 0.1, True)  # warm the thread pool and BLAS
    tracemalloc.start()
    try:
        b.value_and_grad(Z, X, 1.0, 0.1, True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Two (block x N) buffers per worker, plus O(N (L + D)) vectors; one N x N float64 array
    # alone would be 32 MB here.
    workers = cpu_count()
    bound = 8 * (3 * workers * block * n + 64 * n)
    assert peak < bound, (peak, bound)
    assert bound < 0.1 * 8 * n * n


# -- errors ------------------------------------------------------------------------------------

Z_ERR, X_ERR = np.zeros((5, 2)), np.ones((5, 3))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"layout": "sparse"},
            ValueError,
            r"layout must be one of \['dense', 'blocked', 'fused', 'auto'\], got 'sparse'",
        ),
        ({"layout": None}, ValueError, r"layout must be one of"),
        ({"block_size": 0}, ValueError, r"block_size must be >= 1, got 0"),
        ({"block_size": -3}, ValueError, r"block_size must be >= 1"),
        ({"block_size": 2.5}, TypeError, r"block_size must be a positive integer or None"),
        ({"block_size": True}, TypeError, r"block_size must be a positive integer or None"),
        ({"block_size": "8"}, TypeError, r"block_size must be a positive integer or None"),
    ],
)
def test_bad_layout_names_the_parameter(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        value_and_grad(Z_ERR, X_ERR, **kwargs)
    with pytest.raises(error, match=match):
        get_backend("numpy", **kwargs)


def test_numpy_block_size_is_accepted_as_numpy_integer() -> None:
    b = get_backend("numpy", layout="blocked", block_size=np.int64(4))
    assert b.resolve_layout(10) == ("blocked", 4)


def test_blocked_gradient_is_in_z_only() -> None:
    # The hand-derived VJPs cover Z; differentiating in X must fail loudly, not return 0.
    import jax
    import torch

    from backends.jax_blocked import objective_blocked
    from backends.torch_blocked import objective_blocked as torch_objective_blocked

    Z, X = random_problem(6, 2, 3, seed=1)
    with pytest.raises(Exception, match=r"unexpected tracer"):  # JAX: a closed-over X
        jax.grad(lambda x: objective_blocked(Z, x, 1.0, 0.0, True, 4))(X)
    Zt = torch.tensor(Z)
    Xt = torch.tensor(X, requires_grad=True)
    with pytest.raises(NotImplementedError, match="differentiable in Z only"):
        torch_objective_blocked(Zt, Xt, 1.0, 0.0, True, 4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["dense", "blocked"])
def test_numpy_outputs_keep_the_dtype(layout: str, dtype: str) -> None:
    """Every raw computation returns arrays of the backend's dtype: a float64 temporary (a
    column of ones, an accumulator) would run a float32 call in float64 unseen, and the
    agreement tests, which compare values only, would pass."""
    b = get_backend("numpy", dtype=dtype, layout=layout, block_size=8)
    Z, X = (b.asarray(a) for a in random_problem(30, 2, 3, seed=3))
    Zq, Xq = (b.asarray(a) for a in random_problem(7, 2, 3, seed=4))
    outputs = {
        "value": b.value(Z, X, 0.5, 0.1, True),
        "value_and_grad": b.value_and_grad(Z, X, 0.5, 0.1, True),
        "predict": b.predict(Zq, Z, X, 0.5),
        "projection": b.project_value_and_grad(Zq, Xq, Z, X, 0.5),
    }
    for name, out in outputs.items():
        for a in out if isinstance(out, tuple) else (out,):
            assert np.asarray(a).dtype == np.dtype(dtype), (name, np.asarray(a).dtype)
