"""The metrics of a number predicted per scan: its errors, its agreement with the target,
the bias of the errors, and the paired comparison of two methods on the same scans (by
subject where scans are grouped).

The error and agreement metrics are those of scikit-learn and scipy (the tests compare
them), written with numpy alone: a bootstrap of a thousand resamples calls each a
thousand times per method, and the library versions' input checks cost ten times the
computation.
"""

import numpy as np
from scipy import stats


def mean_absolute_error(y_true, y_pred):
    """The mean of ``|y_pred - y_true|`` (:func:`sklearn.metrics.mean_absolute_error`)."""
    return float(np.mean(np.abs(np.asarray(y_pred, float) - np.asarray(y_true, float))))


def root_mean_squared_error(y_true, y_pred):
    """The square root of the mean squared error
    (:func:`sklearn.metrics.root_mean_squared_error`)."""
    error = np.asarray(y_pred, float) - np.asarray(y_true, float)
    return float(np.sqrt(np.mean(error * error)))


def r2(y_true, y_pred):
    """The coefficient of determination, ``1 - SS_res / SS_tot`` about the scored scans'
    own mean (:func:`sklearn.metrics.r2_score`): 1 is perfect, 0 the scans' mean, below
    0 worse; NaN for a constant target."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    total = np.sum((y_true - y_true.mean()) ** 2)
    if total == 0:
        return np.nan
    return float(1 - np.sum((y_true - y_pred) ** 2) / total)


def pearson_r(y_true, y_pred):
    """Pearson's correlation of the predictions with the target (NaN if one is
    constant), as :func:`scipy.stats.pearsonr`'s statistic."""
    a = np.asarray(y_true, float) - np.mean(y_true)
    b = np.asarray(y_pred, float) - np.mean(y_pred)
    norms = np.sqrt(np.dot(a, a) * np.dot(b, b))
    if norms == 0 or not np.isfinite(norms):
        return np.nan
    return float(np.clip(np.dot(a, b) / norms, -1.0, 1.0))


def spearman_rho(y_true, y_pred):
    """Spearman's rank correlation of the predictions with the target (ties take their
    mean rank), as :func:`scipy.stats.spearmanr`'s statistic."""
    return pearson_r(stats.rankdata(y_true), stats.rankdata(y_pred))


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
    return mean_absolute_error(y_true, y_pred) - mean_absolute_error(y_true, reference_pred)


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
