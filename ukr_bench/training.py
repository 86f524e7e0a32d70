"""Training and projection of UKR on any backend, without scikit-learn.

This is the computation behind :class:`ukr_bench.UKR` (which adds scikit-learn's conventions
and input validation on top and needs scikit-learn): :func:`fit` learns latent points for data,
:func:`project` finds the latent points of observations. The benchmark harness times
:func:`fit` directly, so it runs where scikit-learn is not installed.

Training minimises E(Z) of :mod:`ukr_bench.problem` on the backend's device; only the final
embedding (and any snapshots) come back to the host. The learned map and the projection of new
observations use ``f`` and ``E_q`` of the same module.

Where a fit starts, and the latent units that fixes, is :mod:`ukr_bench.starts`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from backends.threads import limit_threads
from ukr_bench.interface import Backend, get_backend
from ukr_bench.optim import OPTIMIZERS, GradientDescent, IRprop
from ukr_bench.problem import Params, check_lam, check_magnitudes, check_sigma
from ukr_bench.starts import auto_sigma, check_sigma_param, constrain, initial_latents
from ukr_bench.validation import (
    DType,
    check_array,
    check_choice,
    check_dtype,
    check_int,
    check_positive_float,
)

INITS = ("pca", "random")
CONSTRAINTS = ("none", "box")

# Default step, in units of the bandwidth: gradient descent's is 1.0 sigma^2 (E is a mean over
# N; the gradient in Z scales as 1 / sigma, so a step of sigma^2 moves the latents alike at
# every bandwidth), iRprop's initial step 0.01 sigma.
_DEFAULT_LEARNING_RATE = {"gd": 1.0, "rprop": 0.01}
# Iterations and initial step (x sigma) of iRprop- in :func:`project`.
PROJECTION_ITER = 50
PROJECTION_STEP = 0.05


@dataclass
class Progress:
    """``verbose``: every ``every`` iterations, one line: the iteration, E after it, the largest
    move of a latent point in it (in units of sigma) and the time since the fit started."""

    every: int
    sigma: float
    start: float = field(default_factory=time.perf_counter)

    def due(self, it: int) -> bool:
        return self.every > 0 and it % self.every == 0

    def line(self, it: int, value: float, step: float) -> None:
        elapsed = time.perf_counter() - self.start
        print(
            f"iteration {it:>5}  E = {value:.6g}  step = {step / self.sigma:.3g} sigma  "
            f"{elapsed:.2f} s",
            flush=True,
        )


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` learned (the ``UKR`` attributes of the same names end in ``_``).

    embedding : ndarray (N, L) of ``dtype``, the learned latent points.
    history : ndarray (n_iter + 1,), float64, E(Z) at the start and after every iteration;
        ``history[-1]`` is E(embedding).
    snapshots : ndarray (k, N, L), Z at the start and every ``snapshot_every`` iterations.
    n_iter : int, iterations run.
    sigma : float, the bandwidth of the fit (``sigma``, or the one ``"auto"`` chose).
    """

    embedding: NDArray[np.floating]
    history: NDArray[np.float64]
    snapshots: NDArray[np.floating]
    n_iter: int
    sigma: float


