"""The fused kernels (issue 26: Pallas for JAX, Triton for torch) against float64 NumPy.

On a CPU both run in interpret mode (Pallas ``interpret=True``, Triton ``TRITON_INTERPRET=1``),
which is slow: every case is a few tiles (N <= 100, tiles of 16 or 32 rows), and the JAX cases
share shapes, since each padded size and dtype compiles once (N, loo and the plants are
kernel inputs, not compile-time constants). Tolerances: float64 within 1e-10 relative where
the result is well conditioned, and every result within the error model's bound
(:func:`error_model.objective_tolerances`), never a number measured here.

These tests call the modules' own functions, ``value_and_grad_fused``, ``objective_fused`` and
``predict_fused``; ``tests/test_fused_layout.py`` checks the layout (``layout="fused"``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import cuda_device_count, random_problem
from error_model import TOL, objective_tolerances

from ukr_bench import get_backend, value_and_grad

pytestmark = [
    pytest.mark.filterwarnings("ignore::backends.jax_fused.FusedInterpretWarning"),
    pytest.mark.filterwarnings("ignore::backends.torch_fused.FusedInterpretWarning"),
]

HAVE_TRITON = importlib.util.find_spec("triton") is not None
NO_TRITON = 'triton is not installed: pip install "ukr-bench[triton]"'
#: Where torch sees CUDA its fused kernels are compiled for CUDA tensors, not interpreted on
#: CPU ones: tests/test_layouts.py checks them there (on device "cuda").
ON_CUDA = "torch sees a CUDA device: its fused kernels run on CUDA tensors only"
TORCH_ON_CPU = [
    pytest.mark.skipif(not HAVE_TRITON, reason=NO_TRITON),
    pytest.mark.skipif(HAVE_TRITON and cuda_device_count("torch") > 0, reason=ON_CUDA),
]
FRAMEWORKS = ["jax", pytest.param("torch", marks=TORCH_ON_CPU)]
#: float64 agreement where the problem is well conditioned (the issue's requirement).
F64_REL = 1e-10


def fused(
    framework: str,
    Z: np.ndarray,
    X: np.ndarray,
    dtype: str,
    kw: dict[str, Any],
    block: int | None,
    plant: str | None = None,
) -> tuple[float, np.ndarray]:
    """(E, dE/dZ) of the fused kernels of ``framework`` in ``dtype``, as float64 NumPy
    (``block`` None: the module's default tiles)."""
    args = (kw["sigma"], kw["lam"], kw["loo"])
    if framework == "jax":
        import jax
        import jax.numpy as jnp

        from backends.jax_fused import BLOCK, value_and_grad_fused

        block = BLOCK if block is None else block
        with jax.enable_x64(dtype == "float64"):
            v, g = value_and_grad_fused(
                jnp.asarray(Z, dtype), jnp.asarray(X, dtype), *args,
                interpret=True, block=block, _plant=plant,
            )  # fmt: skip
            assert g.dtype == dtype
            return float(v), np.asarray(g, dtype=np.float64)
    import torch

    from backends.torch_fused import value_and_grad_fused as torch_vg

    tdt = getattr(torch, dtype)
    v, g = torch_vg(
        torch.tensor(Z, dtype=tdt), torch.tensor(X, dtype=tdt), *args, block=block, _plant=plant
    )
    assert g.dtype == tdt
    return float(v), g.double().numpy()


def reference(Z: np.ndarray, X: np.ndarray, kw: dict[str, Any]) -> tuple[float, np.ndarray]:
    return value_and_grad(Z, X, backend="numpy", layout="dense", dtype="float64", **kw)


def errors(
    got: tuple[float, np.ndarray], ref: tuple[float, np.ndarray]
) -> tuple[float, float, float, float]:
    """(|dv|, ||dg||, |dv| / |v|, ||dg|| / ||g||); inf where the result is not finite."""
    (v, g), (rv, rg) = got, ref
    if not (np.isfinite(v) and np.all(np.isfinite(g))):
        return (np.inf,) * 4
    dv, dg = abs(v - rv), float(np.linalg.norm(g - rg))
    return dv, dg, dv / max(abs(rv), 1e-300), dg / max(float(np.linalg.norm(rg)), 1e-300)


def agrees(
    got: tuple[float, np.ndarray],
    ref: tuple[float, np.ndarray],
    Z: np.ndarray,
    X: np.ndarray,
    kw: dict[str, Any],
    dtype: str,
    *,
    strict64: bool = True,
) -> bool:
    """Whether a result passes the agreement test: the error model's bound, and in float64
    (``strict64``) also :data:`F64_REL` relative."""
    dv, dg, rv, rg = errors(got, ref)
    v_tol, g_tol = objective_tolerances(Z, X, kw, dtype)
    ok = dv <= v_tol and dg <= g_tol
    if dtype == "float64" and strict64:
        ok = ok and rv <= F64_REL and rg <= F64_REL
    return bool(ok)


# -- the agreement grid ---------------------------------------------------------------------

#: (N, loo, lam, tile): N = 1 and 2 (the smallest objectives), 7 (under one tile), 33 and 100
#: (several tiles, the last one partial), with and without loo and the prior. Tiles of 16 but
#: for N = 100: Triton's interpreter pays per tile step, Pallas's per compiled shape.
CASES = [
    (1, False, 0.0, 16),
    (2, True, 0.0, 16),
    (7, True, 0.5, 16),
    (7, False, 0.0, 16),
    (33, True, 0.0, 16),
    (33, False, 0.3, 16),
    (100, True, 0.1, None),  # the modules' default tiles: JAX 32, torch 64 and 32
]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("n", "loo", "lam", "block"), CASES)
def test_fused_matches_numpy(
    framework: str, dtype: str, n: int, loo: bool, lam: float, block: int | None
) -> None:
    Z, X = random_problem(n, 2, 3, seed=n)
    kw = {"sigma": 0.7, "lam": lam, "loo": loo}
    Z *= kw["sigma"]
    got, ref = fused(framework, Z, X, dtype, kw, block), reference(Z, X, kw)
    assert agrees(got, ref, Z, X, kw, dtype), (
        errors(got, ref),
        objective_tolerances(Z, X, kw, dtype),
    )


