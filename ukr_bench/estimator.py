"""The UKR estimator: :mod:`ukr_bench.training` behind scikit-learn's estimator API.

``UKR`` is a scikit-learn transformer (``BaseEstimator``, ``TransformerMixin``) and passes
``sklearn.utils.estimator_checks.check_estimator``. It needs scikit-learn
(``pip install "ukr-bench[sklearn]"``); the rest of the package does not, and imports this
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

from backends.threads import limit_threads
from ukr_bench import training
from ukr_bench.interface import get_backend
from ukr_bench.optim import OPTIMIZERS
from ukr_bench.starts import check_sigma_param
from ukr_bench.training import CONSTRAINTS, INITS
from ukr_bench.validation import check_array as check_float_array
from ukr_bench.validation import check_dtype

__all__ = ["CONSTRAINTS", "INITS", "OPTIMIZERS", "UKR", "NotFittedError"]

# check_is_fitted's message (its %(name)s is the class name).
_NOT_FITTED = "This %(name)s instance is not fitted yet: call fit(X) before using it."


# scikit-learn ships no type information (pyproject.toml), so its bases are Any to mypy.
class UKR(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Unsupervised Kernel Regression (Meinicke, Klanke, Memisevic & Ritter, 2005).

    The fit minimises E(Z) of :mod:`ukr_bench.problem`, the mean over the N points of
    ``||x_n - f_{-n}(z_n)||^2 + lam ||z_n||^2`` with a Gaussian kernel of bandwidth ``sigma``
    (``f_{-n}``: leave-one-out). It starts at a fixed latent scale (``init``) and learns the
    latent scale itself: leave-one-out keeps it finite. What has an effect is therefore the
    bandwidth relative to the start, the prior and the box: with ``lam = 0`` and no box,
    E(Z; sigma) = E(Z / sigma; 1), the invariance that ``sigma="auto"`` resolves as Meinicke et
    al. (2005) and Klanke's UKR do (:mod:`ukr_bench.starts`).

    Parameters
    ----------
    n_components : int >= 1
        Latent dimension L: more dimensions reconstruct X better (a lower held-out error) and
        are harder to look at and to fill with data (f is defined near the latent points only).
    sigma : "auto" or float > 0
        Kernel bandwidth, in the latent units of the start (``init="pca"``: max |z| = 1).
        Small: the fit starts from a rough map, each point reconstructed by its nearest few
        latent neighbours (local structure kept, the map may break into fragments); large:
        from a smooth one, near the data mean (global structure, the optimiser has to spread
        the points). With ``lam`` or the box it also sets the latent scale against them.
        ``"auto"``: the bandwidth with the lowest leave-one-out error at the start, among the
        start's half-width times ``2**[-5..3]`` (:data:`ukr_bench.starts.AUTO_SIGMAS`); the
        bandwidth used is ``sigma_``. A number must lie in
        :func:`~ukr_bench.problem.sigma_range` of ``dtype`` (float32: [2^-46, 2^46]).
    lam : float >= 0
        Weight of the Gaussian prior ``lam ||z||^2`` (per point, in squared data units per
        squared latent unit): larger pulls the latents to the origin against the bandwidth,
        for a smoother map that folds less and follows the noise less, at a higher
        reconstruction error; 0: no prior. Must be 0 or lie in
        :func:`~ukr_bench.problem.lam_range` (float32: [2^-92, 2^92]).
    loo : bool
        Leave-one-out: each point is reconstructed from the others. Without it (and with
        ``lam = 0``) the optimum is degenerate: latent points fly apart and every point
        reconstructs itself (training error 0, held-out error large).
    backend, dtype, device
        Where E(Z) and its gradient are computed; see :func:`ukr_bench.get_backend`. Input of
        any real or integer dtype is converted to ``dtype``, and every output has it. These,
        ``gradient``, ``layout``, ``n_jobs`` and ``verbose`` change how the fit runs, not the
        model: the same fit to rounding (float32: to float32's).
    gradient : {"auto", "autodiff", "manual"}
        How the training gradient is obtained: the framework's autodiff or the hand-derived
        formula; "auto" is the backend's default for its layout (see :func:`ukr_bench.get_backend`).
    layout : {"auto", "dense", "blocked", "fused"}
        The memory layout of every computation (see :func:`ukr_bench.get_backend`).
    optimizer : {"rprop", "gd", "lbfgs"}
        iRprop+ (Klanke's choice; steps adapt per coordinate, in units of sigma), plain
        gradient descent (the tutorial's; slow, and only as stable as its step) or L-BFGS
        (``scipy.optimize.minimize``, on the host; L-BFGS-B with ``constraint="box"``; fewer,
        costlier iterations). They end in different local optima.
    max_iter : int >= 0
        Iterations (gd, rprop: exactly this many; lbfgs: at most). Also a regulariser: with
        leave-one-out alone the latents keep drifting apart, and stopping early keeps the map
        smoother (a higher training error, often a lower held-out one).
    learning_rate : float > 0 or None
        gd: the step size (default ``sigma_**2``, a step of one at bandwidth 1: the gradient
        in Z scales as 1 / sigma); rprop: the initial per-coordinate step in units of
        ``sigma_`` (default 0.01); ignored by lbfgs. Larger: faster early progress, the risk
        of overshooting (gd diverges beyond its stable step).
    init : {"pca", "random"} or array of shape (N, L)
        The start, which fixes the latent units: ``"pca"``: the first L principal-component
        scores of X, scaled to max |z| = 1 (global structure from the start);
        ``"random"``: N(0, 0.01^2) draws (:data:`ukr_bench.starts.RANDOM_INIT_SCALE`; the
        structure must come from the optimiser, which is slower and may end elsewhere);
        an array: these latent points, in their own units.
    constraint : {"none", "box"}
        ``"none"``: re-centre Z after each step (E is translation invariant when ``lam = 0``);
        ``"box"``: clip Z to [-1, 1], the PCA start's extent, after each step: the latent
        scale is bounded against ``sigma`` (a smoother map, points crowd at the faces where
        the fit would spread them). The Gaussian prior is ``lam > 0``, with either.
    snapshot_every : int >= 0
        Store Z every this many iterations in ``snapshots_`` (0: none), as the tutorial's loop.
    random_state : int, numpy Generator or None
        Seed of ``init="random"`` (the other starts are deterministic).
    verbose : int >= 0
        Print a line every this many iterations (0: silent): the iteration, E after it, the
        largest move of a latent point in it (in units of sigma) and the time since the fit
        began. Each line costs one host synchronisation and, for gd and rprop, one more
        evaluation of E.
    n_jobs : int or None
        Threads for ``fit``, ``transform``, ``inverse_transform`` and ``score``, restored when
        they return (scikit-learn's convention: None leaves the libraries' defaults, -1 is
        every usable CPU, k >= 1 is k threads, k <= -2 all CPUs but -k - 1). It limits the BLAS
        and OpenMP pools (threadpoolctl) and torch's intra-op pool; XLA's pool (JAX) is sized
        when JAX starts and is not bounded by it (:mod:`backends.threads` says what is).

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
    sigma_ : float
        The bandwidth of the fit and of the learned map: ``sigma``, or the one ``"auto"`` chose.
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
    ) -> None:
        self.n_components = n_components
        self.sigma = sigma
        self.lam = lam
        self.loo = loo
        self.backend = backend
        self.dtype = dtype
        self.device = device
        self.gradient = gradient
        self.layout = layout
        self.optimizer = optimizer
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.init = init
        self.constraint = constraint
        self.snapshot_every = snapshot_every
        self.random_state = random_state
        self.verbose = verbose
        self.n_jobs = n_jobs

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
        self.sigma_ = result.sigma
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
            sigma=self._bandwidth(),
            backend=self.backend,
            dtype=self.dtype,
            device=self.device,
            layout=self.layout,
            n_iter=self.projection_iter,
            step=self.projection_step,
            n_jobs=self.n_jobs,
        )

    def inverse_transform(self, Z: ArrayLike) -> NDArray[np.floating]:
        """f(Z) (M x D): the learned map of latent points ``Z`` (M x L), no leave-one-out."""
        check_is_fitted(self, "embedding_", msg=_NOT_FITTED)
        Zq = check_array(Z, dtype=FLOAT_DTYPES, input_name="Z")
        L = self.embedding_.shape[1]
        if Zq.shape[1] != L:
            msg = f"Z has {Zq.shape[1]} columns, but the model has {L} latent dimensions"
            raise ValueError(msg)
        dtype = check_dtype(self.dtype)
        Zq = check_float_array("Z", Zq, dtype)
        sigma = self._bandwidth()
        with limit_threads(self.n_jobs, self.backend):
            b = get_backend(self.backend, dtype=dtype, device=self.device, layout=self.layout)
            Zt, Xt = b.asarray(self.embedding_), b.asarray(self.X_fit_)
            return b.to_numpy(b.sync(b.predict(b.asarray(Zq), Zt, Xt, sigma))).copy()

    def _bandwidth(self) -> float:
        """The map's bandwidth: ``sigma_`` of the fit.

        ``sigma`` is checked too (against ``dtype``, naming it), and is the bandwidth of a
        model without ``sigma_``: one pickled before the attribute existed, or assembled from
        arrays with a number for ``sigma``.
        """
        sigma = check_sigma_param(self.sigma, check_dtype(self.dtype))
        if hasattr(self, "sigma_"):
            return float(self.sigma_)
        if sigma is None:
            msg = "sigma='auto' and the model has no sigma_: fit it, or set sigma to a number"
            raise ValueError(msg)
        return sigma

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
