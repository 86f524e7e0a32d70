"""Every bad input raises a clear error naming the parameter; nothing is silently cast or broadcast."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import (
    BACKENDS,
    cuda_device_count,
    cuda_device_counts,
    cuda_skip_reason,
    device_backends,
)
from error_model import tolerance

import ukr_bench
from backends import REGISTRY
from ukr_bench import (
    BackendNotInstalledError,
    DeviceUnavailableError,
    get_backend,
    relative_error,
    value_and_grad,
)

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
        # outside the dtype's range (tests/test_param_ranges.py): before, NumPy raised
        # ZeroDivisionError / OverflowError and JAX and torch returned NaN
        (
            {"sigma": 1e-300},
            ValueError,
            r"^sigma must lie in \[2\^-494, 2\^494\] \(about 1.96e-149 to 5.11e\+148\) "
            + r"for float64, got 1e-300",
        ),
        ({"sigma": 1e200}, ValueError, r"^sigma must lie in \[2\^-494, 2\^494\]"),
        (
            {"sigma": 1e-20, "dtype": "float32"},
            ValueError,
            r"^sigma must lie in \[2\^-46, 2\^46\] .* for float32, got 1e-20",
        ),
        (
            {"lam": 1e-40, "dtype": "float32"},
            ValueError,
            r"^lam must be 0 or lie in \[2\^-92, 2\^92\] .* for float32, got 1e-40",
        ),
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
def test_missing_gpu_fails_clearly(backend: str) -> None:
    # Right on both kinds of machine: with no CUDA device that the framework sees, "cuda"
    # raises; with n of them, "cuda" works (next test) and "cuda:<n>" is the first index that
    # does not exist. cuda:99 is missing everywhere.
    n = cuda_device_count(backend)
    for device in [*([] if n else ["cuda"]), f"cuda:{n}", "cuda:99"]:
        with pytest.raises(
            DeviceUnavailableError,
            match=rf"device '{device}' is not available for backend '{backend}'",
        ):
            get_backend(backend, device=device)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_visible_gpu_works(backend: str) -> None:
    n = cuda_device_count(backend)
    if not n:
        pytest.skip(f"{backend} sees no CUDA device here")
    Z, X = np.random.default_rng(0).normal(size=(2, 6, 3))
    ref = value_and_grad(Z, X)
    for device in ["cuda", f"cuda:{n - 1}"]:
        assert get_backend(backend, device=device).device == device
        v, g = value_and_grad(Z, X, backend=backend, device=device)
        assert relative_error(v, ref[0]) < tolerance("float64", 8)  # N = 6
        assert relative_error(g, ref[1]) < tolerance("float64", 8)


class _FakeDevice:
    platform = "gpu"


def test_device_selection_with_a_fake_jax_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    # The code paths a GPU machine takes, exercised here: two fake CUDA devices, then none.
    import jax

    fakes = [_FakeDevice(), _FakeDevice()]
    real = jax.devices

    def devices(kind: str | None = None) -> list:
        return fakes if kind == "cuda" else real(kind)

    monkeypatch.setattr(jax, "devices", devices)
    assert cuda_device_count("jax") == 2
    assert get_backend("jax", device="cuda")._device is fakes[0]
    assert get_backend("jax", device="cuda:1")._device is fakes[1]
    with pytest.raises(DeviceUnavailableError, match=r"'cuda:2'.*it sees 2 cuda device\(s\)"):
        get_backend("jax", device="cuda:2")

    def no_cuda(kind: str | None = None) -> list:
        msg = "Unknown backend cuda. Available backends are ['cpu']"
        raise RuntimeError(msg)

    monkeypatch.setattr(jax, "devices", no_cuda)
    assert cuda_device_count("jax") == 0
    with pytest.raises(DeviceUnavailableError, match=r"'cuda'.*Unknown backend cuda"):
        get_backend("jax", device="cuda")


def test_device_selection_with_a_fake_torch_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert cuda_device_count("torch") == 2
    assert get_backend("torch", device="cuda")._device == torch.device("cuda", 0)
    assert get_backend("torch", device="cuda:1")._device == torch.device("cuda", 1)
    with pytest.raises(DeviceUnavailableError, match=r"'cuda:2'.*it sees 2 cuda device\(s\)"):
        get_backend("torch", device="cuda:2")
    # A GPU that the installed torch cannot use (a CPU wheel, an old driver) is no GPU.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cuda_device_count("torch") == 0
    with pytest.raises(DeviceUnavailableError, match=r"torch.cuda.is_available\(\) is False"):
        get_backend("torch", device="cuda")


def test_device_parametrisation_follows_what_the_frameworks_see() -> None:
    # The "device" fixture's choice of backends and its skip reason, from given counts.
    assert device_backends("cpu", {}) == BACKENDS
    assert device_backends("cuda", {"jax": 0, "numpy": 0, "torch": 0}) == []
    assert device_backends("cuda", {"jax": 1, "numpy": 0, "torch": 0}) == ["jax"]
    assert device_backends("cuda", {"jax": 2, "numpy": 0, "torch": 1}) == ["jax", "torch"]
    reason = cuda_skip_reason({"jax": 0, "numpy": 0, "torch": 0})
    assert reason == "no CUDA device visible to jax or torch (devices seen: jax: 0, torch: 0)"
    # and the counts it uses are the frameworks' own
    assert cuda_device_counts() == {b: cuda_device_count(b) for b in BACKENDS}


def test_uninstalled_backend_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # how Python marks a module as unimportable
    assert "torch" not in ukr_bench.available_backends()
    with pytest.raises(
        BackendNotInstalledError,
        match=r'needs the .torch. package.*pip install "ukr-bench\[torch\]"',
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
    assert 'pip install "ukr-bench[jax]"' in out.stdout


def test_package_works_without_scikit_learn() -> None:
    # Only ukr_bench.UKR needs scikit-learn; the objective, every backend and the training
    # engine (which the benchmark harness times) work in an interpreter that cannot import it.
    code = textwrap.dedent(
        """
        import sys
        sys.modules["sklearn"] = None
        import numpy as np
        import ukr_bench
        from ukr_bench import training
        X, _ = ukr_bench.make_dataset("saddle", 30, random_state=0)
        Z = 0.1 * np.random.default_rng(0).normal(size=(30, 2))
        ref = ukr_bench.value_and_grad(Z, X)[1]
        for backend in ukr_bench.available_backends():
            g = ukr_bench.value_and_grad(Z, X, backend=backend)[1]
            assert ukr_bench.relative_error(g, ref) < TOL, backend
        for optimizer in training.OPTIMIZERS:
            r = training.fit(X, optimizer=optimizer, max_iter=5)
            assert r.history[-1] < r.history[0], optimizer
        assert training.project(X[:3] + 0.1, r.embedding, X, sigma=1.0).shape == (3, 2)
        assert "sklearn" not in sys.modules or sys.modules["sklearn"] is None
        try:
            ukr_bench.UKR
        except ImportError as e:
            print(e)
        """
    ).replace("TOL", repr(tolerance("float64", 32)))  # N = 30, float64 (error_model)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "ukr_bench.UKR needs scikit-learn" in out.stdout
    assert 'pip install "ukr-bench[sklearn]"' in out.stdout


def test_importing_the_package_imports_no_framework() -> None:
    # Nor scikit-learn: ukr_bench.UKR loads it on first use.
    code = "import sys, ukr_bench; ukr_bench.available_backends(); print(sorted({'jax', 'torch', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_registry_entries_resolve() -> None:
    """Every installed backend resolves; an optional one that is not installed says how."""
    for name, spec in REGISTRY.items():
        if not spec.installed():
            with pytest.raises(BackendNotInstalledError, match=re.escape(spec.install)):
                get_backend(name, dtype="float32")
            continue
        b = get_backend(name, dtype="float32")
        assert b.name == name
        assert b.dtype == "float32"
        assert b.info()["backend"] == name
