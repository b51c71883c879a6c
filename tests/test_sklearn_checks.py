"""scikit-learn's own estimator checks on every estimator.

The embedder, the 3D ResNet, the fine-tuned classifier and the anomaly detectors take
volumes (or images), so checks that feed them 2D tables cannot apply; each is listed
with that reason (test_api_properties.py checks the same properties on volumes). The
classifiers and regressors take 2D tables as one slice per sample and pass every check,
except the slice transformer classifier on one that trains on 2-feature data (reason
below). Every expected
failure is strict (setup.cfg): a check that starts to pass fails the suite.
"""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_dinoatten import (
    AttentionPoolClassifier,
    AttentionPoolRegressor,
    DinoSliceEmbedder,
    FineTunedSliceClassifier,
    OperatingPointClassifier,
    ResNet3DClassifier,
    ResNet3DRegressor,
    SCMILClassifier,
    SliceTransformerClassifier,
    SliceTransformerRegressor,
    VolumeResampler,
)
from sklearn_dinoatten.anomaly import MemoryBankAnomalyDetector, SpatialARAnomalyDetector
from sklearn_dinoatten.anomaly._base import BaseDinoAnomalyDetector

# Fewer epochs than the default (50) keep the training checks of the attention
# classifiers fast; they still pass check_classifiers_train's accuracy bar.
FAST_EPOCHS = 15
# SC-MIL's classifier is linear on the raw pooled features: on the checks' 2D blob tables
# (features of scale 20) 50 epochs at the default lr=1e-3 leave its bias too little
# moved for check_class_weight_classifiers (46 % of test blobs in class 0, 87 % needed);
# lr=1e-2 passes every check, in half the epochs. The slice transformer passes the same
# checks at lr=1e-2 in 15 epochs.
SCMIL = dict(lr=1e-2, max_epochs=25)
MST = dict(lr=1e-2, max_epochs=15)
FAST_EMBEDDER = DinoSliceEmbedder(weights="random", image_size=28, verbose=0)

NEEDS_2D = "feeds a 2D table; the transformer takes a list of volumes (3D arrays or paths)"
EMBEDDER_2D_CHECKS = [
    "check_estimators_dtypes",
    "check_fit_score_takes_y",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
    "check_estimators_empty_data_messages",
    "check_pipeline_consistency",
    "check_estimators_nan_inf",
    "check_complex_data",
    "check_dtype_object",
    "check_estimator_sparse_tag",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
]

DETECTS_IMAGES = (
    "feeds a 2D table; the anomaly detectors take images (2D arrays) or volumes"
)
DETECTOR_2D_CHECKS = [
    "check_classifier_data_not_an_array",
    "check_complex_data",
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_dtype_object",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimator_sparse_tag",
    "check_estimators_dtypes",
    "check_estimators_empty_data_messages",
    "check_estimators_fit_returns_self",
    "check_estimators_nan_inf",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_fit2d_1feature",
    "check_fit2d_1sample",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_outliers_fit_predict",
    "check_outliers_train",
    "check_pipeline_consistency",
    "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
]


TWO_FEATURE_TOKENS = (
    "trains on 2-feature blobs, i.e. one 2-dim slice per sample; the transformer's "
    "LayerNorm over 2 features keeps only their order, so no MST can separate them"
)

