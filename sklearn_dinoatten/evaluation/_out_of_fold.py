"""One method's predictions of the scans each split holds out: the method as an
:class:`~sklearn_dinoatten.OperatingPointClassifier` (its recalibration and operating
point chosen on scans the split does not score) fitted on the split's training scans and
applied to its test scans, exactly as ``fit`` then ``predict`` of that estimator give
them.
"""

import time
from dataclasses import dataclass

import numpy as np
from sklearn.base import clone

from ..utils._options import RECALIBRATIONS, THRESHOLD
from ._clinical import INNER_FOLDS, check_threshold, is_data_driven, no_training_scans
from ._operating_point import OperatingPointClassifier, bare_classifier, probabilities


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
    recalibrated: list = None  # per split, with a recalibration: whether it was applied


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


def cross_validate_method(estimator, X, y, splits, *, verbose=0, threshold=None,
                          positive=None, groups=None, recalibration=None, random_state=0):
    """Fit the method on each split's training samples and predict its test samples;
    their probability columns in the order of ``np.unique(y)`` (matched to each model's
    ``classes_`` by class). ``verbose=1`` prints a line per fit.

    The method is ``estimator`` wrapped in an
    :class:`~sklearn_dinoatten.OperatingPointClassifier` with ``threshold``,
    ``recalibration`` and ``positive`` (its ``pos_label``), the inner folds seeded by
    ``random_state`` (or ``estimator`` as it is, if it is one already).
    Each split fits a clone with ``groups`` of its training samples and, when the split
    has validation samples, stops early on them and chooses the recalibration and
    threshold there (see :func:`fit_on_split`): a split's predictions are those of
    ``fit`` on its training scans, then ``predict_proba`` of its test scans. Embeddings
    and attention are the wrapped classifier's.

    A split without training samples (:func:`external_test`) uses ``estimator`` as
    fitted: its own threshold (an OperatingPointClassifier's ``threshold_``; 0.5 for a
    bare classifier) unless ``threshold`` gives a number instead.
    """
    y = np.asarray(y)
    classes = np.unique(y)
    recalibration = check_recalibration(recalibration, splits)
    model = (estimator if all(split.train is None for split in splits) else
             _operating_point(estimator, threshold, recalibration, positive, random_state))
    chosen = is_data_driven(getattr(model, "threshold", THRESHOLD))  # said per split
    proba, embedding, attention, fit_seconds, thresholds = None, None, None, [], []
    recalibrated = []
    column = None if positive is None else classes.tolist().index(positive)
    cut = np.full(len(y), np.nan)
    for i, split in enumerate(splits, 1):
        start = time.perf_counter()
        fitted = estimator if split.train is None else fit_on_split(model, X, y, split, groups)
        if split.train is not None:
            fit_seconds.append(time.perf_counter() - start)
        test = split.test
        if proba is None:
            proba = np.full((len(y), len(classes)), np.nan)
        proba[test] = probabilities(fitted, X[test], classes)
        embedding, attention = learned_outputs(bare_classifier(fitted), X, test, embedding,
                                               attention)
        if column is not None:
            thresholds.append(_threshold(fitted, split, threshold, positive))
            cut[test] = thresholds[-1]
        recalibrated.append(getattr(fitted, "recalibration_", None) is not None)
        if verbose:
            print(f"    {'fold' if len(splits) > 1 else 'split'} {i}/{len(splits)}: "
                  + (f"fitted in {fit_seconds[-1]:.1f} s, " if split.train is not None else "")
                  + _recalibration_said(recalibration, recalibrated[-1])
                  + f"{len(test)} scans predicted"
                  + (f", threshold {thresholds[-1]:.4g}" if thresholds and chosen else ""),
                  flush=True)
    return OutOfFold(proba, embedding, attention, fit_seconds or [np.nan],
                     thresholds if column is not None else None,
                     cut if column is not None else None,
                     recalibrated if recalibration else None)


def learned_outputs(model, X, test, embedding, attention):
    """``(embedding, attention)`` with the rows of the ``test`` samples filled in by the
    fitted ``model``'s learned volume embeddings and slice attention, where it has them:
    arrays of one row per sample of ``X`` (NaN until predicted), made at the first split;
    None where the model has none."""
    if hasattr(model, "volume_embeddings"):
        fold = model.volume_embeddings(X[test])
        if embedding is None:
            embedding = np.full((len(X), fold.shape[1]), np.nan, dtype=np.float32)
        embedding[test] = fold
    if hasattr(model, "attention_weights"):
        if attention is None:
            attention = np.full((len(X), X.shape[1]), np.nan)
        attention[test] = model.attention_weights(X[test])
    return embedding, attention


def _recalibration_said(recalibration, applied):
    if recalibration is None:
        return ""
    return f"{'recalibrated' if applied else 'recalibration not applied'} ({recalibration}), "


def fit_on_split(model, X, y, split, groups=None):
    """A clone of the :class:`~sklearn_dinoatten.OperatingPointClassifier` ``model`` fitted on
    ``split.train`` with its subjects (``groups``), and, where the split has validation
    samples, on them: its classifier stops early there (``early_stopping=True``, where
    it has the parameter) and the recalibration and threshold are chosen there."""
    fitted, params = clone(model), {}
    if groups is not None:
        params["groups"] = np.asarray(groups)[split.train]
    if split.validation is not None:
        classifier = fitted.estimator  # None: the default head, which does not stop early
        if classifier is not None and "early_stopping" in classifier.get_params():
            fitted.set_params(estimator__early_stopping=True)
        params.update(X_val=X[split.validation], y_val=y[split.validation])
    return fitted.fit(X[split.train], y[split.train], **params)


def _operating_point(estimator, threshold, recalibration, positive, random_state):
    """The method as an OperatingPointClassifier (``estimator`` itself if it is one,
    when neither ``threshold`` nor ``recalibration`` is given)."""
    if isinstance(estimator, OperatingPointClassifier):
        if threshold is not None or recalibration is not None:
            raise ValueError("The method is an OperatingPointClassifier, which has its own "
                             "threshold and recalibration: leave threshold= and "
                             "recalibration= out, or give the bare classifier.")
        return estimator
    return OperatingPointClassifier(
        estimator=estimator, threshold=THRESHOLD if threshold is None else threshold,
        recalibration=recalibration, pos_label=positive, cv=INNER_FOLDS,
        random_state=random_state)


def _threshold(fitted, split, threshold, positive):
    """A split's threshold on ``positive``'s probability: its fitted model's; for a
    model fitted elsewhere, ``threshold`` if given (a number), else the model's own."""
    if split.train is not None or threshold is None:
        if not isinstance(fitted, OperatingPointClassifier):
            return THRESHOLD
        if fitted.pos_label_ != positive:
            raise ValueError(f"The model calls {fitted.pos_label_!r} positive at its "
                             f"threshold; the positive class here is {positive!r}: give it "
                             "as the positive class (or leave it out).")
        return fitted.threshold_
    if is_data_driven(threshold):
        raise no_training_scans(threshold)
    return check_threshold(threshold)
