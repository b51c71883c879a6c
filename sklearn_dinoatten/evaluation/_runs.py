"""The run directory: what an evaluation writes, and what the report reads, in one place.

A run directory holds::

    run.json         the study: task, classes (or the target: name, range, mean, SD),
                     positive class, protocol, grouping, reference
                     method, the threshold rule ("threshold_rule") and each method's
                     threshold per split, fold k's the k-th ("thresholds"),
                     "recalibration", the subgroup columns, the methods' and the
                     embedder's parameters (of each encoder, "embedders", in a study of
                     several), versions
    predictions.csv  one row per scored scan: path (absolute), label (a number's runs:
                     target), subject (grouped runs), fold (cross-validation, 1 to k),
                     subgroup_{name} (each subgroup column's level), backbone_weights
                     (runs with slice embeddings: random, the checkpoint file, or the
                     download), then per method {key}_pred and {key}_p_{class},
                     probabilities (a number's runs: {key}_pred, the prediction) at
                     full precision
    metrics.csv      one row per method: "method", then a column per metric of the
                     registry (METRICS), followed by <name>_ci_low and <name>_ci_high,
                     the bounds of its 95 % CI, where it has one (metric_columns())
    metrics.md       the same table in Markdown, with the caption that says how it was made
    subgroups.csv    (with subgroups) the metrics per subgroup level and method, with the
                     scans and subjects of each level and a note where it is too small
    subgroups.md     the same in Markdown
    per_class.csv    (more than two classes) each class against the rest, per class and
                     method (columns "class" and those of metrics.csv)
    per_class.md     the same in Markdown
    outputs.npz      per method embedding_{key} (the learned volume embeddings) and
                     attention_{key} (slice attention, where the method has it); n_slices;
                     slice_axis (tri-planar bags: each row's axis, 0 sagittal, 1 coronal,
                     2 axial, -1 padding)

:func:`write_run` writes a :class:`Run`, :func:`read_run` reads one back (labels and
classes as text, as a CSV holds them).
"""

import csv
import json
import os
import zipfile
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..utils._files import atomic_write, write_csv
from ..utils._options import THRESHOLD
from ._clinical import decide
from ._markdown import PER_CLASS_KEYS, subgroups_markdown, to_markdown
from ._registry import method_metrics


@dataclass
class Run:
    """The results of an evaluation, one row per scored scan.

    Attributes
    ----------
    info : dict
        What ``run.json`` holds: at least ``classes``, ``methods`` (key -> ``{"name",
        "params"}``), ``reference`` and, for two classes, ``positive_label``.
    paths : ndarray of shape (n_scored,)
        The scans: paths, or ``#i`` for the array at place ``i`` of the study's input.
    labels : ndarray of shape (n_scored,)
        The labels, or (regression) the targets.
    proba : dict of method key -> ndarray of shape (n_scored, n_classes)
        Probabilities, columns in ``classes`` order (empty in a regression).
    groups : ndarray of shape (n_scored,) or None
        The subject of each scan, in grouped runs.
    folds : ndarray of shape (n_scored,) or None
        The fold that held each scan out, in cross-validation, numbered from 1 (as the
        progress lines and the report number them).
    outputs : dict of str -> ndarray
        ``embedding_{key}``, ``attention_{key}``, ``n_slices`` and, for tri-planar bags,
        ``slice_axis``, one row per scan.
    metrics : list of dict or None
        One row per method, keys ``metric_columns()`` (those of ``metrics.csv``).
    subgroups : list of dict or None
        The metrics per subgroup level and method (see ``subgroup_table``).
    per_class : list of dict or None
        More than two classes: the metrics of each class against the rest, per class
        and method (see ``per_class_table``).
    subgroup_values : dict of str -> ndarray of shape (n_scored,)
        Each subgroup column's level per scan (``subgroup_<name>`` in
        ``predictions.csv``).
    predictions : dict of method key -> ndarray of shape (n_scored,)
        A regression's predictions (empty for classes).
    """

    info: dict
    paths: np.ndarray
    labels: np.ndarray
    proba: dict
    groups: np.ndarray | None = None
    folds: np.ndarray | None = None
    outputs: dict = field(default_factory=dict)
    metrics: list | None = None
    subgroups: list | None = None
    per_class: list | None = None
    subgroup_values: dict = field(default_factory=dict)
    predictions: dict = field(default_factory=dict)

    @property
    def task(self):
        """``"classification"`` or ``"regression"`` (a number per scan)."""
        return self.info.get("task", "classification")

    @property
    def classes(self):
        return list(self.info["classes"])

    @property
    def names(self):
        """Method key -> display name, in the run's order."""
        return {k: m.get("name", k) for k, m in self.info["methods"].items()}

    @property
    def reference(self):
        """The method the others are compared with (the first if run.json names none)."""
        reference = self.info.get("reference")
        return reference if reference in self.names else next(iter(self.names))

    @property
    def positive(self):
        """The class whose probability is the score (binary runs), else None."""
        return self.info.get("positive_label")

    @cached_property
    def pred(self):
        """Method key -> predicted labels: with two classes, the positive class where its
        probability is at least the threshold of the scan's split (run.json's
        ``thresholds``; 0.5 without), else the other; with more, the most probable. A
        regression's: its predictions."""
        if self.task == "regression":
            return self.predictions
        classes = np.asarray(self.classes)
        if self.positive is None:
            return {key: classes[proba.argmax(axis=1)] for key, proba in self.proba.items()}
        return {key: decide(proba, classes, self.positive, self.threshold(key))
                for key, proba in self.proba.items()}

    def threshold(self, key):
        """The threshold each scan of a two-class run met, for method ``key``: its
        split's, from run.json (a number for every scan where it has one split)."""
        thresholds = (self.info.get("thresholds") or {}).get(key)
        if not thresholds:
            return THRESHOLD
        if self.folds is not None and len(thresholds) > 1:
            return np.asarray(thresholds, dtype=float)[self.folds - 1]  # folds from 1
        return float(thresholds[0])

    def metrics_row(self, key):
        """The metrics row of a method (found by key or display name), or None."""
        return next((row for row in self.metrics or [] if row["method"] in
                     (key, self.names[key])), None)


