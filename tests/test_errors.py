"""Every bad input raises a clear error naming the parameter; nothing is silently cast or broadcast."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ukr_bench
from ukr_bench import BackendNotInstalledError, DeviceUnavailableError, get_backend, value_and_grad
from ukr_bench.interface import REGISTRY

Z = np.zeros((5, 2))
X = np.ones((5, 3))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"Z": np.full((5, 2), np.nan)}, ValueError, r"Z has 10 non-finite"),
        ({"X": np.array([[np.inf, 0, 0]] * 5)}, ValueError, r"X has 5 non-finite"),
        (
            {"Z": np.full((5, 2), 1e39), "dtype": "float32"},
            ValueError,
            r"Z has 10 non-finite value\(s\) \(NaN or inf, in float32\)",
        ),
        (
            {"Z": np.zeros((1, 2)), "X": np.ones((1, 3))},
            ValueError,
            r"N = 1 is too small: loo=True needs at least 2",
        ),
        ({"Z": np.zeros((4, 2))}, ValueError, r"same number of rows N, got Z with 4 and X with 5"),
        ({"Z": np.zeros(5)}, ValueError, r"Z must be 2-D, got shape \(5,\)"),
        ({"X": np.ones((5, 3, 1))}, ValueError, r"X must be 2-D, got shape \(5, 3, 1\)"),
        ({"Z": np.zeros((5, 0))}, ValueError, r"Z must not be empty"),
        (
            {"Z": np.zeros((5, 2), dtype=int)},
            TypeError,
            r"Z must be a real floating-point array, got dtype int64",
        ),
        (
            {"X": np.ones((5, 3), dtype=complex)},
            TypeError,
            r"X must be a real floating-point array",
        ),
        ({"sigma": 0.0}, ValueError, r"sigma must be > 0, got 0.0"),
        ({"sigma": -1.0}, ValueError, r"sigma must be > 0"),
        ({"sigma": float("nan")}, ValueError, r"sigma must be finite"),
        ({"sigma": float("inf")}, ValueError, r"sigma must be finite"),
        ({"sigma": "1"}, TypeError, r"sigma must be a real number, got '1'"),
        ({"sigma": True}, TypeError, r"sigma must be a real number"),
        ({"lam": -0.1}, ValueError, r"lam must be >= 0, got -0.1"),
        ({"lam": float("inf")}, ValueError, r"lam must be finite"),
        ({"loo": 1}, TypeError, r"loo must be True or False, got 1"),
        (
            {"backend": "tensorflow"},
            ValueError,
            r"backend must be one of \['jax', 'keops', 'numpy', 'torch'\], got 'tensorflow'",
        ),
        (
            {"dtype": "float16"},
            ValueError,
            r"dtype must be one of \['float32', 'float64'\], got 'float16'",
        ),
        ({"dtype": "double-ish"}, ValueError, r"dtype must be one of"),
        ({"dtype": None}, ValueError, r"dtype must be one of"),
        (
            {"device": "tpu"},
            ValueError,
            r"device must be 'cpu', 'cuda' or 'cuda:<index>', got 'tpu'",
        ),
        ({"device": 0}, ValueError, r"device must be 'cpu', 'cuda'"),
        (
            {"device": "cuda", "backend": "numpy"},
            DeviceUnavailableError,
            r"device 'cuda' is not available for backend 'numpy': it runs on the host only",
        ),
    ],
)
def test_bad_input_names_the_parameter(kwargs: dict, error: type[Exception], match: str) -> None:
    args = {"Z": Z, "X": X} | kwargs
    with pytest.raises(error, match=match):
        value_and_grad(args.pop("Z"), args.pop("X"), **args)


def test_n1_without_loo_is_defined() -> None:
    # One point predicts itself: zero error, only the prior remains.
    value, grad = value_and_grad(np.array([[0.5, 1.0]]), np.ones((1, 3)), loo=False, lam=2.0)
    assert value == pytest.approx(2.0 * 1.25)
    np.testing.assert_allclose(grad, [[2.0, 4.0]])


@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.parametrize("device", ["cuda", "cuda:3"])
def test_missing_gpu_fails_clearly(backend: str, device: str) -> None:
    # This machine has no GPU; on one that has, cuda:3 may still be missing.
    pytest.importorskip("torch")
    import torch

    if backend == "torch" and torch.cuda.device_count() > 3:
        pytest.skip("this machine has a cuda:3")
    if backend == "jax":
        import jax

        try:
            if len(jax.devices("cuda")) > 3:
                pytest.skip("this machine has a cuda:3")
        except RuntimeError:
            pass
    with pytest.raises(
        DeviceUnavailableError, match=rf"device '{device}' is not available for backend '{backend}'"
    ):
        get_backend(backend, device=device)


def test_uninstalled_backend_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # how Python marks a module as unimportable
    assert "torch" not in ukr_bench.available_backends()
    with pytest.raises(
        BackendNotInstalledError,
        match=r"needs the 'torch' package.*pip install 'ukr-bench\[torch\]'",
    ):
        value_and_grad(Z, X, backend="torch")


def test_package_works_without_jax_and_torch() -> None:
    # A fresh interpreter where neither framework can be imported.
    code = textwrap.dedent(
        """
        import sys
        sys.modules["jax"] = None
        sys.modules["torch"] = None
        import numpy as np
        import ukr_bench
        assert ukr_bench.available_backends() == ["numpy"], ukr_bench.available_backends()
        v, g = ukr_bench.value_and_grad(np.eye(3), np.eye(3))
        try:
            ukr_bench.get_backend("jax")
        except ukr_bench.BackendNotInstalledError as e:
            print(e)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'ukr-bench[jax]'" in out.stdout


def test_importing_the_package_imports_no_framework() -> None:
    code = "import sys, ukr_bench; ukr_bench.available_backends(); print(sorted({'jax', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_registry_entries_resolve() -> None:
    for name in REGISTRY:
        b = get_backend(name, dtype="float32")
        assert b.name == name
        assert b.dtype == "float32"
        assert b.info()["backend"] == name
