"""The tutorial's result, reproduced: UKR on the noisy saddle on every backend, and the digits.

:func:`run_demo` fits the saddle (the tutorial's data, N = 500, noise std 0.05 per coordinate)
with leave-one-out on each installed backend, prints the fit time and the leave-one-out error
against its floor, shows the pitfall of fitting without leave-one-out, and draws two figures:

* ``ukr_saddle.png``: the data in 3-D with the learned surface f(z) on a latent grid, the latent
  map coloured by the data coordinate x3, and the objective against iteration.
* ``ukr_digits.png``: scikit-learn's handwritten digits (64-D) embedded in 2-D, coloured by class.

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
from ukr_bench.interface import available_backends

NOISE = 0.05
SADDLE = {"sigma": 0.2, "optimizer": "lbfgs", "max_iter": 200}  # the fit of the fidelity test


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
    import matplotlib

    matplotlib.use("Agg")
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
    results["figures"].append(str(_saddle_figure(out / "ukr_saddle.png", X, first, models, no_loo)))
    if digits:
        results["figures"].append(str(_digits_figure(out / "ukr_digits.png", random_state)))
    for path in results["figures"]:
        print(f"wrote {path}")
    return results


def _saddle_figure(
    path: Path, X: np.ndarray, model: UKR, models: dict[str, UKR], no_loo: UKR
) -> Path:
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(17, 5.2))
    ax = fig.add_subplot(1, 3, 1, projection="3d")
    Z = model.embedding_
    lo, hi = np.percentile(Z, 2, axis=0), np.percentile(Z, 98, axis=0)
    g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], 35), np.linspace(lo[1], hi[1], 35))
    F = model.inverse_transform(np.column_stack([g1.ravel(), g2.ravel()]))
    ax.scatter(*X.T, s=4, c="k", alpha=0.5, label="data")
    ax.plot_wireframe(
        *(F[:, i].reshape(g1.shape) for i in range(3)), color="tab:red", lw=0.5, label="f(z)"
    )
    ax.set(xlabel="$x_1$", ylabel="$x_2$", zlabel="$x_3$")
    ax.set_title(f"Noisy saddle (N = {len(X)}) and the learned surface f(z)")
    ax.legend(loc="upper left")

    ax = fig.add_subplot(1, 3, 2)
    sc = ax.scatter(Z[:, 0], Z[:, 1], c=X[:, 2], s=10, cmap="viridis")
    fig.colorbar(sc, ax=ax, label="$x_3 = x_1^2 - x_2^2$ (+ noise)")
    ax.set(xlabel="$z_1$", ylabel="$z_2$", title=f"Latent map ({model.backend}), coloured by $x_3$")
    ax.set_aspect("equal", adjustable="datalim")

    ax = fig.add_subplot(1, 3, 3)
    for (name, m), (ls, lw) in zip(models.items(), [("-", 4), ("--", 2.5), (":", 2)], strict=False):
        ax.semilogy(m.history_, ls=ls, lw=lw, label=f"{name}, leave-one-out (L-BFGS)")
    ax.semilogy(no_loo.history_, "--", color="gray", label="numpy, no leave-one-out (iRprop+)")
    floor = (X.shape[1] - 2) * NOISE**2
    ax.axhline(floor, color="k", lw=0.8, ls=":", label=f"(D - L) noise var = {floor:.4f}")
    ax.set(
        xlabel="iteration",
        ylabel="objective E(Z)",
        title="Objective against iteration (backends coincide)",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _digits_figure(path: Path, random_state: int) -> Path:
    import matplotlib.pyplot as plt

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
