"""The UKR estimator: learn latent points for data on any backend, with scikit-learn's conventions.

Conventions (as scikit-learn's): ``__init__`` stores its arguments unchanged; ``fit`` validates
them and the data; fitted attributes end in ``_``; ``fit`` returns ``self``; ``get_params`` and
``set_params`` read the ``__init__`` signature. scikit-learn itself is not needed, but the
estimator works with its ``clone``, pipelines and model selection (``score`` is higher-better).

Training minimises E(Z) of :mod:`ukr_bench.problem` on the backend's device; only the final
embedding (and any snapshots) come back to the host. The learned map and the projection of new
observations use ``f`` and ``E_q`` of the same module.
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ukr_bench.interface import Backend, get_backend
from ukr_bench.optim import OPTIMIZERS, GradientDescent, IRprop
from ukr_bench.problem import Params, check_array, check_dtype, check_positive_float

INITS = ("pca", "random")
CONSTRAINTS = ("none", "box")

# Default step: plain gradient descent on E (a mean over N), and iRprop's initial step / sigma.
_DEFAULT_LEARNING_RATE = {"gd": 1.0, "rprop": 0.01}
_RANDOM_INIT_SCALE = 0.01  # x sigma: "the latent scale must start well below sigma"
_PCA_SCALES = 2.0 ** np.arange(-3, 6)  # x sigma, candidate spreads of the PCA initialisation


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit`` (as scikit-learn's, which it mirrors)."""


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        msg = f"{name} must be an integer, got {value!r} of type {type(value).__name__}"
        raise TypeError(msg)
    if value < minimum:
        msg = f"{name} must be >= {minimum}, got {value!r}"
        raise ValueError(msg)
    return int(value)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        msg = f"{name} must be one of {list(choices)}, got {value!r}"
        raise ValueError(msg)
    return value


