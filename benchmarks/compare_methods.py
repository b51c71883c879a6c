"""Compare DinoAtten3D with its baselines in one stratified cross-validation.

Every embedding-based method reuses one embedding pass; the 3D ResNet trains on the
resampled volumes. Out-of-fold scores give accuracy, balanced accuracy, AUC with a 95 %
bootstrap CI, F1, false-negative rate, fit time per fold, and DeLong's p-value of each
method's AUC against DinoAtten3D's. The table is printed and written as CSV and Markdown.

    python benchmarks/compare_methods.py                      # synthetic volumes
    python benchmarks/compare_methods.py --data adrenal       # AdrenalMNIST3D (../shared/data)
    python benchmarks/compare_methods.py --data scans/labels.csv  # columns path,label
    python benchmarks/compare_methods.py --weights dinov2_vits14_pretrain.pth

Defaults are sized for a 2-core CPU in minutes: a 56 px input, 30 epochs (10 for the 3D
ResNet), and a small 3D ResNet (resnet10 at a quarter width on 32^3). Synthetic data
checks the machinery, not which method is best on real scans.
"""

import argparse
import csv
import os
import time
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from sklearn_dinoatten import (
    AttentionPoolClassifier,
    DinoSliceEmbedder,
    ResNet3DClassifier,
    SCMILClassifier,
    SliceTransformerClassifier,
    VolumeResampler,
)
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.metrics import bootstrap_ci, delong_test, false_negative_rate

ADRENAL = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                       "adrenalmnist3d", "adrenalmnist3d.npz")
REFERENCE = "DinoAtten3D"


def load_data(args):
    if args.data == "synthetic":
        # Harder than the default: a weak, thin signal in 2 of 24 slices under more noise.
        return make_volumes(n_samples=args.n_samples, shape=(48, 48, 24), n_signal_slices=2,
                            noise=0.3, random_state=0)
    if args.data == "adrenal":
        if not os.path.exists(ADRENAL):
            raise SystemExit(f"AdrenalMNIST3D not found at {ADRENAL}; see ../shared/README.md.")
        with np.load(ADRENAL) as data:
            X = np.concatenate([data[f"{s}_images"] for s in ("train", "val", "test")])
            y = np.concatenate([data[f"{s}_labels"] for s in ("train", "val", "test")]).ravel()
        keep = np.sort(np.random.default_rng(0).permutation(len(y))[: args.n_samples])
        return list(X[keep].astype(np.float32)), y[keep]
    if args.data.endswith(".csv"):
        # A labels CSV with columns 'path' (relative to the CSV's folder) and 'label' (0/1).
        with open(args.data, newline="") as f:
            rows = list(csv.DictReader(f))
        folder = os.path.dirname(os.path.abspath(args.data))
        return ([os.path.join(folder, r["path"]) for r in rows],
                np.array([int(r["label"]) for r in rows]))
    raise SystemExit(
        f"--data must be 'synthetic', 'adrenal' or a labels .csv; got {args.data!r}."
    )


