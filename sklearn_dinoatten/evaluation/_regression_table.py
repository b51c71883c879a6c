"""The metrics table of a number predicted per scan, per method and per subgroup level,
from the registry's regression metrics, and the caption that says how it was made."""

import warnings
from dataclasses import replace
from functools import partial

import numpy as np

from ._methods import REFERENCE, method_name
from ._metrics import bootstrap_cis
from ._registry import METRICS
from ._regression_out_of_fold import INNER_FOLDS
from ._subgroups import MIN_SCANS, subgroup_rows
from ._table import N_RESAMPLES, metric_row


def regression_scored(results):
    """The samples every method predicted (all of them in cross-validation)."""
    return np.logical_and.reduce([~np.isnan(r.pred) for r in results.values()])


def regression_table(y, results, *, reference=REFERENCE, groups=None,
                     n_resamples=N_RESAMPLES, random_state=0):
    """One row of the regression metrics of :data:`~sklearn_dinoatten.evaluation.METRICS`
    per method, from the scored samples' predictions: each with a bootstrap 95 % CI
    where it has one (of subjects with ``groups``, not stratified), the difference in
    MAE from the ``reference`` method on the same resamples, and the Wilcoxon test of
    the absolute errors against it (of subjects' mean errors with ``groups``).

    ``results``: method key -> ``RegressionOutOfFold``. Rows have the keys
    ``metric_columns(task="regression")``.
    """
    scored = regression_scored(results)
    y = np.asarray(y, dtype=np.float64)[scored]
    groups = None if groups is None else np.asarray(groups)[scored]
    bootstrap = partial(bootstrap_cis, n_resamples=n_resamples, stratified=False,
                        groups=groups, random_state=random_state)
    rows = []
    for key, result in results.items():
        pred = result.pred[scored]
        compared = (results[reference].pred[scored]
                    if reference in results and key != reference else None)
        values = _values(y, pred, compared, bootstrap, groups)
        values.update({name: metric.of_method(result, False) for name, metric in
                       _regression_metrics() if metric.of_method})
        rows.append(metric_row(method_name(key), values, task="regression"))
    return rows


def _regression_metrics():
    return [(name, metric) for name, metric in METRICS.items()
            if "regression" in metric.tables]


def _values(y, pred, compared, bootstrap, groups):
    """The metrics of ``pred`` (and of it against ``compared``, None without), those
    with an interval on the same resamples of the pairs."""
    both = np.column_stack([pred, pred if compared is None else compared])
    functions = {name: partial(_of_prediction, metric.regression)
                 for name, metric in _regression_metrics() if metric.regression}
    if compared is not None:
        functions.update({name: partial(_of_pair, metric.compare)
                          for name, metric in _regression_metrics()
                          if metric.compare and metric.interval})
    values = bootstrap({n: f for n, f in functions.items() if METRICS[n].interval}, y, both)
    values.update({n: f(y, both) for n, f in functions.items() if not METRICS[n].interval})
    values.update({name: metric.compare(y, pred, compared, groups)
                   for name, metric in _regression_metrics()
                   if metric.compare and (compared is None or not metric.interval)})
    return values


def _of_prediction(function, y, both):
    return function(y, both[:, 0])


def _of_pair(function, y, both):
    return function(y, both[:, 0], both[:, 1], None)


def regression_subgroup_table(y, results, subgroups, *, reference, groups=None,
                              random_state=0):
    """Rows of :func:`regression_table` per subgroup level, each with ``subgroup``,
    ``level``, ``n_scans``, ``n_subjects`` (None without ``groups``) and ``note`` (a
    level of fewer than ``MIN_SCANS`` scans is too small to say anything, and warned)."""
    scored = regression_scored(results)
    y = np.asarray(y, dtype=np.float64)

    def level_rows(name, level, member):
        n_scans = int(member.sum())
        note = ""
        if n_scans < MIN_SCANS:
            note = f"too small to say anything: {n_scans} scans"
            warnings.warn(f"Subgroup {name}={level!r}: {note}.", UserWarning, stacklevel=5)
        if n_scans < 2:  # no spread to compare against: no metrics
            return note, None
        return note, regression_table(
            y[member], {k: replace(r, pred=r.pred[member], embedding=None, attention=None)
                        for k, r in results.items()},
            reference=reference, random_state=random_state,
            groups=None if groups is None else np.asarray(groups)[member])

    return subgroup_rows(results, subgroups, scored, groups=groups, task="regression",
                         level_rows=level_rows)


def regression_caption(protocol, target, *, reference=REFERENCE, n_resamples=N_RESAMPLES,
                       random_weights=False, encoders=(), bias_correction=None, floor=True,
                       compared=True):
    """What the regression table shows and how it was computed, in a few sentences;
    ``target``: its name (and units) as the tables should call it; ``floor``: whether
    the table has the training-mean row; ``compared``: whether it compares methods with
    the reference."""
    grouped = protocol.groups is not None
    unit = "subjects (a cluster bootstrap)" if grouped else "scans"
    sentences = [
        f"Protocol: {protocol.description}.",
        f"Target: {target}. MAE, RMSE and the mean error (prediction - target) in its "
        "units; R\u00b2 of the predictions (scikit-learn's r2_score: 0 is the test scans' "
        "own mean, below 0 worse); Pearson r and Spearman \u03c1 of prediction and target; "
        "r(error, target): the correlation of the error with the target, negative when "
        "predictions regress to the mean (the bias of the brain-age delta).",
        f"95 % CIs: {n_resamples} bootstrap resamples of {unit}.",
    ]
    if floor:
        sentences.append("Training mean: each test scan predicted by the mean target of its "
                         "split's training scans, the floor every method must beat.")
    if compared:
        sentences.append(
            f"\u0394MAE: the method's MAE minus {method_name(reference)}'s on the same "
            "scans, its CI on the same resamples; Wilcoxon p: two-sided signed-rank test of "
            "the absolute errors against it" + (", of each subject's mean absolute error."
                                                if grouped else "."))
    if bias_correction:
        where = ("on the validation scans" if all(s.validation is not None
                                                 for s in protocol.splits) else
                 f"on out-of-fold predictions of each split's training scans (an inner "
                 f"{INNER_FOLDS}-fold cross-validation)")
        sentences.append(
            "Bias-corrected rows: the prediction less the error a line of the error on the "
            f"target expects, the line fitted {where}, never on the scans scored. The "
            "correction uses each test scan's own target, so its figures describe the "
            "delta after correction, not an accuracy a new scan of unknown target would "
            "get (the corrected training mean, a model of nothing, shows how good they look "
            "by the correction alone); the uncorrected rows are the predictions.")
    if len(encoders) > 1:
        sentences.append(f"Slice encoders compared: {', '.join(encoders)}; the encoder of "
                         "each method on slice embeddings is named in brackets.")
    if random_weights:
        sentences.append("RANDOM backbone weights: the slice methods' scores show the "
                         "machinery, not the foundation model.")
    return " ".join(sentences)
