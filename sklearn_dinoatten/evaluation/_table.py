"""The metrics table of a study and the caption that says how it was computed: the
positive class, the bootstrap intervals (of subjects when scans are grouped) and
DeLong's test against the reference method.
"""

from functools import partial

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from ._methods import REFERENCE, method_name
from ._metrics import (
    binary_auc,
    bootstrap_ci,
    delong_test,
    false_negative_rate,
    ovr_macro_auc,
    sensitivity_score,
    specificity_score,
)
from ._runs import METRIC_COLUMNS

N_RESAMPLES = 1000


def positive_class(y, pos_label=None):
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


def metrics_table(y, results, reference=REFERENCE, pos_label=None, groups=None,
                  n_resamples=N_RESAMPLES, random_state=0):
    """One row of metrics per method, from the scored samples' probabilities.

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

    Returns
    -------
    rows : list of dict with keys :data:`METRIC_COLUMNS`
        Binary labels: the score is the positive class's probability; AUC with a
        stratified bootstrap CI, sensitivity, specificity, F1 and false-negative rate
        of that class. More classes: one-vs-rest macro AUC and macro F1; sensitivity,
        specificity, FNR and DeLong are NaN.
    """
    scored = scored_samples(results)
    y = np.asarray(y)[scored]
    groups = None if groups is None else np.asarray(groups)[scored]
    classes = np.unique(np.asarray(y))
    positive = positive_class(y, pos_label)
    rows = []
    for key, result in results.items():
        proba = result.proba[scored]
        predicted = classes[proba.argmax(axis=1)]
        if positive is not None:
            column = list(classes).index(positive)
            truth, score = (y == positive).astype(int), proba[:, column]
            auc = bootstrap_ci(binary_auc, truth, score, n_resamples=n_resamples,
                               groups=groups, random_state=random_state)
            sensitivity = sensitivity_score(y, predicted, pos_label=positive)
            specificity = specificity_score(y, predicted, pos_label=positive)
            f1 = f1_score(y, predicted, pos_label=positive)
            fnr = false_negative_rate(y, predicted, pos_label=positive)
            delong_p = (delong_test(truth, score, results[reference].proba[scored, column],
                                    groups=groups)[3]
                        if reference in results and key != reference else np.nan)
        else:
            auc = bootstrap_ci(partial(ovr_macro_auc, classes=classes), y, proba,
                               n_resamples=n_resamples, groups=groups,
                               random_state=random_state)
            f1 = f1_score(y, predicted, average="macro")
            sensitivity = specificity = fnr = delong_p = np.nan
        rows.append(dict(zip(METRIC_COLUMNS, (
            method_name(key), accuracy_score(y, predicted),
            balanced_accuracy_score(y, predicted), *auc, sensitivity, specificity, f1, fnr,
            float(np.mean(result.fit_seconds)), delong_p,
        ), strict=True)))
    return rows


def caption(protocol, positive, reference=REFERENCE, n_resamples=N_RESAMPLES,
            random_weights=False, encoders=()):
    """What the metrics table shows and how it was computed, in a few sentences;
    ``encoders``: the slice encoders a study of several compares."""
    grouped = protocol.groups is not None
    unit = "subjects (a cluster bootstrap)" if grouped else "scans"
    sentences = [
        f"Protocol: {protocol.description}.",
        ("Positive class: " + repr(positive) + "." if positive is not None else
         "More than two classes: macro one-vs-rest AUC and macro F1."),
        f"AUC: 95 % CI of {n_resamples} bootstrap resamples of {unit}, stratified by class.",
    ]
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
