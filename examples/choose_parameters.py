"""Choose UKR's ``lam`` and ``sigma`` by held-out score with scikit-learn's ``GridSearchCV``.

Run::

    python examples/choose_parameters.py                   # 600 digits, 3 folds
    python examples/choose_parameters.py --n 300 --max-iter 50

Two criteria, for every point of the grid:

- **held-out score**: ``UKR.score`` on the fold left out, minus the mean squared
  reconstruction error of digits the fit never saw (higher is better). This is what the search
  selects by;
- **leave-one-out error**: the fit's own leave-one-out reconstruction error on its training
  fold, ``history_[-1] - lam * mean ||z||^2`` (E without its prior term). The fit minimises
  it (plus the prior), so it is optimistic and tends to favour the smallest ``lam``; it is
  printed for comparison.

Both parameters change the fit. ``sigma`` is the kernel bandwidth in the latent units of the
start (the PCA scores, scaled to max |z| = 1): it sets how smooth the map is where the
optimiser starts, and with ``lam > 0`` the latent scale against the prior. ``"auto"`` (the
default) picks the bandwidth with the lowest leave-one-out error at the start; its value for
the refitted best model is printed. The script says, for each ``lam``, whether the scores
differ with ``sigma``.

Writes the grid's scores to ``OUT/choose_parameters.csv``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GridSearchCV

import ukr_bench

GRID: dict[str, list[object]] = {"lam": [0.0, 0.001, 0.01, 0.1], "sigma": ["auto", 0.3, 1.0]}


def held_out_score(model: ukr_bench.UKR, X: np.ndarray, y: None = None) -> float:
    """Minus the mean squared reconstruction error of the held-out fold ``X``."""
    return model.score(X)


def leave_one_out_score(model: ukr_bench.UKR, X: np.ndarray, y: None = None) -> float:
    """Minus the fit's own leave-one-out error on its training fold (``X`` is not used)."""
    prior = model.lam * np.mean(np.sum(model.embedding_**2, axis=1))
    return -(model.history_[-1] - prior)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="digits to use (at most 1797)")
    parser.add_argument("--max-iter", type=int, default=100, help="iterations per fit (100)")
    parser.add_argument("--cv", type=int, default=3, help="cross-validation folds (3)")
    parser.add_argument("--backend", default="numpy", help="numpy, jax or torch (numpy)")
    parser.add_argument("--seed", type=int, default=0, help="the digits drawn")
    parser.add_argument("--out", type=Path, default=Path("example_output"), help="output folder")
    args = parser.parse_args(argv)

    X, _ = ukr_bench.make_dataset("digits", args.n, random_state=args.seed)
    search = GridSearchCV(
        ukr_bench.UKR(n_components=2, max_iter=args.max_iter, backend=args.backend),
        GRID,
        scoring={"held_out": held_out_score, "loo": leave_one_out_score},
        refit="held_out",
        cv=args.cv,
    ).fit(X)

    res = search.cv_results_
    table = pd.DataFrame(
        {
            "lam": res["param_lam"].astype(float),
            "sigma": [str(v) for v in res["param_sigma"]],
            "held-out score": res["mean_test_held_out"],
            "(std)": res["std_test_held_out"],
            "rank": res["rank_test_held_out"],
            "leave-one-out error": -res["mean_test_loo"],
        }
    )
    with pd.option_context("display.width", 120, "display.float_format", "{:.4f}".format):
        print(f"{len(X)} digits, {args.cv}-fold cross-validation, max_iter={args.max_iter}:")
        print(table.to_string(index=False))
    best = search.best_estimator_
    print(
        f"best: {search.best_params_} (held-out score {search.best_score_:.4f}; "
        f"refitted on all {len(X)} digits, its bandwidth sigma_ = {best.sigma_:g})"
    )
    tied = table[table["rank"] == 1]
    if len(tied) > 1:  # GridSearchCV takes the first of them
        points = "; ".join(f"lam={r.lam:g}, sigma={r.sigma}" for r in tied.itertuples())
        print(f"{len(tied)} grid points tie for the best score ({points}): any of them will do")

    for lam, group in table.groupby("lam"):
        scores = group["held-out score"].to_numpy()
        same = np.allclose(scores, scores[0], rtol=1e-6, atol=0)
        verdict = "the same score for every sigma" if same else "scores that differ with sigma"
        print(f"lam = {lam:g}: {verdict} ({', '.join(f'{s:.4f}' for s in scores)})")

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "choose_parameters.csv"
    table.to_csv(path, index=False)
    print(f"wrote {path}")
    return table


if __name__ == "__main__":
    main()