def write_run(folder, run):
    """Write ``run`` into ``folder`` (created if needed), each file atomically; the
    caption of ``run.info`` (how the metrics were computed) follows the table in
    ``metrics.md``."""
    os.makedirs(folder, exist_ok=True)
    rows, weights = [], backbone_weights(run.info)
    regression = run.task == "regression"
    for i, path in enumerate(run.paths):
        row = ({"path": path, "target": repr(float(run.labels[i]))} if regression
               else {"path": path, "label": run.labels[i]})
        if run.groups is not None:
            row["subject"] = run.groups[i]
        if run.folds is not None:
            row["fold"] = run.folds[i]
        for name, values in run.subgroup_values.items():
            row[f"subgroup_{name}"] = values[i]
        if weights is not None:
            row["backbone_weights"] = weights
        for key, values in run.predictions.items():
            row[f"{key}_pred"] = repr(float(values[i]))
        for key, proba in run.proba.items():
            row[f"{key}_pred"] = run.pred[key][i]
            row.update({f"{key}_p_{c}": repr(float(p))  # repr: the float round-trips
                        for c, p in zip(run.classes, proba[i], strict=True)})
        rows.append(row)
    write_csv(os.path.join(folder, "predictions.csv"), rows)
    if run.metrics:
        write_csv(os.path.join(folder, "metrics.csv"), run.metrics)
        caption = run.info.get("caption")
        table = to_markdown(run.metrics, run.names[run.reference], task=run.task)
        text = f"{table}\n\n{caption}\n" if caption else f"{table}\n"
        atomic_write(os.path.join(folder, "metrics.md"), lambda f: f.write(text.encode()))
    if run.per_class:
        write_csv(os.path.join(folder, "per_class.csv"), run.per_class)
        text = to_markdown(run.per_class, run.names[run.reference], keys=PER_CLASS_KEYS,
                           skip=method_metrics()) + (
            "\n\nEach class against the rest: a scan is called the class where it is the "
            "most probable; 95 % CIs and DeLong's test as in metrics.md.\n")
        atomic_write(os.path.join(folder, "per_class.md"), lambda f: f.write(text.encode()))
    if run.subgroups:
        write_csv(os.path.join(folder, "subgroups.csv"), run.subgroups)
        text = subgroups_markdown(run.subgroups) + "\n"
        atomic_write(os.path.join(folder, "subgroups.md"), lambda f: f.write(text.encode()))
    atomic_write(os.path.join(folder, "outputs.npz"), lambda f: np.savez(f, **run.outputs))
    info = json.dumps(run.info, indent=2, default=str)
    atomic_write(os.path.join(folder, "run.json"), lambda f: f.write(info.encode()))


def slice_embedders(info):
    """Encoder name -> the slice embedder's parameters as run.json records them: the one
    embedder, or each of a study of several encoders; empty for a run without."""
    if info.get("embedders"):
        return info["embedders"]
    return {"embedder": info["embedder"]} if info.get("embedder") else {}


def embedder_of(info, key):
    """The parameters of the slice embedder method ``key`` was evaluated on, or None."""
    embedders = slice_embedders(info)
    encoder = info["methods"].get(key, {}).get("encoder")
    return embedders.get(encoder) if encoder else next(iter(embedders.values()), None)


