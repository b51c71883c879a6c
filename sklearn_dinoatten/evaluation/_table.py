"""The metrics table of a study and the caption that says how it was computed: the
positive class, the bootstrap intervals (of subjects when scans are grouped) and
DeLong's test against the reference method.
"""

from functools import partial

import numpy as np

from ..utils._options import THRESHOLD
from ._clinical import INNER_FOLDS, is_data_driven
from ._methods import REFERENCE, method_name
from ._metrics import bootstrap_cis
from ._operating_point import RECALIBRATION_NAMES
from ._registry import METRICS, metric_columns

N_RESAMPLES = 1000


def positive_class(y, *, pos_label=None):
    """The positive class of binary labels ``y``: AUC, sensitivity, F1 and the ROC
    are computed for it.

    ``pos_label`` names it (compared as given or as text, so ``"1"`` finds ``1``).
    Without it, labels ``{0, 1}``, ``{-1, 1}`` and ``{False, True}`` (also as text)
    take ``1`` / ``True``; any other pair is ambiguous and raises ``ValueError``
    listing the classes. Returns ``None`` for more than two classes.

    Examples
    --------
    >>> from sklearn_dinoatten.evaluation import positive_class
    >>> positive_class([0, 1, 1]), positive_class(["AD", "HC"], pos_label="AD")
    (1, 'AD')
    """
    classes = np.unique(y)
    names = [str(c) for c in classes]
    if len(classes) != 2:
        if pos_label is not None:
            raise ValueError(f"pos_label is for two classes; the labels have {len(classes)}: "
                             f"{names}.")
        return None
    if pos_label is not None:
        found = [c for c, name in zip(classes, names, strict=True)
                 if name == str(pos_label)]
        if not found:
            raise ValueError(f"pos_label {pos_label!r} is not one of the classes {names}.")
        return found[0].item()
    if {name.lower() for name in names} in ({"0", "1"}, {"-1", "1"}, {"false", "true"}):
        return classes[[name.lower() in ("1", "true") for name in names].index(True)].item()
    raise ValueError(
        f"The classes are {names}: say which is the positive class (pos_label=, or "
        "--pos-label on the command line); AUC, sensitivity, F1 and the ROC are computed "
        "for it."
    )


def scored_samples(results):
    """The samples every method predicted (all of them in cross-validation)."""
    return np.logical_and.reduce([~np.isnan(r.proba).any(axis=1) for r in results.values()])


def metrics_table(y, results, *, reference=REFERENCE, pos_label=None, groups=None,
                  n_resamples=N_RESAMPLES, random_state=0):
    """One row of metrics per method, from the scored samples' probabilities: each metric
    of :data:`~sklearn_dinoatten.evaluation.METRICS` defined for the labels' task.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
    results : dict of method key -> OutOfFold
        Probability columns in the order of ``np.unique(y)``.
    reference : str
        The method every other is compared with by DeLong's test (binary only).
    pos_label : label or None
        The positive class of binary labels (see :func:`positive_class`).
    groups : array-like of shape (n_samples,) or None
        The subject of each sample: the bootstrap resamples subjects and DeLong's test
        is clustered by subject.
    n_resamples, random_state : int
        Of the bootstrap.

    Returns
    -------
    rows : list of dict with keys ``metric_columns()``
        Binary labels: the score is the positive class's probability; a scan is called
        positive when it is at least its split's threshold (``OutOfFold.threshold``;
        0.5 without one). AUC, the operating point (accuracy, sensitivity,
        specificity, PPV, NPV) and the Brier score with bootstrap CIs (stratified, of
        subjects with ``groups``), the mean threshold, F1 and false-negative rate,
        the calibration intercept and slope and the ECE. More classes: one-vs-rest
        macro AUC, accuracy at the most probable class and the multi-class Brier score
        with CIs, macro F1 and the mean one-vs-rest ECE; thresholds, the operating
        point, calibration intercept and slope and DeLong are not defined for them
        (NaN): :func:`per_class_table` has each class against the rest.
    """
    scored = scored_samples(results)
    y = np.asarray(y)[scored]
    groups = None if groups is None else np.asarray(groups)[scored]
    classes = np.unique(y)
    positive = positive_class(y, pos_label=pos_label)
    bootstrap = partial(bootstrap_cis, n_resamples=n_resamples, groups=groups,
                        random_state=random_state)
    rows = []
    for key, result in results.items():
        proba = result.proba[scored]
        if positive is not None:
            column = list(classes).index(positive)
            cut = (np.full(len(y), THRESHOLD) if result.threshold is None
                   else result.threshold[scored])
            compared = (results[reference].proba[scored, column]
                        if reference in results and key != reference else None)
            values = _two_class(y == positive, proba[:, column], cut, compared, bootstrap,
                                groups)
        else:
            values = _multiclass(y, proba, classes, bootstrap)
        values.update({name: metric.of_method(result, positive is not None)
                       for name, metric in METRICS.items()
                       if metric.of_method and "classification" in metric.tables})
        rows.append(metric_row(method_name(key), values))
    return rows


