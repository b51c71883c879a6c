"""Evaluation: the methods compared, the protocols (cross-validation, a held-out split,
an external test set), the study that runs them on the same splits, clinical metrics with
subject-clustered statistics (and the metrics of a number, for regressors), the run
directory and its HTML report.

Imported on first use: the command line reads the methods' names without loading torch.
"""

from ..utils._lazy import lazy_exports

_MODULES = {
    **dict.fromkeys(["METHODS", "REFERENCE", "Method", "make_method", "method_name",
                     "method_of", "methods_for"], "._methods"),
    **dict.fromkeys(["binary_auc", "bootstrap_ci", "bootstrap_resamples",
                     "delong_test", "false_negative_rate", "ovr_macro_auc",
                     "sensitivity_score", "specificity_score", "bootstrap_cis"], "._metrics"),
    **dict.fromkeys(["INNER_FOLDS", "brier_score", "calibration_intercept_slope",
                     "check_threshold", "choose_threshold", "decide",
                     "expected_calibration_error", "is_data_driven", "net_benefit",
                     "no_training_scans", "operating_point", "treat_all_net_benefit"],
                    "._clinical"),
    **dict.fromkeys(["Protocol", "Split", "check_classes", "check_targets",
                     "cross_validation", "external_test", "held_out", "target_strata"],
                    "._protocols"),
    **dict.fromkeys(["error_target_correlation", "mae_difference", "mean_error",
                     "pearson_r", "spearman_rho", "wilcoxon_absolute_errors"],
                    "._regression_metrics"),
    **dict.fromkeys(["RegressionOutOfFold", "corrected", "cross_validate_regressor",
                     "fit_bias_correction", "line_of_errors", "training_mean"],
                    "._regression_out_of_fold"),
    **dict.fromkeys(["regression_caption", "regression_subgroup_table", "regression_table"],
                    "._regression_table"),
    **dict.fromkeys(["caption", "metrics_table", "per_class_table", "positive_class"],
                    "._table"),
    **dict.fromkeys(["OutOfFold", "cross_validate_method"], "._out_of_fold"),
    **dict.fromkeys(["OperatingPointClassifier", "bare_classifier",
                     "describe_operating_point"], "._operating_point"),
    **dict.fromkeys(["check_card", "describe_difference", "evaluation_record", "make_card",
                     "recipe_differences", "scan_digests", "training_scans_scored"],
                    "._card"),
    "card_markdown": "._card_markdown",
    **dict.fromkeys(["run_study", "weights_sha256"], "._study"),
    **dict.fromkeys(["fitted_classes", "models_positive"], "._external"),
    **dict.fromkeys(["METRICS", "Metric", "SCORERS", "TABLES", "metric_columns"],
                    "._registry"),
    **dict.fromkeys(["Run", "read_run", "write_run"], "._runs"),
    "data_record": "._run_json",
    "write_report": "._report",
    **dict.fromkeys(["confusion_figure", "embedding_figure", "profile_figure", "roc_figure"],
                    "._figures"),
    **dict.fromkeys(["agreement_figure", "bland_altman_figure", "error_figure"],
                    "._regression_figures"),
}

__all__ = list(_MODULES)
__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