def fit(
    X: ArrayLike,
    *,
    n_components: int = 2,
    sigma: float | str = "auto",
    lam: float = 0.0,
    loo: bool = True,
    backend: str = "numpy",
    dtype: str = "float64",
    device: str = "cpu",
    gradient: str = "auto",
    layout: str = "auto",
    optimizer: str = "rprop",
    max_iter: int = 200,
    learning_rate: float | None = None,
    init: str | ArrayLike = "pca",
    constraint: str = "none",
    snapshot_every: int = 0,
    random_state: int | np.random.Generator | None = None,
    verbose: int = 0,
    n_jobs: int | None = None,
) -> FitResult:
    """Learn latent points (N x L) for ``X`` (N x D, real floating point).

    The parameters are those of :class:`ukr_bench.UKR` (documented there), with its defaults;
    each is validated here, and a bad one raises an error naming it (sigma and lam against
    the ranges of ``dtype``: :func:`ukr_bench.problem.check_sigma`, ``check_lam``). The thread
    limit of ``n_jobs`` (:func:`backends.threads.limit_threads`) holds from the backend's
    creation to the end of the fit.
    """
    dtype = check_dtype(dtype)
    given_sigma = check_sigma_param(sigma, dtype)
    # The data's magnitudes are checked before any work, against sigma = 1 where sigma is not
    # chosen yet; the start's (and the data's again) once it is.
    params = Params(sigma=given_sigma or 1.0, lam=check_lam(lam, dtype), loo=loo)
    L = check_int("n_components", n_components, 1)
    optimizer = check_choice("optimizer", optimizer, OPTIMIZERS)
    max_iter = check_int("max_iter", max_iter, 0)
    snapshot_every = check_int("snapshot_every", snapshot_every, 0)
    every = check_int("verbose", verbose, 0)
    if learning_rate is not None:
        check_positive_float("learning_rate", learning_rate)
    if not isinstance(init, np.ndarray):
        check_choice("init", init, INITS)
    check_choice("constraint", constraint, CONSTRAINTS)
    X = _check_data(X, L, params, dtype)
    with limit_threads(n_jobs, backend):
        b = get_backend(backend, dtype=dtype, device=device, gradient=gradient, layout=layout)
        Xd = b.asarray(X)
        Z0 = initial_latents(X, L, b, init, constraint, random_state)
        # At sigma = 1 first: the bounds grow as sigma shrinks below 1, never above it, so a
        # start refused here is refused at every bandwidth "auto" could choose.
        check_magnitudes(Z0, X, params, dtype, z_name="init")
        if given_sigma is None:
            params = Params(sigma=auto_sigma(Z0, b, Xd, loo, dtype), lam=params.lam, loo=loo)
            check_magnitudes(Z0, X, params, dtype, z_name="init")
        progress = Progress(every, params.sigma)
        if optimizer == "lbfgs":
            Z, history, snapshots = _fit_lbfgs(
                b, Z0, Xd, params, max_iter, snapshot_every, constraint, progress
            )
        else:
            rate = learning_rate or _DEFAULT_LEARNING_RATE[optimizer] * (
                params.sigma**2 if optimizer == "gd" else 1.0
            )
            Z, history, snapshots = _fit_first_order(
                b, Z0, Xd, params, optimizer, rate, max_iter, snapshot_every, constraint, progress
            )
    return FitResult(
        embedding=Z,
        history=np.asarray(history, dtype=np.float64),
        snapshots=np.stack(snapshots),
        n_iter=len(history) - 1,
        sigma=params.sigma,
    )


def _check_data(X: ArrayLike, L: int, params: Params, dtype: DType) -> NDArray[np.floating]:
    """``X`` as a ``dtype`` array, or raise unless it can be fitted with ``L`` latent dimensions.

    Its magnitudes are checked before any work (:func:`ukr_bench.problem.check_magnitudes`
    without latents: they come later).
    """
    X = check_array("X", X, dtype)
    N = X.shape[0]
    needed = max(params.min_samples, L + 1)
    if needed > N:
        msg = (
            f"X has {N} samples, too few: n_components={L} with loo={params.loo} "
            f"needs at least {needed}"
        )
        raise ValueError(msg)
    check_magnitudes(None, X, params, dtype)
    return X


def _fit_first_order(
    b: Backend,
    Z0: NDArray[np.floating],
    Xd: Any,
    params: Params,
    optimizer: str,
    rate: float,
    max_iter: int,
    snapshot_every: int,
    constraint: str,
    progress: Progress,
) -> tuple[NDArray[np.floating], list[float], list[NDArray[np.floating]]]:
    opt: GradientDescent | IRprop
    if optimizer == "gd":
        opt = GradientDescent(b.xp, rate)
    else:  # steps in units of sigma: never below 1e-9 sigma, never above sigma
        s = params.sigma
        opt = IRprop(b.xp, rate * s, step_min=1e-9 * s, step_max=s)
    Zd = b.asarray(Z0)
    value_and_grad = b.compile("value_and_grad", Zd, Xd, params)
    value = b.compile("value", Zd, Xd, params)
    values, snapshots = [], [Z0.copy()]
    with b.context():
        for it in range(1, max_iter + 1):
            v, g = value_and_grad(Zd, Xd)
            values.append(v)  # stays on the device: no sync inside the loop
            previous, Zd = Zd, constrain(opt.step(Zd, v, g), constraint, b.xp)
            if progress.due(it):  # a sync, and one more value, on the printed iterations only
                step = np.abs(b.to_numpy(Zd) - b.to_numpy(previous)).max()
                progress.line(it, float(b.to_numpy(value(Zd, Xd))), float(step))
            if snapshot_every and it % snapshot_every == 0:
                snapshots.append(b.to_numpy(Zd).copy())
        values.append(value(Zd, Xd))
    history = [float(b.to_numpy(v)) for v in b.sync(values)]
    return b.to_numpy(Zd).copy(), history, snapshots


