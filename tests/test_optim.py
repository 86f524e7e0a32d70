"""The optimisers' own logic, step by step, against references written here in plain Python.

Independent reference for iRprop+ / iRprop-: :func:`irprop_reference`, a per-coordinate loop
over Python floats written from Igel & Hüsken, "Improving the Rprop learning algorithm" (2000),
the iRprop+ pseudo-code (their figure of the algorithm with weight backtracking), not from
:mod:`ukr_bench.optim`. For gradient descent: ``z <- z - eta * grad``. The cross-backend
trajectory test in ``test_estimator.py`` cannot see an error here, because every backend shares
this optimiser code.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from conftest import BACKENDS

from ukr_bench import UKR, get_backend, value_and_grad
from ukr_bench.optim import GradientDescent, IRprop

Vec = list[float]


def _sign(v: float) -> float:
    return 1.0 if v > 0 else -1.0 if v < 0 else 0.0


def irprop_reference(
    E: Callable[[Vec], float],
    dE: Callable[[Vec], Vec],
    z0: Vec,
    step0: float,
    iters: int,
    *,
    backtrack: bool = True,
    eta_plus: float = 1.2,
    eta_minus: float = 0.5,
    step_min: float = 0.0,
    step_max: float = math.inf,
    project: Callable[[Vec], Vec] = lambda z: z,
) -> tuple[list[Vec], dict[str, int], list[tuple[int, int, bool]]]:
    """iRprop+ (``backtrack``) or iRprop- of Igel & Hüsken (2000), then ``project`` each iterate.

    Per weight i, with E^(t) the error at the current iterate and g^(t) its gradient:

    * g^(t-1) g^(t) > 0: Delta_i <- min(eta+ Delta_i, Delta_max); dw_i <- -sign(g_i) Delta_i;
      w_i <- w_i + dw_i.
    * g^(t-1) g^(t) < 0: Delta_i <- max(eta- Delta_i, Delta_min); iRprop+ only: if
      E^(t) > E^(t-1) then w_i <- w_i - dw_i^(t-1) (undo the last step); g_i^(t) <- 0.
    * else (a product of 0): dw_i <- -sign(g_i) Delta_i; w_i <- w_i + dw_i.

    Returns the iterates (z0 first), counts of what happened (so a test can check that its
    trajectory exercises every case) and the flips as (iteration t, coordinate i, backtracked):
    iterate t + 1 is computed at iterate t.
    """
    z = list(z0)
    n = len(z)
    delta, g_prev, dw_prev = [step0] * n, [0.0] * n, [0.0] * n
    E_prev = math.nan
    iterates = [list(z)]
    counts = {"grow": 0, "flip": 0, "backtrack": 0, "at_max": 0, "at_min": 0}
    flips = []
    for t in range(iters):
        E_t, g = E(z), list(dE(z))
        new = list(z)
        for i in range(n):
            if g_prev[i] * g[i] > 0:
                delta[i] = min(delta[i] * eta_plus, step_max)
                counts["grow"] += 1
                counts["at_max"] += delta[i] == step_max
                dw = -_sign(g[i]) * delta[i]
                new[i] += dw
                dw_prev[i] = dw
            elif g_prev[i] * g[i] < 0:
                delta[i] = max(delta[i] * eta_minus, step_min)
                counts["flip"] += 1
                counts["at_min"] += delta[i] == step_min
                if backtrack and E_t > E_prev:
                    new[i] -= dw_prev[i]
                    counts["backtrack"] += 1
                flips.append((t, i, backtrack and E_t > E_prev))
                g[i] = 0.0
            else:
                dw = -_sign(g[i]) * delta[i]
                new[i] += dw
                dw_prev[i] = dw
            g_prev[i] = g[i]
        E_prev = E_t
        z = project(new)
        iterates.append(list(z))
    return iterates, counts, flips


def _quadratic(a: Vec, c: Vec) -> tuple[Callable[[Vec], float], Callable[[Vec], Vec]]:
    """E(z) = sum_i a_i (z_i - c_i)^2 and its gradient, on Python floats."""

    def E(z: Vec) -> float:
        return sum(ai * (zi - ci) ** 2 for ai, zi, ci in zip(a, z, c, strict=True))

    def dE(z: Vec) -> Vec:
        return [2 * ai * (zi - ci) for ai, zi, ci in zip(a, z, c, strict=True)]

    return E, dE


def _run_irprop(backend: str, a: Vec, c: Vec, z0: Vec, iters: int, **kw: float) -> np.ndarray:
    """IRprop of ukr_bench.optim on ``backend``'s float64 arrays (shape (1, n)), the iterates."""
    b = get_backend(backend, dtype="float64")
    A, C = b.asarray(np.array([a])), b.asarray(np.array([c]))
    Z = b.asarray(np.array([z0]))
    opt = IRprop(b.xp, **kw)
    out = [b.to_numpy(Z)[0]]
    with b.context():
        for _ in range(iters):
            value = (A * (Z - C) ** 2).sum()
            Z = opt.step(Z, value, 2 * A * (Z - C))
            out.append(b.to_numpy(Z)[0])
    return np.array(out)


