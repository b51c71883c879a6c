"""One method's predictions of the scans each split holds out: a clone fitted on the
split's training scans (stopping early on its validation scans), optionally recalibrated,
and the threshold of its operating point, all chosen on scans the split does not score.
"""

import time
from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from ..utils._options import RECALIBRATIONS, THRESHOLD
from ._clinical import (
    INNER_FOLDS,
    check_threshold,
    choose_threshold,
    is_data_driven,
    no_training_scans,
)
from ._protocols import Split, stratified_folds

# scikit-learn's name of each recalibration: Platt scaling is a sigmoid (logistic) fit
CALIBRATORS = dict(zip(RECALIBRATIONS, ("sigmoid", "isotonic"), strict=True))


@dataclass
class OutOfFold:
    """Each scored sample predicted by the fit that held it out; rows never scored (the
    training samples of a held-out split) are NaN."""

    proba: np.ndarray  # (n_samples, n_classes)
    embedding: np.ndarray  # (n_samples, dim): the learned volume embedding
    attention: np.ndarray | None  # (n_samples, n_slices), None without slice attention
    fit_seconds: list
    thresholds: list = None  # per split: the positive class's threshold (two classes)
    threshold: np.ndarray = None  # (n_samples,): the threshold each scored sample met


def check_recalibration(recalibration, splits):
    """``recalibration`` if it is ``None`` or one of :data:`RECALIBRATIONS` and the splits
    have training scans to fit it on; ``ValueError`` otherwise."""
    if recalibration is None:
        return None
    if recalibration not in RECALIBRATIONS:
        raise ValueError(f"recalibration must be None, {' or '.join(map(repr, RECALIBRATIONS))};"
                         f" got {recalibration!r}.")
    if any(split.train is None for split in splits):
        raise ValueError(f"recalibration={recalibration!r} is fitted on training scans, and "
                         "an external test has none: recalibrate when the model is fitted.")
    return recalibration


def cross_validate_method(estimator, X, y, splits, verbose=0, threshold=THRESHOLD,
                          positive=None, groups=None, recalibration=None, random_state=0):
    """Fit a clone of ``estimator`` on each split's training samples, with early
    stopping on its validation samples when it has them; collect the test predictions,
    their probability columns in the order of ``np.unique(y)`` (matched to each model's
    ``classes_`` by class). A split without training samples (:func:`external_test`)
    uses ``estimator`` as fitted. ``verbose=1`` prints a line per fit.

    ``recalibration`` (``"platt"`` or ``"isotonic"``) wraps each fit in scikit-learn's
    :class:`~sklearn.calibration.CalibratedClassifierCV`: fitted on the split's
    validation scans if it has them, else on out-of-fold predictions of its training
    scans (an inner stratified 3-fold cross-validation, grouped by ``groups``, after
    which the model is refitted on all of them). Embeddings and attention are the
    model's; the probabilities are recalibrated.

    With two classes, each split's ``threshold`` on the probability of ``positive``
    (see :func:`~sklearn_dinoatten.evaluation.choose_threshold`) is a number, or chosen
    on scans the split's model is not applied to: its validation scans, else
    out-of-fold predictions of its training scans (the same inner cross-validation,
    each inner fit recalibrated as the split's is); never on its test scans.
    """
    y = np.asarray(y)
    classes = np.unique(y)
    recalibration = check_recalibration(recalibration, splits)
    proba, embedding, attention, fit_seconds, thresholds = None, None, None, [], []
    column = None if positive is None else classes.tolist().index(positive)
    cut = np.full(len(y), np.nan)
    for i, split in enumerate(splits, 1):
        start = time.perf_counter()
        if split.train is None:
            model = base = estimator
        else:
            model, base = fit_split(estimator, X, y, split, recalibration, groups,
                                    random_state)
            fit_seconds.append(time.perf_counter() - start)
        test = split.test
        fold_embedding = base.volume_embeddings(X[test])
        if proba is None:
            proba = np.full((len(y), len(classes)), np.nan)
            embedding = np.full((len(y), fold_embedding.shape[1]), np.nan, dtype=np.float32)
            if hasattr(base, "attention_weights"):
                attention = np.full((len(y), X.shape[1]), np.nan)
        proba[test], embedding[test] = probabilities(model, X[test], classes), fold_embedding
        if attention is not None:
            attention[test] = base.attention_weights(X[test])
        if column is not None:
            thresholds.append(_split_threshold(estimator, model, X, y, split, threshold,
                                               column, classes, groups, recalibration,
                                               random_state))
            cut[test] = thresholds[-1]
        if verbose:
            print(f"    {'fold' if len(splits) > 1 else 'split'} {i}/{len(splits)}: "
                  + (f"fitted in {fit_seconds[-1]:.1f} s, " if split.train is not None else "")
                  + (f"recalibrated ({recalibration}), " if recalibration else "")
                  + f"{len(test)} scans predicted"
                  + (f", threshold {thresholds[-1]:.4g}" if is_data_driven(threshold)
                     and thresholds else ""), flush=True)
    return OutOfFold(proba, embedding, attention, fit_seconds or [np.nan],
                     thresholds if column is not None else None,
                     cut if column is not None else None)


