"""scikit-learn's own estimator checks on every estimator.

The embedder takes volumes (3D arrays or paths), so checks that feed it 2D tables
cannot apply; each is listed with that reason. The classifiers take 2D tables as one
slice per sample and pass every check.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder

NEEDS_2D = "feeds a 2D table; DinoSliceEmbedder takes a list of volumes (3D arrays or paths)"
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


def expected_failed_checks(estimator):
    if isinstance(estimator, DinoSliceEmbedder):
        return {check: NEEDS_2D for check in EMBEDDER_2D_CHECKS}
    return {}


@parametrize_with_checks(
    [
        DinoSliceEmbedder(weights="random", image_size=28, verbose=0),
        AttentionPoolClassifier(random_state=0),
        AttentionPoolClassifier(gated=True, random_state=0),
    ],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
