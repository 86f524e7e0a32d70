"""Seeded data sets for UKR: low-dimensional manifolds in data space, and one real data set.

Every generator returns ``(X, t)``: ``X`` (n_samples x D, float64) the observations and ``t``
(n_samples x k) the true latent coordinates (for colouring plots and checking embeddings), or,
for ``digits``, the class labels (n_samples,).

The synthetic sets live in few dimensions (the saddle in 3); :func:`make_dataset`'s
``data_dim`` embeds one in D dimensions by a fixed random orthogonal map (:func:`embedding`),
so that the benchmark can sweep D while the manifold, its intrinsic dimension and so the fit
stay the same. The user's own data (:mod:`ukr_bench.data_files`) enters the benchmark through
:func:`problem_inputs` too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from ukr_bench.extras import install_hint
from ukr_bench.validation import check_choice, check_int, check_nonnegative_float

RandomState = int | np.random.Generator | None
Generator = Callable[[int, np.random.Generator], tuple[NDArray[np.float64], NDArray[np.float64]]]


def _saddle(n: int, rng: np.random.Generator) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    # The tutorial's data: z ~ U(-1, 1)^2 on the hyperbolic paraboloid x3 = z1^2 - z2^2.
    z = rng.uniform(-1.0, 1.0, size=(n, 2))
    return np.column_stack([z[:, 0], z[:, 1], z[:, 0] ** 2 - z[:, 1] ** 2]), z


def _s_curve(n: int, rng: np.random.Generator) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    # Same parametrisation as sklearn.datasets.make_s_curve.
    t = 3 * np.pi * (rng.uniform(size=n) - 0.5)
    y = 2.0 * rng.uniform(size=n)
    X = np.column_stack([np.sin(t), y, np.sign(t) * (np.cos(t) - 1)])
    return X, np.column_stack([t, y])


def _swiss_roll(
    n: int, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    # Same parametrisation as sklearn.datasets.make_swiss_roll.
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
    y = 21 * rng.uniform(size=n)
    return np.column_stack([t * np.cos(t), y, t * np.sin(t)]), np.column_stack([t, y])


def _spiral(n: int, rng: np.random.Generator) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    # A 1-D manifold in the plane: an Archimedean spiral of 1.5 turns, radius 0.2 to 1.2.
    t = rng.uniform(size=n)
    angle, radius = 3 * np.pi * t, 0.2 + t
    return np.column_stack([radius * np.cos(angle), radius * np.sin(angle)]), t[:, None]


DIGITS_SIZE = 1797  # samples in scikit-learn's bundled digits


def _digits(n: int, rng: np.random.Generator) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        msg = "data set 'digits' needs scikit-learn: " + install_hint("data")
        raise ImportError(msg) from exc
    X, y = load_digits(return_X_y=True)
    if n > DIGITS_SIZE:
        msg = f"n_samples must be <= {DIGITS_SIZE} for data set 'digits', got {n}"
        raise ValueError(msg)
    idx = np.sort(rng.choice(len(X), size=n, replace=False)) if n < len(X) else np.arange(len(X))
    return X[idx] / 16.0, y[idx].astype(np.float64)  # pixel intensities 0..16 -> [0, 1]


#: D of each data set as drawn (before any embedding). ``digits`` is real data: its D is fixed.
NATIVE_DIMS: dict[str, int] = {
    "saddle": 3,
    "s_curve": 3,
    "swiss_roll": 3,
    "spiral": 2,
    "digits": 64,
}
#: The data sets :func:`embedding` may place in more dimensions.
EMBEDDABLE = frozenset({"saddle", "s_curve", "swiss_roll", "spiral"})
#: Seed of the orthogonal maps: a design constant, so that one D's map is the same in every
#: run, process and draw of the points (which ``random_state`` seeds apart from it).
EMBEDDING_SEED = 20050101


def embedding(native_dim: int, data_dim: int) -> NDArray[np.float64]:
    """The fixed orthogonal map of ``native_dim``-dimensional points into ``data_dim`` ones.

    ``M`` (native_dim x data_dim, float64) has orthonormal rows, ``M M^T = I``: the first
    ``native_dim`` columns of ``Q`` from the QR factorisation of a data_dim x data_dim standard
    normal matrix (seeded by :data:`EMBEDDING_SEED` and ``data_dim``), its columns' signs fixed
    by ``R``'s diagonal, which makes ``Q`` uniformly (Haar) distributed over the orthogonal
    group. ``X M`` keeps every distance and inner product of ``X``: only D changes.
    """
    native_dim = check_int("native_dim", native_dim, 1)
    data_dim = check_int("data_dim", data_dim, native_dim)
    rng = np.random.default_rng([EMBEDDING_SEED, data_dim])
    q, r = np.linalg.qr(rng.normal(size=(data_dim, data_dim)))
    q = q * np.where(np.diag(r) < 0, -1.0, 1.0)
    return np.ascontiguousarray(q[:, :native_dim].T)


DATASETS: dict[str, Generator] = {
    "saddle": _saddle,
    "s_curve": _s_curve,
    "swiss_roll": _swiss_roll,
    "spiral": _spiral,
    "digits": _digits,
}


def make_dataset(
    name: str = "saddle",
    n_samples: int = 200,
    *,
    noise: float = 0.0,
    random_state: RandomState = None,
    data_dim: int | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Draw ``n_samples`` points of data set ``name``, in ``data_dim`` dimensions.

    Parameters
    ----------
    name : {"saddle", "s_curve", "swiss_roll", "spiral", "digits"}
        ``saddle`` is the original tutorial's data (x3 = z1^2 - z2^2, z ~ U(-1, 1)^2).
        ``digits`` is scikit-learn's bundled 8x8 handwritten digits (needs scikit-learn),
        scaled to [0, 1], at most 1797 samples.
    n_samples : int >= 1
        An integer (TypeError otherwise, ValueError below 1).
    noise : float >= 0
        Standard deviation of Gaussian noise added to every coordinate of ``X``.
    random_state : int, numpy Generator or None
        Seed for reproducible draws.
    data_dim : int or None
        D of ``X``. None or the set's own D (:data:`NATIVE_DIMS`): the points as drawn, the
        very same numbers as without this argument. Larger (synthetic sets only): ``X M`` with
        ``M`` the fixed orthogonal map :func:`embedding`, then the noise, drawn in all D
        coordinates; the manifold and its intrinsic dimension stay those of the set.

    Returns
    -------
    X : ndarray (n_samples, D), float64
    t : ndarray, float64
        True latent coordinates (n_samples, k), or class labels (n_samples,) for ``digits``.
    """
    name = check_choice("name", name, sorted(DATASETS))
    n_samples = check_int("n_samples", n_samples, 1)
    noise = check_nonnegative_float("noise", noise)
    try:
        rng = np.random.default_rng(random_state)
    except (TypeError, ValueError) as exc:  # NumPy's message does not say which argument
        msg = f"random_state must be an int >= 0, a numpy Generator or None, got {random_state!r}"
        raise type(exc)(msg) from exc
    native = NATIVE_DIMS[name]
    if data_dim is not None:
        data_dim = check_int("data_dim", data_dim, 1)
        if name not in EMBEDDABLE and data_dim != native:
            msg = f"data_dim must be {native} for data set {name!r} (real data), got {data_dim}"
            raise ValueError(msg)
        if data_dim < native:
            msg = f"data_dim must be >= {native} for data set {name!r}, got {data_dim}"
            raise ValueError(msg)
    X, t = DATASETS[name](n_samples, rng)
    if data_dim is not None and data_dim != native:
        X = X @ embedding(native, data_dim)
    if noise:
        X = X + rng.normal(scale=noise, size=X.shape)
    return X, t


