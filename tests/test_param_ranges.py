"""Extreme values get a clear error at the boundary, never a crash or a silent NaN or inf.

sigma and lam have a range per dtype (``ukr_bench.problem``: sigma in [2^-e, 2^e], lam 0 or in
[2^-2e, 2^2e], e = 46 for float32 and 494 for float64), derived from what the computation's
constants need to stay normal numbers; Z and X must not be so large that E(Z) overflows
(``check_magnitudes``). Before, NumPy raised ZeroDivisionError (sigma = 1e-300) or
OverflowError (sigma = 1e200) and JAX and torch returned NaN without a word. Every backend goes
through the same checks, so each test runs on each of them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import BACKENDS
from error_model import tolerance

from ukr_bench import Params, get_backend, relative_error, training, value_and_grad
from ukr_bench.problem import check_lam, check_sigma, lam_range, sigma_range
from ukr_bench.validation import DTYPES

RNG = np.random.default_rng(0)
Z = RNG.normal(size=(8, 2))
X = RNG.normal(size=(8, 3))
EXPONENT = {"float32": 46, "float64": 494}


def test_ranges_are_the_documented_powers_of_two() -> None:
    for dtype, e in EXPONENT.items():
        assert sigma_range(dtype) == (2.0**-e, 2.0**e)
        assert lam_range(dtype) == (2.0 ** (-2 * e), 2.0 ** (2 * e))
    # float32's range lies inside float64's: Params (no dtype yet) checks float64's.
    assert sigma_range("float64")[0] < sigma_range("float32")[0]
    assert sigma_range("float32")[1] < sigma_range("float64")[1]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("end", [0, 1])
def test_the_constants_are_normal_numbers_at_the_ends(dtype: str, end: int) -> None:
    """The error model: every constant formed from sigma and lam is finite and normal.

    Formed in the dtype (JAX, torch) and in float64 then cast (NumPy), for N from 1 to 2^32.
    """
    t = np.dtype(dtype).type
    tiny, big = float(np.finfo(dtype).tiny), float(np.finfo(dtype).max)
    sigma, lam = sigma_range(dtype)[end], lam_range(dtype)[end]
    for N in (1, 2, 1000, 2**32):
        s, n, two = t(sigma), t(N), t(2.0)
        in_dtype = [
            s * s, two * s * s, n * s * s, t(math.sqrt(2.0)) * s,
            t(1.0) / (two * s * s), t(1.0) / (s * s), two / (s * s), two / (n * s * s),
            t(1.0) / (t(math.sqrt(2.0)) * s), t(lam), two * t(lam) / n,
        ]  # fmt: skip
        cast = [
            sigma**2, 1.0 / (2.0 * sigma**2), 2.0 / sigma**2, 2.0 / (N * sigma**2),
            1.0 / (math.sqrt(2.0) * sigma), 2.0 * lam / N,
        ]  # fmt: skip
        for value in [*in_dtype, *(t(c) for c in cast)]:
            assert tiny <= abs(float(value)) <= big, (N, value)


def _outside(dtype: str) -> list[tuple[str, float]]:
    (slo, shi), (llo, lhi) = sigma_range(dtype), lam_range(dtype)
    return [
        ("sigma", 1e-300),  # the issue's: NumPy ZeroDivisionError, JAX/torch NaN
        ("sigma", 1e200),  # NumPy OverflowError
        ("sigma", slo / 2),
        ("sigma", shi * 2),
        ("lam", llo / 2),  # float32 1e-40 was flushed to 0 by JAX only: backends disagreed
        ("lam", lhi * 2),
        ("lam", 1e300),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["dense", "blocked"])
def test_out_of_range_parameters_are_refused_naming_the_range(
    backend: str, dtype: str, layout: str
) -> None:
    for name, value in _outside(dtype):
        e = EXPONENT[dtype] * (1 if name == "sigma" else 2)
        expected = (
            rf"^{name} must (be 0 or )?lie in \[2\^-{e}, 2\^{e}\] \(about .* to .*\) for "
            rf"{dtype}, got {value!r}".replace("+", r"\+")
        )
        with pytest.raises(ValueError, match=expected):
            value_and_grad(
                Z, X, backend=backend, dtype=dtype, layout=layout, block_size=4, **{name: value}
            )


def _relative_error(a: object, ref: object) -> float:
    """relative_error, scaled first: at lam = 2^988 the norm's own square overflows float64."""
    a64, ref64 = np.asarray(a, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    scale = float(np.max(np.abs(ref64))) or 1.0
    return relative_error(a64 / scale, ref64 / scale)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_ends_of_the_ranges_are_accepted_and_agree(backend: str, dtype: str) -> None:
    """At each end of both ranges every backend returns a finite E and gradient, the same.

    At the ends of sigma's range the latents are scaled with it (E(sigma Z; sigma) = E(Z; 1)
    with lam = 0), so that the constants, not the latent spread in bandwidths, are what is
    extreme; the prior then weighs ``lam sigma^2 = 1``. The ends of lam's range at sigma = 1.
    """
    tol = tolerance(dtype, 8)  # N = 8 (error_model)
    cases = [(s, lam, Z * s) for s in sigma_range(dtype) for lam in (0.0, 1.0 / s**2)]
    cases += [(1.0, lam, Z) for lam in lam_range(dtype)]
    for sigma, lam, Zc in cases:
        kw = {"sigma": sigma, "lam": lam}
        ref = value_and_grad(Zc, X, backend="numpy", dtype="float64", **kw)
        for layout in ("dense", "blocked"):
            v, g = value_and_grad(
                Zc, X, backend=backend, dtype=dtype, layout=layout, block_size=4, **kw
            )
            assert np.isfinite(v), (sigma, lam, layout)
            assert np.all(np.isfinite(g)), (sigma, lam, layout)
            assert _relative_error(v, ref[0]) <= tol, (sigma, lam, layout)
            assert _relative_error(g, ref[1]) <= tol, (sigma, lam, layout)
    # and the invariance that chose the latents: sigma's ends give E(Z; 1)
    unit = value_and_grad(Z, X, backend=backend, dtype=dtype)[0]
    for sigma in sigma_range(dtype):
        v = value_and_grad(Z * sigma, X, backend=backend, dtype=dtype, sigma=sigma)[0]
        assert v == pytest.approx(unit, rel=tol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_backend_methods_refuse_out_of_range_parameters(backend: str, dtype: str) -> None:
    """The Backend level is a boundary too, JAX's own ahead-of-time ``compile`` included."""
    b = get_backend(backend, dtype=dtype)
    Zd, Xd = b.asarray(Z.astype(dtype)), b.asarray(X.astype(dtype))
    for sigma in (1e-300, sigma_range(dtype)[0] / 2):
        match = rf"^sigma must lie in .* for {dtype}, got {sigma!r}"
        calls = [
            (b.value, (Zd, Xd, sigma, 0.0, True)),
            (b.value_and_grad, (Zd, Xd, sigma, 0.0, True)),
            (b.predict, (Zd, Zd, Xd, sigma)),
            (b.project_value_and_grad, (Zd, Xd, Zd, Xd, sigma)),
        ]
        for method, args in calls:
            with pytest.raises(ValueError, match=match):
                method(*args)
    lam = lam_range(dtype)[1] * 2
    with pytest.raises(ValueError, match=rf"^lam must be 0 or lie in .* for {dtype}"):
        b.value_and_grad(Zd, Xd, 1.0, lam, True)
    if dtype == "float32":  # in float64's range, so Params takes it; not in float32's
        params = Params(sigma=1e-20)
        for fn in ("value", "value_and_grad"):
            with pytest.raises(ValueError, match=r"^sigma must lie in .* for float32, got 1e-20"):
                b.compile(fn, Zd, Xd, params)
    f = b.compile("value_and_grad", Zd, Xd, Params(sigma=0.7))  # in range: compiles and runs
    value, _ = b.sync(f(Zd, Xd))
    assert np.isfinite(float(b.to_numpy(value)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("dtype", "kwargs", "match"),
    [
        # float32 latents of 1e20: every logit was -inf and every backend returned NaN
        ("float32", {"Z": Z * 1e20}, r"^Z is too large for float32 with sigma = 1.0"),
        ("float64", {"Z": Z * 1e160}, r"^Z is too large for float64"),
        # float32 data of 1e20: E was inf and the gradient not finite
        ("float32", {"X": X * 1e20}, r"^X is too large for float32: max \|X\| = "),
        ("float64", {"X": X * 1e160}, r"^X is too large for float64"),
        # lam in range, Z finite, lam ||Z||^2 = inf
        ("float32", {"Z": Z * 1e5, "lam": 1e27}, r"^lam = 1e\+27 is too large for these Z"),
        # latents the dtype cannot resolve to an eighth of a bandwidth (1 / (8 eps) sigma):
        # JAX's blocked float32 layout gave NaN at 1e9 sigma, a point's distance to itself
        # rounding to hundreds of bandwidths
        ("float32", {"Z": Z * 1e9}, r"^Z is too far from the origin for float32"),
        ("float64", {"Z": Z * 1e16}, r"^Z is too far from the origin for float64"),
        # the gradient's terms: large data against a small bandwidth
        (
            "float32",
            {"X": X * 1e15, "sigma": 1e-3},
            r"^Z and X are too large for float32 with sigma = 0.001 and lam = 0.0",
        ),
    ],
)
def test_inputs_whose_terms_overflow_are_refused(
    backend: str, dtype: str, kwargs: dict, match: str
) -> None:
    args = {"Z": Z, "X": X} | kwargs
    with pytest.raises(ValueError, match=match):
        value_and_grad(args.pop("Z"), args.pop("X"), backend=backend, dtype=dtype, **args)


def test_extreme_scales_give_an_error_or_finite_results_on_every_backend() -> None:
    """The property: over extreme scales of Z, X, sigma and lam, each call either raises a
    ValueError at the boundary or returns a finite E and gradient; on every backend, layout
    and dtype, the same decision.

    Scales are drawn log-uniformly across and beyond each dtype's ranges (deterministic).
    N = 8 in blocks of 7: a one-row last block, where JAX's blocked layout once returned NaN
    for latents 1e9 bandwidths from the origin in float32 (now refused: the dtype cannot
    resolve them, ``problem.LATENT_RESOLUTION``).
    """
    rng = np.random.default_rng(1)
    outcomes: dict[str, int] = {"refused": 0, "finite": 0}
    for _ in range(24):
        dtype = str(rng.choice(DTYPES))
        e = EXPONENT[dtype]
        span = 25 if dtype == "float32" else 200
        sigma = 2.0 ** rng.uniform(-e - 2, e + 2)
        kw = {
            "sigma": float(sigma),
            "lam": 0.0 if rng.random() < 0.3 else float(2.0 ** rng.uniform(-2 * e - 4, 2 * e + 4)),
            "loo": bool(rng.random() < 0.5),
            "dtype": dtype,
        }
        Zs = Z * sigma * 10.0 ** rng.uniform(-span, span)
        Xs = X * 10.0 ** rng.uniform(-span, span)
        decisions = set()
        for backend in BACKENDS:
            for layout in ("dense", "blocked"):
                try:
                    v, g = value_and_grad(
                        Zs, Xs, backend=backend, layout=layout, block_size=7, **kw
                    )
                except ValueError:
                    decisions.add("refused")
                    continue
                assert np.isfinite(v), (backend, layout, kw)
                assert np.all(np.isfinite(g)), (backend, layout, kw)
                decisions.add("finite")
        assert len(decisions) == 1, kw
        outcomes[decisions.pop()] += 1
    assert min(outcomes.values()) >= 5, outcomes  # the draw exercises both sides


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_estimator_and_training_refuse_the_same(dtype: str) -> None:
    from ukr_bench import UKR

    lo = sigma_range(dtype)[0]
    for params, match in [
        ({"sigma": lo / 2}, rf"^sigma must lie in .* for {dtype}"),
        ({"lam": lam_range(dtype)[1] * 2}, rf"^lam must be 0 or lie in .* for {dtype}"),
    ]:
        with pytest.raises(ValueError, match=match):
            UKR(dtype=dtype, max_iter=2, **params).fit(X)
    big = {"float32": 1e20, "float64": 1e160}[dtype]
    with pytest.raises(ValueError, match=rf"^X is too large for {dtype}"):
        UKR(dtype=dtype, max_iter=2).fit(X * big)
    with pytest.raises(ValueError, match=rf"^init is too large for {dtype}"):
        UKR(dtype=dtype, max_iter=2, init=Z * big).fit(X)
    model = UKR(dtype=dtype, max_iter=2).fit(X)
    model.sigma = lo / 2  # changed after the fit: the map and the projection refuse it too
    with pytest.raises(ValueError, match=rf"^sigma must lie in .* for {dtype}"):
        model.inverse_transform(Z)
    with pytest.raises(ValueError, match=rf"^sigma must lie in .* for {dtype}"):
        model.transform(X + 0.1)
    with pytest.raises(ValueError, match=rf"^sigma must lie in .* for {dtype}"):
        training.project(X + 0.1, model.embedding_, model.X_fit_, sigma=lo / 2, dtype=dtype)


def test_check_functions_name_what_they_are_given() -> None:
    # The CLI passes its option names: the message starts with the option the user typed.
    with pytest.raises(ValueError, match=r"^--sigma must lie in \[2\^-46, 2\^46\]"):
        check_sigma(1e-300, "float32", name="--sigma")
    with pytest.raises(ValueError, match=r"^--lam must be 0 or lie in"):
        check_lam(1e300, "float64", name="--lam")
    with pytest.raises(ValueError, match=r"^--sigma must be > 0, got -1.0$"):
        check_sigma(-1.0, name="--sigma")
    assert check_lam(0.0, "float32") == 0.0