def _fit_lbfgs(
    b: Backend,
    Z0: NDArray[np.floating],
    Xd: Any,
    params: Params,
    max_iter: int,
    snapshot_every: int,
    constraint: str,
    progress: Progress,
) -> tuple[NDArray[np.floating], list[float], list[NDArray[np.floating]]]:
    from scipy.optimize import minimize

    shape = Z0.shape
    value_and_grad = b.compile("value_and_grad", b.asarray(Z0), Xd, params)

    def fun(z: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        v, g = value_and_grad(b.asarray(z.reshape(shape)), Xd)
        return float(b.to_numpy(v)), b.to_numpy(g).ravel().astype(np.float64)

    z0 = Z0.ravel().astype(np.float64)
    value0, grad0 = fun(z0)
    history, snapshots, last = [value0], [Z0.copy()], [z0]

    def callback(intermediate_result: Any) -> None:
        step = np.abs(intermediate_result.x - last[0]).max()
        last[0] = intermediate_result.x.copy()
        history.append(float(intermediate_result.fun))
        if progress.due(len(history) - 1):
            progress.line(len(history) - 1, history[-1], float(step))
        if snapshot_every and (len(history) - 1) % snapshot_every == 0:
            snapshots.append(last[0].reshape(shape).astype(b.dtype))

    if max_iter:
        minimize(
            fun,
            z0,
            jac=True,
            method="L-BFGS-B",
            bounds=[(-1.0, 1.0)] * Z0.size if constraint == "box" else None,
            # Relative, not scipy's absolute 1e-5: Z = 0 is a stationary point of E, and
            # from a small random start at large N the gradient is below 1e-5 at once
            # (L-BFGS then stopped after 0 iterations at N >= 1000 in the benchmark).
            options={"maxiter": max_iter, "gtol": 1e-6 * float(np.abs(grad0).max())},
            callback=callback,
        )
    # The last accepted iterate (the one history[-1] belongs to), re-centred for "none":
    # E does not change under translation when lam = 0, and lam > 0 centres Z itself.
    Z = last[0].reshape(shape).astype(b.dtype)
    if constraint == "none" and not params.lam:
        Z = Z - Z.mean(axis=0)
    return Z, history, snapshots


def project(
    Xq: ArrayLike,
    Z: NDArray[np.floating],
    X: NDArray[np.floating],
    *,
    sigma: float,
    backend: str = "numpy",
    dtype: str = "float64",
    device: str = "cpu",
    layout: str = "auto",
    n_iter: int = PROJECTION_ITER,
    step: float = PROJECTION_STEP,
    n_jobs: int | None = None,
) -> NDArray[np.floating]:
    """Latent points (M x L) of observations ``Xq`` (M x D) under the model ``(Z, X, sigma)``.

    ``Z`` (N x L) and ``X`` (N x D) are the trained latents and the training data, in
    ``dtype``. Each query starts at the latent point of its nearest training observation:

    * a query equal to a training observation x_n (squared distance exactly 0 in ``dtype``)
      *is* that observation, and its latent point is z_n, unchanged. The embedding Z is UKR's
      estimate of the training latents, found jointly with leave-one-out; the projection below
      is the estimate for observations the fit has not seen, and would not return z_n: no
      objective of one query alone (||x_n - f(z)||^2, with or without x_n's own kernel) is
      stationary at z_n, because z_n was also chosen for the other points' reconstructions.
      So transform(training data) reproduces the embedding (scikit-learn's
      ``fit_transform(X) == fit(X).transform(X)``). Of duplicated training observations, the
      first one's latent is returned.
    * any other query is refined by ``n_iter`` steps of iRprop- on E_q
      (:mod:`ukr_bench.problem`; queries are independent, so the result for one query does
      not depend on the others in the batch), clipped to the training latents' bounding box:
      outside it f is flat. The first step is ``step * sigma``.

    ``n_jobs`` limits the threads for the call (:func:`backends.threads.limit_threads`).
    """
    from scipy.spatial.distance import cdist

    with limit_threads(n_jobs, backend):
        dtype = check_dtype(dtype)
        sigma = check_sigma(sigma, dtype)
        Xq = check_array("X", Xq, dtype)
        d2 = cdist(Xq, X, "sqeuclidean")
        nearest = np.argmin(d2, axis=1)
        out = Z[nearest].astype(dtype, copy=True)
        moving = d2[np.arange(len(Xq)), nearest] > 0
        if not moving.any() or not n_iter:
            return out
        b = get_backend(backend, dtype=dtype, device=device, layout=layout)
        Zt, Xt, Xqd = b.asarray(Z), b.asarray(X), b.asarray(Xq[moving])
        lo, hi = b.asarray(Z.min(axis=0)), b.asarray(Z.max(axis=0))
        opt = IRprop(b.xp, step * sigma, backtrack=False, step_min=0.0, step_max=sigma)
        Zq = b.asarray(out[moving])
        with b.context():
            for _ in range(n_iter):
                v, g = b.project_value_and_grad(Zq, Xqd, Zt, Xt, sigma)
                Zq = b.xp.clip(opt.step(Zq, v, g), lo, hi)
        out[moving] = b.to_numpy(b.sync(Zq))
        return out
