"""The command line: each subcommand runs, and bad options end in a clear message, status 2."""

from __future__ import annotations

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
    installed = set(ukr_bench.available_backends())  # jax, numpy, torch; keops if installed
    assert installed >= {"jax", "numpy", "torch"}
    assert len(rows) == 2 * len(installed)  # backends x 2 dtypes
    assert {r.split("│")[1].strip() for r in rows} == installed


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
