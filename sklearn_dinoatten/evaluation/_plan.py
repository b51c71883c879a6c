"""What a study settles before any work: its task (classes, or a number: the methods'),
its labels (an external test's as the fitted models' classes) or targets, the positive
class, the threshold and the recalibration (or the bias correction of a number) checked,
the subjects looked at, the slice encoders, and which input each method takes. A mistake
in any of them ends the study here, before a scan is read."""

import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import is_regressor

from ..datasets import warn_if_subjects_change_label
from ..utils._options import THRESHOLD
from ._clinical import check_threshold
from ._external import external_labels
from ._methods import ENCODER_SEPARATOR, INPUTS, METHODS, encoder_key
from ._out_of_fold import check_recalibration
from ._protocols import check_targets
from ._regression_out_of_fold import check_bias_correction
from ._table import positive_class

BIDS_SUBJECT = re.compile(r"(?:^|[/\\_])sub-([A-Za-z0-9]+)")  # a BIDS path's subject label
# The embedder's settings that choose the slices: those of the encoders a study compares
SLICING = ("axis", "n_slices", "slice_selection", "spacing", "slice_spacing", "crop",
           "min_foreground")


@dataclass
class Study:
    """A study settled before any work: what travels together through its steps."""

    scans: list
    y: np.ndarray
    methods: dict  # key -> estimator, as given
    protocol: object
    embedders: dict  # encoder name -> slice embedder
    evaluated: dict  # key -> (estimator, its input: an encoder's name, or None: volumes)
    positive: object  # the positive class of two, None for more
    threshold: object  # None: 0.5, or an external model's own
    recalibration: str | None
    random_state: int
    verbose: int
    subgroups: dict = field(default_factory=dict)
    task: str = "classification"
    bias_correction: str | None = None  # a number's (regression)
    target_name: str = "the target"  # a number's name (and units), as tables call it

    @property
    def external(self):
        """Whether the methods were fitted elsewhere (an external test)."""
        return all(split.train is None for split in self.protocol.splits)

    @property
    def several(self):
        """Whether the study compares several slice encoders."""
        return len(self.embedders) > 1


def plan_study(scans, y, methods, protocol, *, embedder, pos_label, threshold,
               recalibration, bias_correction, subgroups, target_name, method_inputs,
               random_state, verbose):
    """The :class:`Study` of ``run_study``'s arguments, every one checked."""
    y = np.asarray(y)
    subgroups = {name: np.asarray(values) for name, values in (subgroups or {}).items()}
    for name, values in subgroups.items():
        if len(values) != len(y):
            raise ValueError(f"Subgroup {name!r} has {len(values)} values for {len(y)} scans.")
    task = study_task(methods)
    if task == "regression":
        y, positive, bias_correction = _regression_targets(
            scans, y, protocol, pos_label=pos_label, threshold=threshold,
            recalibration=recalibration, bias_correction=bias_correction)
    else:
        if bias_correction is not None:
            raise ValueError("bias_correction is for regressors; these methods are "
                             "classifiers.")
        if all(split.train is None for split in protocol.splits):  # fitted elsewhere
            y, pos_label = external_labels(y, methods, pos_label, protocol)
        positive = positive_class(y, pos_label=pos_label)
        threshold = _checked_threshold(threshold, positive, y)
        recalibration = check_recalibration(recalibration, protocol.splits)
        _check_subjects(scans, y, protocol.groups)
    embedders = _named_embedders(embedder)
    on_volumes = {key: _input(key, method_inputs) == "volumes" for key in methods}
    if not embedders and not all(on_volumes.values()):
        raise ValueError("run_study needs an embedder for the methods on slice embeddings.")
    evaluated = {}
    for key, estimator in methods.items():
        for encoder in [None] if on_volumes[key] else embedders:
            several = len(embedders) > 1
            evaluated[encoder_key(key, encoder) if encoder and several else key] = (
                estimator, encoder)
    return Study(scans, y, methods, protocol, embedders, evaluated, positive, threshold,
                 recalibration, random_state, verbose, subgroups, task, bias_correction,
                 target_name or "the target")


