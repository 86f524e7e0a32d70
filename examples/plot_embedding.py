"""Plot a 2-D UKR embedding of scikit-learn's handwritten digits, coloured by the digit.

Run::

    python examples/plot_embedding.py                  # all 1797 digits
    python examples/plot_embedding.py --n 500 --out figures

Each digit image (8 x 8 pixels, 64 dimensions) gets a latent point; the colour is its class,
which the fit never sees. Digits of one class should gather in one region. Writes
``OUT/digits_embedding.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import ukr_bench
from ukr_bench.extras import pyplot


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1797, help="digits to fit (at most 1797)")
    parser.add_argument(
        "--max-iter", type=int, default=None, help="iterations (default: the estimator's)"
    )
    parser.add_argument("--backend", default="numpy", help="numpy, jax or torch (numpy)")
    parser.add_argument("--seed", type=int, default=0, help="which digits, when --n < 1797")
    parser.add_argument("--out", type=Path, default=Path("example_output"), help="output folder")
    args = parser.parse_args(argv)

    X, y = ukr_bench.make_dataset("digits", args.n, random_state=args.seed)  # pixels in [0, 1]
    params = {"max_iter": args.max_iter} if args.max_iter is not None else {}
    model = ukr_bench.UKR(n_components=2, backend=args.backend, **params)
    Z = model.fit_transform(X)

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    points = ax.scatter(Z[:, 0], Z[:, 1], c=y, cmap="tab10", vmin=-0.5, vmax=9.5, s=8)
    for digit in np.unique(y):  # the class at the median of its points
        zx, zy = np.median(Z[y == digit], axis=0)
        ax.annotate(f"{digit:.0f}", (zx, zy), fontsize=14, weight="bold", ha="center")
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set(
        xlabel="$z_1$",
        ylabel="$z_2$",
        title=f"UKR embedding of {len(X)} digits ({model.n_iter_} iterations)",
        aspect="equal",
    )
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "digits_embedding.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
