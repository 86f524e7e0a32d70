"""The error models behind the suite's numerical tolerances: no bound is what one machine gave.

Two CPUs give different float32 results for the same code (AVX-512 or AVX2, FMA or not, the
summation order a BLAS picks for the CPU it finds), so a tolerance tuned on one fails on the
other. Every tolerance of the tests therefore comes from a model of rounding error, with
``eps`` the machine epsilon of the dtype (twice the unit roundoff, so every bound below is
conservative by 2x):

* :func:`error_bounds`: a first-order, term-by-term forward-error bound of the objective E and
  its gradient for one problem. It accounts for the number of terms of each sum (n), eps, the
  logits' magnitude (the conditioning of each weight) and cancellation (it bounds magnitudes,
  so however the terms cancel, the bound holds). :func:`objective_tolerances` turns it into
  the allowance for comparing a result with a float64 reference, which has its own error.
* :data:`TOL`: relative agreement of computations that :func:`error_bounds` does not model
  (``predict``, the projection, closed forms) on the tests' small problems; its derivation is
  given with it.
* Statistical tolerances (sample moments, fits) state their own model where they are used.
"""

from __future__ import annotations

import numpy as np

EPS = {"float32": float(np.finfo(np.float32).eps), "float64": float(np.finfo(np.float64).eps)}


def error_bounds(Z: np.ndarray, X: np.ndarray, kw: dict, eps: float) -> tuple[float, float]:
    """Forward-error bounds for |E~ - E| and ||G~ - G|| in a precision with unit roundoff ``eps``.

    A first-order, term-by-term bound, evaluated with the exact (float64) weights R, so that it
    follows the error actually made rather than the largest logit. (The previous bound scaled
    eps * max|A| by natural magnitudes taken with every weight = 1: at 10 sigma and beyond it was
    10^7-10^10 times the measured float32 error, and a gradient wrong by 100 % passed half the
    draws at 10 sigma and 90 % at 1000 sigma.) Steps, with a_nm the conditioning of logit A_nm:

    1. Inputs rounded to the precision and differences z_n - z_m taken there give
       |dA_nm| <= c eps a_nm, a_nm = |A_nm| + sum_l |z_nl - z_ml| (|z_nl| + |z_ml|) / sigma^2
       (the second term: rounding Z itself, which matters when points are far from 0).
    2. Softmax (max-subtracted): R~_nm = R_nm exp(dA_nm - sum_k R_nk dA_nk) (1 + O(N eps)),
       so |R~_nm - R_nm| <= dR_nm = min(R_nm (exp(rho_nm) - 1), 1) with
       rho_nm = (L + 4) eps (a_nm + sum_k R_nk a_nk) + (N + 4) eps. exp, not 1 + rho: where
       eps a_nm > 1 (float32 from ~300 sigma) the weights carry no correct digit, and the bound
       says so instead of pretending to first order.
    3. Y = R X: |dY| <= dR |X| + (N + 2) eps R |X|; residual e = Y - X: |de| <= |dY| + eps(2|X| + |Y|).
    4. E = (1/N) sum ||e_n||^2 + lam ||Z||^2 / N: |dE| <= (2 |e|.|de| + |de|^2) / N plus the
       rounding of the sums, (N D + 4) eps and (N L + 4) eps of each term's magnitude.
    5. Gradient g_k = -(1/sigma^2) sum_m S_km (z_k - z_m) + 2 lam z_k / N, S = B + B^T,
       B_nm = (2/N) R_nm e_n.(x_m - y_n). Its terms have magnitude
       b_nm = (2/N) R_nm (|e_n|.|x_m| + |e_n|.|y_n|) (the hand-derived form computes the two dot
       products apart), perturbed by dR, de and dY as above; the sum over m, and the form
       z_k sum_m S_km - (S Z)_k, add (N + 4) eps of sum_m |S_km| (|z_k - z_m| + |z_k| + |z_m|).

    Every quantity is a magnitude, so the bound holds however the terms cancel. Measured over 270
    draws of :func:`problems` (3 backends, both precisions): the error stayed below 0.3 of the
    bound; in float32 the bound is a median 70-140 times the error up to 1 sigma, 25 at 10 sigma
    and 12 at 100 sigma. Where float32 cannot resolve the gradient at all (from ~300 sigma) the
    float32 check reduces to finiteness and magnitude, and the float64 check (bound ~1e-9 of the
    terms there) is what catches a wrong gradient.
    """
    n, L = Z.shape
    D = X.shape[1]
    s2, lam = kw["sigma"] ** 2, kw["lam"]
    diff = Z[:, None, :] - Z[None, :, :]
    A = -(diff**2).sum(-1) / (2 * s2)
    absz = np.abs(Z)
    a = np.abs(A) + (np.abs(diff) * (absz[:, None] + absz[None])).sum(-1) / s2
    if kw["loo"]:
        np.fill_diagonal(A, -np.inf)
    shifted = A - A.max(1, keepdims=True)
    logR = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))  # finite where R underflows
    R = np.exp(logR)
    rho = (L + 4) * eps * (a + (R * a).sum(1, keepdims=True)) + (n + 4) * eps
    log_expm1 = np.where(rho > 30, rho, np.log(np.expm1(np.minimum(rho, 30))))
    dR = np.minimum(np.exp(logR + log_expm1), 1.0)
    ax = np.abs(X)
    Y = R @ X
    e = Y - X
    ay, ae = np.abs(Y), np.abs(e)
    dY = dR @ ax + (n + 2) * eps * (R @ ax)
    de = dY + eps * (2 * ax + ay)
    value_err = (2 * (ae * de).sum() + (de**2).sum() + (n * D + 4) * eps * (e**2).sum()) / n
    value_err += (n * L + 4) * eps * lam * (Z**2).sum() / n
    ex = ae @ ax.T + (ae * ay).sum(1, keepdims=True)  # |e_n|.|x_m| + |e_n|.|y_n|
    b = (2 / n) * R * ex
    d_ex = de @ ax.T + (de * ay).sum(1, keepdims=True) + (ae * dY).sum(1, keepdims=True)
    db = (2 / n) * (dR * ex + (R + dR) * d_ex) + (D + 4) * eps * b
    S, dS = b + b.T, db + db.T
    dist = np.sqrt((diff**2).sum(-1))
    zn = np.linalg.norm(Z, axis=1)
    per_k = (dS * dist).sum(1) + (n + 4) * eps * (S * (dist + zn[:, None] + zn[None])).sum(1)
    per_k = per_k / s2 + 6 * eps * lam * zn / n
    return float(value_err), float(np.linalg.norm(per_k))


