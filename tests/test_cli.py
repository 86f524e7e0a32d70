"""The command line: each subcommand runs, and bad options end in a clear message, status 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from error_model import tolerance

import ukr_bench
from ukr_bench.cli import main


def test_backends_lists_all_three(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    for name in ("jax", "numpy", "torch"):
        assert name in out
    assert 'pip install "ukr-bench[jax]"' in out


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
        tol = tolerance(dtype, 64)  # N = 60 (error_model)
        # the table prints E to 10 significant digits: its rounding, 5e-10, as a floor
        assert float(value) == pytest.approx(expected, rel=max(tol, 1e-9)), (backend, dtype)
        assert float(value_err) <= tol, (backend, dtype)
        assert float(grad_err) <= tol, (backend, dtype)
        if (backend, dtype) == ("numpy", "float64"):
            assert float(value_err) == float(grad_err) == 0.0


# Each bad option of issue 21 (part 4) and its neighbours: one line on stderr, exit status 2,
# naming the option as typed. Before: a ZeroDivisionError traceback (--sigma 1e-300), or the
# internal name (Z, eta_tutorial, n_components, "does not exist" for a file).
F32_SIGMA = r"--sigma must lie in [2^-46, 2^46] (about 1.42e-14 to 7.04e+13) for float32, got "


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["agreement", "--n", "50", "--sigma", "1e-300"], F32_SIGMA + "1e-300"),
        (["agreement", "--n", "50", "--sigma", "1e200"], F32_SIGMA + "1e+200"),
        (["agreement", "--n", "50", "--sigma", "1e-15"], F32_SIGMA + "1e-15"),  # float32 only
        (["agreement", "--n", "50", "--lam", "1e300"], "--lam must be 0 or lie in [2^-92, 2^92]"),
        (["agreement", "--sigma", "-1"], "--sigma must be > 0, got -1.0"),
        (["agreement", "--sigma", "nan"], "--sigma must be finite, got nan"),
        (["agreement", "--latent-dim", "0"], "--latent-dim must be an integer >= 1, got 0"),
        (["agreement", "--latent-dim", "-1"], "--latent-dim must be an integer >= 1, got -1"),
        (["agreement", "--n", "1"], "--n must be an integer >= 2 (leave-one-out needs another"),
        (["agreement", "--n", "0", "--no-loo"], "--n must be an integer >= 1"),
        (["agreement", "--noise", "-1"], "--noise must be >= 0, got -1.0"),
        (["agreement", "--seed", "-5"], "--seed must be an integer >= 0, got -5"),
        (["demo", "--eta", "0"], "--eta applies to --tutorial only"),
        (["demo", "--tutorial", "--eta", "0"], "--eta must be > 0, got 0.0"),
        (["demo", "--tutorial", "--epochs", "-1"], "--epochs must be an integer >= 0, got -1"),
        (["demo", "--tutorial", "--n", "5"], "--n applies to the saddle demo, not --tutorial"),
        (["demo", "--n", "1"], "--n must be an integer >= 3 (the fits of L = 2 latent"),
        (["report", "{file}"], "RUN_DIR {file} is a file, not a results directory"),
        (["report", "{dir}/missing"], "RUN_DIR {dir}/missing does not exist"),
        (["report", "{dir}", "--out", "{file}"], "--out {file} is a file"),
        # bench: SweepConfig's fields appear as their flags; sigma in each dtype of the sweep
        (["bench", "--sigma", "1e-20", "--dtypes", "float32"], F32_SIGMA + "1e-20"),
        (["bench", "--n", "1"], "--n: every N must be an integer >= 2"),
        (["bench", "--latent-dims", "0"], "--latent-dims: every L must be an integer >= 1, got 0"),
        (["bench", "--data-dims", "2"], "--data-dims: every D must be >= 3 for data set 'saddle'"),
    ],
)
def test_bad_options_exit_2_naming_the_option(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a_file.md").write_text("not a run")
    where = {"{file}": str(tmp_path / "a_file.md"), "{dir}": str(tmp_path)}
    for placeholder, path in where.items():
        argv = [a.replace(placeholder, path) for a in argv]
        message = message.replace(placeholder, path)
    out = tmp_path / "out"
    if argv[0] in ("demo", "bench"):  # were the check to fail, nothing lands in the checkout
        argv = [*argv, "--out", str(out), *(["--backends", "numpy"] if argv[0] == "demo" else [])]
        if argv[0] == "bench":
            argv += ["--backends", "numpy", "--no-report", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"ukr-bench {argv[0]}: error: {err.split(': error: ', 1)[1]}"
    assert err.count("\n") == 1, err  # one line, no traceback
    assert message in err
    assert not out.exists()  # refused before it started


def test_demo_writes_a_fresh_folder_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run inside a clone, the demo must not overwrite the committed results/figures."""
    from ukr_bench.cli import demo

    monkeypatch.chdir(tmp_path)
    first = demo._fresh_dir()
    assert first.name.startswith("ukr-bench-demo-")
    assert not first.exists()
    assert "results" not in first.parts
    first.mkdir()
    assert demo._fresh_dir() != first  # taken: another name


def test_agreement_help_gives_every_option_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["agreement", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for said in ("(default: saddle)", "(default: 0)", "(default: 0.5)", "every installed one"):
        assert said in out
