"""A classifier with its operating point and, optionally, its recalibration, both chosen
on scans it was not fitted on: one scikit-learn estimator, which an evaluation fits on
each split and ``dinoatten fit`` saves, so that what is evaluated is what is shipped."""

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils import _safe_indexing, get_tags, indexable
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, column_or_1d

from ..utils._fit import FitContractMixin, check_fitted, fit_context
from ..utils._options import RECALIBRATIONS, THRESHOLD
from ..utils._persistable import PersistableMixin
from ..utils._validation import (
    NONE,
    RANDOM_STATE,
    Constraint,
    classes_array,
    instance,
    integer,
    label,
    options,
)
from ._clinical import INNER_FOLDS, check_threshold, choose_threshold, decide, is_data_driven
from ._protocols import inner_splits
from ._recalibration import apply_maps, check_maps, fit_maps


def _is_threshold(value):
    try:
        check_threshold(value)
    except ValueError:
        return False
    return True


def _is_classifier(value):
    return hasattr(value, "fit") and hasattr(value, "predict_proba")


def _has(method):
    """Whether the wrapped classifier has ``method`` (its fitted one, once fitted)."""
    return lambda self: hasattr(getattr(self, "estimator_", None) or self._classifier(),
                                method)


class OperatingPointClassifier(FitContractMixin, PersistableMixin, MetaEstimatorMixin,
                               ClassifierMixin, BaseEstimator):
    """A classifier, its recalibration and its operating point, chosen on scans it was
    not fitted on.

    ``fit`` fits a clone of ``estimator`` on all the scans. Where the recalibration or
    a threshold rule needs scores, they are the classifier's probabilities of scans it
    was not fitted on: the validation scans given to ``fit`` (``X_val, y_val``, which
    also stop the classifier early when it has ``early_stopping=True``), else
    out-of-fold predictions of the training scans by a stratified ``cv``-fold
    cross-validation (grouped by subject when ``fit`` is given ``groups``). The
    recalibration is fitted on those scores, and the threshold chosen on them,
    recalibrated. ``predict_proba`` gives the recalibrated probabilities and ``predict``
    calls the positive class where its probability is at least ``threshold_``. This is
    what ``run_study`` and ``dinoatten cv`` evaluate on every split, and what
    ``dinoatten fit`` saves.

    Parameters
    ----------
    estimator : classifier, default=None
        Any scikit-learn classifier with ``predict_proba`` (the package's, a pipeline);
        ``None``: ``AttentionPoolClassifier()``, DinoAtten3D's head.
    threshold : float or str, default=0.5
        The operating point of two classes: a probability in (0, 1), or a rule applied
        to the scores above: ``"youden"``, ``"sensitivity=0.9"``,
        ``"specificity=0.9"`` (see
        :func:`~sklearn_dinoatten.evaluation.choose_threshold`). More than two classes
        take the most probable class (only 0.5 is accepted).
    recalibration : {"platt", "isotonic"}, default=None
        Recalibrate the probabilities: Platt scaling on the logit of the probability
        (logistic recalibration) or isotonic regression, fitted on the scores above. A
        fit that would not increase with the probability (scores that rank the classes
        the wrong way) is not applied, with a warning (``recalibration_`` is then None).
    pos_label : label, default=None
        The positive class of two, whose probability is thresholded. ``None``: ``1`` or
        ``True`` for labels 0/1 or false/true; for other labels it is needed with a
        threshold other than 0.5 (at 0.5, the second class in sorted order).
    cv : int, default=3
        Folds of the inner cross-validation (fewer where a class has fewer training
        scans or subjects).
    random_state : int, RandomState or None, default=None
        Shuffles the inner folds.

    Attributes
    ----------
    estimator_ : classifier
        The clone of ``estimator`` fitted on all the training scans.
    classes_ : ndarray of shape (n_classes,)
    pos_label_ : label or None
        The positive class (None for more than two classes).
    threshold_ : float or None
        The threshold on ``pos_label_``'s probability (None for more than two classes).
    recalibration_ : {"platt", "isotonic"} or None
        The recalibration applied: ``recalibration``, or None without one or where its
        fit was not applied.
    calibration_maps_ : list of ndarray
        The recalibration's maps (see ``recalibration``), empty without one.
    chosen_on_ : str or None
        Which scores the recalibration and the threshold were chosen on, in words.
    n_features_in_ : int
        The wrapped classifier's, where it has one.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn_dinoatten.evaluation import OperatingPointClassifier
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 30)
    >>> X = rng.normal(size=(60, 3)) + y[:, None]
    >>> model = OperatingPointClassifier(estimator=LogisticRegression(), threshold="youden",
    ...                                  recalibration="platt", random_state=0).fit(X, y)
    >>> round(model.threshold_, 3), model.recalibration_
    (0.407, 'platt')
    >>> model.chosen_on_
    'out-of-fold predictions of the 60 training scans (an inner stratified 3-fold cross-validation)'
    >>> model.predict(X[[0, 1, 58, 59]]).tolist()
    [0, 0, 1, 0]
    """

    _constraints = {
        "estimator": [NONE, Constraint(_is_classifier, "a classifier with predict_proba")],
        "threshold": [Constraint(_is_threshold, "a probability in (0, 1), 'youden', "
                                                "'sensitivity=<share>' or "
                                                "'specificity=<share>'")],
        "recalibration": [NONE, options(*RECALIBRATIONS)],
        "pos_label": [NONE, label()],
        "cv": [integer(2)],
        "random_state": [RANDOM_STATE],
    }
    _params_fixed_by_fit = ("threshold", "recalibration", "pos_label")
    _fitted_constraints = {
        "estimator_": [Constraint(_is_classifier, "a fitted classifier")],
        "classes_": [classes_array()],
        "pos_label_": [NONE, label()],
        "threshold_": [NONE, Constraint(lambda v: isinstance(v, float) and 0 <= v <= 1,
                                        "a number in [0, 1]")],
        "recalibration_": [NONE, options(*RECALIBRATIONS)],
        "calibration_maps_": [instance(list, "a list of arrays")],
        "chosen_on_": [NONE, instance(str, "a string")],
        "n_features_in_": [integer(1)],
    }

    def __init__(self, *, estimator=None, threshold=THRESHOLD, recalibration=None,
                 pos_label=None, cv=INNER_FOLDS, random_state=None):
        self.estimator = estimator
        self.threshold = threshold
        self.recalibration = recalibration
        self.pos_label = pos_label
        self.cv = cv
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        classifier = self._classifier() if self.estimator is None else self.estimator
        if hasattr(classifier, "__sklearn_tags__"):  # the input the classifier takes
            tags.input_tags = get_tags(classifier).input_tags
        return tags

    @fit_context
    def fit(self, X, y, *, groups=None, X_val=None, y_val=None):
        """Fit the classifier, then its recalibration and threshold on scans it was not
        fitted on.

        Parameters
        ----------
        X : array-like or list of volumes
            What ``estimator`` takes.
        y : array-like of shape (n_samples,)
        groups : array-like of shape (n_samples,), default=None
            The subject of each scan: the inner folds keep a subject's scans together.
        X_val, y_val : default=None
            Validation scans: the recalibration and the threshold are chosen on them
            (instead of an inner cross-validation), and a classifier with
            ``early_stopping=True`` stops on them.

        Returns
        -------
        self
        """
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        check_classification_targets(y)
        classes, rule = np.unique(y), check_threshold(self.threshold)
        # Fewer than two classes, or input the classifier does not take: its own error.
        positive = self._positive(classes, rule) if len(classes) > 1 else None
        y_val = _checked_validation(X_val, y_val, classes)
        self.estimator_ = self._fit_estimator(X, y, X_val, y_val)
        self.classes_, self.pos_label_ = classes, positive
        if hasattr(self.estimator_, "n_features_in_"):
            self.n_features_in_ = self.estimator_.n_features_in_
        self.recalibration_, self.calibration_maps_, self.chosen_on_ = None, [], None
        self.threshold_ = None if positive is None or is_data_driven(rule) else float(rule)
        if self.recalibration is None and not is_data_driven(rule):
            return self
        if X_val is not None:
            truth, score = y_val, probabilities(self.estimator_, X_val, classes)
            self.chosen_on_ = f"the {len(truth)} validation scans"
        else:
            truth, score = y, self._out_of_fold(X, y, groups, rule)
        if self.recalibration is not None:
            score = self._fit_recalibration(score, truth)
        if is_data_driven(rule):
            self.threshold_ = float(choose_threshold(
                truth == positive, score[:, classes.tolist().index(positive)], rule))
        return self

    def _positive(self, classes, rule):
        """The positive class of two (see ``pos_label``), None for more."""
        from ._table import positive_class

        if len(classes) != 2:
            if rule != THRESHOLD:
                raise ValueError(f"threshold={rule!r} is for two classes; y has "
                                 f"{len(classes)}, and each scan takes its most probable "
                                 "class.")
            return positive_class(classes, pos_label=self.pos_label)  # None, or pos_label's error
        try:
            return positive_class(classes, pos_label=self.pos_label)
        except ValueError:
            if self.pos_label is not None or rule != THRESHOLD:
                raise
        return classes.tolist()[1]

    def _classifier(self):
        """A clone of ``estimator`` (of the default one for ``None``), unfitted."""
        if self.estimator is None:
            from ..classifiers import AttentionPoolClassifier

            return AttentionPoolClassifier()
        return clone(self.estimator)

    def _fit_estimator(self, X, y, X_val, y_val):
        estimator = self._classifier()
        stops_early = estimator.get_params().get("early_stopping") is True
        params = dict(X_val=X_val, y_val=y_val) if X_val is not None and stops_early else {}
        return estimator.fit(X, y, **params)

    def _out_of_fold(self, X, y, groups, rule):
        """Each training scan's probabilities from a clone fitted without it."""
        purpose = (f"threshold={rule!r}" if is_data_driven(rule)
                   else f"recalibration={self.recalibration!r}")
        X, y = indexable(X, y)
        score = np.full((len(y), len(self.classes_)), np.nan)
        folds = inner_splits(y, groups, purpose, self.cv, self.random_state)
        for train, test in folds:
            fitted = self._classifier().fit(_safe_indexing(X, train), y[train])
            score[test] = probabilities(fitted, _safe_indexing(X, test), self.classes_)
        self.chosen_on_ = (f"out-of-fold predictions of the {len(y)} training scans (an inner "
                           f"stratified {len(folds)}-fold cross-validation"
                           + (", grouped by subject)" if groups is not None else ")"))
        return score

    def _fit_recalibration(self, score, truth):
        """Fit the recalibration on ``score`` and return it recalibrated (unchanged,
        with a warning, where the fit would not increase with the probability)."""
        absent = sorted(set(self.classes_.tolist()) - set(truth.tolist()))
        if absent:
            raise ValueError(f"recalibration={self.recalibration!r} is fitted on "
                             f"{self.chosen_on_}, which have none of class {absent[0]!r}: "
                             "it needs every class there.")
        maps, reason = fit_maps(self.recalibration, score,
                                np.searchsorted(self.classes_, truth))
        if maps is None:
            warnings.warn(f"recalibration={self.recalibration!r} not applied to a fit: "
                          f"{reason}; that fit's probabilities are left as the classifier "
                          "gives them.", UserWarning, stacklevel=3)
            return score
        self.recalibration_, self.calibration_maps_ = self.recalibration, maps
        return apply_maps(self.recalibration, maps, score)

    def predict_proba(self, X):
        """Class probabilities, recalibrated, columns in ``classes_`` order."""
        check_fitted(self)
        proba = probabilities(self.estimator_, X, self.classes_)
        if self.recalibration_ is None:
            return proba
        return apply_maps(self.recalibration_, self.calibration_maps_, proba)

    def predict(self, X):
        """Labels: ``pos_label_`` where its probability is at least ``threshold_`` (two
        classes; at a probability of exactly 0.5 and the threshold 0.5, the positive
        class, as the evaluation calls it), else the most probable class."""
        proba = self.predict_proba(X)
        if self.threshold_ is None:
            return self.classes_[proba.argmax(axis=1)]
        return decide(proba, self.classes_, self.pos_label_, self.threshold_)

    @available_if(_has("attention_weights"))
    def attention_weights(self, X):
        """The wrapped classifier's slice attention."""
        check_fitted(self)
        return self.estimator_.attention_weights(X)

    @available_if(_has("volume_embeddings"))
    def volume_embeddings(self, X):
        """The wrapped classifier's learned volume embeddings."""
        check_fitted(self)
        return self.estimator_.volume_embeddings(X)

    def _restore(self, modules):
        """Check a loaded model's fields against each other (each was checked alone)."""
        two = len(self.classes_) == 2
        if two != (self.pos_label_ is not None) or two != (self.threshold_ is not None):
            raise ValueError("OperatingPointClassifier: pos_label_ and threshold_ must be "
                             "set for two classes, and None for more")
        if two and self.pos_label_ not in self.classes_.tolist():
            raise ValueError(f"OperatingPointClassifier: pos_label_ {self.pos_label_!r} is "
                             "not one of classes_")
        if np.asarray(self.estimator_.classes_).tolist() != self.classes_.tolist():
            raise ValueError("OperatingPointClassifier: classes_ differ from the wrapped "
                             "classifier's")
        if self.recalibration_ is None:
            if self.calibration_maps_:
                raise ValueError("OperatingPointClassifier: calibration maps without a "
                                 "recalibration_")
        else:
            check_maps(self.recalibration_, self.calibration_maps_, len(self.classes_))


