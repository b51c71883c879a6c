"""Compare DinoAtten3D with its baselines in one stratified cross-validation.

Every embedding-based method reuses one embedding pass; the 3D ResNet trains on the
resampled volumes. Out-of-fold scores give accuracy, balanced accuracy, AUC with a 95 %
bootstrap CI, F1, false-negative rate, fit time per fold, and DeLong's p-value of each
method's AUC against DinoAtten3D's. The table is printed; everything is written as a run
directory, as ``dinoatten cv`` writes it (``dinoatten report`` draws it).

    python benchmarks/compare_methods.py                      # synthetic volumes
    python benchmarks/compare_methods.py --data scans/labels.csv  # columns path,label(,subject)
    python benchmarks/compare_methods.py --weights dinov2_vits14_pretrain.pth

A CSV's ``subject`` column groups the folds and clusters the statistics by subject.
AdrenalMNIST3D is not cross-validated here: it has two glands per patient and no patient
ids, so its official patient-level split is the protocol (``benchmarks/medmnist3d.py``).

Defaults are sized for a 2-core CPU in minutes: a 56 px input, 30 epochs (10 for the 3D
ResNet), and a small 3D ResNet (resnet10 at a quarter width on 32^3). The methods and the
table are those of ``dinoatten cv`` (``sklearn_dinoatten.evaluation``). Synthetic data checks
the machinery, not which method is best on real scans.
"""

import argparse
import os
import time
import warnings

import numpy as np

from sklearn_dinoatten import DinoSliceEmbedder, VolumeResampler
from sklearn_dinoatten.datasets import load_nifti_folder, make_volumes
from sklearn_dinoatten.evaluation import (
    METHODS,
    cross_validation,
    make_method,
    run_study,
    write_run,
)


def load_data(args):
    """``(X, y, groups)``."""
    if args.data == "synthetic":
        # Harder than the default: a weak, thin signal in 2 of 24 slices under more noise.
        X, y = make_volumes(n_samples=args.n_samples, shape=(48, 48, 24), n_signal_slices=2,
                            noise=0.3, random_state=0)
        return X, y, None
    if args.data.endswith(".csv"):
        root = os.path.dirname(os.path.abspath(args.data))
        paths, y, groups, _ = load_nifti_folder(root, labels_csv=args.data, split_column=None)
        return paths, y, groups
    raise SystemExit(f"--data must be 'synthetic' or a labels .csv; got {args.data!r}.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic",
                        help="'synthetic', or a CSV with columns path,label and optionally "
                             "subject (NIfTI paths relative to the CSV's folder)")
    parser.add_argument("--pos-label", help="the positive class, unless labels are 0/1")
    parser.add_argument("--n-samples", type=int, default=80)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=56)
    parser.add_argument("--weights", default="random",
                        help="'random' (no network), a checkpoint path, or 'pretrained'")
    parser.add_argument("--out", default="results/compare_methods",
                        help="the run directory written (`dinoatten report` reads it)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)

    start = time.perf_counter()
    X, y, groups = load_data(args)
    resnet_epochs = max(1, args.epochs // 3)  # on a CPU its epoch costs ~100x a head's
    print(f"data: {args.data}; {args.epochs} epochs; {args.image_size} px; "
          f"weights={args.weights}; 3D ResNet: resnet10 at 1/4 width on 32^3, "
          f"{resnet_epochs} epochs")
    methods = {key: make_method(key, max_epochs=resnet_epochs if METHODS[key].takes_volumes
                                else args.epochs, resnet_depth=10, resnet_width=0.25)
               for key in METHODS}
    embedder = DinoSliceEmbedder(weights=None if args.weights == "pretrained" else args.weights,
                                 image_size=args.image_size)
    run = run_study(X, y, methods, cross_validation(np.asarray(y), n_folds=args.folds,
                                                    groups=groups),
                    embedder=embedder, resampler=VolumeResampler(shape=(32, 32, 32)),
                    pos_label=args.pos_label)
    write_run(args.out, run)
    with open(os.path.join(args.out, "metrics.md")) as f:
        print("\n" + f.read())
    print(f"written: {args.out} (a run directory: `dinoatten report {args.out}`); "
          f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
