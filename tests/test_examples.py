"""The worked examples in ``examples/`` run at a small size and write sane outputs.

Each example's ``main(argv)`` is called in-process (N = 150 digits, 20 iterations) into
``tmp_path``; the checks are on what it writes and returns, never on its timings.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from error_model import FIT_TOL

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SMALL = ["--n", "150", "--max-iter", "20"]
PNG = b"\x89PNG\r\n\x1a\n"


def load(name: str) -> ModuleType:
    """``examples/<name>.py`` as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up here
    spec.loader.exec_module(module)
    return module


def assert_png(path: Path) -> None:
    assert path.is_file(), path
    data = path.read_bytes()
    assert data.startswith(PNG), path
    assert len(data) > 10_000, f"{path}: {len(data)} bytes, too small for a drawn figure"


def user_table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """A user's table: an id, three numeric columns on a curve, and a text label."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(-1, 1, size=n)
    return pd.DataFrame(
        {
            "id": [f"s{i}" for i in range(n)],
            "a": t,
            "b": 10 * t**2 + rng.normal(scale=0.1, size=n),
            "c": np.sin(3 * t) + rng.normal(scale=0.05, size=n),
            "label": np.where(t > 0, "right", "left"),
        }
    )


# -- fit_your_data.py ---------------------------------------------------------------------------


def test_fit_your_data_csv(tmp_path: Path) -> None:
    table = user_table()
    path = tmp_path / "data.csv"
    table.to_csv(path, index=False)
    argv = [str(path), "--keep", "id", "--keep", "label", "--max-iter", "20"]
    out = load("fit_your_data").main([*argv, "--out", str(tmp_path / "out")])
    emb = pd.read_csv(out)
    assert list(emb.columns) == ["id", "label", "ukr0", "ukr1"]
    assert emb["id"].tolist() == table["id"].tolist()  # rows in the input's order
    assert emb["label"].tolist() == table["label"].tolist()
    Z = emb[["ukr0", "ukr1"]].to_numpy()
    assert np.isfinite(Z).all()
    assert Z.std(axis=0).min() > 0


def test_fit_your_data_npy(tmp_path: Path) -> None:
    path = tmp_path / "data.npy"
    np.save(path, user_table(80)[["a", "b", "c"]].to_numpy())
    argv = [str(path), "--n", "50", "--n-components", "1", "--max-iter", "20"]
    out = load("fit_your_data").main([*argv, "--out", str(tmp_path)])
    emb = pd.read_csv(out)
    assert list(emb.columns) == ["ukr0"]
    assert len(emb) == 50
    assert np.isfinite(emb.to_numpy()).all()


def _non_numeric(t: pd.DataFrame) -> pd.DataFrame:
    return t.assign(b=t["b"].astype(object).where(t.index != 2, "12 kg"))


def _nan(t: pd.DataFrame) -> pd.DataFrame:
    return t.assign(c=t["c"].where(t.index != 4))


def _constant(t: pd.DataFrame) -> pd.DataFrame:
    return t.assign(a=1.5)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (_non_numeric, r"column 'b' is not numeric: row 3 holds '12 kg'"),
        (_nan, r"column 'c' has 1 missing or infinite value\(s\).*the first in row 5"),
        (_constant, r"column 'a' is constant \(every value is 1\.5\)"),
        (lambda t: t, r"column 'id' is not numeric: row 1 holds 's0'.*--keep"),
    ],
    ids=["non-numeric", "nan", "constant", "text-column-not-kept"],
)
def test_fit_your_data_says_which_column(tmp_path: Path, spoil, message: str) -> None:
    path = tmp_path / "data.csv"
    spoil(user_table()).to_csv(path, index=False)
    example = load("fit_your_data")
    keep = [] if "id" in message else ["--keep", "id"]
    with pytest.raises(example.DataError, match=message):
        example.main([str(path), *keep, "--keep", "label", "--out", str(tmp_path)])
    assert not (tmp_path / "embedding.csv").exists()


def test_fit_your_data_npy_nan_names_the_column(tmp_path: Path) -> None:
    X = user_table()[["a", "b", "c"]].to_numpy(copy=True)
    X[7, 2] = np.nan
    path = tmp_path / "data.npy"
    np.save(path, X)
    example = load("fit_your_data")
    with pytest.raises(example.DataError, match=r"column '2' has 1 missing.*row 8"):
        example.main([str(path), "--out", str(tmp_path)])


def test_fit_your_data_command_line_prints_the_error(tmp_path: Path) -> None:
    """Run as a script, a bad column ends it with the message and status 1, no traceback."""
    path = tmp_path / "data.csv"
    _constant(user_table()).to_csv(path, index=False)
    script = str(EXAMPLES / "fit_your_data.py")
    cmd = [sys.executable, script, str(path), "--keep", "id", "--keep", "label"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("error: column 'a' is constant"), done.stderr
    assert "Traceback" not in done.stderr
    missing = subprocess.run(
        [sys.executable, script, str(tmp_path / "nothing.csv")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1
    assert "nothing.csv: no such file" in missing.stderr


# -- the digits examples ------------------------------------------------------------------------


def test_plot_embedding(tmp_path: Path) -> None:
    path = load("plot_embedding").main([*SMALL, "--out", str(tmp_path)])
    assert path == tmp_path / "digits_embedding.png"
    assert_png(path)


def test_compare_digits(tmp_path: Path) -> None:
    text = load("compare_digits").main([*SMALL, "--out", str(tmp_path)])
    assert (tmp_path / "compare_digits.md").read_text(encoding="utf-8") == text
    lines = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header, rows = cells[0], cells[2:]
    assert header == [
        "method",
        "trustworthiness (10 NN)",
        "held-out reconstruction error",
        "fit time (s)",
    ]
    by_method = {row[0]: row[1:] for row in rows}
    assert list(by_method) == ["UKR", "PCA", "Isomap", "t-SNE"]
    for method, (trust, error, seconds) in by_method.items():
        assert 0 < float(trust) <= 1, method
        assert math.isfinite(float(seconds)), method
        assert float(seconds) >= 0, method
        if method in {"UKR", "PCA"}:
            assert math.isfinite(float(error)), method
            assert float(error) > 0, method
        else:
            assert error == "–", method  # no map back to the data
    assert "150 digits: 112 to fit, 38 held out" in text


def test_out_of_sample(tmp_path: Path) -> None:
    paths = load("out_of_sample").main([*SMALL, "--grid", "6", "--out", str(tmp_path)])
    assert paths == [tmp_path / "out_of_sample.png", tmp_path / "generated_digits.png"]
    for path in paths:
        assert_png(path)


def test_choose_parameters(tmp_path: Path) -> None:
    table = load("choose_parameters").main([*SMALL, "--cv", "2", "--out", str(tmp_path)])
    assert pd.read_csv(tmp_path / "choose_parameters.csv").shape == table.shape
    assert len(table) == 12  # 4 lam x 3 sigma
    assert set(table["sigma"]) == {"auto", "0.3", "1.0"}
    numbers = table[["held-out score", "(std)", "leave-one-out error"]].to_numpy()
    assert np.isfinite(numbers).all()
    assert (table["held-out score"] < 0).all()
    assert (table["leave-one-out error"] > 0).all()
    assert table["rank"].min() == 1
    # What the example's docstring and docs/examples.md say: both parameters change the fit,
    # sigma at every lam (lam = 0 included) and lam at every sigma. "Different" is more than
    # two evaluations of one fit can differ by rounding (error_model.FIT_TOL, relative).
    for column, other in [("sigma", "lam"), ("lam", "sigma")]:
        for value, group in table.groupby(other):
            scores = group["held-out score"].to_numpy()
            assert len(scores) == len(set(group[column]))
            gaps = np.abs(scores[:, None] - scores[None, :]) / np.abs(scores).max()
            off_diagonal = gaps[~np.eye(len(scores), dtype=bool)]
            assert off_diagonal.min() > FIT_TOL, f"{column} does nothing at {other} = {value}"