def _regression_targets(scans, y, protocol, *, pos_label, threshold, recalibration,
                        bias_correction):
    """``(targets, None, bias_correction)`` of a study of a number, whose classification
    options must be left out."""
    given = [name for name, value in (("pos_label", pos_label), ("threshold", threshold),
                                      ("recalibration", recalibration)) if value is not None]
    if given:
        raise ValueError(f"{given[0]} is for classifiers; these methods are regressors.")
    if protocol.groups is None:
        _warn_if_subjects_repeat(scans)
    return check_targets(y), None, check_bias_correction(bias_correction, protocol.splits)


def _input(key, method_inputs):
    """What method ``key`` takes (one of INPUTS): its registry's, else ``method_inputs``',
    else slice embeddings."""
    if key in METHODS:
        return METHODS[key].input
    given = (method_inputs or {}).get(key, "slices")
    if given not in INPUTS:
        raise ValueError(f"method_inputs[{key!r}] must be one of {INPUTS}; got {given!r}.")
    return given


def study_task(methods):
    """``"regression"`` when every method is a regressor, ``"classification"`` when none
    is; ``ValueError`` naming one of each otherwise."""
    if not methods:
        raise ValueError("run_study needs one method or more.")
    regressors = {key: is_regressor(estimator) for key, estimator in methods.items()}
    if all(regressors.values()):
        return "regression"
    if any(regressors.values()):
        regressor = next(k for k, r in regressors.items() if r)
        classifier = next(k for k, r in regressors.items() if not r)
        raise ValueError(f"The methods mix tasks: {regressor!r} is a regressor and "
                         f"{classifier!r} is not; a study compares methods of one task.")
    return "classification"


def _checked_threshold(threshold, positive, y):
    """``threshold`` checked (None stays None: 0.5, or an external model's own)."""
    if threshold is None:
        return None
    threshold = check_threshold(threshold)
    if positive is None and threshold != THRESHOLD:
        raise ValueError(f"threshold={threshold!r} is for two classes; these labels have "
                         f"{len(np.unique(y))}, and each scan takes its most probable class.")
    return threshold


def _check_subjects(scans, y, groups):
    """Warn of subjects whose scans carry different labels (grouped studies), or whose
    scans a study without groups counts as independent (BIDS file names)."""
    if groups is not None:
        warn_if_subjects_change_label(y, groups, stacklevel=5)
    else:
        _warn_if_subjects_repeat(scans)


def _warn_if_subjects_repeat(scans):
    """Warn when scan files name a BIDS subject (``sub-<label>``) more than once in a
    study without groups: its scans are then counted as independent."""
    subjects = [match.group(1) for scan in scans if isinstance(scan, (str, os.PathLike))
                and (match := BIDS_SUBJECT.search(os.fspath(scan)))]
    names, counts = np.unique(subjects, return_counts=True)
    if (counts > 1).any():
        repeated = names[counts > 1]
        warnings.warn(
            f"The scans of {len(repeated)} subject(s) appear several times by their BIDS "
            f"file names (sub-{repeated[0]}: {counts[counts > 1][0]} scans), and the "
            "protocol has no groups: folds can put a subject's scans on both sides and the "
            "intervals count them as independent. Give the protocol groups (the labels "
            "file's subject column, which load_nifti_folder returns).", UserWarning,
            stacklevel=5)


def _named_embedders(embedder):
    """``embedder`` as a dict of encoder name -> embedder (empty for None); several must
    keep the same slices, so that the encoders are compared on the same input."""
    if embedder is None:
        return {}
    if not isinstance(embedder, dict):
        return {"embedder": embedder}
    if not embedder:
        raise ValueError("embedder is an empty dict: give one embedder or more.")
    bad = [name for name in embedder if not isinstance(name, str) or not name
           or ENCODER_SEPARATOR in name]
    if bad:
        raise ValueError(f"The embedders' names must be non-empty strings without "
                         f"{ENCODER_SEPARATOR!r}; got {bad[0]!r}.")
    slicing = {name: {p: e.get_params()[p] for p in SLICING} for name, e in embedder.items()}
    first, *others = slicing
    for name in others:
        differ = [p for p in SLICING if slicing[name][p] != slicing[first][p]]
        if differ:
            raise ValueError(
                f"Embedders {first!r} and {name!r} keep different slices ({differ[0]}="
                f"{slicing[first][differ[0]]!r} and {slicing[name][differ[0]]!r}): encoders "
                "are compared on the same slices; give them the same slicing settings.")
    return embedder