def per_class_table(y, results, *, reference=REFERENCE, groups=None,
                    n_resamples=N_RESAMPLES, random_state=0):
    """For more than two classes, each class against the rest: rows of the two-class
    columns of :func:`metrics_table` per class and method, with ``class``. The score is
    the class's probability and a scan is called the class where it is the most
    probable (the multi-class decision), so the operating point is that of the
    multi-class predictions; DeLong's test compares the class's AUC with the
    reference's. ``threshold`` and fit times are not defined per class (NaN)."""
    scored = scored_samples(results)
    y = np.asarray(y)[scored]
    groups = None if groups is None else np.asarray(groups)[scored]
    classes = np.unique(y)
    bootstrap = partial(bootstrap_cis, n_resamples=n_resamples, groups=groups,
                        random_state=random_state)
    probas = {key: result.proba[scored] for key, result in results.items()}
    rows = []
    for c, label in enumerate(classes):
        for key, proba in probas.items():
            compared = (probas[reference][:, c]
                        if reference in probas and key != reference else None)
            cut = np.where(proba.argmax(axis=1) == c, -np.inf, np.inf)  # most probable
            rows.append({"class": label.item(), **metric_row(method_name(key), _two_class(
                y == label, proba[:, c], cut, compared, bootstrap, groups))})
    return rows


def metric_row(method, values, *, task="classification"):
    """A row of ``metric_columns(task=task)``: ``values`` maps a metric to its value, or to
    ``(value, low, high)`` with its interval; NaN where it has none."""
    row = dict.fromkeys(metric_columns(task=task), np.nan)
    row["method"] = method
    for name, value in values.items():
        if isinstance(value, tuple):
            row.update({name: value[0], f"{name}_ci_low": value[1],
                        f"{name}_ci_high": value[2]})
        else:
            row[name] = value
    return row


def _two_class(truth, score, cut, compared, bootstrap, groups):
    """The two-class metrics of a score for ``truth`` (boolean), calling positive the
    scans whose score is at least their ``cut``; the comparisons against the
    ``compared`` score (None without)."""
    truth, called = np.asarray(truth, dtype=int), (score >= cut).astype(int)
    values = _computed({name: partial(_of_score_and_calls, metric.binary)
                        for name, metric in METRICS.items() if metric.binary},
                       truth, np.column_stack([score, called]), bootstrap)
    values.update({name: metric.compare(truth, score, compared, groups)
                   for name, metric in METRICS.items()
                   if metric.compare and "classification" in metric.tables})
    return values


def _of_score_and_calls(function, truth, score_and_calls):
    """A two-class metric of the score and calls stacked as two columns (as the
    bootstrap resamples them)."""
    return function(truth, score_and_calls[:, 0], score_and_calls[:, 1].astype(int))


def _multiclass(y, proba, classes, bootstrap):
    """The metrics of more than two classes."""
    return _computed({name: partial(metric.multiclass, classes=classes)
                      for name, metric in METRICS.items() if metric.multiclass},
                     y, proba, bootstrap)


def _computed(functions, y, scores, bootstrap):
    """Each metric of ``functions`` (name -> ``function(y, scores)``), those with an
    interval on the same bootstrap resamples."""
    values = bootstrap({name: function for name, function in functions.items()
                        if METRICS[name].interval}, y, scores)
    values.update({name: function(y, scores) for name, function in functions.items()
                   if not METRICS[name].interval})
    return values


