"""Project unseen digits into a fitted UKR model, and generate digits from its latent space.

Run::

    python examples/out_of_sample.py                 # all 1797 digits, a 15 x 15 grid
    python examples/out_of_sample.py --n 600 --grid 10

UKR learns latent points for its training data and, with them, a map f from the latent space
back to the data (the Nadaraya-Watson regression of the training digits on their latents):

- ``transform(X_new)`` finds latent points for digits the fit never saw (the nearest training
  digit's latent point, refined to minimise ``||x - f(z)||^2``); a nearest-neighbour vote
  among the training latents then says how often a held-out digit lands among its own class;
- ``inverse_transform(Z)`` is f itself: a regular grid of latent points, mapped to 8 x 8
  images, shows what the model has learned at each place of its latent space.

Writes ``OUT/out_of_sample.png`` (training latents, and the held-out digits projected onto
them) and ``OUT/generated_digits.png`` (the grid of generated images).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

import ukr_bench
from ukr_bench.extras import pyplot


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1797, help="digits to use (at most 1797)")
    parser.add_argument(
        "--max-iter", type=int, default=None, help="iterations (default: the estimator's)"
    )
    parser.add_argument("--grid", type=int, default=15, help="latent grid points per side (15)")
    parser.add_argument("--backend", default="numpy", help="numpy, jax or torch (numpy)")
    parser.add_argument("--seed", type=int, default=0, help="the digits drawn and the split")
    parser.add_argument("--out", type=Path, default=Path("example_output"), help="output folder")
    args = parser.parse_args(argv)

    X, y = ukr_bench.make_dataset("digits", args.n, random_state=args.seed)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=args.seed
    )
    params = {"max_iter": args.max_iter} if args.max_iter is not None else {}
    model = ukr_bench.UKR(n_components=2, backend=args.backend, **params).fit(X_train)
    Z_train = model.embedding_
    Z_test = model.transform(X_test)  # out-of-sample projection
    vote = KNeighborsClassifier(n_neighbors=5).fit(Z_train, y_train)
    print(
        f"{len(X_test)} held-out digits: reconstruction error {-model.score(X_test):.3f} "
        f"(training: {-model.score(X_train):.3f}); the 5 nearest training latents share the "
        f"class of {vote.score(Z_test, y_test):.1%} of them"
    )

    plt = pyplot()
    args.out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 6))
    style = {"cmap": "tab10", "vmin": -0.5, "vmax": 9.5}
    ax.scatter(Z_train[:, 0], Z_train[:, 1], c=y_train, s=6, alpha=0.3, **style)
    points = ax.scatter(
        Z_test[:, 0], Z_test[:, 1], c=y_test, s=40, marker="X", edgecolors="k", lw=0.5, **style
    )
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set(
        xlabel="$z_1$",
        ylabel="$z_2$",
        title="transform: held-out digits (X) on the training latents",
        aspect="equal",
    )
    fig.tight_layout()
    projected = args.out / "out_of_sample.png"
    fig.savefig(projected, dpi=120)
    plt.close(fig)

    # A grid over the training latents' range; beyond it f is flat (the nearest digits' mean).
    lo, hi = Z_train.min(axis=0), Z_train.max(axis=0)
    g1, g2 = np.linspace(lo[0], hi[0], args.grid), np.linspace(hi[1], lo[1], args.grid)
    grid = np.array([[a, b] for b in g2 for a in g1])  # row by row, z2 from top to bottom
    images = model.inverse_transform(grid).reshape(args.grid, args.grid, 8, 8)
    images = np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)))  # a blank pixel round each
    mosaic = np.block([[images[i, j] for j in range(args.grid)] for i in range(args.grid)])
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1, extent=(lo[0], hi[0], lo[1], hi[1]))
    ax.set(
        xlabel="$z_1$",
        ylabel="$z_2$",
        title=f"inverse_transform of a {args.grid} x {args.grid} latent grid",
        aspect="auto",
    )
    fig.tight_layout()
    generated = args.out / "generated_digits.png"
    fig.savefig(generated, dpi=120)
    plt.close(fig)
    print(f"wrote {projected} and {generated}")
    return [projected, generated]


if __name__ == "__main__":
    main()
