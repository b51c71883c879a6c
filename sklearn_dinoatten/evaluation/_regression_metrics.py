"""The metrics of a number predicted per scan: agreement with the target, the bias of the
errors, and the paired comparison of two methods on the same scans (by subject where
scans are grouped)."""

import warnings

import numpy as np
from scipy import stats


def _defined(function, *arrays):
    """``function(*arrays)`` as a float, NaN where it is undefined (a constant input)."""
    if min(len(np.unique(a)) for a in arrays) < 2:
        return np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(function(*arrays)[0])


def pearson_r(y_true, y_pred):
    """Pearson's correlation of the predictions with the target (NaN if one is constant)."""
    return _defined(stats.pearsonr, np.asarray(y_true, float), np.asarray(y_pred, float))


def spearman_rho(y_true, y_pred):
    """Spearman's rank correlation of the predictions with the target."""
    return _defined(stats.spearmanr, np.asarray(y_true, float), np.asarray(y_pred, float))


def mean_error(y_true, y_pred):
    """The mean of ``y_pred - y_true``: positive where a method overestimates (for brain
    age, the mean brain-age delta)."""
    return float(np.mean(np.asarray(y_pred, float) - np.asarray(y_true, float)))


def error_target_correlation(y_true, y_pred):
    """Pearson's correlation of the error ``y_pred - y_true`` with the target: negative
    when predictions regress to the mean (the young overestimated, the old
    underestimated), the well-known bias of the brain-age delta; 0 without it."""
    y_true = np.asarray(y_true, float)
    return pearson_r(y_true, np.asarray(y_pred, float) - y_true)


def mae_difference(y_true, y_pred, reference_pred):
    """``MAE(y_pred) - MAE(reference_pred)`` on the same scans: negative where the method
    errs less than the reference."""
    y_true = np.asarray(y_true, float)
    return float(np.mean(np.abs(np.asarray(y_pred) - y_true))
                 - np.mean(np.abs(np.asarray(reference_pred) - y_true)))


def wilcoxon_absolute_errors(y_true, y_pred, reference_pred, *, groups=None):
    """Two-sided Wilcoxon signed-rank p of the absolute errors of two methods on the same
    scans; with ``groups``, of each subject's mean absolute errors (the subjects are
    the independent units). NaN where every pair is tied or fewer than 2 remain."""
    y_true = np.asarray(y_true, float)
    errors = np.abs(np.column_stack([y_pred, reference_pred]) - y_true[:, None])
    if groups is not None:
        codes = np.unique(groups, return_inverse=True)[1]
        errors = np.column_stack([np.bincount(codes, weights=e) / np.bincount(codes)
                                  for e in errors.T])
    differences = errors[:, 0] - errors[:, 1]
    if np.count_nonzero(differences) < 2:
        return np.nan
    return float(stats.wilcoxon(errors[:, 0], errors[:, 1]).pvalue)