def _checked_validation(X_val, y_val, classes):
    """``y_val`` as a 1D array of the training classes (None without validation scans)."""
    if (X_val is None) != (y_val is None):
        raise ValueError("X_val and y_val go together; got only "
                         f"{'X_val' if y_val is None else 'y_val'}.")
    if y_val is None:
        return None
    y_val = column_or_1d(y_val)
    check_consistent_length(X_val, y_val)
    unknown = sorted(set(y_val.tolist()) - set(classes.tolist()))
    if unknown:
        raise ValueError(f"y_val has class {unknown[0]!r}, which y does not have.")
    return y_val


def bare_classifier(model):
    """The classifier an OperatingPointClassifier wraps (fitted, if it is), or ``model``
    itself."""
    if not isinstance(model, OperatingPointClassifier):
        return model
    return model.estimator_ if hasattr(model, "estimator_") else model.estimator


def probabilities(model, X, classes):
    """``model``'s probabilities of ``X`` in the columns of ``classes``, matched to its
    ``classes_`` by class; ``ValueError`` naming a class it was not fitted on."""
    column = {c: i for i, c in enumerate(np.asarray(model.classes_).tolist())}
    missing = [c for c in np.asarray(classes).tolist() if c not in column]
    if missing:
        name = type(getattr(model, "estimator", model)).__name__
        raise ValueError(f"{name} was fitted on the classes {list(column)}, without "
                         f"{missing[0]!r}.")
    return model.predict_proba(X)[:, [column[c] for c in np.asarray(classes).tolist()]]