def isolated(n: int, spread: float, sigma: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points ``spread`` bandwidths apart on a line (jittered by 0.1 sigma), data ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    Z = np.stack([np.arange(n) * spread, np.zeros(n)], axis=1) + 0.1 * rng.normal(size=(n, 2))
    return sigma * Z, rng.normal(size=(n, 3))


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("spread", [40.0, 1000.0])
def test_fused_isolated_points(framework: str, dtype: str, spread: float) -> None:
    """Every leave-one-out weight underflows in the naive exp / sum form (checked), in both
    dtypes; the online softmax's running minimum keeps the weights, up to 1000 sigma apart."""
    kw = {"sigma": 0.5, "lam": 0.1, "loo": True}
    Z, X = isolated(7, spread, kw["sigma"])
    q = ((Z[:, None] - Z[None]) ** 2).sum(-1) / (2 * kw["sigma"] ** 2)
    np.fill_diagonal(q, np.inf)
    assert np.all(np.exp(-q.astype(dtype)) == 0)  # the naive form is 0 / 0 in every row
    got, ref = fused(framework, Z, X, dtype, kw, 16), reference(Z, X, kw)
    # float64 at 1000 sigma: logits of 5e5 carry 5e5 eps = 1e-10 of rounding, which the
    # error model bounds; 1e-10 itself only where the logits are below 1e3
    assert agrees(got, ref, Z, X, kw, dtype, strict64=spread <= 40), errors(got, ref)


# -- planted errors: the agreement test must fail ----------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("plant", ["no_column", "row_sign", "no_inv_l"])
def test_planted_gradient_errors_are_caught(framework: str, plant: str) -> None:
    """A wrong term of the hand-derived gradient (column terms dropped, row terms' sign
    flipped, 1/l forgotten) fails the agreement test in both dtypes, while the right one
    passes it on the same problem (so the test, not the problem, tells them apart)."""
    Z, X = random_problem(33, 2, 3, seed=33)
    kw = {"sigma": 0.7, "lam": 0.0, "loo": True}
    Z *= kw["sigma"]
    ref = reference(Z, X, kw)
    block = 16 if framework == "jax" else 32  # JAX: the grid's compiled shapes; torch: 2 x 2
    for dtype in ["float64", "float32"]:
        assert agrees(fused(framework, Z, X, dtype, kw, block), ref, Z, X, kw, dtype)
        wrong = fused(framework, Z, X, dtype, kw, block, plant=plant)
        assert not agrees(wrong, ref, Z, X, kw, dtype, strict64=False), (plant, dtype)
        assert wrong[0] == pytest.approx(ref[0], rel=TOL[dtype])  # the value is unaffected


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # Triton's interpreter: its 0 / 0
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_planted_naive_softmax_is_caught(framework: str) -> None:
    """Without the running minimum (the naive exp / sum form) isolated points fail."""
    kw = {"sigma": 0.5, "lam": 0.0, "loo": True}
    Z, X = isolated(7, 40.0, kw["sigma"])
    ref = reference(Z, X, kw)
    for dtype in ["float64", "float32"]:
        wrong = fused(framework, Z, X, dtype, kw, 16, plant="no_shift")
        assert not agrees(wrong, ref, Z, X, kw, dtype, strict64=False), dtype


# -- autodiff through the custom VJP / autograd Function ------------------------------------


def test_jax_objective_fused_differentiates() -> None:
    import jax
    import jax.numpy as jnp

    from backends.jax_fused import objective_fused, value_and_grad_fused

    Z, X = random_problem(33, 2, 3, seed=5)
    kw = {"sigma": 0.6, "lam": 0.2, "loo": True}
    with jax.enable_x64(True):
        Zj, Xj = jnp.asarray(Z), jnp.asarray(X)
        v, g = jax.value_and_grad(
            lambda z: objective_fused(z, Xj, 0.6, 0.2, True, interpret=True, block=16)
        )(Zj)
        _, g0 = value_and_grad_fused(Zj, Xj, 0.6, 0.2, True, interpret=True, block=16)
        value_only = objective_fused(Zj, Xj, 0.6, 0.2, True, interpret=True, block=16)
    ref_v, ref_g = reference(Z, X, kw)
    assert float(v) == pytest.approx(ref_v, rel=F64_REL)
    assert float(value_only) == pytest.approx(ref_v, rel=F64_REL)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g0), rtol=F64_REL)  # prior's order
    assert np.linalg.norm(np.asarray(g) - ref_g) <= F64_REL * np.linalg.norm(ref_g)


