"""How methods are evaluated: k-fold cross-validation (stratified by class, or by target
quantile for a number; grouped by subject when subjects are given), where every scan is
predicted once by the fold that held it out; a
fixed held-out split, where the methods train on ``train``, stop early on ``val`` and score
``test`` once; and an external test set, scored by methods fitted before.
"""

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from ..datasets import SPLITS, looks_continuous
from ..utils._options import N_FOLDS, TASKS

MAX_TARGET_BINS = 10  # the quantile bins a number's folds are stratified by, at most


@dataclass(frozen=True)
class Split:
    """One fit of every method: train on ``train``, stop early on ``validation`` (if
    given), predict ``test``; arrays of sample indices. ``train=None``: the methods are
    fitted already (an external test set)."""

    train: np.ndarray | None
    test: np.ndarray
    validation: np.ndarray | None = None


@dataclass(frozen=True)
class Protocol:
    """How the methods are evaluated: the splits and a sentence that says so."""

    splits: list
    description: str
    groups: np.ndarray | None = None
    held_out: bool = False  # a fixed test set, not folds that test every scan once
    training_scans: int | None = None  # an external test: of its scans, those that trained
    #                                    the model (None: not recorded)


def listed(values, shown=5):
    """The first ``shown`` of ``values``, and how many more there are."""
    more = len(values) - shown
    return ", ".join(map(str, values[:shown])) + (f" and {more} more" if more > 0 else "")


def check_classes(y):
    """``y`` as an array, unless its labels look like continuous values, which no
    classifier can learn as classes (ages, scores): numbers, most of them held by one
    scan, and some not whole (or ten or more distinct ones); ``ValueError`` saying so."""
    y = np.asarray(y)
    if looks_continuous(y):
        numbers = np.unique(y).astype(float)
        raise ValueError(
            f"The labels look like continuous values ({len(numbers)} distinct numbers among "
            f"{len(y)} scans, from {numbers.min():g} to {numbers.max():g}), not classes: "
            "that is a regression target: evaluate regressors (task='regression'; "
            "`dinoatten cv --task regression`), or give a column of classes.")
    return y


def check_targets(y, *, name="y"):
    """``y`` as float64 numbers, one per scan, all finite; ``ValueError`` naming the first
    value that is not a number."""
    y = np.asarray(y)
    try:
        numbers = y.astype(np.float64)
    except (TypeError, ValueError):
        bad = next(v for v in y.tolist() if not _is_number(v))
        raise ValueError(f"{name} must be numbers for a regression; got {bad!r}.") from None
    if y.ndim != 1:
        raise ValueError(f"{name} must be one number per scan; got shape {y.shape}.")
    if not np.isfinite(numbers).all():
        raise ValueError(f"{name} must be finite numbers; scan "
                         f"{int(np.flatnonzero(~np.isfinite(numbers))[0])} has "
                         f"{float(numbers[~np.isfinite(numbers)][0])!r}.")
    return numbers


