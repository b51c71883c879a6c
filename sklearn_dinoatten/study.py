"""Compare methods in one cross-validation: the machinery behind ``dinoatten cv`` and
``benchmarks/compare_methods.py``.

Every method sees the same folds, so the out-of-fold scores are paired and DeLong's
test applies. Embedding-based methods share one embedding array; the 3D ResNet
trains on resampled volumes.
"""

import time
from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from .classifiers import (
    AttentionPoolClassifier,
    ResNet3DClassifier,
    SCMILClassifier,
    SliceTransformerClassifier,
)
from .metrics import bootstrap_ci, delong_test, false_negative_rate

METHODS = {
    "dinoatten3d": "DinoAtten3D",
    "attention-ce": "Attention, CE only",
    "mean": "Mean pooling",
    "gated": "Gated attention",
    "mst": "MST aggregator",
    "scmil": "SC-MIL",
    "resnet3d": "3D ResNet",
}
REFERENCE = "dinoatten3d"
METRIC_COLUMNS = ("method", "accuracy", "balanced_accuracy", "auc", "auc_ci_low",
                  "auc_ci_high", "f1", "fnr", "fit_seconds_per_fold", "delong_p")


def make_method(key, max_epochs=50, random_state=0, class_weight=None, resnet_depth=18,
                resnet_width=1.0):
    """An unfitted classifier for a method of :data:`METHODS`.

    ``"resnet3d"`` takes resampled volumes (see :func:`uses_volumes`); the others take
    slice embeddings.
    """
    common = dict(max_epochs=max_epochs, random_state=random_state, class_weight=class_weight)
    if key == "resnet3d":
        return ResNet3DClassifier(depth=resnet_depth, widen_factor=resnet_width,
                                  batch_size=8, **common)
    builders = {
        "dinoatten3d": lambda: AttentionPoolClassifier(**common),
        "attention-ce": lambda: AttentionPoolClassifier(supcon_weight=0.0, variance_weight=0.0,
                                                        **common),
        "mean": lambda: AttentionPoolClassifier(pooling="mean", **common),
        "gated": lambda: AttentionPoolClassifier(pooling="gated", **common),
        "mst": lambda: SliceTransformerClassifier(**common),
        "scmil": lambda: SCMILClassifier(**common),
    }
    if key not in builders:
        raise ValueError(f"method must be one of {list(METHODS)}; got {key!r}.")
    return builders[key]()


def uses_volumes(key):
    """Whether a method trains on whole volumes rather than slice embeddings."""
    return key == "resnet3d"


def make_splits(y, n_folds=5, groups=None, random_state=0):
    """Stratified folds ``[(train, test), ...]``, grouped when ``groups`` is given so that
    no group (subject) is in a training and a test set at once."""
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < n_folds:
        raise ValueError(
            f"Class {classes[counts.argmin()].item()!r} has {counts.min()} scans, fewer than the "
            f"{n_folds} folds: every test fold needs one; lower the number of folds."
        )
    if groups is None:
        cv = StratifiedKFold(n_folds, shuffle=True, random_state=random_state)
    else:
        if len(np.unique(groups)) < n_folds:
            raise ValueError(f"{len(np.unique(groups))} subjects cannot fill {n_folds} folds.")
        cv = StratifiedGroupKFold(n_folds, shuffle=True, random_state=random_state)
    return list(cv.split(np.zeros(len(y)), y, groups))


@dataclass
class OutOfFold:
    """Out-of-fold outputs of one method: each sample predicted by the fold that held it out."""

    proba: np.ndarray  # (n_samples, n_classes)
    embedding: np.ndarray  # (n_samples, dim): the learned volume embedding
    attention: np.ndarray | None  # (n_samples, n_slices), None without slice attention
    fit_seconds: list


def cross_validate_method(estimator, X, y, splits):
    """Fit a clone of ``estimator`` on each training fold; collect the test folds' outputs."""
    y = np.asarray(y)
    proba, embedding, attention, fit_seconds = None, None, None, []
    for train, test in splits:
        model = clone(estimator)
        start = time.perf_counter()
        model.fit(X[train], y[train])
        fit_seconds.append(time.perf_counter() - start)
        fold_proba = model.predict_proba(X[test])
        fold_embedding = model.volume_embeddings(X[test])
        if proba is None:
            proba = np.zeros((len(y), fold_proba.shape[1]))
            embedding = np.zeros((len(y), fold_embedding.shape[1]), dtype=np.float32)
            if hasattr(model, "attention_weights"):
                attention = np.zeros((len(y), X.shape[1]))
        proba[test], embedding[test] = fold_proba, fold_embedding
        if attention is not None:
            attention[test] = model.attention_weights(X[test])
    return OutOfFold(proba, embedding, attention, fit_seconds)


def metrics_table(y, results, reference=REFERENCE, n_resamples=1000, random_state=0):
    """One row of metrics per method from out-of-fold probabilities.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
    results : dict of method key -> OutOfFold
        Probability columns in sorted-label order (``classes_``).
    reference : str
        The method every other is compared with by DeLong's test (binary only).

    Returns
    -------
    rows : list of dict with keys :data:`METRIC_COLUMNS`
        Binary labels: the score is the probability of the larger label; AUC with a
        stratified bootstrap CI, F1 and false-negative rate of that label. More classes:
        one-vs-rest macro AUC and macro F1; FNR and DeLong are NaN.
    """
    y = np.asarray(y)
    classes = np.unique(y)
    binary = len(classes) == 2
    rows = []
    for key, result in results.items():
        predicted = classes[result.proba.argmax(axis=1)]
        if binary:
            truth, score = (y == classes[1]).astype(int), result.proba[:, 1]
            auc = bootstrap_ci(roc_auc_score, truth, score, n_resamples=n_resamples,
                               random_state=random_state)
            f1 = f1_score(y, predicted, pos_label=classes[1])
            fnr = false_negative_rate(y, predicted, pos_label=classes[1])
            delong_p = (delong_test(truth, score, results[reference].proba[:, 1])[3]
                        if reference in results and key != reference else np.nan)
        else:
            def macro_auc(truth, proba):
                return roc_auc_score(truth, proba, multi_class="ovr", labels=classes)

            auc = bootstrap_ci(macro_auc, y, result.proba, n_resamples=n_resamples,
                               random_state=random_state)
            f1, fnr, delong_p = f1_score(y, predicted, average="macro"), np.nan, np.nan
        rows.append(dict(zip(METRIC_COLUMNS, (
            METHODS.get(key, key), accuracy_score(y, predicted),
            balanced_accuracy_score(y, predicted), *auc, f1, fnr,
            float(np.mean(result.fit_seconds)), delong_p,
        ), strict=True)))
    return rows


def to_markdown(rows, reference=REFERENCE):
    """The metrics table in Markdown; NaN shows as ``-``."""
    def number(value, spec=".3f"):
        return "-" if np.isnan(value) else format(value, spec)

    header = ["method", "acc", "bal. acc", "AUC [95% CI]", "F1", "FNR", "fit s/fold",
              f"DeLong p vs {METHODS.get(reference, reference)}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append(
            f"| {r['method']} | {number(r['accuracy'])} | {number(r['balanced_accuracy'])} | "
            f"{number(r['auc'])} [{number(r['auc_ci_low'])}, {number(r['auc_ci_high'])}] | "
            f"{number(r['f1'])} | {number(r['fnr'])} | {number(r['fit_seconds_per_fold'], '.1f')}"
            f" | {number(r['delong_p'], '.3g')} |"
        )
    return "\n".join(lines)
