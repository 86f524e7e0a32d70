"""The tutorial's result, reproduced: UKR on the noisy saddle on every backend, and the digits.

:func:`run_demo` fits the saddle (the tutorial's data, N = 500, noise std 0.05 per coordinate)
with leave-one-out on each installed backend, prints the fit time and the leave-one-out error
against its floor, shows the pitfall of fitting without leave-one-out, and draws two figures:

* ``ukr_saddle.png``: the data in 3-D with the learned surface f(z), drawn only within one
  bandwidth of a latent point (:func:`ukr_bench.tutorial.surface_triangles`), for the plain
  leave-one-out fit and for the same fit with the prior ``lam = 0.005``; the latent map; the
  objective against iteration.
* ``ukr_digits.png``: scikit-learn's handwritten digits (64-D) embedded in 2-D, coloured by class.

Folds and remedies: :func:`run_demo` measures and prints, for the plain leave-one-out fit and
for each remedy (stopping early, the prior ``lam``, the box constraint), the latents' spread in
bandwidths, the share of drawn triangles that fold, and the error on fresh points. Without a
prior or a box, E is invariant under scaling Z and sigma together, so the bandwidth acts only
through the start (which has a fixed scale: ``UKR``'s ``sigma``), and the latents may spread
without bound; a small prior bounds the spread, does not depend on the optimiser and its start
as an iteration count does, and removes the folds at a small cost; then tune ``lam`` (or the
iteration count) by ``UKR.score`` on held-out data. Spreads are in units of the bandwidth the
fit used (``sigma_``).

The floor of the leave-one-out error: E sums the squared error over the D coordinates, and noise
along the L tangent directions of the manifold is absorbed by the latent coordinates, so a fit
that follows the manifold leaves E close to (D - L) * noise_std^2 = 0.0025 for the saddle.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ukr_bench.data import DIGITS_SIZE, make_dataset
from ukr_bench.estimator import UKR
from ukr_bench.extras import pyplot, require
from ukr_bench.interface import available_backends
from ukr_bench.tutorial import draw_surface, fold_fraction, folded, surface_triangles
from ukr_bench.validation import check_int

NOISE = 0.05
SADDLE = {"sigma": 0.2, "optimizer": "lbfgs", "max_iter": 200}  # the fit of the fidelity test
# Ways to keep the leave-one-out fit from folding (changes to SADDLE), compared by the demo.
SETTINGS: dict[str, dict[str, Any]] = {
    "leave-one-out": {},
    "early stop (30 iterations)": {"max_iter": 30},
    "lam = 0.002": {"lam": 0.002},
    "lam = 0.005": {"lam": 0.005},
    "lam = 0.01": {"lam": 0.01},
    "box [-1, 1], sigma = 0.15": {"constraint": "box", "sigma": 0.15},
}
FIGURE_FITS = ("leave-one-out", "lam = 0.005")  # drawn side by side (module docstring)
#: The fewest saddle samples the demo can fit: L = 2 latent dimensions need N >= L + 1, and
#: leave-one-out N >= 2 (:func:`ukr_bench.training.fit`).
MIN_SAMPLES = 3


def _timed_fit(model: UKR, X: np.ndarray) -> tuple[UKR, float]:
    # Warm up first (imports, JAX compilation), so the time is the fit's, not the framework's.
    UKR(**{**model.get_params(), "max_iter": 1}).fit(X)
    start = time.perf_counter()
    model.fit(X)
    return model, time.perf_counter() - start


def run_demo(
    out_dir: str | Path = "results/figures",
    *,
    backends: list[str] | None = None,
    n_samples: int = 500,
    digits: bool = True,
    random_state: int = 0,
) -> dict[str, Any]:
    """Fit, print and draw; returns ``{"saddle": {backend: {...}}, "no_loo": {...}, "figures": [...]}``.

    Parameters
    ----------
    out_dir : where the PNG figures go (created if missing).
    backends : which backends fit the saddle (default: every installed one).
    n_samples : N for the saddle.
    digits : also embed the digits (needs scikit-learn).
    random_state : seed of the data.
    """
    # Checked before anything is printed or drawn, not in the first fit half-way through.
    n_samples = check_int("n_samples", n_samples, MIN_SAMPLES)
    pyplot("drawing the demo's figures")  # matplotlib checked before the fits, not after them
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    X, _ = make_dataset("saddle", n_samples, noise=NOISE, random_state=random_state)
    D, L = X.shape[1], 2
    floor = (D - L) * NOISE**2
    print(
        f"Noisy saddle: N = {n_samples}, D = {D}, noise std {NOISE}; leave-one-out error floor "
        f"E* = (D - L) * {NOISE}^2 = {floor:.4f}  (E sums over the D coordinates)"
    )
    results: dict[str, Any] = {"saddle": {}, "figures": []}
    models: dict[str, UKR] = {}
    for backend in backends or available_backends():
        model, seconds = _timed_fit(UKR(L, backend=backend, **SADDLE), X)  # type: ignore[arg-type]
        E = float(model.history_[-1])
        models[backend] = model
        results["saddle"][backend] = {"E": E, "E_per_coordinate": E / D, "fit_s": seconds}
        print(
            f"  {backend:6s} L-BFGS {model.n_iter_} it: fit {seconds:6.2f} s, "
            f"LOO error E = {E:.5f} ({100 * (E / floor - 1):+.1f} % of E*), "
            f"per coordinate E/D = {E / D:.5f}"
        )
    # The pitfall: no leave-one-out, no prior -> latents spread, training error -> 0.
    loo = UKR(L, sigma=0.2, max_iter=300).fit(X)
    no_loo = UKR(L, sigma=0.2, loo=False, max_iter=300).fit(X)
    results["no_loo"] = {
        "E_loo": float(loo.history_[-1]),
        "E_no_loo": float(no_loo.history_[-1]),
        "spread_loo": float(np.ptp(loo.embedding_)),
        "spread_no_loo": float(np.ptp(no_loo.embedding_)),
    }
    print(
        f"Pitfall (iRprop+, 300 it): with LOO E = {loo.history_[-1]:.5f}, latent spread "
        f"{np.ptp(loo.embedding_):.1f}; without LOO E = {no_loo.history_[-1]:.2e} (training "
        f"error -> 0), latent spread {np.ptp(no_loo.embedding_):.1f}: points fly apart."
    )
    first = models[next(iter(models))]
    X_new, _ = make_dataset("saddle", 200, noise=NOISE, random_state=random_state + 1)
    print(
        f"Folds against regularisation ({first.backend}, sigma = {SADDLE['sigma']}, L-BFGS; "
        "folded share of the surface drawn within one bandwidth of the latents; error on 200 "
        "fresh points, -UKR.score):"
    )
    results["settings"] = {}
    fits: dict[str, UKR] = {}
    for name, change in SETTINGS.items():
        if name == "leave-one-out":
            m = first
        else:
            m = UKR(L, backend=first.backend, **{**SADDLE, **change}).fit(X)
        F, tris = surface_triangles(m.inverse_transform, m.embedding_, m.sigma_, n_grid=80)
        row = {
            "iterations": m.n_iter_,
            "spread": float(np.ptp(m.embedding_) / m.sigma_),
            "nearest": _median_nn(m.embedding_) / m.sigma_,
            "folds": fold_fraction(F, tris),
            "held_out": -m.score(X_new),
        }
        results["settings"][name] = row
        if name in FIGURE_FITS:
            fits[name] = m
        print(
            f"  {name:34s} {row['iterations']:3d} it: latents span {row['spread']:3.0f} "
            f"bandwidths (neighbours {row['nearest']:.2f} apart), folds {row['folds']:5.1%}, "
            f"fresh-point error {row['held_out']:.5f}"
        )
    results["figures"].append(str(_saddle_figure(out / "ukr_saddle.png", X, fits, models, no_loo)))
    if digits:
        results["figures"].append(str(_digits_figure(out / "ukr_digits.png", random_state)))
    for path in results["figures"]:
        print(f"wrote {path}")
    return results


def _median_nn(Z: np.ndarray) -> float:
    """Median distance from a latent point to its nearest neighbour."""
    tree = require("scipy.spatial", "report", "measuring nearest-neighbour distances").cKDTree(Z)
    return float(np.median(tree.query(Z, k=2)[0][:, 1]))


def _saddle_figure(
    path: Path, X: np.ndarray, fits: dict[str, UKR], models: dict[str, UKR], no_loo: UKR
) -> Path:
    plt = pyplot()

    fig = plt.figure(figsize=(13, 10.5))
    for k, (name, model) in enumerate(fits.items()):
        ax = fig.add_subplot(2, 2, k + 1, projection="3d")
        Z = model.embedding_
        F, tris = surface_triangles(model.inverse_transform, Z, model.sigma_, n_grid=80)
        fold = folded(F, tris)
        ax.scatter(*X.T, s=3, c="k", alpha=0.4, depthshade=False, label="data")
        draw_surface(ax, F, tris[~fold])
        draw_surface(ax, F, tris[fold], cmap=None, color="k", alpha=0.9, linewidth=0.3)
        ax.set(xlabel="$x_1$", ylabel="$x_2$", zlabel="$x_3$", zlim=(-1.2, 1.2))
        ax.view_init(elev=25, azim=-60)
        ax.set_box_aspect(None, zoom=1.1)
        label = name if name == "leave-one-out" else f"leave-one-out, {name}"
        ax.set_title(
            f"{label} (sigma = {model.sigma_:g}, L-BFGS {model.n_iter_} it): f(z)\n"
            f"latents span {np.ptp(Z) / model.sigma_:.0f} bandwidths, nearest neighbours "
            f"{_median_nn(Z) / model.sigma_:.1f} apart (median)\n"
            f"folded triangles (black): {fold.mean():.1%}",
            fontsize=10,
        )
    last = list(fits.values())[-1]
    ax = fig.add_subplot(2, 2, 3)
    sc = ax.scatter(last.embedding_[:, 0], last.embedding_[:, 1], c=X[:, 2], s=10, cmap="viridis")
    fig.colorbar(sc, ax=ax, label="$x_3 = x_1^2 - x_2^2$ (+ noise)")
    ax.set(
        xlabel="$z_1$",
        ylabel="$z_2$",
        title=f"Latent map ({last.backend}, lam = {last.lam:g}), coloured by $x_3$",
    )
    ax.set_aspect("equal", adjustable="datalim")

    ax = fig.add_subplot(2, 2, 4)
    for (name, m), (ls, lw) in zip(models.items(), [("-", 4), ("--", 2.5), (":", 2)], strict=False):
        ax.semilogy(m.history_, ls=ls, lw=lw, label=f"{name}, leave-one-out (L-BFGS)")
    ax.semilogy(last.history_, color="tab:red", lw=1, label=f"{last.backend}, lam = {last.lam:g}")
    ax.semilogy(no_loo.history_, "--", color="gray", label="numpy, no leave-one-out (iRprop+)")
    floor = (X.shape[1] - 2) * NOISE**2
    ax.axhline(floor, color="k", lw=0.8, ls=":", label=f"(D - L) noise var = {floor:.4f}")
    ax.set(
        xlabel="iteration",
        ylabel="objective E(Z) (with lam: + lam mean |z|²)",
        title="Objective against iteration (backends coincide)",
    )
    ax.legend(fontsize=8)
    fig.text(
        0.5,
        0.005,
        "f(z) is drawn on an 80 x 80 latent grid, keeping only the triangles whose corners lie "
        "within one bandwidth of a latent point (farther away f is a nearest-neighbour "
        "staircase);\na black triangle is one whose (x1, x2) orientation is reversed: the "
        "surface folds there. Left: without a prior the latents drift apart (1.3 bandwidths "
        "between neighbours),\nso f is defined only in fragments, and it follows the noise "
        "(folds); right: the prior lam keeps them 0.3 bandwidths apart and f is a smooth "
        "saddle.",
        ha="center",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.045, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _digits_figure(path: Path, random_state: int) -> Path:
    plt = pyplot()

    X, y = make_dataset("digits", DIGITS_SIZE, random_state=random_state)
    backend = "jax" if "jax" in available_backends() else "numpy"
    model, seconds = _timed_fit(UKR(2, sigma=1.0, max_iter=150, backend=backend), X)
    print(
        f"Digits: N = {len(X)}, D = {X.shape[1]}, {backend} iRprop+ {model.n_iter_} it in "
        f"{seconds:.1f} s, E = {model.history_[-1]:.3f} (PCA start {model.history_[0]:.3f})"
    )
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    sc = ax.scatter(
        model.embedding_[:, 0], model.embedding_[:, 1], c=y, cmap="tab10", s=6, vmin=-0.5, vmax=9.5
    )
    fig.colorbar(sc, ax=ax, ticks=range(10), label="digit class")
    ax.set(
        xlabel="$z_1$",
        ylabel="$z_2$",
        title=f"UKR embedding of scikit-learn's digits (N = {len(X)}, 64-D -> 2-D)",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