def fit_split(estimator, X, y, split, recalibration=None, groups=None, random_state=0):
    """``(model, base)``: a clone of ``estimator`` fitted on ``split.train`` (stopping
    early on ``split.validation`` if given), recalibrated as :func:`cross_validate_method`
    says when ``recalibration`` is given, and the fitted classifier inside it (``model``
    itself without recalibration)."""
    train, validation = split.train, split.validation
    base, fit_params = clone(estimator), {}
    if recalibration is not None and validation is None:
        model = CalibratedClassifierCV(
            base, method=CALIBRATORS[recalibration], ensemble=False,
            cv=inner_splits(y[train], None if groups is None else np.asarray(groups)[train],
                            f"recalibration={recalibration!r}", random_state))
        model.fit(X[train], y[train])
        return model, model.calibrated_classifiers_[0].estimator
    if validation is not None:
        base.set_params(early_stopping=True)
        fit_params = dict(X_val=X[validation], y_val=y[validation])
    base.fit(X[train], y[train], **fit_params)
    if recalibration is None:
        return base, base
    absent = sorted(set(y[train].tolist()) - set(y[validation].tolist()))
    if absent:
        raise ValueError(f"recalibration={recalibration!r} is fitted on the 'val' scans, "
                         f"which have none of class {absent[0]!r}: it needs every class "
                         "there.")
    model = CalibratedClassifierCV(FrozenEstimator(base), method=CALIBRATORS[recalibration])
    return model.fit(X[validation], y[validation]), base


def inner_splits(y, groups, purpose, random_state=0):
    """``(train, test)`` index pairs of the inner stratified cross-validation (grouped by
    ``groups``) of a split's training scans ``y``, on which ``purpose`` is fitted."""
    unit = "scans" if groups is None else "subjects"
    members = np.arange(len(y)) if groups is None else np.asarray(groups)  # what is counted
    smallest = min(len(np.unique(members[y == label])) for label in np.unique(y))
    if smallest < 2:
        raise ValueError(f"{purpose} needs an inner cross-validation of each fold's training "
                         f"scans, and so two {unit} of each class there.")
    folds = stratified_folds(min(INNER_FOLDS, smallest), groups is not None, random_state)
    return list(folds.split(np.zeros(len(y)), y, groups))


def _split_threshold(estimator, model, X, y, split, rule, column, classes, groups,
                     recalibration, random_state):
    """The threshold of one split: ``rule`` itself if a number, else chosen on scores
    its model was not fitted on and will not be scored on."""
    if not is_data_driven(rule):
        return check_threshold(rule)
    if split.train is None:
        raise no_training_scans(rule)
    truth = (y == classes[column]).astype(int)
    if split.validation is not None:
        score = probabilities(model, X[split.validation], classes)[:, column]
        return choose_threshold(truth[split.validation], score, rule)
    train = split.train
    score = np.empty(len(train))
    for inner_train, inner_test in inner_splits(
            y[train], None if groups is None else np.asarray(groups)[train],
            f"threshold={rule!r}", random_state):
        inner = Split(train[inner_train], train[inner_test])
        fitted, _ = fit_split(estimator, X, y, inner, recalibration, groups, random_state)
        score[inner_test] = probabilities(fitted, X[inner.test], classes)[:, column]
    return choose_threshold(truth[train], score, rule)


def probabilities(model, X, classes):
    """``model``'s probabilities of ``X`` in the columns of ``classes``, matched to its
    ``classes_`` by class; ``ValueError`` naming a class it was not fitted on."""
    column = {c: i for i, c in enumerate(np.asarray(model.classes_).tolist())}
    missing = [c for c in classes.tolist() if c not in column]
    if missing:
        name = type(getattr(model, "estimator", model)).__name__
        raise ValueError(f"{name} was fitted on the classes {list(column)}, without "
                         f"{missing[0]!r}.")
    return model.predict_proba(X)[:, [column[c] for c in classes.tolist()]]
