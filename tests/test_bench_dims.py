"""Sweeps over the data's dimension D and on the user's own file, and their reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ukr_bench.bench import SweepConfig, resume_sweep, run_sweep
from ukr_bench.bench.estimates import memory_estimate
from ukr_bench.bench.presets import PRESETS, preset
from ukr_bench.cli import main as cli_main
from ukr_bench.report import write_report
from ukr_bench.report.analysis import run_winners, series, winners_per_n
from ukr_bench.report.headline import headline
from ukr_bench.report.tables import median_table, winners
from ukr_bench.schema import load_results, read_meta

TINY = {
    "backends": ["numpy"],
    "dtypes": ["float64"],
    "layouts": ["dense"],
    "ns": [8, 16],
    "min_rounds": 2,
    "min_time": 0.0,
    "warmup": 1,
    "max_rounds": 3,
    "fit_iters": 0,
}


def test_a_sweep_over_two_d_keeps_them_apart(tmp_path: Path) -> None:
    cfg = SweepConfig(**TINY, data_dims=[3, 8])
    run_dir = run_sweep(cfg, tmp_path / "run", progress=False)
    df, _ = load_results(run_dir)
    assert sorted(zip(df.data_dim, df.n, strict=True)) == [(3, 8), (3, 16), (8, 8), (8, 16)]
    assert (df.status == "ok").all()
    assert set(df.latent_dim) == {2}
    # the map keeps distances: the objective is the same at D = 3 and D = 8 (to roundoff)
    by_d = df.pivot_table(index="n", columns="data_dim", values="value")
    np.testing.assert_allclose(by_d[8], by_d[3], rtol=1e-12)
    # resume measures nothing again: D = 8 is not D = 3's configuration done twice
    before = (run_dir / "results.jsonl").read_text()
    resume_sweep(run_dir, progress=False)
    assert (run_dir / "results.jsonl").read_text() == before
    md = write_report([run_dir]).read_text()
    assert "## Problem D = 3" in md
    assert "## Problem D = 8" in md
    figures = {p.name for p in (run_dir / "figures").iterdir()}
    assert {"D3_time.png", "D8_time.png"} <= figures
    # two runs of two D compared: a verdict and an overlay per D, never one across them
    twin = tmp_path / "twin"
    shutil.copytree(run_dir, twin)
    md = write_report([run_dir, twin], tmp_path / "cmp").read_text()
    assert "overlaid, D = 3" in md
    assert "overlaid, D = 8" in md
    assert {"compare_D3_time.png", "compare_D8_time.png"} <= {
        p.name for p in (tmp_path / "cmp" / "figures").iterdir()
    }


def test_the_memory_estimate_follows_d() -> None:
    cfg = SweepConfig(**(TINY | {"layouts": ["dense", "blocked"]}), data_dims=[3, 256])
    small, big = (
        [memory_estimate(k, cfg) for k in cfg.plan() if k.data_dim == d and k.n == 16]
        for d in (3, 256)
    )
    assert all(b > s for s, b in zip(small, big, strict=True))


def fake(backend: str, d: int, n: int, t: float) -> dict[str, object]:
    """An ok row of value + gradient time ``t`` with 10 samples within 1 % of it."""
    return {
        "backend": backend, "layout": "dense", "dtype": "float64",
        "gradient": "manual" if backend == "numpy" else "autodiff",
        "device": "cpu", "n": n, "devices": 1, "data_dim": d, "latent_dim": 2, "status": "ok",
        "value_and_grad_median_s": t, "value_and_grad_iqr_s": 0.001 * t, "grad_ratio": 2.0,
        "samples": {"value_and_grad": list(t * (1 + np.linspace(-0.01, 0.01, 10)))},
        "run": "a",
    }  # fmt: skip


#: jax fastest at D = 3, numpy at D = 64, each by 2x: merged, the verdicts would be ties.
FRAME = pd.DataFrame(
    [fake("jax", 3, n, 1e-9 * n**2) for n in (100, 200)]
    + [fake("numpy", 3, n, 2e-9 * n**2) for n in (100, 200)]
    + [fake("jax", 64, n, 4e-9 * n**2) for n in (100, 200)]
    + [fake("numpy", 64, n, 2e-9 * n**2) for n in (100, 200)]
)


def test_winners_and_tables_never_merge_rows_of_different_d() -> None:
    w = winners_per_n(FRAME).set_index(["data_dim", "N"])["fastest"]
    assert w.to_dict() == {(3, 100): "jax", (3, 200): "jax", (64, 100): "numpy", (64, 200): "numpy"}
    assert list(winners(FRAME)["D"]) == [3, 64]
    assert list(winners(FRAME)["fastest"]) == ["jax", "numpy"]
    assert len(series(FRAME)) == 4  # two backends x two D
    assert run_winners(FRAME).set_index(["data_dim", "N"])["fastest"][(64, 100)] == "numpy"
    h = headline([FRAME])
    # across D the rows are ranges of D at each N: D = 3 and 64 differ, so never one row
    assert list(zip(h["N"], h["D"], h["fastest"], strict=True)) == [
        (100, "3", "jax"), (100, "64", "numpy"), (200, "3", "jax"), (200, "64", "numpy"),
    ]  # fmt: skip
    # one D: the tables read as they did before the D axis (no D column)
    one = FRAME[FRAME.data_dim == 3]
    assert "data_dim" not in winners_per_n(one).columns
    assert "D" not in winners(one).columns
    assert list(headline([one]).columns) == ["device", "dtype", "N", "fastest", "x bound", "runs"]
    assert median_table(one).shape == (2, 3)


def test_a_sweep_on_the_users_file_names_it_and_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    X = np.random.default_rng(0).normal(size=(20, 5))
    path.write_text("a,b,c,d,e\n" + "\n".join(",".join(map(repr, r)) for r in X.tolist()) + "\n")
    cfg = SweepConfig(**TINY, data=str(path))
    assert cfg.dims() == [5]
    run_dir = run_sweep(cfg, tmp_path / "run", progress=False)
    meta = read_meta(run_dir)
    import hashlib

    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta.data_file is not None
    assert (meta.data_file["sha256"], meta.data_file["rows"], meta.data_file["columns"]) == (
        sha, 20, 5,
    )  # fmt: skip
    df, _ = load_results(run_dir)
    assert set(df.data_dim) == {5}
    assert (df.status == "ok").all()
    md = write_report([run_dir]).read_text()
    assert sha in md
    assert str(path.resolve()) in md
    # a changed file is refused on --resume
    path.write_text(path.read_text() + "0,0,0,0,0\n")
    with pytest.raises(ValueError, match=r"changed since .* began"):
        resume_sweep(run_dir, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ns": [8, 30]}, r"ns: every N must be <= the 20 rows of .*mine\.npy, got N = 30"),
        ({"data_dims": [6]}, r"data_dims: the data's D is fixed at 5"),
    ],
)
def test_a_users_file_refuses_what_it_cannot_give(tmp_path: Path, kwargs: dict, match: str) -> None:
    np.save(tmp_path / "mine.npy", np.random.default_rng(0).normal(size=(20, 5)))
    with pytest.raises(ValueError, match=match):
        SweepConfig(**(TINY | kwargs), data=str(tmp_path / "mine.npy"))


def test_digits_and_dimensions_are_checked_before_a_sweep(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("sklearn")
    with pytest.raises(ValueError, match=r"ns: every N must be <= the 1797 samples of data set"):
        SweepConfig(backends=["numpy"], data="digits")
    assert SweepConfig(backends=["numpy"], data="digits", ns=[100]).dims() == [64]
    with pytest.raises(ValueError, match=r"data_dims: every D must be >= 3 for data set 'saddle'"):
        SweepConfig(backends=["numpy"], data_dims=[2])
    with pytest.raises(ValueError, match=r"data must be one of .* or the path of a \.npy"):
        SweepConfig(backends=["numpy"], data="moons")
    assert cli_main(["bench", "--data", "nothere.csv", "--no-progress"]) == 2
    assert "data: no such file nothere.csv" in capsys.readouterr().err


def test_digits_without_scikit_learn_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails
    with pytest.raises(ImportError, match=r"data set 'digits' needs .*ukr-bench\[data\]"):
        SweepConfig(backends=["numpy"], data="digits", ns=[100])


def test_the_presets_sweep_d() -> None:
    assert PRESETS["dims"]["data_dims"] == [3, 16, 64, 256]
    assert max(PRESETS["dims"]["ns"]) == 8000
    assert 64 in PRESETS["large-gpu"]["data_dims"]
    cfg = preset("dims", backends=["numpy"])
    assert {k.data_dim for k in cfg.plan()} == {3, 16, 64, 256}
    assert preset(None, backends=["numpy"]).dims() == [3]  # the default sweep: the saddle alone
    assert json.dumps(cfg.to_dict())  # stored in meta.json as it is
