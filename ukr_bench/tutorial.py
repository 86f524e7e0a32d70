"""The lab tutorial's own setting, reproduced on every backend, and surfaces drawn where f is defined.

The tutorial this project started from fits 200 noiseless saddle points (z ~ U(-1, 1)^2,
x = (z1, z2, z1^2 - z2^2)) with latents initialised at 1e-5 scale, bandwidth sigma = 1, no
leave-one-out, no prior, by plain gradient descent ``z -= eta_tut * grad E_tut(z)`` on the *sum*
``E_tut(Z) = sum_n ||x_n - y_n||^2``, storing every epoch's Z. Our objective is the mean,
``E = E_tut / N`` (:mod:`ukr_bench.problem`), so a step ``eta`` on E moves Z exactly as
``eta_tut = eta / N`` on E_tut. We use ``eta_tut = 1`` (:data:`ETA_TUTORIAL`), i.e. ``eta = N`` on
E, and :data:`EPOCHS` epochs:

* The first epochs sit on a plateau: Z = 0 is a stationary point of E (all kernels 1, every
  prediction the data mean), and Z grows out of it geometrically from 1e-5, along the data's two
  leading principal directions; in float32 E is even exactly constant there (the kernels round
  to 1), while the gradient, linear in Z, is not 0.
* Then the latent points unfold the saddle within a few epochs, and afterwards keep spreading
  slowly: without leave-one-out E -> 0 as the latents fly apart, so the epoch count is the
  tutorial's (implicit) regulariser. ``ukr-bench demo --tutorial`` prints E per backend and
  draws the epochs at which it changes most.
* E decreases monotonically at this step on every backend and dtype (in float32 it is constant
  on the plateau); tests/test_tutorial.py checks that, and that it still does at 10x the step.

The data differ from the tutorial's only in the random numbers (NumPy's generator with seed 1
instead of ``jax.random.PRNGKey(1)``), so that the data are the same with or without JAX.

Drawing f where it is defined: the Nadaraya-Watson map ``f(z)`` is a softmax-weighted mean of the
data, so more than a few bandwidths away from every latent point it is a hard nearest-neighbour
assignment (flat plateaus joined by steps). :func:`surface_triangles` evaluates f on a regular
latent grid and keeps only the grid triangles whose three corners lie within ``radius`` (default
one bandwidth) of some latent point; :func:`fold_fraction` counts the kept triangles whose
orientation in (x1, x2) is reversed, i.e. where the drawn surface folds over itself.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ukr_bench.data import make_dataset
from ukr_bench.extras import pyplot, require
from ukr_bench.interface import available_backends, get_backend
from ukr_bench.problem import Params
from ukr_bench.validation import DTYPES, check_int, check_positive_float

N_TUTORIAL = 200
SIGMA = 1.0
INIT_SCALE = 1e-5  # "the latent scale must start well below sigma"
ETA_TUTORIAL = 1.0  # step on the tutorial's sum E_tut; eta = N * ETA_TUTORIAL on our mean E
EPOCHS = 300
SEED = 1  # the tutorial seeds with jax.random.PRNGKey(1); we seed NumPy's generator with 1

Predict = Callable[[NDArray[np.floating]], NDArray[np.floating]]


def tutorial_problem(
    n: int = N_TUTORIAL, random_state: int = SEED
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """The tutorial's data and start: ``(X, t, Z0)``.

    X (n x 3, float64): noiseless saddle points; t (n x 2): their true latents z ~ U(-1, 1)^2;
    Z0 (n x 2, float64): the initial latents, ``INIT_SCALE * N(0, 1)`` draws.
    """
    X, t = make_dataset("saddle", n, random_state=random_state)
    Z0 = INIT_SCALE * np.random.default_rng(random_state + 1).normal(size=(n, 2))
    return X, t, Z0


@dataclass
class TutorialRun:
    """One gradient-descent run: every epoch's latents and objective.

    Z : (epochs + 1, N, L) float64 (values of ``dtype``), Z[k] after k steps (Z[0] = Z0).
    E : (epochs + 1,) float64, E[k] = E(Z[k]) (our mean; the tutorial's sum is N * E).
    """

    backend: str
    dtype: str
    eta: float
    Z: NDArray[np.float64]
    E: NDArray[np.float64]
    seconds: float


def train_tutorial(
    X: NDArray[np.floating],
    Z0: NDArray[np.floating],
    *,
    backend: str = "numpy",
    dtype: str = "float32",
    eta: float | None = None,
    epochs: int = EPOCHS,
    sigma: float = SIGMA,
    device: str = "cpu",
) -> TutorialRun:
    """The tutorial's loop ``for e in range(epochs): Z -= eta * grad E(Z)``, on ``backend``.

    ``eta`` is the step on our E (the mean); default ``N * ETA_TUTORIAL``. No leave-one-out, no
    prior, no re-centring or clipping: exactly the tutorial's update, with Z kept on the device
    and every epoch's Z stored (copied to the host after the loop, so the loop never syncs).
    """
    N = X.shape[0]
    eta = N * ETA_TUTORIAL if eta is None else check_positive_float("eta", eta)
    epochs = check_int("epochs", epochs, 0)
    params = Params(sigma=sigma, lam=0.0, loo=False)
    b = get_backend(backend, dtype=dtype, device=device)
    Xd, Zd = b.asarray(X), b.asarray(Z0)
    value_and_grad = b.compile("value_and_grad", Zd, Xd, params)
    value = b.compile("value", Zd, Xd, params)
    b.sync(value_and_grad(Zd, Xd))  # JAX: compiled already; warm every backend up
    zs, es = [], []
    start = time.perf_counter()
    with b.context():
        for _ in range(epochs):
            v, g = value_and_grad(Zd, Xd)
            zs.append(Zd)
            es.append(v)
            Zd = Zd - eta * g
        zs.append(Zd)
        es.append(value(Zd, Xd))
        b.sync(es)
    seconds = time.perf_counter() - start
    Z = np.stack([b.to_numpy(z).astype(np.float64) for z in zs])
    E = np.array([float(b.to_numpy(e)) for e in es])
    return TutorialRun(backend, b.dtype, float(eta), Z, E, seconds)


def nw_map(Z: NDArray[np.floating], X: NDArray[np.floating], sigma: float) -> Predict:
    """f(z) of latents Z (N x L) and data X (N x D) in float64 NumPy, for drawing."""
    b = get_backend("numpy", dtype="float64")
    Zt, Xt = b.asarray(Z), b.asarray(X)
    return lambda Zq: b.to_numpy(b.predict(b.asarray(Zq), Zt, Xt, sigma))


def surface_triangles(
    predict: Predict, Z: NDArray[np.floating], radius: float, n_grid: int = 60
) -> tuple[NDArray[np.floating], NDArray[np.intp]]:
    """f on a latent grid, with the triangles that lie within ``radius`` of the latent points.

    The grid (n_grid x n_grid) spans Z's bounding box widened by ``radius``; each grid cell is
    split into two triangles, kept only when all three corners are within ``radius`` of some
    latent point. Returns ``F`` (n_grid^2 x D), f at the grid nodes, and ``triangles`` (T x 3)
    node indices for :class:`matplotlib.tri.Triangulation`.
    """
    spatial = require("scipy.spatial", "report", "surface_triangles")
    Z = np.asarray(Z, dtype=np.float64)
    lo, hi = Z.min(axis=0) - radius, Z.max(axis=0) + radius
    g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], n_grid), np.linspace(lo[1], hi[1], n_grid))
    G = np.column_stack([g1.ravel(), g2.ravel()])
    near = spatial.cKDTree(Z).query(G, k=1)[0] <= radius
    i, j = np.meshgrid(np.arange(n_grid - 1), np.arange(n_grid - 1))
    a = (j * n_grid + i).ravel()  # node (row j, column i); b right, c up, d up-right
    b, c, d = a + 1, a + n_grid, a + n_grid + 1
    tris = np.concatenate([np.column_stack([a, b, d]), np.column_stack([a, d, c])])
    tris = tris[near[tris].all(axis=1)]
    return predict(G), tris


def folded(F: NDArray[np.floating], triangles: NDArray[np.intp]) -> NDArray[np.bool_]:
    """Which triangles (T,) have an (x1, x2) orientation opposing the majority's: folds.

    The map z -> (f1, f2) of a surface that does not fold keeps every grid triangle's
    orientation (its Jacobian has one sign); a fold reverses it. Only meaningful for a surface
    that is a graph over (x1, x2), as the saddle is.
    """
    p, q, r = (F[triangles[:, k], :2] for k in range(3))
    area = (q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0])
    return area * np.sign(np.sum(area)) < 0


def fold_fraction(F: NDArray[np.floating], triangles: NDArray[np.intp]) -> float:
    """Share of the triangles that are :func:`folded` (0 when there are none)."""
    return float(np.mean(folded(F, triangles))) if len(triangles) else 0.0


def draw_surface(ax: Any, F: NDArray[np.floating], triangles: NDArray[np.intp], **kw: Any) -> Any:
    """Draw the kept triangles of f on a 3-D axis (nothing when none is kept)."""
    from matplotlib.tri import Triangulation

    if len(triangles) == 0:
        return None
    style = {"cmap": "coolwarm", "alpha": 0.55, "linewidth": 0.1, "edgecolor": "0.4"} | kw
    return ax.plot_trisurf(Triangulation(F[:, 0], F[:, 1], triangles), F[:, 2], **style)


# -- the demo ---------------------------------------------------------------------------------


def snapshot_epochs(history: NDArray[np.floating]) -> list[int]:
    """Epochs that show the learning process: the start, E down by 1 %, 50 %, 90 %, 98 %, the end.

    ``history`` (epochs + 1,) is E per epoch; each pick is the first epoch at or below the level.
    """
    picks = [0]
    for frac in (0.99, 0.5, 0.1, 0.02):
        below = np.flatnonzero(history <= frac * history[0])
        if len(below):
            picks.append(int(below[0]))
    picks.append(len(history) - 1)
    return sorted(set(picks))


def run_tutorial(
    out_dir: str | Path = "results/figures",
    *,
    backends: Sequence[str] | None = None,
    epochs: int = EPOCHS,
    eta_tutorial: float = ETA_TUTORIAL,
    gif: bool = True,
) -> dict[str, Any]:
    """Train the tutorial's setting on every backend in float32 and float64, print, draw.

    Writes ``tutorial_saddle.png`` (data + learned surface, and E against epoch per backend and
    dtype), ``tutorial_learning.png`` (latents and surface at :func:`snapshot_epochs`) and,
    if Pillow is installed, ``tutorial_learning.gif``. Returns ``{"runs": {(backend, dtype):
    {"E_final", "seconds", "monotone"}}, "figures": [...]}``.
    """
    # Checked before the training, not after it: matplotlib, and SciPy for surface_triangles.
    pyplot("drawing the tutorial's figures")
    require("scipy.spatial", "report", "drawing the tutorial's figures")
    eta_tutorial = check_positive_float("eta_tutorial", eta_tutorial)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    X, _, Z0 = tutorial_problem()
    N = len(X)
    eta = N * eta_tutorial
    print(
        f"Tutorial setting: N = {N} noiseless saddle points, Z0 ~ {INIT_SCALE:g} * N(0, 1), "
        f"sigma = {SIGMA:g}, no leave-one-out, plain gradient descent, {epochs} epochs; "
        f"step eta = {eta:g} on E (the mean) = eta_tut = {eta_tutorial:g} on the tutorial's sum"
    )
    runs: dict[tuple[str, str], TutorialRun] = {}
    results: dict[str, Any] = {"runs": {}, "figures": []}
    for backend in backends or available_backends():
        for dtype in DTYPES:
            run = train_tutorial(X, Z0, backend=backend, dtype=dtype, eta=eta, epochs=epochs)
            runs[backend, dtype] = run
            increases = int(np.sum(np.diff(run.E) > 0))
            results["runs"][backend, dtype] = {
                "E_final": float(run.E[-1]),
                "seconds": run.seconds,
                "monotone": increases == 0,
            }
            print(
                f"  {backend:6s} {dtype}: E {run.E[0]:.4f} -> {run.E[-1]:.5f} "
                f"(tutorial's sum {N * run.E[-1]:.3f}), {increases} increase(s), "
                f"{run.seconds:.2f} s, latent spread {np.ptp(run.Z[-1], axis=0).round(1)}"
            )
    ref = runs.get(("jax", "float32"), next(iter(runs.values())))
    results["figures"] += [
        str(_tutorial_figure(out / "tutorial_saddle.png", X, ref, runs)),
        str(_learning_strip(out / "tutorial_learning.png", X, ref)),
    ]
    if gif:
        path = _learning_gif(out / "tutorial_learning.gif", X, ref)
        if path is not None:
            results["figures"].append(str(path))
    for path in results["figures"]:
        print(f"wrote {path}")
    return results


def _scatter_data(ax: Any, X: NDArray[np.floating], **kw: Any) -> None:
    style = {"s": 5, "c": "k", "alpha": 0.6} | kw
    ax.scatter(*X.T, depthshade=False, label="data", **style)
    ax.set(xlabel="$x_1$", ylabel="$x_2$", zlabel="$x_3$", xlim=(-1, 1), ylim=(-1, 1), zlim=(-1, 1))
    ticks = [-1, -0.5, 0, 0.5, 1]
    ax.set(xticks=ticks, yticks=ticks, zticks=ticks)
    ax.view_init(elev=25, azim=-60)


def _tutorial_figure(
    path: Path, X: NDArray[np.floating], ref: TutorialRun, runs: dict[tuple[str, str], TutorialRun]
) -> Path:
    plt = pyplot()

    fig = plt.figure(figsize=(13, 5.6))
    grid = fig.add_gridspec(2, 2, height_ratios=[2.2, 1], width_ratios=[1.1, 1])
    ax = fig.add_subplot(grid[:, 0], projection="3d")
    F, tris = surface_triangles(nw_map(ref.Z[-1], X, SIGMA), ref.Z[-1], SIGMA)
    _scatter_data(ax, X)
    draw_surface(ax, F, tris)
    ax.set_title(
        f"The tutorial's saddle: data and learned f(z) ({ref.backend} {ref.dtype}, "
        f"epoch {len(ref.E) - 1})\nf drawn on a latent grid within 1 bandwidth of a latent "
        f"point; folded triangles: {fold_fraction(F, tris):.1%}",
        fontsize=10,
    )
    ax = fig.add_subplot(grid[0, 1])
    styles = {"float32": "-", "float64": "--"}
    widths = {"jax": 4.5, "numpy": 2.5, "torch": 1.2}
    for (backend, dtype), run in runs.items():
        ax.semilogy(
            run.E, ls=styles[dtype], lw=widths.get(backend, 1.5), label=f"{backend} {dtype}"
        )
    N = X.shape[0]
    ax.set(
        ylabel="E(Z) (mean; tutorial's sum = N E)",
        title=f"E against epoch: gradient descent, eta = {ref.eta:g} on E "
        f"(eta_tut = {ref.eta / N:g} on the sum)",
    )
    ax.title.set_fontsize(10)
    ax.legend(fontsize=8, ncol=2, title="backend, dtype (the curves coincide)")
    ax = fig.add_subplot(grid[1, 1], sharex=ax)
    base = runs.get(("numpy", "float64"), ref).E
    for (backend, dtype), run in runs.items():
        diff = np.abs(run.E - base) / base
        ax.semilogy(np.maximum(diff, 1e-17), ls=styles[dtype], lw=widths.get(backend, 1.5) / 2)
    ax.set(xlabel="epoch", ylabel="|E - E(numpy f64)| / E", ylim=(1e-17, 1e-3))
    ax.text(0.01, 0.93, "float32 runs", transform=ax.transAxes, va="top", fontsize=8)
    ax.text(0.01, 0.38, "float64 runs", transform=ax.transAxes, va="top", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _latent_panel(ax: Any, Z: NDArray[np.floating], X: NDArray[np.floating]) -> str:
    """Draw the latents; returns their unit for the title ("" or ", z in 1e-5").

    Latents far below 1 are drawn in a power of ten: matplotlib's own offset label ("1e-5"
    above the axis) lands on the panel's title.
    """
    # Colour by the true angle of the point around the saddle's centre: unfolding is visible as
    # the colours sorting into sectors.
    angle = np.arctan2(X[:, 1], X[:, 0])
    extent = float(np.abs(Z).max()) if Z.size else 0.0
    power = int(np.floor(np.log10(extent))) if 0 < extent < 1e-2 else 0
    ax.scatter(*(Z / 10.0**power).T, c=angle, cmap="hsv", s=6, vmin=-np.pi, vmax=np.pi)
    ax.set_aspect("equal", adjustable="datalim")
    ax.tick_params(labelsize=7)
    return f", z in 1e{power}" if power else ""


def _surface_panel(
    ax: Any, X: NDArray[np.floating], Z: NDArray[np.floating], n_grid: int = 40
) -> None:
    f = nw_map(Z, X, SIGMA)
    F, tris = surface_triangles(f, Z, SIGMA, n_grid=n_grid)
    _scatter_data(ax, X, s=3, alpha=0.35)
    draw_surface(ax, F, tris)
    # f at the latents themselves: one point (the data mean) while Z is far below sigma.
    ax.scatter(*f(Z).T, s=4, c="tab:red", depthshade=False)
    ax.set_box_aspect(None, zoom=1.25)


def _learning_strip(path: Path, X: NDArray[np.floating], run: TutorialRun) -> Path:
    plt = pyplot()

    epochs = snapshot_epochs(run.E)
    fig = plt.figure(figsize=(2.5 * len(epochs), 5.6))
    grid = fig.add_gridspec(2, len(epochs), height_ratios=[1, 1.25], hspace=0.05, wspace=0.25)
    for k, e in enumerate(epochs):
        ax = fig.add_subplot(grid[0, k])
        unit = _latent_panel(ax, run.Z[e], X)
        ax.set_title(f"epoch {e}: E = {run.E[e]:.3g}{unit}", fontsize=8)
        ax = fig.add_subplot(grid[1, k], projection="3d")
        _surface_panel(ax, X, run.Z[e], n_grid=40)
        ax.set(xticklabels=[], yticklabels=[], zticklabels=[], xlabel="", ylabel="", zlabel="")
    title = (
        f"Learning process ({run.backend} {run.dtype}, eta = {run.eta:g}): latent points (top, "
        "coloured by the data's angle around the saddle); data (grey), reconstructions "
        "f(z_n) (red) and f within 1 bandwidth of the latents (bottom)"
    )
    # wrapped to the figure's width (about 14 characters of 10 pt per inch), so that no
    # setting of --epochs cuts it off
    fig.suptitle(textwrap.fill(title, width=int(14 * fig.get_figwidth())), fontsize=10)
    fig.subplots_adjust(left=0.03, right=0.99, top=0.84, bottom=0.0)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _learning_gif(path: Path, X: NDArray[np.floating], run: TutorialRun) -> Path | None:
    plt = pyplot()
    from matplotlib.animation import FuncAnimation, PillowWriter

    try:
        import PIL  # noqa: F401  (PillowWriter needs it)
    except ImportError:
        print("Pillow is not installed: skipping the animated GIF")
        return None
    # Dense where the latents move fast (the unfolding), sparse on the plateau and the tail.
    E = run.E
    progress = np.log(E[0] / E)
    targets = np.linspace(0, progress[-1], 40)
    picks = {int(np.searchsorted(progress, t)) for t in targets} | {len(E) - 1}
    frames = sorted(picks | {e for e in range(0, len(E), 5) if progress[e] < 0.01})
    fig = plt.figure(figsize=(8, 3.8))
    ax_z = fig.add_subplot(1, 2, 1)
    ax_x = fig.add_subplot(1, 2, 2, projection="3d")

    def draw(e: int) -> None:
        ax_z.clear()
        ax_x.clear()
        unit = _latent_panel(ax_z, run.Z[e], X)
        ax_z.set_title(f"latent points, epoch {e}{unit}", fontsize=9)
        _surface_panel(ax_x, X, run.Z[e], n_grid=35)
        ax_x.set_box_aspect(None, zoom=0.95)  # room for the axis labels in the small frame
        ax_x.set_title(f"f(z), E = {E[e]:.3g}", fontsize=9)

    anim = FuncAnimation(fig, draw, frames=frames)
    anim.save(path, writer=PillowWriter(fps=6), dpi=85)
    plt.close(fig)
    return path
