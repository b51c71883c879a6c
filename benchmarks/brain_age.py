"""Brain age: every regressor against the training mean and a ridge on downsampled voxels.

One cross-validation, stratified by age and grouped by subject, of the phantom heads of
``make_brain_ages`` (two scans two years apart per subject, at varied voxel sizes and
orientations; the ventricles widen and the cortex thins with age), or of your scans.
Every method on slice embeddings reuses one embedding pass; the 3D ResNet and the ridge
train on volumes resampled to one shape. The table gives MAE, RMSE, R², Pearson r and
the rest with subject-clustered 95 % bootstrap CIs, the difference in MAE from
DinoAtten3D's (its CI on the same resamples) and a Wilcoxon test of the subjects' mean
absolute errors; then each method's MAE as a share of the training mean's, from the same
run. Everything is written as a run directory (``dinoatten report`` draws it).

    python benchmarks/brain_age.py                                # phantom heads
    python benchmarks/brain_age.py --data scans/labels.csv        # columns path,age(,subject)
    python benchmarks/brain_age.py --weights dinov2_vits14_pretrain.pth

Defaults are sized for a 2-core CPU in minutes: a 56 px input, a slice every 6 mm, 30
epochs (10 for the 3D ResNet, resnet10 at a quarter width on 32^3). With random backbone
weights (the default: no network) the slice methods' figures show the machinery, not
what DINOv2's features give.
"""

import argparse
import os
import platform
import time
import warnings

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sklearn_dinoatten import DinoSliceEmbedder, VolumeResampler
from sklearn_dinoatten.datasets import load_nifti_folder, make_brain_ages
from sklearn_dinoatten.evaluation import (
    METHODS,
    cross_validation,
    make_method,
    methods_for,
    run_study,
    write_run,
)

RIDGE_SIDE = 16  # the ridge's voxels: volumes downsampled to this cube


def load_data(args):
    """``(scans, ages, subjects)``: the phantoms as NIfTI images, or a labels CSV's."""
    if args.data == "synthetic":
        import nibabel as nib

        X, ages, subjects, affines = make_brain_ages(n_subjects=args.n_subjects,
                                                     scans_per_subject=2, random_state=0)
        return ([nib.Nifti1Image(x, affine) for x, affine in zip(X, affines, strict=True)],
                ages, subjects)
    if args.data.endswith(".csv"):
        paths, ages, subjects, _ = load_nifti_folder(
            os.path.dirname(os.path.abspath(args.data)), labels_csv=args.data,
            label_column=args.label_column, split_column=None, task="regression")
        return paths, ages, subjects
    raise SystemExit(f"--data must be 'synthetic' or a labels .csv; got {args.data!r}.")


def flatten(volumes):
    """Volumes ``(n, x, y, z)`` as rows of voxels."""
    return volumes.reshape(len(volumes), -1)


def ridge_on_voxels():
    """The ridge baseline: the resampled volume averaged down to ``RIDGE_SIDE`` a side,
    each voxel standardised, a ridge with its penalty chosen by generalised CV."""
    return make_pipeline(
        FunctionTransformer(_downsampled), FunctionTransformer(flatten), StandardScaler(),
        RidgeCV(alphas=np.logspace(-1, 5, 13)))


def _downsampled(volumes):
    factor = volumes.shape[1] // RIDGE_SIDE
    n, x, y, z = volumes.shape
    return volumes.reshape(n, x // factor, factor, y // factor, factor, z // factor,
                           factor).mean(axis=(2, 4, 6))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic",
                        help="'synthetic', or a CSV with columns path, the target and "
                             "optionally subject (NIfTI paths relative to its folder)")
    parser.add_argument("--label-column", default="age")
    parser.add_argument("--n-subjects", type=int, default=60)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=56)
    parser.add_argument("--weights", default="random",
                        help="'random' (no network), a checkpoint path, or 'pretrained'")
    parser.add_argument("--out", default="results/brain_age",
                        help="the run directory written (`dinoatten report` reads it)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)

    start = time.perf_counter()
    X, ages, subjects = load_data(args)
    resnet_epochs = max(1, args.epochs // 3)  # on a CPU its epoch costs ~100x a head's
    print(f"data: {args.data}, {len(ages)} scans of {len(set(subjects))} subjects; "
          f"{args.epochs} epochs; {args.image_size} px; weights={args.weights}; machine: "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    methods = {key: make_method(key, task="regression", max_epochs=resnet_epochs
                                if METHODS[key].takes_volumes else args.epochs,
                                resnet_depth=10, resnet_width=0.25)
               for key in methods_for("regression")}
    methods["ridge-voxels"] = ridge_on_voxels()
    embedder = DinoSliceEmbedder(weights=None if args.weights == "pretrained" else args.weights,
                                 image_size=args.image_size, slice_spacing=6.0)
    protocol = cross_validation(ages, n_folds=args.folds, groups=subjects, task="regression")
    run = run_study(X, ages, methods, protocol, embedder=embedder,
                    resampler=VolumeResampler(shape=(32, 32, 32)),
                    method_inputs={"ridge-voxels": "volumes"}, target_name="age (years)")
    write_run(args.out, run)
    with open(os.path.join(args.out, "metrics.md")) as f:
        print("\n" + f.read())
    floor = float(run.metrics_row("training-mean")["mae"])
    print("MAE as a share of the training mean's (this run): " + ", ".join(
        f"{row['method']} {float(row['mae']) / floor:.2f}" for row in run.metrics))
    print(f"written: {args.out} (a run directory: `dinoatten report {args.out}`); "
          f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
