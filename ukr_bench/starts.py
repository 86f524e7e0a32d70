"""Where a fit starts: the latent units, the start, and ``sigma="auto"``.

A fit starts at a fixed scale, whatever ``sigma``: ``init="pca"`` scales the
principal-component scores to max |z| = 1 (the box [-1, 1]), ``init="random"`` draws
N(0, RANDOM_INIT_SCALE^2), an array is taken as it is. ``sigma`` is the bandwidth in these
units. The optimiser then learns the latent scale (leave-one-out keeps it finite), so
``sigma`` sets how smooth the map is where the optimiser starts and, with ``lam`` or the box,
the latent scale against the prior and the box. Only a bandwidth relative to the start can
have an effect: with ``lam = 0`` and no box, E(Z; sigma) = E(Z / sigma; 1), so were the start
scaled with sigma every sigma would give the same fit up to scale. ``sigma="auto"`` fixes the
bandwidth as Meinicke et al. and Klanke's UKR fix the start's scale: by the lowest E at the
start, among the start's half-width times :data:`AUTO_SIGMAS`.

Used by :func:`ukr_bench.training.fit` and, for the bandwidth of a fitted map, :class:`ukr_bench.UKR`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ukr_bench.interface import Backend
from ukr_bench.problem import Params, check_sigma
from ukr_bench.validation import DType, check_array

__all__ = [
    "AUTO_SIGMAS",
    "RANDOM_INIT_SCALE",
    "auto_sigma",
    "check_sigma_param",
    "constrain",
    "initial_latents",
]

#: Standard deviation of ``init="random"``'s draws, in latent units (the PCA start's half-width
#: is 1): a start without structure begins well inside one bandwidth of sigma ~ 1, so that the
#: structure comes from the gradient rather than from the draws.
RANDOM_INIT_SCALE = 0.01
#: ``sigma="auto"``'s candidates, in units of the start's half-width max |z|: from a start
#: spread over 1/8 of a bandwidth (every kernel overlaps: f is nearly the data mean) to one over
#: 32 bandwidths (each point sees only its nearest latent neighbours), a factor 2 apart.
AUTO_SIGMAS = 2.0 ** np.arange(-5, 4)


def check_sigma_param(sigma: object, dtype: DType) -> float | None:
    """``sigma`` as a float, or None for ``"auto"``; raise naming it otherwise.

    A number must lie in :func:`ukr_bench.problem.sigma_range` of ``dtype``.
    """
    if isinstance(sigma, str):
        if sigma == "auto":
            return None
        msg = f"sigma must be 'auto' or a number > 0, got {sigma!r}"
        raise ValueError(msg)
    return check_sigma(sigma, dtype)


def initial_latents(
    X: NDArray[np.floating],
    L: int,
    b: Backend,
    init: str | ArrayLike,
    constraint: str,
    random_state: int | np.random.Generator | None,
) -> NDArray[np.floating]:
    """The start (N x L) in latent units: the PCA scores scaled to max |z| = 1, draws of
    standard deviation :data:`RANDOM_INIT_SCALE`, or the given array."""
    N = X.shape[0]
    if isinstance(init, np.ndarray):
        Z0 = check_array("init", init, b.dtype)
        if Z0.shape != (N, L):
            msg = f"init must have shape (n_samples, n_components) = {(N, L)}, got {Z0.shape}"
            raise ValueError(msg)
        return Z0.copy()
    if init == "random":
        rng = np.random.default_rng(random_state)
        Z0 = RANDOM_INIT_SCALE * rng.normal(size=(N, L))
        return constrain(Z0, constraint).astype(b.dtype)
    if X.shape[1] < L:
        msg = f"init='pca' needs n_components <= n_features = {X.shape[1]}, got {L}"
        raise ValueError(msg)
    Xc = X.astype(np.float64) - X.mean(axis=0)
    _, _, Vt = np.linalg.svd(Xc, full_matrices=False)
    scores = Xc @ Vt[:L].T
    scores /= max(float(np.abs(scores).max()), np.finfo(np.float64).tiny)  # in [-1, 1]
    return scores.astype(b.dtype)


def auto_sigma(Z0: NDArray[np.floating], b: Backend, Xd: Any, loo: bool, dtype: DType) -> float:
    """``sigma="auto"``: the bandwidth ``c`` in ``r * AUTO_SIGMAS`` (r = max |Z0|, or 1 where
    Z0 = 0) with the lowest reconstruction error E(Z0; c) at the start. Without the prior:
    lam ||Z0||^2 is the same for every candidate.

    E(Z0; c) is evaluated as E(Z0 / c; 1), one compiled function for every candidate; exactly
    where r is a power of two (the PCA start's r = 1), since the divisions are then exact.
    """
    r = float(np.abs(Z0).max()) or 1.0
    candidates = r * AUTO_SIGMAS
    value = b.compile("value", b.asarray(Z0), Xd, Params(sigma=1.0, lam=0.0, loo=loo))
    errors = [float(b.to_numpy(value(b.asarray(Z0 / c), Xd))) for c in candidates]
    sigma = float(candidates[int(np.argmin(errors))])
    try:
        return check_sigma(sigma, dtype)
    except ValueError as exc:
        msg = (
            f"sigma='auto' chose {sigma:.3g} for a start of half-width {r:.3g}, outside the "
            f"bandwidths {dtype} can represent: scale init, or give sigma a number ({exc})"
        )
        raise ValueError(msg) from exc


def constrain(Z: Any, constraint: str, xp: Any = np) -> Any:
    """The constraint: re-centre (``"none"``) or clip to the box [-1, 1] (``"box"``)."""
    if constraint == "box":
        return xp.clip(Z, -1.0, 1.0)
    return Z - Z.mean(0)
