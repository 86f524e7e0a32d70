"""The command line: each subcommand runs, and bad options end in a clear message, status 2."""

from __future__ import annotations

import numpy as np
import pytest

import ukr_bench
from ukr_bench.cli import main


def test_backends_lists_all_three(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    for name in ("jax", "numpy", "torch"):
        assert name in out
    assert "pip install 'ukr-bench[jax]'" in out


def test_agreement_prints_every_backend_and_dtype(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agreement", "--n", "60"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
    cells = [[c.strip() for c in r.split("│")[1:-1]] for r in rows]
    installed = ukr_bench.available_backends()  # jax, numpy, torch; keops where installed
    assert set(installed) >= {"jax", "numpy", "torch"}
    assert sorted((c[0], c[1]) for c in cells) == [
        (b, d) for b in installed for d in ("float32", "float64")
    ]
    # Reference: E of the same problem (the command's documented data, seed and Z), computed
    # here; every row's errors within the suite's agreement tolerances, NumPy float64 exactly 0.
    X, _ = ukr_bench.make_dataset("saddle", 60, random_state=0)
    Z = np.random.default_rng(1).normal(size=(60, 2))  # the benchmark's Z ~ N(0, I), seed + 1
    expected = ukr_bench.value_and_grad(Z, X, sigma=0.5)[0]
    for backend, dtype, value, value_err, grad_err in cells:
        tol = {"float32": 1e-4, "float64": 1e-10}[dtype]
        assert float(value) == pytest.approx(expected, rel=max(tol, 1e-9)), (backend, dtype)
        assert float(value_err) <= tol, (backend, dtype)
        assert float(grad_err) <= tol, (backend, dtype)
        if (backend, dtype) == ("numpy", "float64"):
            assert float(value_err) == float(grad_err) == 0.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["agreement", "--sigma", "-1"], "sigma must be > 0, got -1.0"),
        (["agreement", "--n", "1"], "N = 1 is too small"),
        (["agreement", "--latent-dim", "0"], "Z must not be empty"),
    ],
)
def test_bad_options_exit_2_with_the_reason(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err
