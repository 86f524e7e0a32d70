"""The gradient axis (issue 12): hand-derived against autodiff in every framework and layout.

* float64: the hand-derived gradient of JAX and torch (dense and blocked) agrees with the same
  framework's autodiff within the error model's bound on the agreement grid of ``test_objective``; NumPy's (manual
  only) with JAX's autodiff.
* Planted errors: each hand-derived gradient is re-executed from its own source with one
  error planted (a sign, a missing transpose term, a wrong softmax-backward term), and the
  agreement check above must fail for every one of them.
* float32: the hand-derived gradients (objective and projection) sum over latent differences,
  reduce their row sums and form the softmax backward from the weights, so their error against
  float64 is within :data:`AS_ACCURATE` of autodiff's on any CPU (see its error model).
* The keyword: which kinds each backend implements, its errors, and the sweep's plan.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import itertools
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import random_problem
from error_model import EPS, FIT_TOL, error_bounds, objective_tolerances, tolerance
from test_objective import GRID

from backends import REGISTRY
from ukr_bench import UKR, Params, get_backend, relative_error, value_and_grad
from ukr_bench.bench.config import SweepConfig
from ukr_bench.data import problem_inputs
from ukr_bench.interface import Backend, backend_class, instrumented, instrumented_class
from ukr_bench.report.build import load_run
from ukr_bench.report.style import SERIES, label

FRAMEWORKS = ["jax", "torch"]  # both kinds, both layouts
SERIES_COLUMNS = list(SERIES)
LAYOUT_BLOCK = {"dense": None, "blocked": 3}  # 3 divides none of the grid's N
#: "sharded": JAX's blocked layout on a mesh of one CPU device, so that jax_sharded's driver runs
#: in this process (several devices: tests/test_multi_device.py); its reference is blocked.
LAYOUT_BLOCK["sharded"] = LAYOUT_BLOCK["blocked"]


def manual_and_reference(
    backend: str, layout: str, Z: np.ndarray, X: np.ndarray, params: Params, dtype: str = "float64"
) -> tuple[np.ndarray, np.ndarray]:
    """(hand-derived gradient, autodiff gradient of the same framework; NumPy: JAX's), both
    through ``compile`` (what the harness times) in ``layout``."""

    def grad(name: str, gradient: str, layout: str) -> np.ndarray:
        device: object = "cpu"
        if layout == "sharded":
            import jax

            device = jax.sharding.Mesh(jax.devices("cpu")[:1], ("rows",))
        b = get_backend(
            name, dtype=dtype, device=device, layout="blocked" if layout == "sharded" else layout,
            block_size=LAYOUT_BLOCK[layout], gradient=gradient,
        )  # fmt: skip
        Zd, Xd = b.asarray(Z), b.asarray(X)
        return b.to_numpy(b.sync(b.compile("value_and_grad", Zd, Xd, params)(Zd, Xd))[1])

    ref_backend = "jax" if backend == "numpy" else backend
    ref_layout = "blocked" if layout == "sharded" else layout
    return grad(backend, "manual", layout), grad(ref_backend, "autodiff", ref_layout)


def check_agreement(backend: str, layout: str, cases: list[tuple[int, int, int, bool]]) -> None:
    """Assert hand-derived == autodiff (float64) on ``cases`` of (N, L, D, loo).

    Allowance: both are float64 results within :func:`error_bounds` of the exact gradient
    (:func:`objective_tolerances`), an absolute bound, so it also holds where the exact
    gradient is 0 (N = 2 with leave-one-out and no prior).
    """
    for n, l, d, loo in cases:
        Z0, X = random_problem(n, l, d, seed=n * 100 + l * 10 + d)
        for sigma, lam in [(0.7, 0.3), (2.0, 0.0)]:
            params = Params(sigma=sigma, lam=lam, loo=loo)
            Z = sigma * Z0
            manual, ref = manual_and_reference(backend, layout, Z, X, params)
            case = f"{backend} {layout} N={n} L={l} D={d} loo={loo} sigma={sigma} lam={lam}"
            _, g_tol = objective_tolerances(
                Z, X, {"sigma": sigma, "lam": lam, "loo": loo}, "float64"
            )
            err = float(np.linalg.norm(manual - ref))
            assert err <= g_tol, (case, err, g_tol)


@pytest.mark.parametrize("layout", ["dense", "blocked"])
@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_manual_matches_autodiff_on_grid(backend: str, layout: str) -> None:
    # Blocked: every N, L and loo at D = 3 (each shape compiles four JAX programs; the block
    # arithmetic does not depend on D, which the dense grid covers).
    check_agreement(backend, layout, GRID if layout == "dense" else [c for c in GRID if c[2] == 3])


@pytest.mark.parametrize("layout", ["dense", "blocked"])
def test_numpy_manual_matches_jax_autodiff(layout: str) -> None:
    check_agreement("numpy", layout, [c for c in GRID if c[0] in (3, 50)])


# -- planted errors -------------------------------------------------------------------------------

#: (backend, layout, target, source text, its planted replacement). The target is an attribute
#: or "Class.method" of the backend's module (``REGISTRY[backend].module``), or of another
#: module of :mod:`backends` named before a colon: the blocked algorithm lives in its own module.
PLANTED = [
    # JAX dense: the column (B^T) term dropped; the column and row terms' sign swapped;
    # the softmax backward's -R e.y_n term with the wrong sign (dense and blocked share it).
    ("jax", "dense", "jax_dense:value_and_grad_manual", "jnp.sum(P, axis=0) - jnp.sum(P, axis=1)", "-jnp.sum(P, axis=1)"),
    ("jax", "dense", "jax_dense:value_and_grad_manual", "jnp.sum(P, axis=0) - jnp.sum(P, axis=1)", "jnp.sum(P, axis=1) - jnp.sum(P, axis=0)"),
    ("jax", "dense", "jax_blocked:softmax_backward", "return T - K *", "return T + K *"),
    ("jax", "blocked", "jax_blocked:softmax_backward", "return T - K *", "return T + K *"),
    ("jax", "blocked", "jax_blocked:compute_block", "cols.append(jnp.sum(P, axis=0))", "cols.append(0 * jnp.sum(P, axis=0))"),
    ("jax", "blocked", "jax_blocked:blocked_pass", "carry[1] + out.cols", "carry[1]"),
    ("jax", "blocked", "jax_blocked:compute_block", "rows.append(-jnp.sum(P, axis=1))", "rows.append(jnp.sum(P, axis=1))"),
    ("jax", "blocked", "jax_blocked:compute_block", "s = jnp.sum(K, axis=1, keepdims=True)", "s = jnp.sum(K, axis=1, keepdims=True) + 1e-3"),
    ("jax", "blocked", "jax_blocked:_data_term_blocked", "(p.rows + p.cols)", "(p.rows - p.cols)"),
    ("jax", "blocked", "jax_blocked:hand_derived_objective", "return (ct * g,)", "return (ct * g * 1.001,)"),
    # JAX sharded (a one-device mesh: no padding, one psum term): the column terms not added,
    # the scale.
    ("jax", "sharded", "jax_sharded:_local_share", "rows[:N] + p.cols", "rows[:N]"),
    ("jax", "sharded", "jax_sharded:_data_term_sharded", "(2.0 / sigma**2) * g", "(2.0 / sigma) * g"),
    ("torch", "dense", "value_and_grad_manual", "T.sum(dim=0) - T.sum(dim=1)", "-T.sum(dim=1)"),
    ("torch", "dense", "value_and_grad_manual", "T.sum(dim=0) - T.sum(dim=1)", "T.sum(dim=1) - T.sum(dim=0)"),
    # torch: the softmax backward's -R e.y_n term (dense and blocked share it), the blocked
    # column terms dropped, their sign, the row terms' sign, the row sums, the custom backward.
    ("torch", "dense", "torch_blocked:softmax_backward_", "out.sub_(K.mul_(", "out.add_(K.mul_("),
    ("torch", "blocked", "torch_blocked:softmax_backward_", "out.sub_(K.mul_(", "out.add_(K.mul_("),
    ("torch", "blocked", "torch_blocked:compute_block", "col[:, l] += K.sum(dim=0)", "col[:, l] += 0"),
    ("torch", "blocked", "torch_blocked:blocked_pass", "row += col", "row -= col"),
    ("torch", "blocked", "torch_blocked:compute_block", "row[:, l] = -K.sum(dim=1)", "row[:, l] = K.sum(dim=1)"),
    ("torch", "blocked", "torch_blocked:compute_block", "s = K.sum(dim=1, keepdim=True)", "s = K.sum(dim=1, keepdim=True) + 1e-3"),
    ("torch", "blocked", "torch_blocked:_HandDerived.backward", "return ct * grad,", "return 1.001 * ct * grad,"),
    ("numpy", "dense", "NumpyBackend._value_and_grad_dense", "B += B.T", "B += B"),
    ("numpy", "dense", "NumpyBackend._value_and_grad_dense", "grad /= sigma**2", "grad /= -(sigma**2)"),
    ("numpy", "dense", "_softmax_backward", "T -= K", "T += K"),
    # NumPy blocked, float64: the GEMM forms (the differences: PLANTED_NUMPY_DIFFERENCES)
    ("numpy", "blocked", "_objective_blocked", "col = T.T @ Z1[r0:r1]", "col = 0 * (T.T @ Z1[r0:r1])"),
    ("numpy", "blocked", "_objective_blocked", "col = col[:, :L] - col[:, L:] * Zc", "col = col[:, :L]"),
    ("numpy", "blocked", "_objective_blocked", "row[r0:r1] = BZ1[:, :L]", "row[r0:r1] = -BZ1[:, :L]"),
]  # fmt: skip

#: NumPy's blocked latent gradient from the differences (float32, and latents spread wider than
#: GEMM_MAX_SQNORM allows): planted with the GEMM forms switched off.
PLANTED_NUMPY_DIFFERENCES = [
    ("_objective_blocked", "col[:, l] = _column_sums(K)", "col[:, l] = 0"),
    ("_objective_blocked", "row[r0:r1, l] = -K.sum(axis=1)", "row[r0:r1, l] = K.sum(axis=1)"),
    ("_Blocks.fill", "K += T", "K -= T"),
    ("_softmax_backward", "T -= K", "T += K"),
    ("_Blocks.sums", "s = K.sum(axis=1, keepdims=True)", "s = K.sum(axis=1, keepdims=True) + 1e-3"),
    ("_column_sums", "P[:h] += P[n - h : n]", "P[:h] = P[n - h : n]"),
]  # fmt: skip


def plant(module: Any, target: str, old: str, new: str) -> Callable[..., Any]:
    """``target`` of ``module`` re-executed from its source with ``old`` replaced by ``new``."""
    owner, _, name = target.rpartition(".")
    original = getattr(getattr(module, owner), name) if owner else getattr(module, name)
    source = textwrap.dedent(inspect.getsource(original))
    assert source.count(old) == 1, f"{target} no longer contains {old!r}: update PLANTED"
    namespace = dict(vars(module))
    exec(compile(source.replace(old, new), module.__file__, "exec"), namespace)  # noqa: S102
    return namespace[name]  # type: ignore[no-any-return]


def swap_in_tables(
    monkeypatch: pytest.MonkeyPatch, holder: Any, original: object, mutant: object
) -> None:
    """Where ``holder`` is a backend class, put ``mutant`` in its tables in place of ``original``.

    The tables (``COMPUTATIONS``, ``VARIANTS``) hold the function objects themselves, so a
    method replaced on the class alone would not be the one they run.
    """
    for table in ("COMPUTATIONS", "VARIANTS"):
        if table not in vars(holder):
            continue
        entries = tuple(
            dataclasses.replace(
                entry,
                **{
                    f.name: mutant
                    for f in dataclasses.fields(entry)
                    if getattr(entry, f.name) is original
                },
            )
            for entry in vars(holder)[table]
        )
        monkeypatch.setattr(holder, table, entries)


def rebuild_jax_entry_points(
    layout: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Re-jit the entry point ``check_agreement`` compiles, from the (planted) module attributes.

    JAX caches traces per function: the unplanted ones (traced before) would be reused, and
    the planted ones (traced here) would be reused by later tests.
    """
    import jax

    from backends import jax_backend, jax_blocked, jax_dense, jax_sharded

    def clear() -> None:
        jax.clear_caches()
        jax_sharded.jitted.cache_clear()  # the sharded entry points, one per mesh

    clear()
    request.addfinalizer(clear)
    if layout == "sharded":
        return
    if layout == "dense":
        key = "value_and_grad_manual"
        fn = jax.jit(jax_dense.value_and_grad_manual, static_argnames=("loo", "assembly"))
    else:
        key = "value_and_grad_blocked"
        fn = jax.jit(
            jax.value_and_grad(jax_blocked.objective_blocked), static_argnames=("loo", "block")
        )
    monkeypatch.setitem(jax_backend._JITTED, key, fn)


@pytest.mark.parametrize(("backend", "layout", "target", "old", "new"), PLANTED)
def test_planted_error_fails_the_agreement(
    backend: str,
    layout: str,
    target: str,
    old: str,
    new: str,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    check_agreement(backend, layout, [(10, 2, 3, True)])  # unplanted: passes
    module_name, _, target = target.rpartition(":")
    module = importlib.import_module(f"backends.{module_name or REGISTRY[backend].module}")
    mutant = plant(module, target, old, new)
    owner, _, name = target.rpartition(".")
    holder = getattr(module, owner) if owner else module
    swap_in_tables(monkeypatch, holder, getattr(holder, name), mutant)
    monkeypatch.setattr(holder, name, mutant)
    if backend == "jax":  # jit-compiled entry points hold their own traces: rebuild them
        rebuild_jax_entry_points(layout, monkeypatch, request)
    with pytest.raises(AssertionError):
        check_agreement(backend, layout, [(10, 2, 3, True), (10, 2, 3, False)])


@pytest.mark.parametrize(("target", "old", "new"), PLANTED_NUMPY_DIFFERENCES)
def test_planted_error_fails_numpy_differences(
    target: str, old: str, new: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backends import numpy_backend

    monkeypatch.setattr(numpy_backend, "GEMM_MAX_SQNORM", -1.0)  # the differences throughout
    check_agreement("numpy", "blocked", [(10, 2, 3, True)])  # unplanted: passes
    owner, _, name = target.rpartition(".")
    monkeypatch.setattr(
        getattr(numpy_backend, owner) if owner else numpy_backend,
        name,
        plant(numpy_backend, target, old, new),
    )
    with pytest.raises(AssertionError):
        check_agreement("numpy", "blocked", [(10, 2, 3, True), (10, 2, 3, False)])


# -- float32 --------------------------------------------------------------------------------------


#: "As accurate as autodiff", the criterion of the float32 tests below. Error model: a
#: hand-derived and an autodiff gradient are the same exact quantity evaluated in float32 by
#: operations of the same kinds (sums over the N neighbours, products with X, elementwise
#: steps), so each has relative error c u kappa, with u the unit roundoff, kappa the problem's
#: conditioning (the same for both) and c a constant of the evaluation: the number and depth of
#: its sums. A form whose terms cancel multiplies its error by the cancellation factor, 3-5 on
#: the saddle for the GEMM assembly z_k sum_m S_km - (SZ)_k (|z| against the neighbours'
#: |z_k - z_m|); a sum whose depth is N rather than log2 N (a GEMM column where the BLAS
#: accumulates sequentially, NumPy's column sums) multiplies the error of that sum by up to
#: N / log2 N. The criterion, c_manual <= AS_ACCURATE c_autodiff, tells either failure from a
#: different but equally good order of the same sums, on any CPU.
AS_ACCURATE = 2.0


def float32_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The benchmark's own problem (saddle, N = 1000, used with sigma = 0.5) and 300 queries
    near its latents, for the projection."""
    Z, X = problem_inputs("saddle", 1000, 2)
    rng = np.random.default_rng(1)
    return Z, X, Z[:300] + 0.05 * rng.normal(size=(300, 2)), X[:300]


@pytest.mark.float32
@pytest.mark.parametrize("layout", ["dense", "blocked"])
@pytest.mark.parametrize("backend", ["jax", "torch", "numpy"])
def test_float32_manual_is_as_accurate_as_autodiff(backend: str, layout: str) -> None:
    Z, X, _, _ = float32_problem()
    kw = {"sigma": 0.5, "lam": 0.0, "loo": True}
    ref = value_and_grad(Z, X, layout="dense", **kw)[1]
    b = get_backend(backend, dtype="float32", layout=layout)
    Zd, Xd = b.asarray(Z), b.asarray(X)
    manual32 = b.to_numpy(b.compile("value_and_grad", Zd, Xd, Params(**kw))(Zd, Xd)[1])
    autodiff32 = value_and_grad(
        Z, X, backend="jax" if backend == "numpy" else backend, dtype="float32",
        layout=layout, gradient="autodiff", **kw,
    )[1]  # fmt: skip
    # float32 at all: within the a priori bound (error_model.error_bounds, worst case)
    g_bound = error_bounds(Z, X, kw, EPS["float32"])[1]
    for g in (manual32, autodiff32):
        assert np.linalg.norm(g - ref) <= g_bound
    err_manual, err_autodiff = relative_error(manual32, ref), relative_error(autodiff32, ref)
    assert err_manual <= AS_ACCURATE * err_autodiff, (err_manual, err_autodiff)


@pytest.mark.float32
@pytest.mark.parametrize("layout", ["dense", "blocked"])
@pytest.mark.parametrize("backend", ["jax", "torch", "numpy"])
def test_float32_projection_gradient_is_as_accurate_as_autodiff(backend: str, layout: str) -> None:
    # The projection (queries against fixed training latents, what transform() minimises):
    # hand-derived in NumPy (both layouts) and in every blocked layout, autodiff in JAX's and
    # torch's dense layout, the reference here (JAX's for NumPy).
    Z, X, Zq, Xq = float32_problem()
    dense64 = get_backend("numpy", layout="dense")
    ref = dense64.project_value_and_grad(Zq, Xq, Z, X, 0.5)[1]

    def grad(name: str, layout: str) -> np.ndarray:
        b = get_backend(name, dtype="float32", layout=layout)
        args = [b.asarray(a) for a in (Zq, Xq, Z, X)]
        return b.to_numpy(b.sync(b.project_value_and_grad(*args, 0.5))[1])

    err = relative_error(grad(backend, layout), ref)
    err_autodiff = relative_error(grad("jax" if backend == "numpy" else backend, "dense"), ref)
    assert err_autodiff < tolerance("float32", len(Z))  # float32 at all: sums of N terms
    assert err <= AS_ACCURATE * err_autodiff, (err, err_autodiff)


# -- the keyword ----------------------------------------------------------------------------------


def test_each_backend_declares_its_gradients() -> None:
    assert REGISTRY["jax"].gradients == REGISTRY["torch"].gradients == ("autodiff", "manual")
    assert REGISTRY["numpy"].gradients == ("manual",)
    assert REGISTRY["keops"].gradients == ("autodiff",)
    for spec in REGISTRY.values():  # "auto" resolves to a kind the backend implements
        for layout in spec.layouts:
            assert spec.gradient_for(layout) in spec.gradients


@pytest.mark.parametrize("backend", ["numpy", *FRAMEWORKS])
def test_each_class_declares_its_variants_once(backend: str) -> None:
    # One table per class: a variant per (layout, kind) of its spec, each a function object
    # with its one description (what describe_gradient, the records and the report show).
    cls = backend_class(backend)
    spec = REGISTRY[backend]
    assert cls.layouts == spec.layouts == tuple(c.layout for c in cls.COMPUTATIONS)
    found = sorted((v.layout, v.gradient) for v in cls.VARIANTS)
    assert found == sorted((lay, k) for lay in spec.layouts for k in spec.gradients_in(lay))
    assert len({v.description for v in cls.VARIANTS}) == len(cls.VARIANTS) or backend == "numpy"
    for v in cls.VARIANTS:
        assert callable(v.value_and_grad)
        b = get_backend(backend, gradient=v.gradient)
        assert b.describe_gradient(v.layout) == v.description
    # what only the harness asks is apart from the Backend ABC
    assert not any(
        hasattr(Backend, m) for m in ("compile_count", "device_peak", "configure_process")
    )
    assert instrumented(get_backend(backend)).compile_count() >= 0
    assert instrumented_class(backend).configure_process is not None


def test_a_class_whose_table_disagrees_with_its_spec_is_refused() -> None:
    from backends.numpy_backend import NumpyBackend

    with pytest.raises(TypeError, match=r"implements \[\('dense', 'manual'\)\].*declares"):

        class Partial(NumpyBackend):  # the spec's blocked layout missing
            COMPUTATIONS = NumpyBackend.COMPUTATIONS[:1]
            VARIANTS = NumpyBackend.VARIANTS[:1]


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_gradient_kind_and_description(backend: str) -> None:
    auto = get_backend(backend)
    assert (auto.gradient_kind("dense"), auto.gradient_kind("blocked")) == ("autodiff", "manual")
    for kind, prefix in [("autodiff", "autodiff"), ("manual", "hand-derived")]:
        b = get_backend(backend, gradient=kind)
        assert f"gradient={kind!r}" in repr(b)
        for layout in ("dense", "blocked"):
            assert b.gradient_kind(layout) == kind
            assert b.describe_gradient(layout).startswith(prefix), (kind, layout)
    assert get_backend(backend, gradient="autodiff").describe_gradient("blocked") != (
        auto.describe_gradient("blocked")
    )


def test_unsupported_gradient_names_the_keyword() -> None:
    Z, X = random_problem(5, 2, 3)
    with pytest.raises(
        ValueError,
        match=r"gradient must be one of \['auto', 'manual'\] for backend 'numpy', got 'autodiff'",
    ):
        value_and_grad(Z, X, backend="numpy", gradient="autodiff")
    # Refused before KeOps (a compiler, a CUDA toolkit) is even imported.
    with pytest.raises(
        ValueError,
        match=r"gradient must be one of \['auto', 'autodiff'\] for backend 'keops', got 'manual'",
    ):
        get_backend("keops", gradient="manual")
    with pytest.raises(
        ValueError,
        match=r"gradient must be one of \['auto', 'autodiff', 'manual'\] for backend 'jax', got 'symbolic'",
    ):
        get_backend("jax", gradient="symbolic")
    model = UKR(backend="numpy", gradient="autodiff", max_iter=1)
    with pytest.raises(ValueError, match=r"gradient must be one of .* got 'autodiff'"):
        model.fit(X)


def test_estimator_trains_with_either_gradient() -> None:
    _, X = problem_inputs("saddle", 60, 2)
    fits = [
        UKR(sigma=0.5, backend="torch", gradient=g, max_iter=15, random_state=0).fit(X)
        for g in ("autodiff", "manual")
    ]
    # The same iterations on the same gradient (to rounding): the same embedding.
    assert relative_error(fits[1].embedding_, fits[0].embedding_) <= FIT_TOL  # L-BFGS


def test_sweep_plans_every_gradient_each_backend_implements() -> None:
    cfg = SweepConfig(backends=["jax", "numpy", "torch", "keops"], ns=[100])
    kinds = {(k.backend, k.layout, k.gradient) for k in cfg.plan() if k.dtype == "float64"}
    assert kinds == {
        *itertools.product(["jax", "torch"], ["dense", "blocked"], ["autodiff", "manual"]),
        ("numpy", "dense", "manual"),
        ("numpy", "blocked", "manual"),
        ("keops", "blocked", "autodiff"),
    }
    only = SweepConfig(backends=["jax", "numpy", "keops"], ns=[100], gradients=["manual"])
    assert {k.backend for k in only.plan()} == {"jax", "numpy"}
    # "auto": each backend's default for the layout, as runs before the gradient axis had.
    auto = SweepConfig(backends=["jax"], ns=[100], dtypes=["float32"], gradients=["auto"])
    assert [(k.layout, k.gradient) for k in auto.plan()] == [
        ("dense", "autodiff"),
        ("blocked", "manual"),
    ]
    with pytest.raises(ValueError, match=r"gradients: every gradient must be one of"):
        SweepConfig(gradients=["symbolic"])


def test_old_run_config_resumes_its_own_plan() -> None:
    # meta.json of a run made before the gradient axis has no "gradients": --resume must plan
    # what that run planned (the defaults), not the new manual/autodiff series.
    stored = SweepConfig(backends=["jax"], ns=[100]).to_dict()
    del stored["gradients"]
    cfg = SweepConfig.from_dict(stored)
    assert cfg.gradients == ["auto"]
    assert {(k.layout, k.gradient) for k in cfg.plan()} == {
        ("dense", "autodiff"),
        ("blocked", "manual"),
    }


def test_labels_tell_autodiff_from_manual() -> None:
    labels = {
        label((b, layout, g, "float32", "cpu"))
        for b in FRAMEWORKS
        for layout in ("dense", "blocked")
        for g in ("autodiff", "manual")
    }
    assert len(labels) == 8  # all distinct
    # unnamed: autodiff (the backend's default kind) in either layout
    assert label(("jax", "blocked", "autodiff", "float32", "cpu")) == "jax blocked float32 cpu"
    assert label(("jax", "blocked", "manual", "float32", "cpu")) == "jax blocked manual float32 cpu"
    assert label(("jax", "dense", "manual", "float64", "cpu")) == "jax manual float64 cpu"
    assert label(("numpy", "dense", "manual", "float64", "cpu")) == "numpy float64 cpu"


# -- the report -----------------------------------------------------------------------------------


def synthetic_run(path: Path) -> Path:
    """A run of jax with both gradients: autodiff 1.5x the manual time, grad ratios 2 and 4."""
    from test_report import make_run, ok_row

    rows = []
    for dtype, n in itertools.product(["float32", "float64"], [250, 1000, 8000]):
        t = 1e-8 * n**2
        for gradient, factor in [("autodiff", 1.5), ("manual", 1.0)]:
            row = ok_row("jax", dtype, n, factor * t)
            row.key = dataclasses.replace(row.key, gradient=gradient)
            row.grad_ratio = 2.0 * factor + (1.0 if n == 8000 else 0.0)
            rows.append(row)
    return make_run(path, backends=(), extra_rows=rows)


def test_report_answers_what_autodiff_costs(tmp_path: Path) -> None:
    from ukr_bench.report import write_report
    from ukr_bench.report.analysis import autodiff_cost
    from ukr_bench.report.tables import autodiff_cost_table, grad_ratio_table

    run = synthetic_run(tmp_path / "run")
    df, _ = load_run(run)
    cost = autodiff_cost(df)
    assert len(cost) == 6  # dtype x N, jax dense
    assert np.allclose(cost["ratio"], 1.5)
    # samples +-2 % around each median: the interval holds 1.5 and lies above 1
    assert ((cost["low"] <= 1.5) & (cost["high"] >= 1.5) & (cost["low"] > 1.4)).all()
    table = autodiff_cost_table(cost)
    assert list(table["N"]) == [1000, 8000, 1000, 8000]
    assert table["autodiff / manual"].str.startswith("1.50x [").all()
    ratios = grad_ratio_table(df)
    assert list(ratios.columns) == [*SERIES_COLUMNS, "N=1000", "N=8000", "max"]
    auto = ratios[(ratios.gradient == "autodiff") & (ratios.dtype == "float64")].iloc[0]
    assert (auto["N=1000"], auto["N=8000"], auto["max"]) == ("3.00", "4.00", "4.00")
    md = write_report([run]).read_text()
    assert "## What autodiff costs" in md
    assert "autodiff slower in 6 of 6 configurations" in md
    assert (
        "the measured constant, the largest ratio of any backend and gradient here, is 4.00" in md
    )
    assert "6 of 8 configurations are within the goal of 3" in md  # not autodiff at N = 8000
    assert (run / "figures" / "autodiff_cost.png").is_file()
    assert "jax manual float32 cpu" in md  # both series named apart in the tables


def test_report_without_both_gradients_has_no_autodiff_cost(tmp_path: Path) -> None:
    from test_report import make_run

    from ukr_bench.report import write_report

    md = write_report([make_run(tmp_path / "run")]).read_text()
    assert "What autodiff costs" not in md
    assert "## The cheap-gradient principle" not in md  # N < 1000 only


def test_several_devices_refuse_a_non_default_gradient() -> None:
    # The sharded objective (rows over a mesh) is the hand-derived blocked one; refused before
    # any device is looked up, so this holds on a one-device machine.
    with pytest.raises(
        ValueError,
        match=r"gradient='autodiff' is not implemented on several devices for backend 'jax'",
    ):
        get_backend("jax", device="cpu:0-1", gradient="autodiff")
