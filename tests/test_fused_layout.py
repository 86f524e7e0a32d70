"""The fused layout through the public paths (issue 26): ``value_and_grad(layout="fused")``,
``Backend`` objects, ``predict``, the projection, ``UKR(layout="fused")``, the sweep; and its
errors (a backend without it, a gradient kind it lacks, several devices, Triton missing).

On a CPU the kernels run in interpret mode, which is slow: every case is one tile (N <= 20;
the modules' default tiles: JAX 32, torch 64 and 32), in float64 unless the dtype is the point,
so that JAX compiles few programs. The kernels' own agreement grid, isolated points and planted
errors are ``tests/test_fused.py``'s; here the routing is checked, against float64 NumPy within
the error model's bounds.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import cuda_device_count, random_problem
from error_model import TOL, TRAJECTORY_TOL, assert_objective_agrees, objective_tolerances

import ukr_bench
from backends import REGISTRY, TRITON_INSTALL, BackendSpec, Variant
from ukr_bench import Params, get_backend, relative_error, value_and_grad
from ukr_bench.bench import SweepConfig
from ukr_bench.bench.estimates import memory_estimate
from ukr_bench.bench.policy import MEASURE_INTERPRETED_ENV, skip_reason
from ukr_bench.interface import BackendNotInstalledError
from ukr_bench.problem import plan_layout
from ukr_bench.schema import ConfigKey

pytestmark = [
    pytest.mark.filterwarnings("ignore::backends.jax_fused.FusedInterpretWarning"),
    pytest.mark.filterwarnings("ignore::backends.torch_fused.FusedInterpretWarning"),
]

HAVE_TRITON = importlib.util.find_spec("triton") is not None
#: Where torch sees CUDA its fused kernels are compiled for CUDA tensors, not interpreted on
#: CPU ones: tests/test_layouts.py checks them there (on device "cuda").
ON_CUDA = "torch sees a CUDA device: its fused kernels run on CUDA tensors only"
TORCH_ON_CPU = [
    pytest.mark.skipif(not HAVE_TRITON, reason=TRITON_INSTALL),
    pytest.mark.skipif(HAVE_TRITON and cuda_device_count("torch") > 0, reason=ON_CUDA),
]
FRAMEWORKS = ["jax", pytest.param("torch", marks=TORCH_ON_CPU)]
KW = {"sigma": 0.7, "lam": 0.2, "loo": True}


def problem(n: int = 13, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    Z, X = random_problem(n, 2, 3, seed=seed)
    return KW["sigma"] * Z, X


# -- the public paths ---------------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_value_and_grad_fused_layout(framework: str, dtype: str) -> None:
    Z, X = problem()
    ref_v, ref_g = value_and_grad(Z, X, layout="dense", **KW)
    v, g = value_and_grad(Z, X, backend=framework, layout="fused", dtype=dtype, **KW)
    assert g.dtype == np.dtype(dtype)
    assert_objective_agrees(v, g, ref_v, ref_g, objective_tolerances(Z, X, KW, dtype), dtype)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_backend_object_fused(framework: str) -> None:
    """resolve_layout, describe_gradient, value, value_and_grad, compile, predict and the
    projection of a fused Backend, against NumPy's dense float64."""
    Z, X = problem()
    Zq, Xq = random_problem(5, 2, 3, seed=4)
    ref = get_backend("numpy", layout="dense")
    b = get_backend(framework, layout="fused")
    assert b.resolve_layout(13) == ("fused", None)
    assert b.resolve_layout(10**6, rows=7) == ("fused", None)  # the kernels' own tiles
    assert b.gradient_kind("fused") == "manual"
    assert "fused" in b.describe_gradient("fused")
    assert b.info()["layout"] == "fused"
    assert b.info()["fused_interpreted"] is True  # device "cpu": recorded with its rows
    Zd, Xd = b.asarray(Z), b.asarray(X)
    params = Params(**KW)
    bounds = objective_tolerances(Z, X, KW, "float64")
    ref_v, ref_g = ref.value_and_grad(Z, X, **KW)
    v, g = b.sync(b.value_and_grad(Zd, Xd, **KW))
    assert_objective_agrees(b.to_numpy(v), b.to_numpy(g), ref_v, ref_g, bounds, "vg")
    v, g = b.sync(b.compile("value_and_grad", Zd, Xd, params)(Zd, Xd))
    assert_objective_agrees(b.to_numpy(v), b.to_numpy(g), ref_v, ref_g, bounds, "compiled")
    value = b.to_numpy(b.sync(b.compile("value", Zd, Xd, params)(Zd, Xd)))
    assert float(value) == pytest.approx(ref_v, rel=TOL["float64"])
    assert float(b.to_numpy(b.value(Zd, Xd, **KW))) == pytest.approx(ref_v, rel=TOL["float64"])
    got = b.to_numpy(b.sync(b.predict(b.asarray(Zq), Zd, Xd, KW["sigma"])))
    np.testing.assert_allclose(got, ref.predict(Zq, Z, X, KW["sigma"]), rtol=TOL["float64"])
    pv, pg = b.sync(b.project_value_and_grad(b.asarray(Zq), b.asarray(Xq), Zd, Xd, KW["sigma"]))
    ref_pv, ref_pg = ref.project_value_and_grad(Zq, Xq, Z, X, KW["sigma"])
    assert float(b.to_numpy(pv)) == pytest.approx(float(ref_pv), rel=TOL["float64"])
    assert relative_error(b.to_numpy(pg), ref_pg) <= TOL["float64"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_estimator_fused(framework: str) -> None:
    """UKR(layout="fused") follows NumPy's trajectory (small gd steps, as
    test_estimator.py's trajectory test), and its transform and inverse_transform (the fused
    projection and predict) agree with NumPy's."""
    from ukr_bench import UKR

    X, _ = ukr_bench.make_dataset("saddle", 20, noise=0.05, random_state=0)
    kw = {
        "sigma": 0.3, "optimizer": "gd", "learning_rate": 0.05, "max_iter": 3,
        "snapshot_every": 1, "init": "random", "random_state": 1,
    }  # fmt: skip
    ref = UKR(backend="numpy", **kw).fit(X)
    model = UKR(backend=framework, layout="fused", **kw).fit(X)
    assert model.get_params()["layout"] == "fused"
    assert relative_error(model.snapshots_, ref.snapshots_) < TRAJECTORY_TOL
    assert relative_error(model.history_, ref.history_) < TRAJECTORY_TOL
    Zq = ref.embedding_[:4] + 0.05
    np.testing.assert_allclose(
        model.inverse_transform(Zq), ref.inverse_transform(Zq), rtol=TOL["float64"]
    )
    Xq = X[:3] + 0.01  # not training points: projected by iRprop- on the fused E_q
    assert relative_error(model.transform(Xq), ref.transform(Xq)) < TRAJECTORY_TOL


# -- interpret mode warns once --------------------------------------------------------------


@pytest.fixture
def fresh_warnings() -> Iterator[None]:
    """The fused modules' one-time warnings armed again: JAX's programs traced anew (it warns
    when it traces), the torch kernels defined anew."""
    from backends import jax_backend, jax_fused

    saved = list(jax_fused._WARNED)
    jax_fused._WARNED.clear()
    jax_backend._fused_jitted.cache_clear()
    jax_backend.jax.clear_caches()  # jit's traces are cached per function, not per wrapper
    if HAVE_TRITON:
        from backends import torch_fused

        torch_fused.kernels.cache_clear()
    yield
    jax_fused._WARNED[:] = saved


@pytest.mark.usefixtures("fresh_warnings")
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_fused_layout_warns_once_on_a_cpu(framework: str) -> None:
    if framework == "torch":
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA device is available: the kernels are compiled, not interpreted")
    Z, X = problem()
    with pytest.warns(UserWarning, match="correctness, not speed") as record:
        value_and_grad(Z, X, backend=framework, layout="fused", **KW)
    assert [type(w.message).__name__ for w in record].count("FusedInterpretWarning") == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value_and_grad(Z, X, backend=framework, layout="fused", **KW)


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "keops"])
def test_fused_on_a_backend_without_it(backend: str) -> None:
    """The error of every layout a backend lacks, naming the backends that have it; raised
    before the framework is imported (KeOps need not be installed)."""
    match = r"layout 'fused' is not implemented by backend '\w+' \(backends with it: jax, torch\)"
    with pytest.raises(ValueError, match=match):
        get_backend(backend, layout="fused")
    with pytest.raises(ValueError, match=match):
        value_and_grad(*problem(), backend=backend, layout="fused")


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_fused_has_no_autodiff(backend: str) -> None:
    with pytest.raises(ValueError, match=r"gradient must be one of \['auto', 'manual'\] .* in layout 'fused'"):  # fmt: skip
        get_backend(backend, layout="fused", gradient="autodiff")
    assert get_backend(backend, gradient="autodiff").gradient_kind("dense") == "autodiff"


