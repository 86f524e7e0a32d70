"""The second instruction-set path of ``nox -s tests`` (noxfile.ISA_PATHS) is what it claims.

Under ``UKR_BENCH_ISA_PATH`` every framework setting that can be observed from inside the
process is checked, so that a renamed variable or an ignored setting fails here instead of
silently running the float32 tests on the default path twice. Skipped on the default path.
"""

from __future__ import annotations

import os

import pytest

PATH = os.environ.get("UKR_BENCH_ISA_PATH")
pytestmark = [
    pytest.mark.float32,
    pytest.mark.skipif(
        PATH is None, reason="default instruction-set path (UKR_BENCH_ISA_PATH unset)"
    ),
]


def test_the_path_is_known() -> None:
    assert PATH == "x86-64-v2"


def test_numpy_dispatches_to_no_simd_beyond_the_baseline() -> None:
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    assert __cpu_dispatch__, "NumPy built without dispatched SIMD loops: nothing to disable"
    assert {f: __cpu_features__[f] for f in __cpu_dispatch__} == dict.fromkeys(
        __cpu_dispatch__, False
    )


def test_openblas_runs_its_sse42_kernels() -> None:
    import numpy as np
    from threadpoolctl import threadpool_info

    np.ones(2) @ np.ones(2)  # loads the BLAS
    archs = {i.get("architecture") for i in threadpool_info() if i["internal_api"] == "openblas"}
    assert archs == {"Nehalem"}


def test_torch_runs_its_default_kernels() -> None:
    torch = pytest.importorskip("torch")
    assert torch.backends.cpu.get_cpu_capability() == "DEFAULT"


def test_xla_is_limited() -> None:
    assert "--xla_cpu_max_isa=SSE4_2" in os.environ.get("XLA_FLAGS", "")


def test_mkl_runs_no_avx_kernels() -> None:
    """MKL (linked into torch) names the code path it dispatched to in its verbose banner:
    SSE4.2 under the path on an Intel CPU, its generic "Intel(R) Architecture processors" path
    on any other (where MKL never dispatches AVX kernels)."""
    pytest.importorskip("torch")
    import subprocess
    import sys

    code = "import torch; a = torch.ones(64, 64); a @ a"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "MKL_VERBOSE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    banner = next((line for line in out.splitlines() if line.startswith("MKL_VERBOSE oneMKL")), "")
    if not banner:
        pytest.skip("this torch build does not print MKL's verbose banner (no MKL)")
    assert "AVX" not in banner, banner
