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
ResNet), and a small 3D ResNet (resnet10 at a quarter width on 32^3). The methods and the
table are those of ``dinoatten cv`` (``sklearn_dinoatten.study``). Synthetic data checks
the machinery, not which method is best on real scans.
"""

import argparse
import csv
import os
import time
import warnings

import numpy as np

from sklearn_dinoatten import DinoSliceEmbedder, VolumeResampler
from sklearn_dinoatten.datasets import load_adrenalmnist3d, load_nifti_folder, make_volumes
from sklearn_dinoatten.study import (
    METHODS,
    cross_validate_method,
    make_method,
    make_splits,
    metrics_table,
    to_markdown,
    uses_volumes,
)

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def load_data(args):
    if args.data == "synthetic":
        # Harder than the default: a weak, thin signal in 2 of 24 slices under more noise.
        return make_volumes(n_samples=args.n_samples, shape=(48, 48, 24), n_signal_slices=2,
                            noise=0.3, random_state=0)
    if args.data == "adrenal":
        X, y = load_adrenalmnist3d(os.path.join(SHARED_DATA, "adrenalmnist3d"))
        keep = np.sort(np.random.default_rng(0).permutation(len(y))[: args.n_samples])
        return list(X[keep].astype(np.float32)), y[keep]
    if args.data.endswith(".csv"):
        paths, y, _ = load_nifti_folder(os.path.dirname(os.path.abspath(args.data)), args.data)
        return paths, y
    raise SystemExit(
        f"--data must be 'synthetic', 'adrenal' or a labels .csv; got {args.data!r}."
    )


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
    resnet_epochs = max(1, args.epochs // 3)  # on a CPU its epoch costs ~100x a head's
    print(f"data: {args.data}, {len(y)} volumes, class counts {np.bincount(y).tolist()}; "
          f"{args.folds}-fold stratified CV; {args.epochs} epochs; {args.image_size} px; "
          f"weights={args.weights}; 3D ResNet: resnet10 at 1/4 width on 32^3, "
          f"{resnet_epochs} epochs")
    start = time.perf_counter()
    weights = None if args.weights == "pretrained" else args.weights
    inputs = {False: DinoSliceEmbedder(weights=weights, image_size=args.image_size)
              .fit_transform(X)}
    embed_seconds = time.perf_counter() - start
    inputs[True] = VolumeResampler(shape=(32, 32, 32)).fit_transform(X)
    print(f"embedded {inputs[False].shape[0] * inputs[False].shape[1]} slices "
          f"once, in {embed_seconds:.0f} s; every embedding-based method reuses them")

    splits = make_splits(y, args.folds, random_state=0)
    results = {}
    for key in METHODS:
        estimator = make_method(key, max_epochs=resnet_epochs if uses_volumes(key)
                                else args.epochs, resnet_depth=10, resnet_width=0.25)
        results[key] = cross_validate_method(estimator, inputs[uses_volumes(key)], y, splits)
        print(f"  {METHODS[key]}: {np.mean(results[key].fit_seconds):.1f} s/fold")
    rows = metrics_table(y, results)
    table = to_markdown(rows)
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