VOLUMES_ONLY = (
    "feeds a 2D table; the 3D ResNets take volumes (n, x, y, z), every side >= 17"
)
# The checks that feed the 3D ResNets 2D tables: those of every estimator, then the
# classifier's and the regressor's own.
VOLUME_2D_CHECKS = [
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_dtype_object",
    "check_estimators_dtypes",
    "check_estimators_fit_returns_self",
    "check_estimators_nan_inf",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_fit2d_1feature",
    "check_fit2d_1sample",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_pipeline_consistency",
    "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
    "check_requires_y_none",
    "check_supervised_y_2d",
]
RESNET_2D_CHECKS = VOLUME_2D_CHECKS + [
    "check_class_weight_classifiers",
    "check_classifier_data_not_an_array",
    "check_classifiers_classes",
    "check_classifiers_one_label",
    "check_classifiers_regression_target",
    "check_classifiers_train",
]
RESNET_REGRESSOR_2D_CHECKS = VOLUME_2D_CHECKS + [
    "check_regressor_data_not_an_array",
    "check_regressors_int",
    "check_regressors_no_decision_function",
    "check_regressors_train",
]
SLICES_ONLY = (
    "feeds a 2D table; FineTunedSliceClassifier takes volumes or images and trains a ViT "
    "on their slices"
)
FINETUNED_2D_CHECKS = [
    "check_class_weight_classifiers",
    "check_classifier_data_not_an_array",
    "check_classifiers_classes",
    "check_classifiers_one_label",
    "check_classifiers_regression_target",
    "check_classifiers_train",
    "check_complex_data",
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_dtype_object",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimator_sparse_tag",
    "check_estimators_dtypes",
    "check_estimators_empty_data_messages",
    "check_estimators_fit_returns_self",
    "check_estimators_nan_inf",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_fit2d_1feature",
    "check_fit2d_1sample",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_pipeline_consistency",
    "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
    "check_requires_y_none",
    "check_supervised_y_2d",
]



def expected_failed_checks(estimator):
    if isinstance(estimator, (DinoSliceEmbedder, VolumeResampler)):
        return {check: NEEDS_2D for check in EMBEDDER_2D_CHECKS}
    if isinstance(estimator, BaseDinoAnomalyDetector):
        return {check: DETECTS_IMAGES for check in DETECTOR_2D_CHECKS}
    if isinstance(estimator, FineTunedSliceClassifier):
        return {check: SLICES_ONLY for check in FINETUNED_2D_CHECKS}
    if isinstance(estimator, ResNet3DClassifier):
        return {check: VOLUMES_ONLY for check in RESNET_2D_CHECKS}
    if isinstance(estimator, ResNet3DRegressor):
        return {check: VOLUMES_ONLY for check in RESNET_REGRESSOR_2D_CHECKS}
    if isinstance(estimator, SliceTransformerClassifier):
        return {"check_classifiers_train": TWO_FEATURE_TOKENS}
    return {}


@parametrize_with_checks(
    [
        FAST_EMBEDDER,
        VolumeResampler(shape=(8, 8, 8)),
        AttentionPoolClassifier(max_epochs=FAST_EPOCHS, random_state=0),
        # The operating point at 0.5 and a Platt recalibration: the settings that take any
        # labels (a threshold rule needs two classes and the positive one named).
        OperatingPointClassifier(
            estimator=AttentionPoolClassifier(max_epochs=FAST_EPOCHS, random_state=0)),
        OperatingPointClassifier(
            estimator=AttentionPoolClassifier(max_epochs=FAST_EPOCHS, random_state=0),
            recalibration="platt", random_state=0),
        SliceTransformerClassifier(**MST, random_state=0),
        SCMILClassifier(**SCMIL, random_state=0),
        ResNet3DClassifier(depth=10, widen_factor=0.25, max_epochs=2, random_state=0),
        FineTunedSliceClassifier(
            embedder=DinoSliceEmbedder(weights="random", image_size=28, n_slices=4),
            max_epochs=1, random_state=0),
        AttentionPoolRegressor(max_epochs=FAST_EPOCHS, random_state=0),
        SliceTransformerRegressor(**MST, random_state=0),
        ResNet3DRegressor(depth=10, widen_factor=0.25, max_epochs=2, random_state=0),
        SpatialARAnomalyDetector(embedder=FAST_EMBEDDER, max_epochs=2, random_state=0),
        MemoryBankAnomalyDetector(embedder=FAST_EMBEDDER),
    ],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.slow  # the class checked above with its default pooling; 50 s, `make test-all`
@parametrize_with_checks(
    [AttentionPoolClassifier(pooling=pooling, max_epochs=FAST_EPOCHS, random_state=0)
     for pooling in ("gated", "mean")],
    expected_failed_checks=expected_failed_checks,
)
def test_other_poolings_are_sklearn_compatible(estimator, check):
    check(estimator)
