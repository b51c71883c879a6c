"""Which loss trains the attention-pooling regressor best: the point losses, and the
point loss with a Rank-N-Contrast term on the embeddings.

Bags of slice embeddings carry a planted target in one slice, under noise (as a frozen
backbone's features carry an age in a few slices); each setting is cross-validated (5
folds) on the same data sets, and the script prints each one's out-of-fold MAE, its
mean over the data sets, and its ratio to plain MSE's, measured in this one run.

    python benchmarks/regression_losses.py                   # 2 data sets of 120 bags
    python benchmarks/regression_losses.py --seeds 5 --n-bags 300 --epochs 60

The RnC term is offered off by default (``rank_weight=0``) unless it wins here.
"""

import argparse
import time

import numpy as np
from sklearn.model_selection import KFold, cross_val_predict

from sklearn_dinoatten.regressors import AttentionPoolRegressor

SETTINGS = {
    "MSE": dict(loss="mse"),
    "Huber": dict(loss="huber"),
    "MSE + 1 RnC (t=2)": dict(loss="mse", rank_weight=1.0, temperature=2.0),
    "MSE + 0.1 RnC (t=0.1)": dict(loss="mse", rank_weight=0.1, temperature=0.1),
    "MSE + 1 RnC (t=0.1)": dict(loss="mse", rank_weight=1.0, temperature=0.1),
}


def planted_bags(seed, n=120, n_slices=8, dim=32, noise=1.0):
    """Bags whose slice 3 carries the target along a random direction, under noise, and
    a nonlinear part (the target's square) along another."""
    rng = np.random.default_rng(seed)
    target = rng.uniform(20, 90, size=n)
    X = rng.normal(0, noise, size=(n, n_slices, dim)).astype(np.float32)
    scaled = (target - 55) / 20
    directions = rng.normal(size=(2, dim)) / np.sqrt(dim)
    X[:, 3] += (scaled[:, None] * directions[0] + (scaled**2)[:, None] * directions[1]) * 4
    return X, target


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="data sets")
    parser.add_argument("--n-bags", type=int, default=120)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    start = time.perf_counter()
    maes = {name: [] for name in SETTINGS}
    floors = []
    for seed in range(args.seeds):
        X, y = planted_bags(seed, n=args.n_bags)
        floors.append(np.abs(y - y.mean()).mean())
        cv = KFold(5, shuffle=True, random_state=seed)
        for name, params in SETTINGS.items():
            model = AttentionPoolRegressor(max_epochs=args.epochs, random_state=seed, **params)
            maes[name].append(np.abs(cross_val_predict(model, X, y, cv=cv) - y).mean())
            print(f"data set {seed + 1}/{args.seeds}, {name}: MAE {maes[name][-1]:.2f}",
                  flush=True)
    reference = np.mean(maes["MSE"])
    print(f"\n{args.seeds} data sets of {args.n_bags} bags, 5-fold CV, {args.epochs} epochs; "
          f"the data sets' own mean errs by {np.mean(floors):.2f}")
    print("| loss | MAE per data set | mean MAE | ratio to MSE |\n|---|---|---|---|")
    for name, values in maes.items():
        print(f"| {name} | {', '.join(f'{v:.2f}' for v in values)} | {np.mean(values):.2f} "
              f"| {np.mean(values) / reference:.3f} |")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