def test_jax_objective_fused_under_jit() -> None:
    """Inside the caller's ``jax.jit`` (as a backend's compiled function will call it), with
    sigma traced: the kernels' own jits are nested there (without their interpret-mode compiler
    options, which JAX refuses on a nested jit)."""
    import jax
    import jax.numpy as jnp

    from backends.jax_fused import objective_fused

    Z, X = random_problem(7, 2, 3, seed=9)
    kw = {"sigma": 0.7, "lam": 0.1, "loo": True}
    f = jax.jit(
        jax.value_and_grad(
            lambda z, x, sigma: objective_fused(z, x, sigma, 0.1, True, interpret=True, block=16)
        )
    )
    got = f(jnp.asarray(Z, jnp.float32), jnp.asarray(X, jnp.float32), 0.7)
    got = (float(got[0]), np.asarray(got[1], dtype=np.float64))
    assert agrees(got, reference(Z, X, kw), Z, X, kw, "float32"), errors(got, reference(Z, X, kw))


@TORCH_ON_CPU[0]
@TORCH_ON_CPU[1]
def test_torch_objective_fused_differentiates() -> None:
    import torch

    from backends.torch_fused import objective_fused

    Z, X = random_problem(33, 2, 3, seed=5)
    kw = {"sigma": 0.6, "lam": 0.2, "loo": True}
    Zt = torch.tensor(Z, requires_grad=True)
    v = objective_fused(Zt, torch.tensor(X), 0.6, 0.2, True, block=16)
    v.backward()
    ref_v, ref_g = reference(Z, X, kw)
    assert float(v.detach()) == pytest.approx(ref_v, rel=F64_REL)
    assert Zt.grad is not None
    assert np.linalg.norm(Zt.grad.numpy() - ref_g) <= F64_REL * np.linalg.norm(ref_g)
    with pytest.raises(NotImplementedError, match="differentiable in Z only"):
        objective_fused(torch.tensor(Z), torch.tensor(X, requires_grad=True), 0.6, 0.2, True)