class UKR:
    """Unsupervised Kernel Regression (Meinicke, Klanke, Memisevic & Ritter, 2005).

    Parameters
    ----------
    n_components : int >= 1
        Latent dimension L.
    sigma, lam, loo
        Kernel bandwidth (> 0), weight of the Gaussian prior on Z (>= 0), leave-one-out; see
        :mod:`ukr_bench.problem`. Without ``loo`` and with ``lam = 0`` the optimum is
        degenerate: latent points fly apart and every point reconstructs itself.
    backend, dtype, device
        Where E(Z) and its gradient are computed; see :func:`ukr_bench.get_backend`.
    optimizer : {"rprop", "gd", "lbfgs"}
        iRprop+ (Klanke's choice; scale-free), plain gradient descent (the tutorial's) or
        L-BFGS (``scipy.optimize.minimize``, on the host; L-BFGS-B with ``constraint="box"``).
    max_iter : int >= 0
        Iterations (gd, rprop: exactly this many; lbfgs: at most).
    learning_rate : float > 0 or None
        gd: the step size (default 1.0); rprop: the initial per-coordinate step in units of
        ``sigma`` (default 0.01); ignored by lbfgs.
    init : {"pca", "random"} or array of shape (N, L)
        ``"pca"``: principal components of X, spread scaled by the factor (in
        ``sigma * 2**[-3..5]``) with the lowest E; ``"random"``: N(0, (0.01 sigma)^2) draws;
        an array: these latent points.
    constraint : {"none", "box"}
        ``"none"``: re-centre Z after each step (E is translation invariant when ``lam = 0``);
        ``"box"``: clip Z to [-1, 1] after each step. The Gaussian prior is ``lam > 0``, with
        either.
    snapshot_every : int >= 0
        Store Z every this many iterations in ``snapshots_`` (0: none), as the tutorial's loop.
    random_state : int, numpy Generator or None
        Seed of the random initialisation.

    Attributes
    ----------
    embedding_ : ndarray (N, L) of ``dtype``
        The learned latent points.
    history_ : ndarray (n_iter_ + 1,), float64
        E(Z) at the initialisation and after every iteration; ``history_[-1]`` is E(embedding_).
    snapshots_ : ndarray (k, N, L)
        Z at the initialisation and every ``snapshot_every`` iterations (k = 1 when 0).
    n_iter_ : int
        Iterations run.
    n_features_in_ : int
        D.
    X_fit_ : ndarray (N, D) of ``dtype``
        The training data, which the map f(z) interpolates.
    """

    # Iterations and initial step (x sigma) of iRprop- in :meth:`transform`.
    projection_iter: ClassVar[int] = 50
    projection_step: ClassVar[float] = 0.05

    def __init__(
        self,
        n_components: int = 2,
        *,
        sigma: float = 1.0,
        lam: float = 0.0,
        loo: bool = True,
        backend: str = "numpy",
        dtype: str = "float64",
        device: str = "cpu",
        optimizer: str = "rprop",
        max_iter: int = 200,
        learning_rate: float | None = None,
        init: str | ArrayLike = "pca",
        constraint: str = "none",
        snapshot_every: int = 0,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.n_components = n_components
        self.sigma = sigma
        self.lam = lam
        self.loo = loo
        self.backend = backend
        self.dtype = dtype
        self.device = device
        self.optimizer = optimizer
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.init = init
        self.constraint = constraint
        self.snapshot_every = snapshot_every
        self.random_state = random_state

    # -- scikit-learn's parameter protocol ------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        return [
            p.name
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind is not p.VAR_KEYWORD
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The ``__init__`` arguments as stored (``deep`` is accepted for scikit-learn)."""
        del deep
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> UKR:
        """Set ``__init__`` arguments by name; validated at the next ``fit``. Returns self."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                msg = f"invalid parameter {name!r} for UKR; valid parameters: {valid}"
                raise ValueError(msg)
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's estimator tags: an unsupervised transformer.

        Only scikit-learn calls this, so importing it here keeps it an optional dependency.
        """
        from sklearn.utils import Tags, TargetTags, TransformerTags

        return Tags(
            estimator_type=None,
            target_tags=TargetTags(required=False),
            transformer_tags=TransformerTags(),
        )

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        changed = [
            f"{k}={v!r}"
            for k, v in self.get_params().items()
            if isinstance(v, np.ndarray) or v != defaults[k]
        ]
        return f"UKR({', '.join(changed)})"

    # -- fitting ----------------------------------------------------------------------------

    def _validate(self) -> tuple[Params, int, str, int, int]:
        params = Params(sigma=self.sigma, lam=self.lam, loo=self.loo)
        L = _check_int("n_components", self.n_components, 1)
        optimizer = _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        max_iter = _check_int("max_iter", self.max_iter, 0)
        snapshot_every = _check_int("snapshot_every", self.snapshot_every, 0)
        if self.learning_rate is not None:
            check_positive_float("learning_rate", self.learning_rate)
        if not isinstance(self.init, np.ndarray):
            _check_choice("init", self.init, INITS)
        _check_choice("constraint", self.constraint, CONSTRAINTS)
        return params, L, optimizer, max_iter, snapshot_every

    def fit(self, X: ArrayLike, y: None = None) -> UKR:
        """Learn latent points for ``X`` (N x D, real floating point). Returns self.

        ``y`` is ignored (accepted for scikit-learn pipelines).
        """
        del y
        params, L, optimizer, max_iter, snapshot_every = self._validate()
        dtype = check_dtype(self.dtype)
        X = check_array("X", X, dtype)
        N = X.shape[0]
        needed = max(params.min_samples, L + 1)
        if needed > N:
            msg = (
                f"X has {N} samples, too few: n_components={L} with loo={params.loo} "
                f"needs at least {needed}"
            )
            raise ValueError(msg)
        b = get_backend(self.backend, dtype=dtype, device=self.device)
        Xd = b.asarray(X)
        Z0 = self._initial_latents(X, L, params, b, Xd)
        if optimizer == "lbfgs":
            Z, history, snapshots = self._fit_lbfgs(b, Z0, Xd, params, max_iter, snapshot_every)
        else:
            Z, history, snapshots = self._fit_first_order(
                b, Z0, Xd, params, optimizer, max_iter, snapshot_every
            )
        self.embedding_ = Z
        self.history_ = np.asarray(history, dtype=np.float64)
        self.snapshots_ = np.stack(snapshots)
        self.n_iter_ = len(history) - 1
        self.n_features_in_ = X.shape[1]
        self.X_fit_ = X
        return self

    def fit_transform(self, X: ArrayLike, y: None = None) -> NDArray[np.floating]:
        """Fit and return ``embedding_`` (N x L)."""
        return self.fit(X, y).embedding_

    def _initial_latents(
        self, X: NDArray[np.floating], L: int, params: Params, b: Backend, Xd: Any
    ) -> NDArray[np.floating]:
        N = X.shape[0]
        if isinstance(self.init, np.ndarray):
            Z0 = check_array("init", self.init, b.dtype)
            if Z0.shape != (N, L):
                msg = f"init must have shape (n_samples, n_components) = {(N, L)}, got {Z0.shape}"
                raise ValueError(msg)
            return Z0.copy()
        if self.init == "random":
            rng = np.random.default_rng(self.random_state)
            Z0 = _RANDOM_INIT_SCALE * params.sigma * rng.normal(size=(N, L))
            return self._project(Z0).astype(b.dtype)
        if X.shape[1] < L:
            msg = f"init='pca' needs n_components <= n_features = {X.shape[1]}, got {L}"
            raise ValueError(msg)
        Xc = X.astype(np.float64) - X.mean(axis=0)
        _, _, Vt = np.linalg.svd(Xc, full_matrices=False)
        scores = Xc @ Vt[:L].T
        scores /= max(float(np.abs(scores).max()), np.finfo(np.float64).tiny)  # in [-1, 1]
        scales = params.sigma * _PCA_SCALES
        if self.constraint == "box":  # keep inside the box: spreads of at most 1
            scales = np.unique(np.minimum(scales, 1.0))
        value = b.compile("value", b.asarray(scores), Xd, params)
        errors = [float(b.to_numpy(value(b.asarray(s * scores), Xd))) for s in scales]
        return (scales[int(np.argmin(errors))] * scores).astype(b.dtype)

    def _project(self, Z: Any, xp: Any = np) -> Any:
        """The constraint: re-centre (``"none"``) or clip to the box [-1, 1] (``"box"``)."""
        if self.constraint == "box":
            return xp.clip(Z, -1.0, 1.0)
        return Z - Z.mean(0)

    def _fit_first_order(
        self,
        b: Backend,
        Z0: NDArray[np.floating],
        Xd: Any,
        params: Params,
        optimizer: str,
        max_iter: int,
        snapshot_every: int,
    ) -> tuple[NDArray[np.floating], list[float], list[NDArray[np.floating]]]:
        rate = self.learning_rate or _DEFAULT_LEARNING_RATE[optimizer]
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
                Zd = self._project(opt.step(Zd, v, g), b.xp)
                if snapshot_every and it % snapshot_every == 0:
                    snapshots.append(b.to_numpy(Zd).copy())
            values.append(value(Zd, Xd))
        history = [float(b.to_numpy(v)) for v in b.sync(values)]
        return b.to_numpy(Zd).copy(), history, snapshots

    def _fit_lbfgs(
        self,
        b: Backend,
        Z0: NDArray[np.floating],
        Xd: Any,
        params: Params,
        max_iter: int,
        snapshot_every: int,
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
            last[0] = intermediate_result.x.copy()
            history.append(float(intermediate_result.fun))
            if snapshot_every and (len(history) - 1) % snapshot_every == 0:
                snapshots.append(last[0].reshape(shape).astype(b.dtype))

        if max_iter:
            minimize(
                fun,
                z0,
                jac=True,
                method="L-BFGS-B",
                bounds=[(-1.0, 1.0)] * Z0.size if self.constraint == "box" else None,
                # Relative, not scipy's absolute 1e-5: Z = 0 is a stationary point of E, and
                # from a small random start at large N the gradient is below 1e-5 at once
                # (L-BFGS then stopped after 0 iterations at N >= 1000 in the benchmark).
                options={"maxiter": max_iter, "gtol": 1e-6 * float(np.abs(grad0).max())},
                callback=callback,
            )
        # The last accepted iterate (the one history_[-1] belongs to), re-centred for "none":
        # E does not change under translation when lam = 0, and lam > 0 centres Z itself.
        Z = last[0].reshape(shape).astype(b.dtype)
        if self.constraint == "none" and not params.lam:
            Z = Z - Z.mean(axis=0)
        return Z, history, snapshots

    # -- using the fitted model ---------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "embedding_"):
            msg = "This UKR instance is not fitted yet: call fit(X) before using it"
            raise NotFittedError(msg)

    def _check_query(self, name: str, A: ArrayLike, width: int, what: str) -> Any:
        A = check_array(name, A, check_dtype(self.dtype))
        if A.shape[1] != width:
            msg = f"{name} has {A.shape[1]} columns, but the model has {width} {what}"
            raise ValueError(msg)
        return A

    def inverse_transform(self, Z: ArrayLike) -> NDArray[np.floating]:
        """f(Z) (M x D): the learned map of latent points ``Z`` (M x L), no leave-one-out."""
        self._check_fitted()
        Zq = self._check_query("Z", Z, self.embedding_.shape[1], "latent dimensions")
        b = get_backend(self.backend, dtype=self.dtype, device=self.device)
        Zt, Xt = b.asarray(self.embedding_), b.asarray(self.X_fit_)
        return b.to_numpy(b.sync(b.predict(b.asarray(Zq), Zt, Xt, float(self.sigma)))).copy()

    def transform(self, X: ArrayLike) -> NDArray[np.floating]:
        """Latent points (M x L) of new observations ``X`` (M x D).

        Each starts at the latent point of its nearest training observation and is refined by
        :attr:`projection_iter` steps of iRprop- on E_q (:mod:`ukr_bench.problem`; queries are
        independent), clipped to the training latents' bounding box: outside it f is flat.
        """
        from scipy.spatial.distance import cdist

        self._check_fitted()
        Xq = self._check_query("X", X, self.n_features_in_, "features")
        nearest = np.argmin(cdist(Xq, self.X_fit_, "sqeuclidean"), axis=1)
        b = get_backend(self.backend, dtype=self.dtype, device=self.device)
        sigma = float(self.sigma)
        Zt, Xt, Xqd = b.asarray(self.embedding_), b.asarray(self.X_fit_), b.asarray(Xq)
        lo, hi = b.asarray(self.embedding_.min(axis=0)), b.asarray(self.embedding_.max(axis=0))
        opt = IRprop(
            b.xp, self.projection_step * sigma, backtrack=False, step_min=0.0, step_max=sigma
        )
        Zq = b.asarray(self.embedding_[nearest])
        with b.context():
            for _ in range(self.projection_iter):
                v, g = b.project_value_and_grad(Zq, Xqd, Zt, Xt, sigma)
                Zq = b.xp.clip(opt.step(Zq, v, g), lo, hi)
        return b.to_numpy(b.sync(Zq)).copy()

    def score(self, X: ArrayLike, y: None = None) -> float:
        """Minus the mean squared reconstruction error of ``X`` (M x D), higher is better.

        ``-(1/M) sum_q ||x_q - f(transform(x_q))||^2`` (summed over the D coordinates), so it
        plugs into scikit-learn's model selection. ``y`` is ignored.
        """
        del y
        Xhat = self.inverse_transform(self.transform(X))  # validates X
        res = np.asarray(X, dtype=np.float64) - Xhat
        return -float(np.mean(np.sum(res * res, axis=1)))