RECALIBRATION_NAMES = {"platt": "Platt scaling on the logit", "isotonic": "isotonic regression"}


def describe_operating_point(model):
    """A fitted :class:`~sklearn_dinoatten.OperatingPointClassifier`'s recalibration and
    operating point, in a sentence (for captions, ``predict`` and the model card)."""
    check_fitted(model)
    rule = check_threshold(model.threshold)
    chosen = is_data_driven(rule)
    call = ("each scan called its most probable class" if model.threshold_ is None else
            f"{model.pos_label_!r} called where its probability is at least "
            f"{model.threshold_:.4g}" + (f" (the rule {rule!r})" if chosen else ""))
    parts = []
    if model.recalibration_ is not None:
        parts.append(f"probabilities recalibrated by {RECALIBRATION_NAMES[model.recalibration_]}"
                     + ("" if chosen else f", fitted on {model.chosen_on_}"))
    elif model.recalibration is not None:
        parts.append(f"recalibration={model.recalibration!r} not applied (its fit on "
                     f"{model.chosen_on_} would not have kept the order of the probabilities)")
    both = "both " if model.recalibration_ is not None else ""
    parts.append(call + (f", {both}chosen on {model.chosen_on_}" if chosen else ""))
    text = "; ".join(parts)
    return text[0].upper() + text[1:]
