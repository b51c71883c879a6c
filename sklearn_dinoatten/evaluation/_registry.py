"""The metrics of a study, one record each: what every table, file and header of a run
reads (``metrics.csv``'s columns, ``metrics.md``, ``per_class.*``, ``subgroups.*``, the
report) and :data:`SCORERS` are made from. A metric added to :data:`METRICS` is
computed, given its interval, written and shown in every table and file of the runs
that follow, and nothing else has to change::

    from sklearn_dinoatten.evaluation import METRICS, Metric

    def youden_j(truth, score, called):  # sensitivity + specificity - 1
        return called[truth == 1].mean() - called[truth == 0].mean()

    METRICS["youden_j"] = Metric("Youden J", "Operating point", binary=youden_j,
                                 interval=True, subgroup=True)

Two classes: a metric of the truth (1 for the positive class, else 0), the positive
class's probability ``score`` and the calls ``called`` (1 where ``score`` is at least
its split's threshold, else 0). More classes: of the labels, the probabilities (columns
in ``classes`` order) and the classes. A number (regression): of the targets and the
predictions. Some are of a method rather than of its predictions (its mean threshold,
its fit time), or of a comparison with the reference method (DeLong's test; the
difference in MAE). A metric belongs to the task whose :data:`TABLES` hold its table.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    make_scorer,
)

from ..utils._options import THRESHOLD
from ._clinical import (
    brier_score,
    calibration_intercept,
    calibration_slope,
    expected_calibration_error,
    operating_point,
)
from ._metrics import (
    MIN_CLUSTERS,
    binary_auc,
    clusters_of_each_class,
    delong_test,
    false_negative_rate,
    ovr_macro_auc,
    sensitivity_score,
    specificity_score,
)
from ._regression_metrics import (
    error_target_correlation,
    mae_difference,
    mean_absolute_error,
    mean_error,
    pearson_r,
    r2,
    root_mean_squared_error,
    spearman_rho,
    wilcoxon_absolute_errors,
)

# The groups of the tables of each task, in their order: each table a few columns, so
# that it fits a page on screen and in print
TABLES = {
    "classification": ("Discrimination", "Operating point",
                       "Decisions at the operating point", "Calibration"),
    "regression": ("Error", "Agreement", "Bias"),
}


@dataclass(frozen=True, repr=False)
class Metric:
    """One metric: its ``header`` in the tables and the ``table`` it belongs to (one of
    :data:`TABLES`; a dict of task -> table for a metric of both tasks), how it is
    computed, whether it gets a bootstrap ``interval`` (95 %, of subjects in grouped
    runs) and whether the subgroup tables show it (``subgroup``); ``text``: its format
    in the tables.

    Computed by one or more of: ``binary(truth, score, called)`` for two classes;
    ``multiclass(y, proba, classes)`` for more; ``regression(y, pred)`` for a number;
    ``of_method(result, binary)`` of a method's out-of-fold result (not of its
    predictions: no interval); ``compare(truth, score, reference_score, groups)``
    against the reference method's score (a number: ``compare(y, pred,
    reference_pred, groups)``, with an interval where ``interval``). A metric without
    a function for the labels at hand (two classes or more) is NaN there.

    ``labels(y_true, y_pred, pos_label=1)``, the metric of predicted labels in
    scikit-learn's form, makes it a scorer of :data:`SCORERS` under the name ``scorer``;
    ``greater_is_better`` says which way is better.
    """

    header: str
    table: str | dict
    binary: Callable | None = None
    multiclass: Callable | None = None
    regression: Callable | None = None
    of_method: Callable | None = None
    compare: Callable | None = None
    interval: bool = False
    subgroup: bool = False
    text: str = ".3f"
    labels: Callable | None = None
    scorer: str | None = None
    greater_is_better: bool = True

    def __repr__(self):  # what it is and of what, not where its functions live
        given = [f"{name}=..." for name in ("binary", "multiclass", "regression",
                                             "of_method", "compare", "labels")
                 if getattr(self, name) is not None]
        flags = [f"{flag}=True" for flag in ("interval", "subgroup") if getattr(self, flag)]
        return f"Metric({', '.join([repr(self.header), repr(self.table), *given, *flags])})"

    @property
    def tables(self):
        """Task -> the table the metric is in, for each task it belongs to."""
        if isinstance(self.table, dict):
            return dict(self.table)
        return {task: self.table for task, tables in TABLES.items() if self.table in tables}


def _predicted(y, proba, classes):
    return np.asarray(classes)[np.asarray(proba).argmax(axis=1)]


def _onehot(y, classes):
    """(n_samples, n_classes): 1.0 where a sample's label is the column's class."""
    return (np.asarray(y)[:, None] == np.asarray(classes)[None, :]).astype(float)


def _multiclass_brier(y, proba, classes):
    """The multi-class Brier score: the mean over scans of the squared distance between
    the probabilities and the one-hot truth (0 is perfect, 2 the worst)."""
    return float(np.mean(np.sum((proba - _onehot(y, classes)) ** 2, axis=1)))


def _mean_ece(y, proba, classes):
    """The mean of each class's one-against-rest ECE."""
    onehot = _onehot(y, classes)
    return float(np.mean([expected_calibration_error(onehot[:, c], proba[:, c])
                          for c in range(len(classes))]))