# A 1-D quadratic started far from its minimum: steps grow, overshoot, E rises, the step is
# undone; later a flip at which E fell (no backtracking). 25 iterations cover every case.
CASES_1D = [
    # (a, c, z0, initial step, options)
    ([1.0], [1.0], [0.0], 0.4, {}),
    ([3.0], [-2.0], [5.0], 0.05, {"eta_plus": 1.5, "eta_minus": 0.6}),
    ([1.0], [1.0], [0.0], 0.4, {"step_max": 0.5, "step_min": 0.05}),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("a", "c", "z0", "step0", "opts"), CASES_1D)
@pytest.mark.parametrize("backtrack", [True, False])
def test_irprop_1d_quadratic_step_by_step(
    backend: str, a: Vec, c: Vec, z0: Vec, step0: float, opts: dict, backtrack: bool
) -> None:
    """Every iterate of IRprop on a 1-D quadratic equals :func:`irprop_reference`'s."""
    E, dE = _quadratic(a, c)
    ref, counts, _ = irprop_reference(E, dE, z0, step0, 25, backtrack=backtrack, **opts)
    assert counts["grow"] > 0
    assert counts["flip"] > 0
    if backtrack:
        assert 0 < counts["backtrack"] < counts["flip"]  # both kinds of flip happen
    if "step_max" in opts:
        assert counts["at_max"] > 0
        assert counts["at_min"] > 0
    got = _run_irprop(backend, a, c, z0, 25, initial_step=step0, backtrack=backtrack, **opts)
    # the reference performs the same float64 operations: at most a few reassociated (~4 eps)
    np.testing.assert_allclose(got, np.array(ref), rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_irprop_plus_does_not_backtrack_when_the_error_is_unchanged(backend: str) -> None:
    """An overshoot from -0.5 to 0.5 across the minimum of z^2: the sign flips, E is equal.

    The paper backtracks only if E^(t) > E^(t-1) (strictly): here the step is kept, the step
    size halves and the next move (from g = 0) is 0. Reference: :func:`irprop_reference`.
    """
    E, dE = _quadratic([1.0], [0.0])
    ref, counts, _ = irprop_reference(E, dE, [-0.5], 1.0, 3)
    assert counts == {"grow": 0, "flip": 1, "backtrack": 0, "at_max": 0, "at_min": 0}
    assert ref == [[-0.5], [0.5], [0.5], [0.0]]
    got = _run_irprop(backend, [1.0], [0.0], [-0.5], 3, initial_step=1.0)
    np.testing.assert_array_equal(got, np.array(ref))


@pytest.mark.parametrize("backend", BACKENDS)
def test_irprop_zero_gradient_neither_grows_nor_flips(backend: str) -> None:
    """A step that lands exactly on the minimum: g = 0 there, a product of 0 (the third case).

    From z = 0 with step 0.5 towards c = 0.5 (exact in binary), g becomes exactly 0: the step
    size must stay 0.5 and the point must stay. Reference: :func:`irprop_reference`.
    """
    E, dE = _quadratic([1.0], [0.5])
    ref, counts, _ = irprop_reference(E, dE, [0.0], 0.5, 4)
    assert ref == [[0.0], [0.5], [0.5], [0.5], [0.5]]
    assert counts == {"grow": 0, "flip": 0, "backtrack": 0, "at_max": 0, "at_min": 0}
    b = get_backend(backend, dtype="float64")
    opt = IRprop(b.xp, 0.5)
    Z, C = b.asarray(np.zeros((1, 1))), b.asarray(np.full((1, 1), 0.5))
    with b.context():
        for _ in range(4):
            Z = opt.step(Z, ((Z - C) ** 2).sum(), 2 * (Z - C))
    np.testing.assert_array_equal(b.to_numpy(Z), [[0.5]])
    np.testing.assert_array_equal(b.to_numpy(opt._state.steps), [[0.5]])  # the step sizes


@pytest.mark.parametrize("backend", BACKENDS)
def test_irprop_plus_2d_separable_uses_the_global_error(backend: str) -> None:
    """Two coordinates of different curvature: per-coordinate steps, one global E.

    iRprop+ undoes a coordinate's step only if the *total* error rose. The trajectory here has
    flips where E fell although that coordinate's own term a_i (z_i - c_i)^2 rose, so an
    implementation deciding per coordinate (or always backtracking) fails.
    """
    a, c, z0, step0 = [1.0, 20.0], [1.0, -0.5], [-1.0, 0.3], 0.2
    E, dE = _quadratic(a, c)
    ref, counts, flips = irprop_reference(E, dE, z0, step0, 30)
    assert counts["backtrack"] > 0

    def own_term(t: int, i: int) -> float:
        return a[i] * (ref[t][i] - c[i]) ** 2

    own_term_rose_total_fell = [
        (t, i)
        for t, i, backtracked in flips
        if not backtracked and own_term(t, i) > own_term(t - 1, i) and E(ref[t]) <= E(ref[t - 1])
    ]
    assert own_term_rose_total_fell
    for t, i in own_term_rose_total_fell:
        assert ref[t + 1][i] == ref[t][i]  # a flip without backtracking: the coordinate stays

    got = _run_irprop(backend, a, c, z0, 30, initial_step=step0)
    np.testing.assert_allclose(got, np.array(ref), rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_descent_step(backend: str) -> None:
    """GradientDescent: z <- z - eta * grad, every iterate (reference: that formula on floats)."""
    a, c, z, eta = [0.5, 2.0], [1.0, -1.0], [3.0, 2.0], 0.2
    _, dE = _quadratic(a, c)
    b = get_backend(backend, dtype="float64")
    opt = GradientDescent(b.xp, eta)
    Z = b.asarray(np.array([z]))
    for _ in range(10):
        g = dE(z)
        z = [zi - eta * gi for zi, gi in zip(z, g, strict=True)]
        with b.context():
            Z = opt.step(Z, None, b.asarray(np.array([g])))
        np.testing.assert_allclose(b.to_numpy(Z)[0], z, rtol=1e-15)  # the same float64 ops


# -- the estimator's use of them: step sizes in units of sigma, the constraint after each step --


def _ukr_reference(
    X: np.ndarray, Z0: np.ndarray, sigma: float, optimizer: str, rate: float, iters: int, box: bool
) -> np.ndarray:
    """What ``UKR.fit`` documents: gd with step ``rate``, or iRprop+ with initial step
    ``rate * sigma`` and steps within [1e-9 sigma, sigma]; re-centre (or clip to [-1, 1]) after
    each step. E and dE/dZ from the public float64 NumPy ``value_and_grad``."""
    shape = Z0.shape

    def E(z: Vec) -> float:
        return value_and_grad(np.reshape(z, shape), X, sigma=sigma)[0]

    def dE(z: Vec) -> Vec:
        return list(value_and_grad(np.reshape(z, shape), X, sigma=sigma)[1].ravel())

    def project(z: Vec) -> Vec:
        Z = np.reshape(z, shape)
        Z = np.clip(Z, -1.0, 1.0) if box else Z - Z.mean(axis=0)
        return list(Z.ravel())

    if optimizer == "gd":
        z, out = list(Z0.ravel()), [Z0]
        for _ in range(iters):
            z = project([zi - rate * gi for zi, gi in zip(z, dE(z), strict=True)])
            out.append(np.reshape(z, shape))
        return np.array(out)
    iterates, counts, _ = irprop_reference(
        E,
        dE,
        list(Z0.ravel()),
        rate * sigma,
        iters,
        step_min=1e-9 * sigma,
        step_max=sigma,
        project=project,
    )
    assert counts["flip"] > 0
    assert counts["at_max"] > 0  # the step bound (sigma) matters in this trajectory
    return np.array([np.reshape(z, shape) for z in iterates])


@pytest.mark.parametrize(("optimizer", "rate"), [("gd", 0.5), ("rprop", 0.5)])
@pytest.mark.parametrize("constraint", ["none", "box"])
def test_estimator_follows_the_reference_optimiser(
    optimizer: str, rate: float, constraint: str
) -> None:
    """``UKR(...).fit`` snapshots against :func:`_ukr_reference`, iteration by iteration."""
    rng = np.random.default_rng(4)
    X, Z0 = rng.normal(size=(8, 2)), 0.3 * rng.normal(size=(8, 2))
    sigma, iters = 0.4, 12
    model = UKR(
        sigma=sigma,
        optimizer=optimizer,
        learning_rate=rate,
        init=Z0,
        constraint=constraint,
        max_iter=iters,
        snapshot_every=1,
    ).fit(X)
    ref = _ukr_reference(X, Z0, sigma, optimizer, rate, iters, constraint == "box")
    # the same float64 operations as the reference, reassociated within a step (a few eps),
    # over the steps' small growth (error_model.TRAJECTORY_GROWTH)
    np.testing.assert_allclose(model.snapshots_, ref, rtol=1e-12, atol=1e-12)