# -- predict ---------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_fused_predict_matches_numpy(framework: str) -> None:
    """Queries in tiles (5: under one tile) against 33 training latents (three tiles)."""
    Z, X = random_problem(33, 2, 3, seed=7)
    Zq = np.random.default_rng(8).normal(size=(5, 2))
    ref = get_backend("numpy", layout="dense").predict(Zq, Z, X, 0.8)
    if framework == "jax":
        import jax
        import jax.numpy as jnp

        from backends.jax_fused import predict_fused

        with jax.enable_x64(True):
            got = np.asarray(
                predict_fused(
                    jnp.asarray(Zq), jnp.asarray(Z), jnp.asarray(X), 0.8, interpret=True, block=16
                )
            )
    else:
        import torch

        from backends.torch_fused import predict_fused as torch_predict

        got = torch_predict(torch.tensor(Zq), torch.tensor(Z), torch.tensor(X), 0.8, block=16)
        got = got.numpy()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=TOL["float64"], atol=TOL["float64"])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_fused_projection_matches_numpy(framework: str) -> None:
    """The projection error (a sum) and its gradient in the queries: 5 queries (under one
    tile) with their data against 33 training points (three tiles), no column terms."""
    Z, X = random_problem(33, 2, 3, seed=7)
    Zq, Xq = random_problem(5, 2, 3, seed=8)
    ref_v, ref_g = get_backend("numpy", layout="dense").project_value_and_grad(Zq, Xq, Z, X, 0.8)
    if framework == "jax":
        import jax
        import jax.numpy as jnp

        from backends.jax_fused import project_value_and_grad_fused

        with jax.enable_x64(True):
            args = (jnp.asarray(a) for a in (Zq, Xq, Z, X))
            v, g = project_value_and_grad_fused(*args, 0.8, interpret=True, block=16)
            v, g = float(v), np.asarray(g)
    else:
        import torch

        from backends.torch_fused import project_value_and_grad_fused as torch_project

        tv, tg = torch_project(*(torch.tensor(a) for a in (Zq, Xq, Z, X)), 0.8, block=16)
        v, g = float(tv), tg.numpy()
    assert v == pytest.approx(float(ref_v), rel=TOL["float64"])
    assert np.linalg.norm(g - ref_g) <= TOL["float64"] * np.linalg.norm(ref_g)


# -- interpret mode: the one-time warning, the missing extra ------------------------------------