def _delong_p(truth, score, compared, groups):
    """DeLong's p of ``score`` against ``compared``: NaN without one, or where a class
    has fewer subjects than the clustered test needs (a small subgroup level, a test
    set of one positive subject)."""
    if compared is None or groups is not None and min(
            clusters_of_each_class(truth, groups)) < MIN_CLUSTERS:
        return np.nan
    return delong_test(truth, score, compared, groups=groups)[3]


def _share(name):
    """An operating-point share of the calls (see ``operating_point``)."""
    return lambda truth, score, called: operating_point(truth, called)[name]


def _threshold(result, binary):
    if not binary:
        return np.nan
    return float(np.mean(result.thresholds)) if result.thresholds else THRESHOLD


METRICS = {
    "auc": Metric("AUC", "Discrimination", interval=True, subgroup=True,
                  binary=lambda truth, score, called: binary_auc(truth, score),
                  multiclass=lambda y, proba, classes: ovr_macro_auc(y, proba, classes)),
    "delong_p": Metric("DeLong p", "Discrimination", compare=_delong_p, text="#.3g"),
    "fit_seconds_per_fold": Metric(
        "fit s/fold", {"classification": "Discrimination", "regression": "Error"}, text=".1f",
        of_method=lambda result, binary: float(np.mean(result.fit_seconds))),
    "threshold": Metric("threshold", "Operating point", of_method=_threshold,
                        subgroup=True),
    "sensitivity": Metric("sens.", "Operating point", binary=_share("sensitivity"),
                          interval=True, subgroup=True, labels=sensitivity_score,
                          scorer="sensitivity"),
    "specificity": Metric("spec.", "Operating point", binary=_share("specificity"),
                          interval=True, subgroup=True, labels=specificity_score,
                          scorer="specificity"),
    "ppv": Metric("PPV", "Operating point", binary=_share("ppv"), interval=True),
    "npv": Metric("NPV", "Operating point", binary=_share("npv"), interval=True),
    "accuracy": Metric("acc.", "Decisions at the operating point", interval=True,
                       binary=_share("accuracy"),
                       multiclass=lambda y, proba, classes: accuracy_score(
                           y, _predicted(y, proba, classes))),
    "balanced_accuracy": Metric(
        "bal. acc.", "Decisions at the operating point",
        binary=lambda truth, score, called: balanced_accuracy_score(truth, called),
        multiclass=lambda y, proba, classes: balanced_accuracy_score(
            y, _predicted(y, proba, classes))),
    "f1": Metric("F1", "Decisions at the operating point",
                 binary=lambda truth, score, called: f1_score(truth, called),
                 multiclass=lambda y, proba, classes: f1_score(
                     y, _predicted(y, proba, classes), average="macro")),
    "fnr": Metric("FNR", "Decisions at the operating point",
                  binary=lambda truth, score, called: 1 - _share("sensitivity")(
                      truth, score, called),
                  labels=false_negative_rate, scorer="false_negative_rate",
                  greater_is_better=False),
    "brier": Metric("Brier", "Calibration", interval=True, subgroup=True,
                    binary=lambda truth, score, called: brier_score(truth, score),
                    multiclass=_multiclass_brier),
    "calibration_intercept": Metric(
        "cal. intercept", "Calibration", subgroup=True,
        binary=lambda truth, score, called: calibration_intercept(truth, score)),
    "calibration_slope": Metric(
        "cal. slope", "Calibration", subgroup=True,
        binary=lambda truth, score, called: calibration_slope(truth, score)),
    "ece": Metric("ECE", "Calibration",
                  binary=lambda truth, score, called: expected_calibration_error(truth, score),
                  multiclass=_mean_ece),
    "mae": Metric("MAE", "Error", regression=mean_absolute_error, interval=True,
                  subgroup=True),
    "rmse": Metric("RMSE", "Error", regression=root_mean_squared_error, interval=True,
                   subgroup=True),
    "mae_difference": Metric(
        "\u0394MAE", "Error", interval=True,
        compare=lambda y, pred, compared, groups: (
            np.nan if compared is None else mae_difference(y, pred, compared))),
    "wilcoxon_p": Metric(
        "Wilcoxon p", "Error", text="#.3g",
        compare=lambda y, pred, compared, groups: (
            np.nan if compared is None else wilcoxon_absolute_errors(
                y, pred, compared, groups=groups))),
    "r2": Metric("R\u00b2", "Agreement", regression=r2, interval=True, subgroup=True),
    "pearson_r": Metric("Pearson r", "Agreement", regression=pearson_r, interval=True),
    "spearman_rho": Metric("Spearman \u03c1", "Agreement", regression=spearman_rho,
                           interval=True),
    "mean_error": Metric("mean error", "Bias", regression=mean_error, interval=True,
                         subgroup=True),
    "error_target_r": Metric("r(error, target)", "Bias", regression=error_target_correlation,
                             interval=True),
}

