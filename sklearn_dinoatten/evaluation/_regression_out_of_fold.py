"""One regressor's predictions of the scans each split holds out, as ``fit`` on the
split's training scans then ``predict`` give them; the training mean every method must
beat; and the linear correction of the regression-to-the-mean bias of the errors,
fitted on each split's training scans only."""

import time
from dataclasses import dataclass

import numpy as np
from sklearn.base import clone

from ..utils._options import BIAS_CORRECTIONS
from ._out_of_fold import learned_outputs
from ._protocols import stratified_folds, target_strata

INNER_FOLDS = 3  # the inner cross-validation of a split's training scans


@dataclass
class RegressionOutOfFold:
    """Each scored sample predicted by the fit that held it out; rows never scored are
    NaN. ``corrections``: per split, the ``(slope, intercept)`` of the error on the
    target fitted on its training scans (with a bias correction)."""

    pred: np.ndarray  # (n_samples,)
    embedding: np.ndarray | None  # (n_samples, dim); None for the training mean
    attention: np.ndarray | None  # (n_samples, n_slices), None without slice attention
    fit_seconds: list
    corrections: list | None = None


def check_bias_correction(bias_correction, splits):
    """``bias_correction`` if it is None or one of :data:`BIAS_CORRECTIONS` and the splits
    have training scans to fit it on; ``ValueError`` otherwise."""
    if bias_correction is None:
        return None
    if bias_correction not in BIAS_CORRECTIONS:
        raise ValueError(f"bias_correction must be None or one of {BIAS_CORRECTIONS}; got "
                         f"{bias_correction!r}.")
    if any(split.train is None for split in splits):
        raise ValueError("bias_correction is fitted on training scans, and an external test "
                         "has none.")
    return bias_correction


def cross_validate_regressor(estimator, X, y, splits, *, groups=None, bias_correction=None,
                             random_state=0, verbose=0):
    """Fit a clone of ``estimator`` on each split's training samples (stopping early on
    its validation samples, where it has them) and predict its test samples; a split
    without training samples (an external test) uses ``estimator`` as fitted. Any
    scikit-learn regressor does; the package's also give their learned embeddings and
    slice attention.
    ``bias_correction="linear"`` also fits, per split, the error's line on the target
    (see :func:`fit_bias_correction`). ``verbose=1`` prints a line per fit."""
    y = np.asarray(y, dtype=np.float64)
    bias_correction = check_bias_correction(bias_correction, splits)
    pred, embedding, attention = np.full(len(y), np.nan), None, None
    fit_seconds, corrections = [], []
    for i, split in enumerate(splits, 1):
        start = time.perf_counter()
        fitted = estimator if split.train is None else fit_regressor(estimator, X, y, split)
        if split.train is not None:
            fit_seconds.append(time.perf_counter() - start)
        test = split.test
        pred[test] = fitted.predict(X[test])
        # a plain scikit-learn regressor (the ridge) learns neither
        embedding, attention = learned_outputs(fitted, X, test, embedding, attention)
        if bias_correction:
            corrections.append(fit_bias_correction(estimator, fitted, X, y, split,
                                                   groups=groups, random_state=random_state))
        if verbose:
            print(f"    {'fold' if len(splits) > 1 else 'split'} {i}/{len(splits)}: "
                  + (f"fitted in {fit_seconds[-1]:.1f} s, " if split.train is not None else "")
                  + f"{len(test)} scans predicted"
                  + (", error on target: slope {:.3g}, intercept {:.3g}".format(
                      *corrections[-1]) if bias_correction else ""), flush=True)
    return RegressionOutOfFold(pred, embedding, attention, fit_seconds or [np.nan],
                               corrections if bias_correction else None)


def fit_regressor(estimator, X, y, split):
    """A clone of ``estimator`` fitted on ``split.train``; where the split has validation
    samples, it stops early on them (``early_stopping=True``, where it has the
    parameter)."""
    fitted, params = clone(estimator), {}
    if split.validation is not None and "early_stopping" in fitted.get_params():
        fitted.set_params(early_stopping=True)
        params.update(X_val=X[split.validation], y_val=y[split.validation])
    return fitted.fit(X[split.train], y[split.train], **params)


def training_mean(y, splits, *, groups=None, bias_correction=None, random_state=0):
    """The floor every method must beat: each test scan predicted by the mean target of
    its split's training scans (scikit-learn's ``DummyRegressor``), with its bias
    correction as the methods have theirs: the corrected floor shows how much of a
    corrected figure the correction alone makes, with no model at all."""
    from sklearn.dummy import DummyRegressor

    return cross_validate_regressor(DummyRegressor(), np.zeros((len(y), 1)), y, splits,
                                    groups=groups, bias_correction=bias_correction,
                                    random_state=random_state)


def fit_bias_correction(estimator, fitted, X, y, split, *, groups=None, random_state=0):
    """``(slope, intercept)`` of the line of the error (prediction - target) on the
    target, fitted on predictions of the split's training side only: of its validation
    scans by the model ``fitted`` on the split, or, without them, out-of-fold
    predictions of its training scans by an inner cross-validation of ``estimator``
    (:data:`INNER_FOLDS` folds, stratified by target quantile, grouped by subject)."""
    if split.validation is not None:
        seen = split.validation
        return line_of_errors(y[seen], fitted.predict(X[seen]))
    train = split.train
    inner_groups = None if groups is None else np.asarray(groups)[train]
    n_units = len(train) if inner_groups is None else len(np.unique(inner_groups))
    n_folds = min(INNER_FOLDS, n_units)
    if n_folds < 2:
        raise ValueError("The bias correction needs two training scans (subjects) or more "
                         "in each split.")
    folds = stratified_folds(n_folds, inner_groups is not None, random_state)
    oof = np.full(len(train), np.nan)
    for inner_train, inner_test in folds.split(np.zeros(len(train)),
                                               target_strata(y[train], n_folds),
                                               inner_groups):
        model = clone(estimator).fit(X[train[inner_train]], y[train[inner_train]])
        oof[inner_test] = model.predict(X[train[inner_test]])
    return line_of_errors(y[train], oof)


def line_of_errors(y, pred):
    """``(slope, intercept)`` of the least-squares line of ``pred - y`` on ``y``."""
    slope, intercept = np.polyfit(np.asarray(y, float), np.asarray(pred, float) - y, 1)
    return float(slope), float(intercept)


def corrected(y, pred, correction):
    """``pred`` less the error its ``(slope, intercept)`` line expects at target ``y``:
    the bias-corrected prediction, which needs the target itself."""
    slope, intercept = correction
    return np.asarray(pred) - (slope * np.asarray(y) + intercept)
