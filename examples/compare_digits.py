"""UKR against PCA, Isomap and t-SNE on scikit-learn's digits, as a Markdown table.

Run::

    python examples/compare_digits.py                       # all 1797 digits
    python examples/compare_digits.py --n 400 --max-iter 50  # a quick look

Every method embeds the same training digits (three quarters of them, stratified by class)
in 2-D. The columns:

- **trustworthiness**: ``sklearn.manifold.trustworthiness`` of the training embedding, 10
  neighbours (1: every point's embedding neighbours are its neighbours in the data);
- **held-out reconstruction error**: for the quarter left out, the mean over digits of
  ``||x - x_hat||^2`` summed over the 64 pixels (in [0, 1]), with ``x_hat`` the method's
  reconstruction from its 2-D code: UKR's ``-score`` (``inverse_transform(transform(x))``),
  PCA's ``inverse_transform(transform(x))``. Isomap and t-SNE have no map back to the data: "–";
- **fit time**: the seconds of ``fit``/``fit_transform`` on this machine, this run.

Prints the table and writes it to ``OUT/compare_digits.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, Isomap, trustworthiness
from sklearn.model_selection import train_test_split

import ukr_bench

NEIGHBOURS = 10


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1797, help="digits to use (at most 1797)")
    parser.add_argument(
        "--max-iter", type=int, default=None, help="UKR's iterations (default: the estimator's)"
    )
    parser.add_argument("--backend", default="numpy", help="UKR's backend: numpy, jax or torch")
    parser.add_argument("--seed", type=int, default=0, help="the digits drawn and the split")
    parser.add_argument("--out", type=Path, default=Path("example_output"), help="output folder")
    args = parser.parse_args(argv)

    X, y = ukr_bench.make_dataset("digits", args.n, random_state=args.seed)
    X_train, X_test = train_test_split(X, test_size=0.25, stratify=y, random_state=args.seed)
    params = {"max_iter": args.max_iter} if args.max_iter is not None else {}
    methods = {
        "UKR": ukr_bench.UKR(n_components=2, backend=args.backend, **params),
        "PCA": PCA(n_components=2),
        "Isomap": Isomap(n_components=2, n_neighbors=NEIGHBOURS),
        "t-SNE": TSNE(n_components=2, init="pca", random_state=args.seed),
    }
    rows = []
    for name, method in methods.items():
        start = time.perf_counter()
        Z = method.fit_transform(X_train)
        seconds = time.perf_counter() - start
        trust = trustworthiness(X_train, Z, n_neighbors=NEIGHBOURS)
        if hasattr(method, "inverse_transform"):
            X_hat = method.inverse_transform(method.transform(X_test))
            error = f"{np.mean(np.sum((X_test - X_hat) ** 2, axis=1)):.3f}"
        else:
            error = "–"
        rows.append([name, f"{trust:.3f}", error, f"{seconds:.2f}"])
        print(f"{name}: done in {seconds:.2f} s")

    header = ["method", "trustworthiness (10 NN)", "held-out reconstruction error", "fit time (s)"]
    table = markdown_table(header, rows)
    note = (
        f"{len(X)} digits: {len(X_train)} to fit, {len(X_test)} held out; UKR with "
        + (f"max_iter={args.max_iter}" if params else "its default parameters")
        + f" on {args.backend}."
    )
    text = f"{table}\n\n{note}\n"
    print()
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare_digits.md").write_text(text, encoding="utf-8")
    return text


if __name__ == "__main__":
    main()
