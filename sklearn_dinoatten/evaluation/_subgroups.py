"""The metrics table again for each level of a subgroup column (site, scanner, sex...):
whether a model works equally for each, with the scans and subjects each level holds and a
note where a level is too small to say anything."""

import warnings
from dataclasses import replace

import numpy as np

from ..datasets import MISSING
from ._methods import method_name
from ._registry import metric_columns
from ._table import metrics_table, scored_samples

MIN_SCANS = 20  # fewer scans in a level: its intervals are too wide to compare levels
MIN_PER_CLASS = 5  # nor with fewer scans of a class
SUBGROUP_COLUMNS = ("subgroup", "level", "n_scans", "n_subjects", "note")


def subgroup_table(y, results, subgroups, *, reference, pos_label=None, groups=None,
                   random_state=0):
    """Rows of :func:`metrics_table` per subgroup level, each with ``subgroup``,
    ``level``, ``n_scans``, ``n_subjects`` (``None`` without ``groups``) and ``note``.

    Parameters
    ----------
    y, results, reference, pos_label, groups, random_state :
        As for :func:`metrics_table` (the whole study's).
    subgroups : dict of str -> array-like of shape (n_samples,)
        Each subgroup column's value per sample (an empty value is the level
        ``"(missing)"``).

    A level with fewer than ``MIN_SCANS`` scored scans or ``MIN_PER_CLASS`` of a class
    gets a note (and a warning) that it is too small to say anything; one without every
    class has no metrics (NaN), since AUC and the operating point need them all.
    """
    scored = scored_samples(results)
    y = np.asarray(y)
    classes = np.unique(y[scored])

    def level_rows(name, level, member):
        present, counts = np.unique(y[member], return_counts=True)
        note = _too_small(name, level, member.sum(), present, counts, classes)
        if len(present) < len(classes):
            return note, None
        return note, metrics_table(
            y[member], {k: _subset(r, member) for k, r in results.items()},
            reference=reference, pos_label=pos_label,
            groups=None if groups is None else np.asarray(groups)[member],
            random_state=random_state)

    return subgroup_rows(results, subgroups, scored, groups=groups,
                         task="classification", level_rows=level_rows)


def subgroup_rows(results, subgroups, scored, *, groups, task, level_rows):
    """The rows of every level of every subgroup column among the ``scored`` samples:
    ``subgroup``, ``level``, ``n_scans``, ``n_subjects`` (None without ``groups``), then
    each method's metrics and the level's ``note``, from ``level_rows(name, level,
    member)``, which gives ``(note, rows)``; rows None: the level has no metrics (NaN
    in every column of ``task``'s)."""
    rows = []
    for name, values in subgroups.items():
        values = subgroup_levels(values)
        for level in sorted(set(values[scored].tolist())):
            member = scored & (values == level)
            head = dict(subgroup=name, level=level, n_scans=int(member.sum()),
                        n_subjects=None if groups is None
                        else len(np.unique(np.asarray(groups)[member])))
            note, method_rows = level_rows(name, level, member)
            if method_rows is None:
                method_rows = [dict(dict.fromkeys(metric_columns(task=task), np.nan),
                                    method=method_name(key)) for key in results]
            rows += [{**head, **row, "note": note} for row in method_rows]
    return rows


def subgroup_levels(values):
    """Each scan's level of a subgroup column, as text; a missing value (empty, None, NaN,
    or a cell a spreadsheet writes for one: "NA", "n/a", "null"...) is ``"(missing)"``."""
    return np.array(["(missing)" if v is None or str(v).strip().lower() in MISSING
                     else str(v).strip() for v in values])


def _subset(result, member):
    """An ``OutOfFold`` restricted to the samples of ``member``."""
    return replace(result, proba=result.proba[member], embedding=result.embedding[member],
                   attention=None,
                   threshold=None if result.threshold is None else result.threshold[member])


def _too_small(name, level, n_scans, present, counts, classes):
    """The note of a level too small to say anything ('' if it is not), warned once."""
    missing = [str(c) for c in classes if c not in present]
    if missing:
        note = f"no scan of class {', '.join(missing)}: no metrics"
    elif n_scans < MIN_SCANS or counts.min() < MIN_PER_CLASS:
        note = f"too small to say anything: {_counted(n_scans, present, counts)}"
    else:
        return ""
    warnings.warn(f"Subgroup {name}={level!r}: {note}.", UserWarning, stacklevel=5)
    return note


def _counted(n_scans, classes, counts):
    return f"{n_scans} scans, " + ", ".join(f"{n} of {c}" for c, n in zip(classes, counts,
                                                                           strict=True))


def warn_if_few_scored(y, stacklevel=3, classes=True):
    """Warn where the scored scans ``y`` are too few for the metrics to say much (fewer
    than ``MIN_SCANS``, or, for ``classes``, than ``MIN_PER_CLASS`` of a class), as for
    a subgroup level."""
    if not classes:
        if len(y) < MIN_SCANS:
            warnings.warn(f"The scored scans are too few for the metrics to say much "
                          f"({len(y)} scans; fewer than {MIN_SCANS}): their intervals are "
                          "wide.", UserWarning, stacklevel=stacklevel)
        return
    found, counts = np.unique(np.asarray(y), return_counts=True)
    if len(y) < MIN_SCANS or counts.min() < MIN_PER_CLASS:
        warnings.warn(f"The scored scans are too few for the metrics to say much "
                      f"({_counted(len(y), found, counts)}; fewer than {MIN_SCANS}, or "
                      f"than {MIN_PER_CLASS} of a class): their intervals are wide, or do "
                      "not spread at all (marked \u2020).", UserWarning,
                      stacklevel=stacklevel)