def methods(epochs):
    common = dict(max_epochs=epochs, random_state=0)
    return {
        REFERENCE: ("embeddings", AttentionPoolClassifier(**common)),
        "Attention, CE only": ("embeddings", AttentionPoolClassifier(
            supcon_weight=0.0, variance_weight=0.0, **common)),
        "Mean pooling": ("embeddings", AttentionPoolClassifier(pooling="mean", **common)),
        "Gated attention": ("embeddings", AttentionPoolClassifier(pooling="gated", **common)),
        "MST aggregator": ("embeddings", SliceTransformerClassifier(**common)),
        "SC-MIL": ("embeddings", SCMILClassifier(**common)),
        # A third of the epochs: on a CPU it costs ~100x a head's epoch.
        "3D ResNet-10 (1/4 width)": ("volumes", ResNet3DClassifier(
            depth=10, widen_factor=0.25, batch_size=8, max_epochs=max(1, epochs // 3),
            random_state=0)),
    }


def out_of_fold(estimator, X, y, cv):
    scores, fit_seconds = np.zeros(len(y)), []
    for train, test in cv.split(np.zeros(len(y)), y):
        model = clone(estimator)
        start = time.perf_counter()
        model.fit(X[train], y[train])
        fit_seconds.append(time.perf_counter() - start)
        scores[test] = model.predict_proba(X[test])[:, 1]
    return scores, float(np.mean(fit_seconds))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic",
                        help="'synthetic', 'adrenal', or a CSV with columns path,label "
                             "(NIfTI paths relative to the CSV's folder)")
    parser.add_argument("--n-samples", type=int, default=80)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=56)
    parser.add_argument("--weights", default="random",
                        help="'random' (no network), a checkpoint path, or 'pretrained'")
    parser.add_argument("--out", default="results/compare_methods")
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)

    X, y = load_data(args)
    y = np.asarray(y)
    print(f"data: {args.data}, {len(y)} volumes, class counts {np.bincount(y).tolist()}; "
          f"{args.folds}-fold stratified CV; {args.epochs} epochs; {args.image_size} px; "
          f"weights={args.weights}; 3D ResNet: resnet10 at 1/4 width on 32^3, "
          f"{max(1, args.epochs // 3)} epochs")
    start = time.perf_counter()
    weights = None if args.weights == "pretrained" else args.weights
    inputs = {"embeddings": DinoSliceEmbedder(weights=weights, image_size=args.image_size)
              .fit_transform(X)}
    embed_seconds = time.perf_counter() - start
    inputs["volumes"] = VolumeResampler(shape=(32, 32, 32)).fit_transform(X)
    print(f"embedded {inputs['embeddings'].shape[0] * inputs['embeddings'].shape[1]} slices "
          f"once, in {embed_seconds:.0f} s; every embedding-based method reuses them")

    cv = StratifiedKFold(args.folds, shuffle=True, random_state=0)
    rows, scores = [], {}
    for name, (kind, estimator) in methods(args.epochs).items():
        scores[name], fit_seconds = out_of_fold(estimator, inputs[kind], y, cv)
        predicted = (scores[name] >= 0.5).astype(int)
        auc, low, high = bootstrap_ci(roc_auc_score, y, scores[name], random_state=0)
        p_value = 1.0 if name == REFERENCE else delong_test(y, scores[name],
                                                            scores[REFERENCE])[3]
        rows.append({
            "method": name,
            "accuracy": accuracy_score(y, predicted),
            "balanced_accuracy": balanced_accuracy_score(y, predicted),
            "auc": auc, "auc_ci_low": low, "auc_ci_high": high,
            "f1": f1_score(y, predicted),
            "fnr": false_negative_rate(y, predicted),
            "fit_seconds_per_fold": fit_seconds,
            "delong_p_vs_dinoatten3d": p_value,
        })
        print(f"  {name}: AUC {auc:.3f} [{low:.3f}, {high:.3f}], fit {fit_seconds:.1f} s/fold")

    header = ["method", "acc", "bal. acc", "AUC [95% CI]", "F1", "FNR", "fit s/fold",
              f"DeLong p vs {REFERENCE}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['accuracy']:.3f} | {r['balanced_accuracy']:.3f} | "
            f"{r['auc']:.3f} [{r['auc_ci_low']:.3f}, {r['auc_ci_high']:.3f}] | {r['f1']:.3f} | "
            f"{r['fnr']:.3f} | {r['fit_seconds_per_fold']:.1f} | "
            f"{'-' if r['method'] == REFERENCE else format(r['delong_p_vs_dinoatten3d'], '.3g')} |"
        )
    table = "\n".join(lines)
    print("\n" + table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(args.out, "table.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwritten: {args.out}/table.md, {args.out}/table.csv; "
          f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
