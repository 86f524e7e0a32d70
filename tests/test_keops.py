"""The optional KeOps backend against NumPy; skipped, with the reason, where pykeops cannot run.

KeOps compiles every formula at first use (tens of seconds each on a CPU, cached on disk), so
these tests use few shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_problem
from error_model import TOL, assert_objective_agrees, objective_tolerances

from ukr_bench import get_backend, relative_error, value_and_grad


@pytest.fixture(scope="module")
def keops() -> None:
    """Skip unless pykeops imports and compiles a reduction here."""
    pytest.importorskip("torch")
    pytest.importorskip(
        "pykeops", reason='pykeops is not installed: pip install "ukr-bench[keops]"'
    )
    from backends.keops_backend import KeOpsError

    try:
        value_and_grad(np.eye(3), np.eye(3), backend="keops")
    except KeOpsError as exc:
        pytest.skip(f"pykeops is installed but cannot compile here: {exc}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("loo", "lam", "sigma"), [(True, 0.0, 0.5), (False, 0.3, 2.0)])
def test_keops_matches_numpy(keops: None, dtype: str, loo: bool, lam: float, sigma: float) -> None:
    Z, X = random_problem(37, 2, 3, seed=1)
    Z *= sigma
    kw = {"sigma": sigma, "lam": lam, "loo": loo}
    ref_v, ref_g = value_and_grad(Z, X, layout="dense", **kw)
    bounds = objective_tolerances(Z, X, kw, dtype)
    for block in [None, 5]:  # one reduction; query rows split, diagonal offsets included
        v, g = value_and_grad(Z, X, backend="keops", dtype=dtype, block_size=block, **kw)
        assert g.dtype == np.dtype(dtype)
        assert_objective_agrees(v, g, ref_v, ref_g, bounds, f"block={block}")


def test_keops_leave_one_out_is_exact_for_isolated_points(keops: None) -> None:
    # Pairs 6 sigma apart, 60 sigma between pairs: each point is predicted by its partner alone.
    # "Full sum minus the self term" would compute (1 + exp(-18)) - 1 = 0 in float32, a 0/0;
    # excluding the diagonal inside the reduction gives the closed form in both precisions.
    n = 12
    _, X = random_problem(n, 2, 3, seed=11)
    Z = np.zeros((n, 2))
    Z[:, 0] = 60.0 * (np.arange(n) // 2)
    Z[1::2, 1] = 6.0
    expected = np.sum((X - X[np.arange(n) ^ 1]) ** 2) / n
    for dtype, tol in TOL.items():
        v, g = value_and_grad(Z, X, backend="keops", dtype=dtype)
        assert v == pytest.approx(expected, rel=tol)
        assert np.all(np.isfinite(g))


def test_keops_predict_and_projection(keops: None) -> None:
    Z, X = random_problem(30, 2, 3, seed=3)
    Zq, Xq = random_problem(11, 2, 3, seed=4)
    dense = get_backend("numpy", layout="dense")
    b = get_backend("keops", block_size=4)
    args = [b.asarray(a) for a in (Zq, Xq, Z, X)]
    y = b.to_numpy(b.predict(args[0], args[2], args[3], 0.6))
    v, g = b.project_value_and_grad(*args, 0.6)
    assert relative_error(y, dense.predict(Zq, Z, X, 0.6)) <= TOL["float64"]
    ref_v, ref_g = dense.project_value_and_grad(Zq, Xq, Z, X, 0.6)
    assert relative_error(float(b.to_numpy(v)), ref_v) <= TOL["float64"]
    assert relative_error(b.to_numpy(g), ref_g) <= TOL["float64"]


def test_keops_layout_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pykeops", reason="pykeops is not installed")
    b = get_backend("keops")
    assert b.resolve_layout(10**6) == ("blocked", None)
    assert get_backend("keops", block_size=64).resolve_layout(10, rows=5) == ("blocked", 5)
    with pytest.raises(ValueError, match=r"layout 'dense' is not implemented by backend 'keops'"):
        get_backend("keops", layout="dense")
    with pytest.raises(ValueError, match=r"at most 16777216 points"):
        b.resolve_layout(2**24 + 1)

    # A failing KeOps (no compiler, a CUDA mismatch) raises one clear error saying what to do.
    from backends import keops_backend

    def broken(*_: object) -> None:
        msg = "[KeOps] Error: could not compile the formula"
        raise OSError(msg)

    monkeypatch.setattr(keops_backend, "_reduce", broken)
    with pytest.raises(keops_backend.KeOpsError, match=r"KeOps failed.*g\+\+ and cmake"):
        value_and_grad(np.eye(3), np.eye(3), backend="keops")


def test_keops_declares_only_what_it_implements(monkeypatch: pytest.MonkeyPatch) -> None:
    # Runs without pykeops: the module imported over a stand-in, to read its class's tables.
    # KeOps tiles by itself: the blocked layout only, and no dense method inherited as a stub.
    pytest.importorskip("torch")
    import importlib
    import sys
    import types

    import backends

    fake = types.ModuleType("pykeops.torch")
    fake.LazyTensor = object  # type: ignore[attr-defined]
    top = types.ModuleType("pykeops")
    verbosity: list[bool] = []
    top.set_verbose = verbosity.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pykeops", top)
    monkeypatch.setitem(sys.modules, "pykeops.torch", fake)
    monkeypatch.delenv("PYKEOPS_VERBOSE", raising=False)
    real = sys.modules.pop("backends.keops_backend", None)
    try:
        cls = importlib.import_module("backends.keops_backend").KeOpsBackend
    finally:
        sys.modules.pop("backends.keops_backend", None)
        if real is not None:
            sys.modules["backends.keops_backend"] = real
        elif hasattr(backends, "keops_backend"):  # the import bound it on the package
            delattr(backends, "keops_backend")
    assert cls.layouts == ("blocked",)
    assert verbosity == [False]  # KeOps' build logs kept out of the user's output
    assert [(v.layout, v.gradient) for v in cls.VARIANTS] == [("blocked", "autodiff")]
    assert not [name for name in dir(cls) if name.endswith("_dense")]