def problem_inputs(
    data: str,
    n: int,
    latent_dim: int,
    *,
    noise: float = 0.0,
    seed: int = 0,
    data_dim: int | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The benchmark's problem: latent points ``Z ~ N(0, I_L)`` (n x L) and ``X`` (n x D), both
    float64 and seeded (``X`` by ``seed``, ``Z`` by ``seed + 1``), so every backend, worker and
    command sees the very same inputs.

    ``data``: a data set's name (:data:`DATASETS`; its first ``n`` points, in ``data_dim``
    dimensions, see :func:`make_dataset`) or the path of a ``.npy``, ``.csv`` or ``.parquet``
    file (:func:`ukr_bench.data_files.subsample`: ``n`` of its rows drawn by ``seed``;
    ``data_dim`` must then be None or the file's D).
    """
    from ukr_bench import data_files

    if data_files.is_data_file(data):
        X = data_files.subsample(data, n, seed=seed, data_dim=data_dim)
        if noise:
            X = X + np.random.default_rng([seed, 1]).normal(scale=noise, size=X.shape)
    else:
        X, _ = make_dataset(data, n, noise=noise, random_state=seed, data_dim=data_dim)
    Z = np.random.default_rng(seed + 1).normal(size=(n, latent_dim))
    return Z, X