# scikit-learn scorers of the metrics of predicted labels, positive class 1 (see
# sensitivity_score for others): cross_validate(..., scoring={"auc": "roc_auc", **SCORERS})
SCORERS = {metric.scorer: make_scorer(metric.labels, greater_is_better=metric.greater_is_better)
           for metric in METRICS.values() if metric.labels is not None}

# The subgroup tables of the report, by title: the tables of TABLES each draws its
# subgroup metrics from
_CLASSIFICATION = TABLES["classification"]
SUBGROUP_TABLES = {"AUC and operating point": _CLASSIFICATION[:3],
                   "Calibration": _CLASSIFICATION[3:], "Error and agreement": TABLES["regression"]}


def metric_columns(*, task="classification"):
    """``metrics.csv``'s columns for ``task`` (a key of :data:`TABLES`): ``method``, then
    each metric of :data:`METRICS` of that task, followed by ``<name>_ci_low`` and
    ``<name>_ci_high`` where it has an interval."""
    if task not in TABLES:
        raise ValueError(f"task must be one of {tuple(TABLES)}; got {task!r}.")
    columns = ["method"]
    for name, metric in METRICS.items():
        if task in metric.tables:
            columns += ([name, f"{name}_ci_low", f"{name}_ci_high"] if metric.interval
                        else [name])
    return tuple(columns)


def table_columns(*tables, subgroup=False):
    """The metrics of ``tables`` (of :data:`TABLES`), in :data:`METRICS`' order; with
    ``subgroup``, only those the subgroup tables show."""
    return tuple(name for name, metric in METRICS.items()
                 if set(metric.tables.values()) & set(tables)
                 and (metric.subgroup or not subgroup))



def method_metrics():
    """The metrics of a method rather than of its predictions (not defined per class)."""
    return tuple(name for name, metric in METRICS.items() if metric.of_method)


def metric_format(column):
    """The format of a metric's values in the tables (``".3f"`` for a column that is
    none of :data:`METRICS`)."""
    metric = METRICS.get(column)
    return ".3f" if metric is None else metric.text