def caption(protocol, positive, *, reference=REFERENCE, n_resamples=N_RESAMPLES,
            random_weights=False, encoders=(), threshold=THRESHOLD, recalibration=None,
            operating_points=None, not_recalibrated=None):
    """What the metrics table shows and how it was computed, in a few sentences;
    ``encoders``: the slice encoders a study of several compares; ``threshold``: the
    operating point's rule (two classes); ``recalibration``: ``"platt"``,
    ``"isotonic"`` or ``None``; ``operating_points``: method name -> how a model fitted
    elsewhere calls the scans (an external test at the models' own operating points),
    in place of the rule and the recalibration; ``not_recalibrated``: method name ->
    ``(splits whose recalibration was not applied, splits)``."""
    grouped = protocol.groups is not None
    unit = "subjects (a cluster bootstrap)" if grouped else "scans"
    sentences = [
        f"Protocol: {protocol.description}.",
        ("Positive class: " + repr(positive) + "." if positive is not None else
         "More than two classes: macro one-vs-rest AUC, accuracy at the most probable "
         "class, macro F1, the multi-class Brier score and the mean one-vs-rest ECE; each "
         "class against the rest (its AUC, operating point at the most probable class, "
         "calibration and DeLong's test) in per_class.csv. Not defined for more than two "
         "classes as a whole: a threshold (each scan takes its most probable class), one "
         "sensitivity, specificity, PPV or NPV, the calibration intercept and slope, "
         "DeLong's test and decision curves."),
        f"95 % CIs: {n_resamples} bootstrap resamples of {unit}, stratified by class.",
    ]
    on_validation = all(split.validation is not None for split in protocol.splits)
    where = ("on the validation scans" if on_validation else
             f"on out-of-fold predictions of each {'split' if protocol.held_out else 'fold'}'s "
             f"training scans (an inner {INNER_FOLDS}-fold cross-validation)")
    if recalibration is not None:
        sentences.append(f"Recalibrated probabilities: {RECALIBRATION_NAMES[recalibration]}, "
                         f"fitted {where}"
                         + ("" if on_validation else ", the model then refitted on them all")
                         + ", never on the scans scored; every metric is of the "
                         "recalibrated probabilities.")
        if not_recalibrated:
            sentences.append("Not applied where its fit would have reversed or erased the "
                             "order of the probabilities (those splits keep the classifier's "
                             "own): " + ", ".join(f"{name} in {n} of {total} splits" for name,
                                                 (n, total) in not_recalibrated.items()) + ".")
    if operating_points:
        sentences.append("Operating point and calibration: each model's own, as it was "
                         "fitted: " + "; ".join(f"{name}: {text[0].lower()}{text[1:]}"
                                                for name, text in operating_points.items())
                         + ".")
    elif positive is not None:
        if is_data_driven(threshold):
            sentences.append(f"Operating point: a scan is positive when its probability is "
                             f"at least a threshold chosen by the rule {threshold!r} {where}, "
                             "never on the scans it is applied to; the table shows the mean "
                             "threshold, run.json each split's.")
        else:
            sentences.append(f"Operating point: a scan is positive when its probability is "
                             f"at least {threshold:g}.")
    if positive is not None:
        sentences.append(
            "Calibration: Brier score (0 is perfect); intercept and slope of logistic "
            "recalibration (0 and 1 when calibrated); ECE over 10 equal-width bins.")
    if len(encoders) > 1:
        sentences.append(f"Slice encoders compared: {', '.join(encoders)}; the encoder of "
                         "each method on slice embeddings is named in brackets, and all were "
                         "evaluated on the same splits.")
    if positive is not None:
        sentences.append(
            f"DeLong p: two-sided test of each AUC against {method_name(reference)}'s "
            "on the same scans" + (", clustered by subject (Obuchowski 1997)." if grouped
                                   else ".")
        )
    if random_weights:
        sentences.append("RANDOM backbone weights: the slice methods' scores show the "
                         "machinery, not the foundation model.")
    return " ".join(sentences)
