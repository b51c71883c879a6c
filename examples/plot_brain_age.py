"""
Brain age: a number per scan, and the bias of its delta
=======================================================

The regressors predict a number from the same inputs as the classifiers. Here: phantom
heads whose ventricles widen and cortex thins with age
(:func:`~sklearn_dinoatten.datasets.make_brain_ages`), two scans per subject two years
apart, at varied voxel sizes and orientations that their headers record. One
cross-validation, stratified by age and grouped by subject, compares attention pooling
over slice embeddings, a small 3D ResNet on the resampled volumes and the training
mean; the bias correction's rows stand beside the uncorrected ones.

The backbone has random weights (``weights="random"``: no network) and the inputs are
small, so that the example runs in under a minute: the slice method's figures show the
machinery, not what DINOv2's features give; the 3D ResNet learns the phantoms' ages from
their voxels.
"""

# %%
# Phantom heads that age
# ----------------------
# The scans are nibabel images: the resampler and the embedder read their voxel size
# and orientation from the header, so that every scan is seen in RAS and in millimetres.
import nibabel as nib

from sklearn_dinoatten import DinoSliceEmbedder, VolumeResampler
from sklearn_dinoatten.datasets import make_brain_ages
from sklearn_dinoatten.evaluation import (
    agreement_figure,
    cross_validation,
    error_figure,
    make_method,
    run_study,
)

X, ages, subjects, affines = make_brain_ages(n_subjects=24, scans_per_subject=2,
                                             random_state=0)
scans = [nib.Nifti1Image(x, affine) for x, affine in zip(X, affines, strict=True)]
print(f"{len(scans)} scans of {len(set(subjects))} subjects, ages "
      f"{ages.min():.0f} to {ages.max():.0f}; array shapes {sorted({x.shape for x in X})[:3]}")

# %%
# One study of a number
# ---------------------
# Every method is a regressor, so the study is a regression: MAE, RMSE, R², the
# correlations and the error's bias, each with a 95 % interval that resamples subjects,
# and a training-mean row, the floor.
methods = {
    "mean": make_method("mean", task="regression", max_epochs=20),
    "resnet3d": make_method("resnet3d", task="regression", max_epochs=8,
                            resnet_depth=10, resnet_width=0.25),
}
run = run_study(
    scans, ages, methods,
    cross_validation(ages, n_folds=4, groups=subjects, task="regression"),
    embedder=DinoSliceEmbedder(weights="random", image_size=28, slice_spacing=8.0,
                               verbose=0),
    resampler=VolumeResampler(shape=(24, 24, 24)), bias_correction="linear",
    target_name="age (years)", verbose=0)
for row in run.metrics:
    print(f"{row['method']:34s} MAE {row['mae']:5.1f} [{row['mae_ci_low']:.1f}, "
          f"{row['mae_ci_high']:.1f}]  r(error, age) {row['error_target_r']:+.2f}")

# %%
# Predicted against true
# ----------------------
# The identity line is a perfect prediction; the predictions' own line, flatter, is the
# regression to the mean. Mean pooling over random features errs as the training mean
# does, yet its bias-corrected row looks accurate: the correction uses each scan's true
# age, so its figures describe the corrected delta, never an accuracy a new scan would
# get. Judge the models by the uncorrected rows.
agreement_figure(run)

# %%
# The errors against the age
# --------------------------
# A falling line is the bias of the brain-age delta: the young overestimated, the old
# underestimated. The correction, fitted on each fold's training scans only, levels it.
error_figure(run)