def test_fused_is_not_split_over_devices() -> None:
    with pytest.raises(ValueError, match="layout 'fused' cannot be split over 2 devices"):
        get_backend("jax", layout="fused", device="cpu:0-1")


def test_missing_triton_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Triton blocked from importing: the fused torch layout names the extra, at construction;
    every other torch layout is unaffected."""
    monkeypatch.setitem(sys.modules, "triton", None)
    with pytest.raises(BackendNotInstalledError, match=r'pip install "ukr-bench\[triton\]"'):
        get_backend("torch", layout="fused")
    with pytest.raises(ImportError, match="'triton' package, which is not installed"):
        value_and_grad(*problem(), backend="torch", layout="fused")
    assert get_backend("torch").resolve_layout(13)[0] == "dense"


@TORCH_ON_CPU[0]
@TORCH_ON_CPU[1]
def test_triton_interpreter_chosen_before_torch_imports_triton() -> None:
    """The blocked layout's autodiff (torch.utils.checkpoint) imports Triton; Triton's library
    functions are compiled unless TRITON_INTERPRET=1 was set before that, and an interpreted
    kernel cannot call them. The torch backend chooses the interpreter when it is imported,
    so fused after blocked works, in a fresh process without the variable."""
    script = (
        "import sys, warnings; warnings.simplefilter('ignore'); import numpy as np\n"
        "from ukr_bench import value_and_grad\n"
        "Z, X = np.random.default_rng(0).normal(size=(2, 7, 3)); Z = Z[:, :2]\n"
        "value_and_grad(Z, X, backend='torch', layout='blocked', gradient='autodiff')\n"
        "assert 'triton' in sys.modules\n"
        "print(value_and_grad(Z, X, backend='torch', layout='fused')[0])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.skipif(not HAVE_TRITON, reason=TRITON_INSTALL)
def test_triton_imported_too_early_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from backends import torch_fused_kernels

    if torch_fused_kernels.torch.cuda.is_available():
        pytest.skip("a CUDA device is available: the kernels are compiled, not interpreted")
    torch_fused_kernels.kernels.cache_clear()
    monkeypatch.setattr(torch_fused_kernels, "_CHOSEN", {"set": True, "late": True})
    try:
        with pytest.raises(RuntimeError, match="Triton was imported before TRITON_INTERPRET=1"):
            torch_fused_kernels.kernels()
    finally:
        torch_fused_kernels.kernels.cache_clear()


# -- the tables ------------------------------------------------------------------------------


def test_spec_gradient_kinds_per_layout() -> None:
    for name in ("jax", "torch"):
        spec = REGISTRY[name]
        assert "fused" in spec.layouts
        assert spec.gradients_in("fused") == ("manual",)
        assert spec.gradients_in("dense") == ("autodiff", "manual")
        assert spec.gradient_for("fused") == "manual"
        assert spec.gradient_for("dense") == "autodiff"
    assert REGISTRY["torch"].missing_for("dense") is None
    for name in ("numpy", "keops"):
        assert "fused" not in REGISTRY[name].layouts
    with pytest.raises(ValueError, match="layout_gradients 'fused'"):
        BackendSpec("x", "m", "C", None, "", layout_gradients=(("fused", ("manual",)),))
    with pytest.raises(ValueError, match="layout_gradients 'blocked'"):
        BackendSpec("x", "m", "C", None, "", layout_gradients=(("blocked", ("manual",)),))


def test_tables_must_match_the_layouts_gradients() -> None:
    """A class declaring an autodiff fused variant, or none for fused, is refused."""
    from backends.jax_backend import JaxBackend

    fused = next(v for v in JaxBackend.VARIANTS if v.layout == "fused")
    extra = Variant("fused", "autodiff", fused.value_and_grad, "planted")
    with pytest.raises(TypeError, match="its BackendSpec declares"):
        type("Planted", (JaxBackend,), {"VARIANTS": (*JaxBackend.VARIANTS, extra)})
    without = tuple(v for v in JaxBackend.VARIANTS if v.layout != "fused")
    with pytest.raises(TypeError, match="its BackendSpec declares"):
        type("Planted", (JaxBackend,), {"VARIANTS": without})


@pytest.mark.parametrize("device_kind", ["cpu", "cuda"])
def test_auto_never_picks_fused(device_kind: str) -> None:
    assert plan_layout(10, 10, 2, 3, "float32", 2**30, layout="fused") == ("fused", None)
    for n in (2, 1024, 1025, 10**6):
        layout, _ = plan_layout(n, n, 2, 3, "float32", 2**36, device_kind=device_kind)
        assert layout in ("dense", "blocked")


# -- the harness -----------------------------------------------------------------------------


def test_sweep_plans_fused_and_skips_it_on_a_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--layouts fused`` plans jax and torch (hand-derived only), not numpy; on a CPU each
    is skipped with the reason (unless a dry run asks to measure interpret mode); on CUDA it
    is measured; its memory estimate is O(N (L + D))."""
    cfg = SweepConfig(backends=["jax", "numpy", "torch"], layouts=["fused"], ns=[8, 16])
    keys = cfg.plan()
    assert {(k.backend, k.gradient) for k in keys} == {("jax", "manual"), ("torch", "manual")}
    monkeypatch.delenv(MEASURE_INTERPRETED_ENV, raising=False)
    reason = skip_reason(keys[0], [], cfg, 0, None)
    assert reason is not None
    assert "interpret mode" in reason
    monkeypatch.setenv(MEASURE_INTERPRETED_ENV, "1")
    assert skip_reason(keys[0], [], cfg, 0, None) is None
    monkeypatch.delenv(MEASURE_INTERPRETED_ENV)
    cuda = ConfigKey("jax", "fused", "manual", "float32", "cuda", 10**6, 1)
    assert skip_reason(cuda, [], cfg, memory_estimate(cuda, cfg), 2**30) is None
    blocked = ConfigKey("jax", "blocked", "manual", "float32", "cuda", 10**6, 1)
    assert memory_estimate(cuda, cfg) < memory_estimate(blocked, cfg)
    with pytest.raises(ValueError, match="layouts: every layout must be one of"):
        SweepConfig(layouts=["auto"])


def test_bench_cli_records_the_cpu_skip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ukr-bench bench --layouts fused`` on a CPU: every row skipped, with the reason."""
    from ukr_bench.cli import main as cli_main
    from ukr_bench.schema import Status, read_rows

    monkeypatch.delenv(MEASURE_INTERPRETED_ENV, raising=False)
    argv = ["--backends", "jax", "--layouts", "fused", "--dtypes", "float32", "--n", "8"]
    out = tmp_path / "run"
    argv += ["--fit-iters", "0", "--no-report", "--out", str(out)]  # nothing to draw
    assert cli_main(["bench", "--no-progress", *argv]) == 0
    (row,) = read_rows(out)
    assert (row.key.layout, row.key.gradient, row.status) == ("fused", "manual", Status.SKIPPED)
    assert "interpret mode" in row.reason


def test_gpu_check_script_parses() -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