def backbone_weights(info):
    """The slice embedders' weights as run.json records them: ``"random"``, the
    checkpoint file, or ``"pretrained (downloaded)"``, each encoder's where they differ;
    None for a run without slice embeddings."""
    weights = {name: "pretrained (downloaded)" if params.get("weights") is None
               else str(params["weights"]) for name, params in slice_embedders(info).items()}
    if len(set(weights.values())) > 1:
        return "; ".join(f"{name}: {w}" for name, w in weights.items())
    return next(iter(weights.values()), None)


def read_run(folder):
    """Read a run directory written by :func:`write_run` (``dinoatten cv``).

    Labels, classes and the positive class come back as text. ``run.json`` and
    ``predictions.csv`` are required; a run without ``outputs.npz`` has no ``outputs``,
    one without ``metrics.csv`` no ``metrics``. A missing or malformed file raises an
    error naming it.
    """
    folder = os.fspath(folder)
    path = _existing(folder, "run.json")
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
        info["methods"] = {str(k): {**m, "name": str(m.get("name", k))}
                           for k, m in info["methods"].items()}
        regression = info.get("task", "classification") == "regression"
        if regression and not info["methods"]:
            raise ValueError("it needs one method or more")
        if not regression:
            _check_classes(info)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _malformed(path, exc) from exc
    if regression:
        return _read_regression(folder, info)
    return _with_tables(folder, _read_predictions(_existing(folder, "predictions.csv"), info))


def _check_classes(info):
    """run.json's classes and positive class, as text, checked."""
    info["classes"] = [str(c) for c in info["classes"]]
    if len(info["classes"]) < 2 or not info["methods"]:
        raise ValueError("it needs two classes or more and one method or more")
    positive = info.get("positive_label")
    if positive is not None and str(positive) not in info["classes"]:
        raise ValueError(f"positive_label {positive!r} is not one of the classes")
    if positive is None and len(info["classes"]) == 2:
        raise ValueError("a run of two classes needs its positive_label (rerun "
                         "`dinoatten cv`)")
    info["positive_label"] = None if positive is None else str(positive)


def _read_regression(folder, info):
    path = _existing(folder, "predictions.csv")
    try:
        column = _columns(path)
        predictions = {k: column[f"{k}_pred"].astype(float) for k in info["methods"]}
        targets = column["target"].astype(float)
    except (KeyError, ValueError, TypeError) as exc:
        raise _malformed(path, exc) from exc
    return _with_tables(folder, Run(
        info, column["path"], targets, {},
        groups=column.get("subject") if info.get("grouped") else None,
        folds=column["fold"].astype(int) if "fold" in column else None,
        subgroup_values=_subgroup_values(info, column), predictions=predictions))


def _with_tables(folder, run):
    """``run`` with the outputs and tables its folder holds."""
    run.outputs = _read_outputs(os.path.join(folder, "outputs.npz"), len(run.labels))
    run.metrics = _read_metrics(os.path.join(folder, "metrics.csv"))
    run.subgroups = _read_metrics(os.path.join(folder, "subgroups.csv"))
    run.per_class = _read_metrics(os.path.join(folder, "per_class.csv"))
    return run


def _columns(path):
    """predictions.csv as columns of text, by name."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError("no scans")
    return {c: np.array([r[c] for r in rows]) for c in rows[0]}


def _subgroup_values(info, column):
    return {name: column[f"subgroup_{name}"] for name in info.get("subgroups") or ()
            if f"subgroup_{name}" in column}


def _existing(folder, name):
    path = os.path.join(folder, name)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Run directory {folder!r} does not exist.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Run directory {folder!r} has no {name} ({path!r}).")
    return path


def _malformed(path, exc):
    reason = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
    return ValueError(f"Malformed {os.path.basename(path)} ({path!r}): {reason}.")


def _read_predictions(path, info):
    classes = info["classes"]
    try:
        column = _columns(path)
        proba = {k: np.column_stack([column[f"{k}_p_{c}"].astype(float) for c in classes])
                 for k in info["methods"]}
        unknown = set(column["label"].tolist()) - set(classes)
        if unknown:
            raise ValueError(f"labels {sorted(unknown)} are not among run.json's classes")
    except (KeyError, ValueError, TypeError) as exc:
        raise _malformed(path, exc) from exc
    return Run(info, column["path"], column["label"], proba,
               groups=column.get("subject") if info.get("grouped") else None,
               folds=column["fold"].astype(int) if "fold" in column else None,
               subgroup_values=_subgroup_values(info, column))


def _read_outputs(path, n_scans):
    if not os.path.isfile(path):
        return {}
    try:
        with np.load(path) as npz:
            outputs = {k: npz[k] for k in npz.files}
        wrong = [k for k, v in outputs.items() if len(v) != n_scans]
        if wrong:
            raise ValueError(f"{wrong} do not have one row per scan ({n_scans})")
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise _malformed(path, exc) from exc
    return outputs


def _read_metrics(path):
    if not os.path.isfile(path):
        return None
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "method" not in rows[0]:
        raise _malformed(path, KeyError("method"))
    return rows