def test_jax_interpret_mode_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import jax.numpy as jnp

    from backends import jax_fused

    monkeypatch.setattr(jax_fused, "_WARNED", [])
    Z, X = (jnp.asarray(a, jnp.float32) for a in random_problem(7, 2, 3))
    with pytest.warns(jax_fused.FusedInterpretWarning, match="correctness, not speed"):
        jax_fused.value_and_grad_fused(Z, X, 0.7, 0.0, True, interpret=True, block=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jax_fused.value_and_grad_fused(Z, X, 0.7, 0.0, True, interpret=True, block=16)


@pytest.fixture
def fresh_triton_kernels() -> Iterator[None]:
    """The torch kernels defined anew in the test (and again after it)."""
    from backends import torch_fused

    torch_fused.kernels.cache_clear()
    yield
    torch_fused.kernels.cache_clear()


@pytest.mark.skipif(not HAVE_TRITON, reason=NO_TRITON)
@pytest.mark.usefixtures("fresh_triton_kernels")
def test_torch_interpret_mode_warns_once() -> None:
    from backends import torch_fused

    if torch_fused.torch.cuda.is_available():
        pytest.skip("a CUDA device is available: the kernels are compiled, not interpreted")
    with pytest.warns(torch_fused.FusedInterpretWarning, match="TRITON_INTERPRET=1"):
        assert torch_fused.kernels()["interpret"]
    assert os.environ["TRITON_INTERPRET"] == "1"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch_fused.kernels()


@pytest.mark.usefixtures("fresh_triton_kernels")
def test_torch_without_triton_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from backends import torch_fused

    monkeypatch.setitem(sys.modules, "triton", None)
    monkeypatch.setitem(sys.modules, "triton.language", None)
    with pytest.raises(ImportError, match=r'pip install "ukr-bench\[triton\]"'):
        torch_fused.value_and_grad_fused(torch.eye(3), torch.eye(3), 1.0, 0.0, True)


# -- the GPU code paths, checked without a GPU -------------------------------------------------


def test_pallas_kernels_lower_for_a_gpu() -> None:
    """The Triton lowering of the Pallas kernels (not interpret mode) accepts them: every
    loaded value's size a power of 2, dynamic loop bounds; it runs without a GPU."""
    import jax
    import jax.numpy as jnp

    from backends import jax_fused

    meta = jnp.array([100, 100, 1, 0], jnp.int32)
    U, X, mu = jnp.zeros((2, 128)), jnp.zeros((3, 128)), jnp.zeros(128)
    for fn, args in [
        (jax_fused._pass1, (meta, U, U, X)),
        (jax_fused._pass2, (meta, U, X, X, X, X, mu)),
        (jax_fused._project2, (meta, U, X, X, mu, U, X)),
    ]:
        traced = jax.jit(fn, static_argnames=("block", "interpret")).trace(
            *args, block=jax_fused.BLOCK, interpret=False
        )
        assert "triton" in traced.lower(lowering_platforms=("cuda",)).as_text().lower()


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_TRITON, reason=NO_TRITON)
def test_triton_kernels_compile_for_sm90() -> None:
    """The three kernels compile to a cubin for an H100/H200 (sm_90), float32 and float64, which
    interpret mode does not check (it runs the Python source with NumPy). In a subprocess:
    this process's kernels are the interpreter's."""
    script = textwrap.dedent(
        """
        import triton
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
        from backends import torch_fused, torch_fused_kernels
        torch_fused_kernels._interpret_wanted = lambda: (False, False)
        k = torch_fused.kernels()
        ptr = (
            ["UQ", "U", "X", "MU", "LS", "Y"],
            ["U", "X", "Y", "WR", "WC", "MU", "G"],
            ["UQ", "YQ", "WQ", "MUQ", "U", "X", "G"],
        )
        ints = ["M", "N"], ["N"], ["M", "N"]
        t1, t2 = torch_fused.TILES["pass1"], torch_fused.TILES["pass2"]
        consts = (
            {"LOO": True, "NAIVE": False, "L": 2, "D": 3, "DP": 4, "BM": t1, "BN": t1},
            {"LOO": True, "L": 2, "D": 3, "LP": 2, "BM": t2, "BN": t2},
            {"L": 2, "D": 3, "LP": 2, "BM": t2, "BN": t2},
        )
        for name, p, i, c in zip(["pass1", "pass2", "project2"], ptr, ints, consts):
            warps = torch_fused._num_warps(c["BM"])
            for dt in ["fp32", "fp64"]:
                sig = {**{a: "*" + dt for a in p}, **{a: "i32" for a in i}}
                sig.update({a: "constexpr" for a in c})
                src = ASTSource(fn=k[name], signature=sig, constexprs=c)
                target = GPUTarget("cuda", 90, 32)
                out = triton.compile(src, target=target, options={"num_warps": warps})
                assert out.asm["cubin"], (name, dt)
                print(name, dt, "ok")
        """
    )
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("ok") == 6, done.stdout


def test_cost_constants() -> None:
    """The exps and flops per ordered pair that the harness's bound will use (derived in the
    modules' docstrings): 3 exps, 44 (Pallas) and 46 (Triton) flops at L = 2, D = 3, for the
    objective's value and gradient; the projection's row-only pass 2 1 exp, 19 and 21 flops."""
    from backends import jax_fused, torch_fused

    for mod, flops, projection in [(jax_fused, 44, 19), (torch_fused, 46, 21)]:
        exps, per_pair = mod.EXPS_PER_PAIR, mod.flops_per_pair(2, 3)
        assert exps["pass1"] + exps["pass2_rows"] + exps["pass2_columns"] == 3
        assert exps["pass1"] + exps["projection_pass2"] == 2
        assert per_pair["pass1"] + per_pair["pass2"] == flops
        assert per_pair["projection_pass2"] == projection
