"""The data's dimension D: the saddle embedded in D dimensions, digits, and the user's own files.

Tolerances: Householder QR gives a Q orthogonal to a few D eps (Higham, *Accuracy and Stability
of Numerical Algorithms*, 2nd ed., Thm 19.4: ||Q^T Q - I|| = O(D eps)); a product X M of a
point by M sums ``native`` terms. The bounds below state their growth factor next to eps.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest

from ukr_bench import value_and_grad
from ukr_bench.data import EMBEDDING_SEED, NATIVE_DIMS, embedding, make_dataset, problem_inputs
from ukr_bench.data_files import ConstantColumnWarning, describe, load, subsample

EPS = np.finfo(np.float64).eps
#: Growth factor of Q's orthogonality error per dimension (stated generously: Thm 19.4's
#: constant for Householder QR with the columns' sign flips, which are exact).
QR_GROWTH = 16


@pytest.mark.parametrize("dim", [3, 4, 16, 64, 256])
def test_the_map_has_orthonormal_rows(dim: int) -> None:
    M = embedding(3, dim)
    assert M.shape == (3, dim)
    assert M.dtype == np.float64
    np.testing.assert_allclose(M @ M.T, np.eye(3), rtol=0, atol=QR_GROWTH * dim * EPS)


def test_a_map_that_is_not_orthogonal_is_caught() -> None:
    """The check above can fail: a Gaussian map (the QR left out) is far from orthonormal."""
    G = np.random.default_rng([EMBEDDING_SEED, 16]).normal(size=(3, 16))
    assert np.abs(G @ G.T - np.eye(3)).max() > QR_GROWTH * 16 * EPS


def test_the_map_is_fixed_and_differs_between_d() -> None:
    np.testing.assert_array_equal(embedding(3, 16), embedding(3, 16))
    assert not np.allclose(embedding(3, 16)[:, :3], embedding(3, 17)[:, :3])


def test_d3_is_the_saddle_bit_for_bit() -> None:
    for noise in (0.0, 0.05):
        plain, z = make_dataset("saddle", 300, noise=noise, random_state=7)
        same, z3 = make_dataset("saddle", 300, noise=noise, random_state=7, data_dim=3)
        np.testing.assert_array_equal(plain, same)
        np.testing.assert_array_equal(z, z3)
    Z, X = problem_inputs("saddle", 50, 2, seed=0)
    Z3, X3 = problem_inputs("saddle", 50, 2, seed=0, data_dim=3)
    np.testing.assert_array_equal(X, X3)
    np.testing.assert_array_equal(Z, Z3)


@pytest.mark.parametrize("dim", [16, 64])
def test_the_embedded_saddle_keeps_its_intrinsic_dimension(dim: int) -> None:
    X3, z = make_dataset("saddle", 400, random_state=1)
    X, t = make_dataset("saddle", 400, random_state=1, data_dim=dim)
    assert X.shape == (400, dim)
    np.testing.assert_array_equal(t, z)  # the same latent points
    # back in 3 dimensions (M^T, the map's inverse on its range): the saddle's equation holds
    back = X @ embedding(3, dim).T
    tol = QR_GROWTH * dim * EPS * np.abs(X3).max()
    np.testing.assert_allclose(back, X3, rtol=0, atol=tol)
    np.testing.assert_allclose(back[:, 2], back[:, 0] ** 2 - back[:, 1] ** 2, rtol=0, atol=8 * tol)
    # the data span 3 directions of the D: every further singular value is roundoff
    s = np.linalg.svd(X, compute_uv=False)
    assert s[2] > 0.1 * s[0]
    assert s[3] <= QR_GROWTH * dim * 400 * EPS * s[0]


def test_noise_and_seeds_in_d_dimensions() -> None:
    a, _ = make_dataset("saddle", 200, noise=0.1, random_state=2, data_dim=16)
    b, _ = make_dataset("saddle", 200, noise=0.1, random_state=2, data_dim=16)
    c, _ = make_dataset("saddle", 200, noise=0.1, random_state=3, data_dim=16)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    clean, _ = make_dataset("saddle", 200, random_state=2, data_dim=16)
    # noise in every one of the D coordinates, not only in the saddle's three directions
    resid = (a - clean) - (a - clean) @ embedding(3, 16).T @ embedding(3, 16)
    assert np.std(resid) > 0.05


def test_the_objective_is_the_same_in_every_d() -> None:
    """Distances are kept, so E(Z) and its gradient do not change with D (fits stay comparable).
    f(z) is linear in X, so the residuals are r M: each term a norm of a D-vector summed over N
    (first-order error (N + D) eps per term, with a factor 4 for the softmax weights)."""
    n = 60
    Z, X3 = problem_inputs("saddle", n, 2, seed=0)
    _, X64 = problem_inputs("saddle", n, 2, seed=0, data_dim=64)
    v3, g3 = value_and_grad(Z, X3, backend="numpy", sigma=0.5)
    v64, g64 = value_and_grad(Z, X64, backend="numpy", sigma=0.5)
    tol = 4 * (n + 64) * EPS
    assert v64 == pytest.approx(v3, rel=tol)
    np.testing.assert_allclose(g64, g3, rtol=0, atol=tol * np.abs(g3).max())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "saddle", "data_dim": 2}, r"data_dim must be >= 3 for data set 'saddle', got 2"),
        ({"name": "spiral", "data_dim": 1}, r"data_dim must be >= 2 for data set 'spiral'"),
        ({"name": "digits", "data_dim": 65}, r"data_dim must be 64 for data set 'digits'"),
        ({"name": "saddle", "data_dim": 0}, r"data_dim must be an integer >= 1"),
    ],
)
def test_bad_dimensions_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_dataset(n_samples=10, **kwargs)


def test_digits_is_the_real_data_set_at_d64() -> None:
    pytest.importorskip("sklearn")
    assert NATIVE_DIMS["digits"] == 64
    Z, X = problem_inputs("digits", 100, 2, seed=0)
    assert X.shape == (100, 64)
    assert Z.shape == (100, 2)
    with pytest.raises(ValueError, match=r"n_samples must be <= 1797 for data set 'digits'"):
        problem_inputs("digits", 1798, 2)


# --------------------------------------------------------------------------- the user's files


def table(rows: int = 30, dim: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, dim))


def write_csv(path: Path, X: np.ndarray, header: list[str] | None) -> Path:
    lines = [",".join(header)] if header is not None else []
    lines += [",".join(repr(float(v)) for v in r) for r in X]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("fmt", ["npy", "csv", "csv-no-header", "parquet"])
def test_a_file_is_read_as_its_numbers(tmp_path: Path, fmt: str) -> None:
    X = table()
    names = ["a", "b", "c", "d"]
    if fmt == "npy":
        path = tmp_path / "x.npy"
        np.save(path, X)
        names = [f"column {j}" for j in range(4)]
    elif fmt == "csv":
        path = write_csv(tmp_path / "x.csv", X, names)
    elif fmt == "csv-no-header":
        path = write_csv(tmp_path / "x.csv", X, None)
        names = [f"column {j}" for j in range(4)]
    else:
        pytest.importorskip("pyarrow")
        pd = pytest.importorskip("pandas")
        path = tmp_path / "x.parquet"
        pd.DataFrame(X, columns=names).to_parquet(path)
    f = load(path)
    np.testing.assert_array_equal(f.X, X)  # repr round-trips a float64 exactly
    assert f.columns == tuple(names)
    assert f.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    d = describe(path)
    assert (d["rows"], d["columns"], d["path"]) == (30, 4, str(path.resolve()))


def test_subsamples_are_seeded_rows_of_the_file(tmp_path: Path) -> None:
    X = table(40)
    path = tmp_path / "x.npy"
    np.save(path, X)
    a = subsample(path, 10, seed=3)
    np.testing.assert_array_equal(a, subsample(path, 10, seed=3))
    assert not np.array_equal(a, subsample(path, 10, seed=4))
    rows = [int(np.flatnonzero((r == X).all(axis=1))[0]) for r in a]
    assert rows == sorted(set(rows))  # distinct rows of the file, in its order
    np.testing.assert_array_equal(subsample(path, 40), X)
    Z, Xp = problem_inputs(str(path), 10, 3, seed=3)
    np.testing.assert_array_equal(Xp, a)
    assert Z.shape == (10, 3)
    with pytest.raises(ValueError, match=r"n must be <= the 40 rows of .*x\.npy, got 41"):
        subsample(path, 41)
    with pytest.raises(ValueError, match=r"data_dim must be the 4 columns of .*, got 5"):
        subsample(path, 10, data_dim=5)


def test_a_non_numeric_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("x,species,y\n1.0,setosa,2.0\n3.0,virginica,4.0\n")
    with pytest.raises(ValueError, match=r"column 'species' of .* is not numeric"):
        load(path)


def test_nan_is_named_with_its_column_and_row_count(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("x,y\n1.0,2.0\n3.0,\n5.0,nan\n7.0,8.0\n")
    with pytest.raises(ValueError, match=r"column 'y' of .* holds NaN in 2 of 4 rows"):
        load(path)
    X = table(5, 3)
    X[1, 2] = np.inf
    np.save(tmp_path / "inf.npy", X)
    with pytest.raises(ValueError, match=r"column 'column 2' .* holds an infinity in 1 of 5"):
        load(tmp_path / "inf.npy")


def test_a_constant_column_is_kept_with_a_warning(tmp_path: Path) -> None:
    X = table(10, 3)
    X[:, 1] = 5.0
    path = write_csv(tmp_path / "x.csv", X, ["a", "flat", "c"])
    with pytest.warns(ConstantColumnWarning, match=r"\['flat'\]"):
        f = load(path)
    assert f.X.shape == (10, 3)  # kept: it is part of the data's D
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(write_csv(tmp_path / "y.csv", table(10, 3), ["a", "b", "c"]))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (np.zeros(5), r"must hold an N x D array, got shape \(5,\)"),
        (np.array([["a", "b"]]), r"must hold real numbers, got dtype <U1"),
        (np.zeros((2, 2), dtype=complex), r"must hold real numbers, got dtype complex128"),
        (np.zeros((0, 3)), r"holds no data"),
    ],
)
def test_an_npy_file_that_is_no_table_of_numbers_is_refused(
    tmp_path: Path, content: np.ndarray, match: str
) -> None:
    path = tmp_path / "x.npy"
    np.save(path, content)
    with pytest.raises(ValueError, match=match):
        load(path)


def test_a_missing_file_and_a_missing_parquet_engine_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(FileNotFoundError, match=r"data: no such file .*nothere\.csv"):
        load(tmp_path / "nothere.csv")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a)
    )
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(ImportError, match=r"needs pyarrow: pip install pyarrow"):
        load(tmp_path / "x.parquet")