def objective_tolerances(Z: np.ndarray, X: np.ndarray, kw: dict, dtype: str) -> tuple[float, float]:
    """Allowed |E~ - E_ref| and ||G~ - G_ref|| for a ``dtype`` result against a float64 one.

    Both results are within :func:`error_bounds` of the exact value (the reference with float64's
    eps), so they differ by at most the sum of the two bounds.
    """
    v, g = error_bounds(Z, X, kw, EPS[dtype])
    v64, g64 = error_bounds(Z, X, kw, EPS["float64"])
    return v + v64, g + g64


def assert_objective_agrees(
    v: float, g: np.ndarray, ref_v: float, ref_g: np.ndarray, bounds: tuple[float, float], case: str
) -> None:
    """|v - ref_v| and ||g - ref_g|| within ``bounds`` (:func:`objective_tolerances`)."""
    v_tol, g_tol = bounds
    assert np.isfinite(v), case
    assert np.all(np.isfinite(g)), case
    assert abs(float(v) - float(ref_v)) <= v_tol, (case, abs(float(v) - float(ref_v)), v_tol)
    err = float(np.linalg.norm(np.asarray(g, dtype=np.float64) - ref_g))
    assert err <= g_tol, (case, err, g_tol)


#: The tests' small problems, for the computations without a per-problem bound: sums of at most
#: N_MAX terms (N <= 50 points, D <= 10), weights whose logits, where the weight matters, are at
#: most A_EFF in magnitude (latents within 4 sigma: a logit below -8 has weight < 3.4e-4 of the
#: nearest's, and its error with it), and results at most KAPPA_MAX times smaller than the sum of
#: the magnitudes of their terms (cancellation; the residuals and gradients of random problems).
N_MAX, A_EFF, KAPPA_MAX = 64, 8.0, 32.0


def tolerance(dtype: str, n_terms: int = N_MAX) -> float:
    """gamma_n (the worst-case rounding of an n-term sum, n = ``n_terms``) times the logits'
    amplification (a logit's absolute error eps |A| is its weight's relative error) and the
    cancellation factor: the relative error allowed between two evaluations of the same
    quantity on the tests' small problems."""
    u = EPS[dtype] / 2  # the unit roundoff
    gamma = n_terms * u / (1 - n_terms * u)
    return gamma * (1 + A_EFF) * KAPPA_MAX


#: float32: 1.1e-3, float64: 2.0e-12 (measured errors are 1e-7 and 1e-15: a worst-case bound).
TOL = {dtype: tolerance(dtype) for dtype in EPS}


def central_difference_tolerance(h: float, scale: float = 1e3) -> float:
    """Relative error allowed of a float64 gradient against central differences of step ``h``.

    (f(z + h) - f(z - h)) / 2h errs by the truncation h^2 |f'''| / 6 and the rounding of f,
    eps |f| / h; relative to |f'| both are scaled by |f| / |f'| and |f'''| / |f'|, at most
    ``scale`` on the tests' small problems (latents within a few sigma: derivatives of order
    1 / sigma^k, sigma >= 0.5). h = 1e-6: (1e-12 + 2.2e-10) 1e3 = 2.2e-7.
    """
    return (h**2 + EPS["float64"] / h) * scale


#: Trajectories of k optimiser steps from the same start, compared between two float64
#: evaluations (backends, layouts, gradient kinds): each step adds its own difference, up to
#: TOL["float64"], and a step z <- z - eta g(z) with small eta amplifies the earlier ones by at
#: most (1 + eta |g'|), at most 2 in all over the tests' k <= 15 small steps (eta |g'| <= 0.05):
#: at most 2 k <= 32 = TRAJECTORY_GROWTH times the per-step difference. Long runs at large
#: steps are chaotic (differences grow exponentially) and are never compared.
TRAJECTORY_GROWTH = 2**5
TRAJECTORY_TOL = TRAJECTORY_GROWTH * TOL["float64"]

#: Fits with L-BFGS (5-15 iterations) compared the same way: its steps are not small (unit
#: quasi-Newton steps, line searches), and a difference in an early gradient changes the
#: curvature pairs and the accepted step, amplified by the curvature's condition number, at
#: most 5000 on these small fits (N <= 120, sigma >= 0.3).
FIT_TOL = 5000 * TOL["float64"]