def _is_number(value):
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def target_strata(y, n_folds):
    """Each scan's quantile bin of the target ``y``, for stratified folds of a number:
    bins of equal size by rank (ties in scan order), at most :data:`MAX_TARGET_BINS`,
    each of at least ``2 * n_folds`` scans where there are enough."""
    n_bins = int(np.clip(len(y) // (2 * n_folds), 1, MAX_TARGET_BINS))
    ranks = np.empty(len(y), dtype=int)
    ranks[np.argsort(y, kind="stable")] = np.arange(len(y))
    return ranks * n_bins // len(y)


def _scans(n):
    return f"{n} scan" + ("s" if n != 1 else "")


def _what_helps(n, unit):
    """What lets a class of ``n`` scans (subjects) into every fold."""
    if n == 1:
        return (f"no number of folds can both train on it and test it: gather more {unit} "
                "of it, or merge it into another class, or drop its scans from the labels")
    return f"lower the number of folds to {n} or fewer, or gather more {unit} of it"


def _typo(classes):
    """A note on class names that differ only in case or spaces (a typo, often)."""
    names = {}
    for name in map(str, np.asarray(classes).tolist()):
        names.setdefault(name.strip().lower(), []).append(name)
    twins = [same for same in names.values() if len(same) > 1]
    return "" if not twins else (f" ({' and '.join(map(repr, twins[0]))} differ only in case "
                                 "or spaces: a typo in the labels?)")


def class_counts(classes, counts, shown=8):
    """``'AD': 20, 'CN': 19, 'MCI': 1``: the scans of each class, for messages."""
    return listed([f"{c!r}: {n}" for c, n in zip(np.asarray(classes).tolist(), counts,
                                                   strict=True)], shown)


def stratified_folds(n_folds, grouped=False, random_state=0):
    """The splitter of a stratified cross-validation, of groups when ``grouped`` (a
    subject's scans stay in one fold), shuffled by ``random_state``."""
    kind = StratifiedGroupKFold if grouped else StratifiedKFold
    return kind(n_folds, shuffle=True, random_state=random_state)


def inner_splits(y, groups, purpose, n_folds, random_state=None):
    """``(train, test)`` index pairs of the inner stratified cross-validation (grouped by
    ``groups``) of training scans ``y``, on which ``purpose`` is fitted: ``n_folds``
    folds, fewer where a class has fewer scans (subjects); ``ValueError`` below two."""
    unit = "scans" if groups is None else "subjects"
    members = np.arange(len(y)) if groups is None else np.asarray(groups)  # what is counted
    smallest = min(len(np.unique(members[y == c])) for c in np.unique(y))
    if smallest < 2:
        raise ValueError(f"{purpose} needs an inner cross-validation of the training scans "
                         f"(each fold's, in an evaluation), and so two {unit} of each class "
                         "there.")
    folds = stratified_folds(min(n_folds, smallest), groups is not None, random_state)
    return list(folds.split(np.zeros(len(y)), y, groups))


def cross_validation(y, *, n_folds=N_FOLDS, groups=None, random_state=0,
                     task="classification"):
    """Stratified k-fold cross-validation, grouped when ``groups`` is given so that no
    group (subject) is in a training and a test fold at once; of classes, or, with
    ``task="regression"``, of numbers stratified by quantile bins of the target (see
    :func:`target_strata`)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}; got {task!r}.")
    if task == "regression":
        return _regression_folds(check_targets(y), n_folds, groups, random_state)
    classes, counts = np.unique(check_classes(y), return_counts=True)
    if counts.min() < n_folds:
        raise ValueError(
            f"Class {classes[counts.argmin()].item()!r} has {_scans(counts.min())}, fewer than "
            f"the {n_folds} folds; {_what_helps(counts.min(), 'scans')}. Scans per class: "
            f"{class_counts(classes, counts)}{_typo(classes)}.")
    if groups is None:
        description = f"{n_folds}-fold stratified cross-validation of {len(y)} scans"
    else:
        groups = np.asarray(groups)
        n_groups = len(np.unique(groups))
        if n_groups < n_folds:
            raise ValueError(f"{n_groups} subjects cannot fill {n_folds} folds.")
        for label in classes:  # a subject's scans stay in one fold
            subjects = np.unique(groups[np.asarray(y) == label])
            if len(subjects) < n_folds:
                raise ValueError(
                    f"Class {label.item()!r} has scans of {len(subjects)} subject(s) "
                    f"({listed(subjects)}), fewer than the {n_folds} folds: a subject's "
                    "scans stay in one fold, so every test fold needs a subject of each "
                    f"class; {_what_helps(len(subjects), 'subjects')}."
                )
        description = (f"{n_folds}-fold stratified cross-validation of {len(y)} scans, grouped "
                       f"by subject ({n_groups} subjects)")
    cv = stratified_folds(n_folds, groups is not None, random_state)
    splits = [Split(train, test) for train, test in cv.split(np.zeros(len(y)), y, groups)]
    return Protocol(splits, description, groups)


def _regression_folds(y, n_folds, groups, random_state):
    """Folds of a number: stratified by :func:`target_strata`, grouped by subject."""
    n_units = len(y) if groups is None else len(np.unique(groups))
    unit = "scans" if groups is None else "subjects"
    if n_units < n_folds:
        raise ValueError(f"{n_units} {unit} cannot fill {n_folds} folds; lower the number "
                         "of folds.")
    strata = target_strata(y, n_folds)
    n_bins = strata.max() + 1
    description = (f"{n_folds}-fold cross-validation of {len(y)} scans, stratified by "
                   f"{n_bins} quantile bins of the target ({y.min():.4g} to {y.max():.4g})")
    if groups is not None:
        groups = np.asarray(groups)
        description += f", grouped by subject ({n_units} subjects)"
    cv = stratified_folds(n_folds, groups is not None, random_state)
    splits = [Split(train, test) for train, test in cv.split(np.zeros(len(y)), strata, groups)]
    return Protocol(splits, description, groups)


def held_out(split, y, *, groups=None, task="classification"):
    """A fixed split: ``split`` names each sample's set, ``"train"``, ``"val"`` (early
    stopping; optional) or ``"test"`` (scored once); ``y`` are classes, or numbers with
    ``task="regression"``."""
    split = np.asarray(split).astype(str)
    unknown = sorted(set(split.tolist()) - set(SPLITS))
    if unknown:
        raise ValueError(f"split values must be {', '.join(SPLITS)}; got {unknown[0]!r}.")
    train, validation, test = (np.flatnonzero(split == name) for name in SPLITS)
    if not len(train) or not len(test):
        raise ValueError(f"The split needs 'train' and 'test' samples; it has {len(train)} "
                         f"and {len(test)}.")
    if task == "regression":
        check_targets(y)
    else:
        _check_split_classes(check_classes(y), train, validation, test)
    description = (f"held-out test set: trained on {len(train)} scans"
                   + (f", early stopping on {len(validation)} validation scans"
                      if len(validation) else "")
                   + f", scored once on {len(test)} test scans")
    if groups is not None:
        groups = np.asarray(groups)
        sets = {}
        for name, group in zip(split.tolist(), groups.tolist(), strict=True):
            sets.setdefault(group, set()).add(name)
        shared = [g for g, names in sets.items() if len(names) > 1]
        if shared:
            raise ValueError(f"Subject {shared[0]!r} has scans in {sorted(sets[shared[0]])}: a "
                             "subject belongs to one set only, else the test set leaks.")
        description += f" ({len(np.unique(groups[test]))} test subjects)"
    return Protocol([Split(train, test, validation if len(validation) else None)],
                    description, groups, held_out=True)


def _check_split_classes(y, train, validation, test):
    """Every class of ``y`` in the test set, none in val or test that train lacks, two
    in train."""
    if len(np.unique(y[train])) < 2:
        raise ValueError("The 'train' samples hold one class only; a classifier needs two.")
    unseen = sorted((set(y[test].tolist()) | set(y[validation].tolist()))
                    - set(y[train].tolist()))
    if unseen:
        raise ValueError(f"Class {unseen[0]!r} is in 'val' or 'test' but not in 'train'.")
    untested = sorted(set(y.tolist()) - set(y[test].tolist()))
    if untested:
        raise ValueError(f"Class {untested[0]!r} has no 'test' scan: the test set needs every "
                         "class, or AUC is undefined.")


def external_test(y, *, groups=None, model="a model", used=None):
    """Score every sample once with methods fitted elsewhere: the protocol of a fitted
    ``model`` (named in the description) on a test set. ``used``: how many of these
    scans trained the model, by content (see :func:`training_scans_scored`; None where
    the model does not record its training scans): an external test has none, and the
    description says which it is."""
    subjects = ""
    if groups is not None:
        groups = np.asarray(groups)
        subjects = f" ({len(np.unique(groups))} subjects)"
    if used:
        description = (f"NOT an external test: {used} of the {len(y)} scans predicted by "
                       f"{model}{subjects} were used to train it")
    else:
        description = f"external test set: {len(y)} scans predicted by {model}{subjects}" + (
            ", as fitted before (on scans the model does not record, which must be other "
            "scans for an external test)" if used is None else
            ", none of which was used to train it (by content)")
    return Protocol([Split(None, np.arange(len(y)))], description, groups, held_out=True,
                    training_scans=used)
