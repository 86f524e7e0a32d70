"""The UKR estimator: :mod:`ukr_bench.training` behind scikit-learn's estimator API.

``UKR`` is a scikit-learn transformer (``BaseEstimator``, ``TransformerMixin``) and passes
``sklearn.utils.estimator_checks.check_estimator``. It needs scikit-learn
(``pip install 'ukr-bench[sklearn]'``); the rest of the package does not, and imports this
module only when ``ukr_bench.UKR`` is used. Input validation is scikit-learn's
(``validate_data``: sparse, complex, object and empty input rejected with its messages, integer
input converted to float64, ``n_features_in_`` checked); the computation is
:func:`ukr_bench.training.fit` and :func:`ukr_bench.training.project`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ukr_bench.extras import missing

try:
    from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
    from sklearn.exceptions import NotFittedError
    from sklearn.utils import Tags
    from sklearn.utils.validation import FLOAT_DTYPES, check_array, check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    # validate_data is new in 1.6: an older scikit-learn fails here too, with the same advice.
    raise missing(
        "sklearn", "sklearn", "ukr_bench.UKR", exc, package="scikit-learn >= 1.6"
    ) from exc

from ukr_bench import training
from ukr_bench.interface import get_backend
from ukr_bench.optim import OPTIMIZERS
from ukr_bench.training import CONSTRAINTS, INITS
from ukr_bench.validation import check_array as check_float_array
from ukr_bench.validation import check_dtype

__all__ = ["CONSTRAINTS", "INITS", "OPTIMIZERS", "UKR", "NotFittedError"]

# check_is_fitted's message (its %(name)s is the class name).
_NOT_FITTED = "This %(name)s instance is not fitted yet: call fit(X) before using it."


# scikit-learn ships no type information (pyproject.toml), so its bases are Any to mypy.
class UKR(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Unsupervised Kernel Regression (Meinicke, Klanke, Memisevic & Ritter, 2005).

    Parameters
    ----------
    n_components : int >= 1
        Latent dimension L.
    sigma, lam, loo
        Kernel bandwidth (> 0), weight of the Gaussian prior on Z (>= 0), leave-one-out; see
        :mod:`ukr_bench.problem`. sigma must lie in
        :func:`~ukr_bench.problem.sigma_range` of ``dtype`` and lam be 0 or lie in
        :func:`~ukr_bench.problem.lam_range` (float32: [2^-46, 2^46] and [2^-92, 2^92]); fit
        raises a ValueError naming the parameter otherwise. Without ``loo`` and with ``lam = 0`` the optimum is
        degenerate: latent points fly apart and every point reconstructs itself.
    backend, dtype, device
        Where E(Z) and its gradient are computed; see :func:`ukr_bench.get_backend`. Input of
        any real or integer dtype is converted to ``dtype``, and every output has it.
    gradient : {"auto", "autodiff", "manual"}
        How the training gradient is obtained: the framework's autodiff or the hand-derived
        formula; "auto" is the backend's default for its layout (see :func:`ukr_bench.get_backend`).
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
    verbose : int >= 0
        Print a line every this many iterations (0: silent): the iteration, E after it, the
        largest move of a latent point in it (in units of sigma) and the time since the fit
        began. Each line costs one host synchronisation and, for gd and rprop, one more
        evaluation of E.

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
    feature_names_in_ : ndarray of str
        Column names of X, where X had them (a pandas DataFrame).
    X_fit_ : ndarray (N, D) of ``dtype``
        A copy of the training data, which the map f(z) interpolates.
    """

    # Iterations and initial step (x sigma) of iRprop- in :meth:`transform`.
    projection_iter: ClassVar[int] = training.PROJECTION_ITER
    projection_step: ClassVar[float] = training.PROJECTION_STEP

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
        gradient: str = "auto",
        optimizer: str = "rprop",
        max_iter: int = 200,
        learning_rate: float | None = None,
        init: str | ArrayLike = "pca",
        constraint: str = "none",
        snapshot_every: int = 0,
        random_state: int | np.random.Generator | None = None,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.sigma = sigma
        self.lam = lam
        self.loo = loo
        self.backend = backend
        self.dtype = dtype
        self.device = device
        self.gradient = gradient
        self.optimizer = optimizer
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.init = init
        self.constraint = constraint
        self.snapshot_every = snapshot_every
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self) -> Tags:
        """An unsupervised transformer whose output dtype is ``dtype``, whatever the input's."""
        tags = super().__sklearn_tags__()
        try:  # tags are read before fit validates the parameters
            tags.transformer_tags.preserves_dtype = [check_dtype(self.dtype)]
        except ValueError:
            tags.transformer_tags.preserves_dtype = []
        return tags

    @property
    def _n_features_out(self) -> int:
        """L, for ``get_feature_names_out`` (names ``ukr0``, ``ukr1``, ...)."""
        return self.embedding_.shape[1]

    def _validate_X(self, X: ArrayLike, *, reset: bool) -> NDArray[np.floating]:
        """scikit-learn's checks (``n_features_in_`` set or compared), then ``dtype``.

        The second conversion reports a float64 value that overflows float32 as non-finite,
        naming X, instead of turning it into inf.
        """
        X = validate_data(self, X, reset=reset, dtype=FLOAT_DTYPES)
        return check_float_array("X", X, check_dtype(self.dtype))

    def fit(self, X: ArrayLike, y: None = None) -> UKR:
        """Learn latent points for ``X`` (N x D). Returns self.

        ``y`` is ignored (accepted for scikit-learn pipelines).
        """
        del y
        X = self._validate_X(X, reset=True)
        result = training.fit(X, **self.get_params())
        self.embedding_ = result.embedding
        self.history_ = result.history
        self.snapshots_ = result.snapshots
        self.n_iter_ = result.n_iter
        # A copy: X may be the caller's own array, and changing it later must not change the map.
        self.X_fit_ = np.array(X, copy=True)  # a plain ndarray, also when X is a memmap
        return self

    def fit_transform(self, X: ArrayLike, y: None = None) -> NDArray[np.floating]:
        """Fit and return a copy of ``embedding_`` (N x L)."""
        return self.fit(X, y).embedding_.copy()

    def transform(self, X: ArrayLike) -> NDArray[np.floating]:
        """Latent points (M x L) of observations ``X`` (M x D); see :func:`training.project`.

        Training observations get their latent points from ``embedding_``, so
        ``transform(X_train)`` equals ``fit_transform(X_train)``. Each other observation
        starts at the latent point of its nearest training observation and is refined by
        :attr:`projection_iter` steps of iRprop- on E_q (:mod:`ukr_bench.problem`),
        clipped to the training latents' bounding box: outside it f is flat.
        """
        check_is_fitted(self, "embedding_", msg=_NOT_FITTED)
        Xq = self._validate_X(X, reset=False)
        return training.project(
            Xq,
            self.embedding_,
            self.X_fit_,
            sigma=float(self.sigma),
            backend=self.backend,
            dtype=self.dtype,
            device=self.device,
            n_iter=self.projection_iter,
            step=self.projection_step,
        )

    def inverse_transform(self, Z: ArrayLike) -> NDArray[np.floating]:
        """f(Z) (M x D): the learned map of latent points ``Z`` (M x L), no leave-one-out."""
        check_is_fitted(self, "embedding_", msg=_NOT_FITTED)
        Zq = check_array(Z, dtype=FLOAT_DTYPES, input_name="Z")
        L = self.embedding_.shape[1]
        if Zq.shape[1] != L:
            msg = f"Z has {Zq.shape[1]} columns, but the model has {L} latent dimensions"
            raise ValueError(msg)
        Zq = check_float_array("Z", Zq, check_dtype(self.dtype))
        b = get_backend(self.backend, dtype=self.dtype, device=self.device)
        Zt, Xt = b.asarray(self.embedding_), b.asarray(self.X_fit_)
        return b.to_numpy(b.sync(b.predict(b.asarray(Zq), Zt, Xt, float(self.sigma)))).copy()

    def score(self, X: ArrayLike, y: None = None) -> float:
        """Minus the mean squared reconstruction error of ``X`` (M x D), higher is better.

        ``-(1/M) sum_q ||x_q - f(transform(x_q))||^2`` (summed over the D coordinates), so it
        plugs into scikit-learn's model selection. ``y`` is ignored.
        """
        del y
        check_is_fitted(self, "embedding_", msg=_NOT_FITTED)
        X = self._validate_X(X, reset=False)
        res = X.astype(np.float64) - self.inverse_transform(self.transform(X))
        return -float(np.mean(np.sum(res * res, axis=1)))
