"""Compare methods on the same splits: the machinery behind ``dinoatten cv`` and the
benchmarks. Every method sees the same splits, so the scores are paired and DeLong's test
applies. Embedding-based methods share one embedding array; the 3D ResNet trains on
resampled volumes."""

import os
import re
import time
import warnings

import numpy as np

from ..datasets._folders import warn_if_subjects_change_label
from ..embedding._several import fit_embedders
from ..utils._files import file_sha256
from ..utils._fit import is_fitted
from ..utils._options import THRESHOLD
from ..volumes._slicing import axes_of, slice_weights
from ._clinical import check_threshold
from ._external import external_labels
from ._methods import ENCODER_SEPARATOR, METHODS, REFERENCE, encoder_key, method_name
from ._operating_point import (
    OperatingPointClassifier,
    bare_classifier,
    describe_operating_point,
)
from ._out_of_fold import check_recalibration, cross_validate_method
from ._runs import Run, jsonable, versions
from ._subgroups import subgroup_levels, subgroup_table, warn_if_few_scored
from ._table import caption, metrics_table, per_class_table, positive_class, scored_samples

BIDS_SUBJECT = re.compile(r"(?:^|[/\\_])sub-([A-Za-z0-9]+)")  # a BIDS path's subject label
# The embedder's settings that choose the slices: those of the encoders a study compares
SLICING = ("axis", "n_slices", "slice_selection", "spacing", "slice_spacing", "crop",
           "min_foreground")


def run_study(scans, y, methods, protocol, *, embedder=None, resampler=None,
              pos_label=None, threshold=None, recalibration=None, subgroups=None,
              random_state=0, verbose=1):
    """Evaluate classifiers on the same splits of the same scans: the loop behind
    ``dinoatten cv``.

    The scans are embedded once per slice encoder (for the methods on slice embeddings)
    and resampled once (for those on volumes); each method is fitted on every split's
    training scans and predicts its test scans; the metrics table compares them on the
    scans they all scored.

    Parameters
    ----------
    scans : list of paths or 3D arrays
    y : array-like of shape (n_scans,)
    methods : dict of str -> classifier
        Unfitted classifiers by key, each evaluated as an
        :class:`~sklearn_dinoatten.OperatingPointClassifier` with ``threshold`` and
        ``recalibration`` (fitted ones with :func:`external_test`, whose labels must be
        their classes: see :func:`fitted_classes`). A key of :data:`METHODS` gives the
        method's name and input (``make_method(key)`` builds one); any other key names
        a classifier of slice embeddings.
    protocol : Protocol
        From :func:`cross_validation`, :func:`held_out` or :func:`external_test` on the
        same ``y``.
    embedder : DinoSliceEmbedder or dict of str -> DinoSliceEmbedder, default=None
        Embeds the scans for the methods on slice embeddings (needed if there are any);
        used as fitted if it is. A dict of several compares slice encoders: every method
        on slice embeddings is evaluated on each, as ``"<key>@<encoder name>"``, on the
        same splits (their slices must be the same: the same slicing settings).
    resampler : transformer, default=None
        Turns the scans into the input of the methods on volumes; used as fitted if it
        is (the steps before the classifier of a fitted pipeline, so that an external
        test scores what the pipeline's ``predict_proba`` does). ``None``:
        ``VolumeResampler()``, 64 voxels a side.
    pos_label : label, default=None
        The positive class of two (see :func:`positive_class`); for an external test of
        :class:`~sklearn_dinoatten.OperatingPointClassifier` models, theirs by default.
    threshold : float or str, default=None
        The operating point of two classes: a scan is called positive when the positive
        class's probability is at least the threshold, a number or chosen on each
        split's training part (never its test scans): ``"youden"``,
        ``"sensitivity=0.9"``, ``"specificity=0.9"`` (see
        :func:`~sklearn_dinoatten.evaluation.choose_threshold` and
        :class:`~sklearn_dinoatten.OperatingPointClassifier`). ``None``: 0.5, or, in an
        external test, each fitted model's own (a number given instead overrides it).
        More than two classes take the most probable.
    recalibration : {"platt", "isotonic"}, default=None
        Recalibrate each fit's probabilities (Platt scaling on the logit, or isotonic
        regression: see :class:`~sklearn_dinoatten.OperatingPointClassifier`), on the
        split's validation scans, else on out-of-fold predictions of its training scans;
        never on its test scans. Works with every classifier of the package. Without
        validation scans, a fit becomes four (three inner fits and one on all the
        training scans), as with a threshold rule; the two share the inner fits.
    subgroups : dict of str -> array-like of shape (n_scans,), default=None
        Subgroup columns (site, scanner, sex...), each a value per scan: the metrics
        table is repeated for each level (see ``subgroup_table``), in ``Run.subgroups``.
    random_state : int, default=0
        Seeds the bootstrap intervals and the inner folds that choose a threshold.
    verbose : int, default=1
        ``1`` prints what is evaluated and a line per method and fit (the embedder
        and the classifiers print according to their own ``verbose``).

    Returns
    -------
    run : sklearn_dinoatten.evaluation.Run
        The scored scans' predictions, embeddings and attention, the metrics table and
        the study's description; :func:`sklearn_dinoatten.evaluation.write_run` writes it.
    """
    y = np.asarray(y)
    subgroups = {name: np.asarray(values) for name, values in (subgroups or {}).items()}
    for name, values in subgroups.items():
        if len(values) != len(y):
            raise ValueError(f"Subgroup {name!r} has {len(values)} values for {len(y)} scans.")
    external = all(split.train is None for split in protocol.splits)  # fitted elsewhere
    if external:
        y, pos_label = external_labels(y, methods, pos_label, protocol)
    positive = positive_class(y, pos_label)  # before any work
    threshold = _checked_threshold(threshold, positive, y)
    recalibration = check_recalibration(recalibration, protocol.splits)
    _check_subjects(scans, y, protocol.groups)
    on_volumes = {key: key in METHODS and METHODS[key].takes_volumes for key in methods}
    embedders = _named_embedders(embedder)
    if not embedders and not all(on_volumes.values()):
        raise ValueError("run_study needs an embedder for the methods on slice embeddings.")
    several = len(embedders) > 1
    evaluated = {}  # key -> (estimator, its input: an encoder's name, or None for volumes)
    for key, estimator in methods.items():
        for encoder in [None] if on_volumes[key] else embedders:
            evaluated[encoder_key(key, encoder) if encoder and several else key] = (
                estimator, encoder)
    classes, counts = np.unique(y, return_counts=True)
    if verbose:
        counts = ", ".join(f"{c}: {n}" for c, n in zip(classes, counts, strict=True))
        print(f"{len(y)} scans ({counts}); {protocol.description}; "
              + (f"positive class: {positive!r}; " if positive is not None else "")
              + f"methods: {', '.join(map(method_name, evaluated))}")
    inputs = {}
    if not all(on_volumes.values()):
        fit_embedders(embedders, scans)  # every backbone built (and checked) first
        for name, slice_embedder in embedders.items():
            if verbose:
                print(f"Embedding {len(scans)} scans" + (f" with {name}" if several else "")
                      + ":", flush=True)
            inputs[name], cached = slice_embedder.transform(scans, return_cached=True)
            if verbose and cached.all():  # the embedder had nothing to show progress of
                print(f"  all {len(scans)} found in the cache", flush=True)
    if any(on_volumes.values()):
        from ..volumes._resampling import VolumeResampler

        resampler = VolumeResampler() if resampler is None else resampler
        if verbose:
            shape = getattr(resampler, "shape", None)
            print(f"Resampling {len(scans)} scans" + (f" to {shape} voxels" if shape else ""),
                  flush=True)
        if not is_fitted(resampler):
            resampler.fit(scans)
        inputs[None] = resampler.transform(scans)
    results = {}
    for n, (key, (estimator, source)) in enumerate(evaluated.items(), 1):
        if verbose:
            print(f"  {method_name(key)} ({n}/{len(evaluated)}):", flush=True)
        results[key] = cross_validate_method(
            estimator, inputs[source], y, protocol.splits, verbose=verbose,
            threshold=threshold, positive=positive, groups=protocol.groups,
            recalibration=recalibration, random_state=random_state)

    reference = next((k for k in results if k.partition(ENCODER_SEPARATOR)[0] == REFERENCE),
                     next(iter(results)))
    groups = protocol.groups
    scored = scored_samples(results)
    warn_if_few_scored(y[scored])
    first = next((name for name in embedders if name in inputs), None)  # embedded, if any
    random_weights = any(e.weights == "random" for e in embedders.values())
    outputs = {f"embedding_{k}": r.embedding[scored] for k, r in results.items()}
    for k, r in results.items():  # per slice: with feature="patch", a slice's patches summed
        if r.attention is not None:
            rows_per_slice = embedders[evaluated[k][1]].rows_per_slice_
            outputs[f"attention_{k}"] = slice_weights(r.attention[scored], rows_per_slice)
    if first is not None:
        outputs.update(_slice_outputs(inputs[first], embedders[first], scored))
    folds = None
    if not protocol.held_out:
        folds = np.full(len(y), -1)
        for i, split in enumerate(protocol.splits, 1):  # folds 1 to k, as the progress
            folds[split.test] = i
        folds = folds[scored]
    params = {name: jsonable(e.get_params()) for name, e in embedders.items()}
    calls = _calls(results, methods, external, positive, threshold, recalibration)
    info = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "classes": classes.tolist(),
        "positive_label": positive,
        "protocol": _protocol_name(protocol, external),
        "training_scans_scored": protocol.training_scans,
        "protocol_description": protocol.description,
        "folds": None if protocol.held_out else len(protocol.splits),
        "grouped": groups is not None,
        "n_subjects": None if groups is None else len(np.unique(groups[scored])),
        "n_scored": int(scored.sum()),
        "caption": caption(protocol, positive, reference, random_weights=random_weights,
                           encoders=list(embedders) if first is not None else (),
                           threshold=calls["threshold_rule"],
                           recalibration=recalibration,
                           operating_points={method_name(k): text for k, text in
                                             calls.get("operating_points", {}).items()},
                           not_recalibrated=_not_recalibrated(results)),
        **calls,
        "random_weights": random_weights,
        "seed": random_state,
        "reference": reference,
        "embedder": params[first] if first is not None and not several else None,
        "resampler": jsonable(resampler.get_params()) if None in inputs else None,
        "methods": {k: {"name": method_name(k),
                        "params": jsonable(bare_classifier(m).get_params()),
                        **({"encoder": source} if several and source else {})}
                    for k, (m, source) in evaluated.items()},
        "versions": versions(),
    }
    info["weights_sha256"] = {name: weights_sha256(e) for name, e in embedders.items()}
    if several and first is not None:
        info["embedders"] = params
    names = np.array([  # files by absolute path, arrays by their place in scans
        os.path.abspath(scan) if isinstance(scan, (str, os.PathLike)) else f"#{i}"
        for i, scan in enumerate(scans)])
    if subgroups:
        info["subgroups"] = list(subgroups)
    return Run(info, names[scored], y[scored],
               {k: r.proba[scored] for k, r in results.items()},
               groups=None if groups is None else groups[scored], folds=folds,
               outputs=outputs,
               metrics=metrics_table(y, results, reference=reference, pos_label=positive,
                                     groups=groups, random_state=random_state),
               subgroups=subgroup_table(y, results, subgroups, reference=reference,
                                        pos_label=positive, groups=groups,
                                        random_state=random_state) if subgroups else None,
               per_class=None if positive is not None else per_class_table(
                   y, results, reference=reference, groups=groups,
                   random_state=random_state),
               subgroup_values={name: subgroup_levels(values)[scored]
                                for name, values in subgroups.items()})


def _checked_threshold(threshold, positive, y):
    """``threshold`` checked (None stays None: 0.5, or an external model's own)."""
    if threshold is None:
        return None
    threshold = check_threshold(threshold)
    if positive is None and threshold != THRESHOLD:
        raise ValueError(f"threshold={threshold!r} is for two classes; these labels have "
                         f"{len(np.unique(y))}, and each scan takes its most probable class.")
    return threshold


def _protocol_name(protocol, external):
    """run.json's name of the protocol: an external test is one only without training
    scans among those it scores."""
    if protocol.training_scans:
        return "includes training scans"
    return "external" if external else "held-out" if protocol.held_out else "cross-validation"


def weights_sha256(embedder):
    """The SHA-256 of the embedder's weights file, or None (random or downloaded
    weights, a module, or a saved model's embedder whose file is not here)."""
    weights = embedder.weights
    if isinstance(weights, (str, os.PathLike)) and weights != "random" \
            and os.path.isfile(weights):
        return file_sha256(weights)
    return None


def _calls(results, methods, external, positive, threshold, recalibration):
    """run.json's record of how the scans were called: the threshold rule (two classes)
    and each method's threshold per split, the recalibration and whether each split's
    was applied. An external test of fitted models records theirs (a ``threshold`` given
    overrides their thresholds) and how each calls a scan (``operating_points``)."""
    fitted = {k: m for k, m in methods.items()
              if external and isinstance(m, OperatingPointClassifier)}
    applied = {k: r.recalibrated for k, r in results.items() if r.recalibrated is not None}
    rule = THRESHOLD if threshold is None else threshold
    if fitted:
        recalibration = _own(fitted, lambda m: m.recalibration)
        applied = {k: [m.recalibration_ is not None] for k, m in fitted.items()
                   if m.recalibration is not None}
        rule = _own(fitted, lambda m: check_threshold(m.threshold)) if threshold is None \
            else threshold
    calls = {
        "recalibration": recalibration,
        "threshold_rule": rule if positive is not None else None,
        "thresholds": ({k: r.thresholds for k, r in results.items()}
                       if positive is not None else None),
    }
    if applied:
        calls["recalibration_applied"] = applied
    if fitted:
        calls["operating_points"] = {
            k: describe_operating_point(m) + ("" if threshold is None else
                                              f"; called here at {threshold:g} instead")
            for k, m in fitted.items()}
    return calls


def _own(models, value):
    """The value each model has, if they share it, else a dict of them by key."""
    values = {k: value(m) for k, m in models.items()}
    return next(iter(values.values())) if len(set(values.values())) == 1 else values


def _not_recalibrated(results):
    """Method name -> ``(splits whose recalibration was not applied, splits)``, for the
    methods with any."""
    return {method_name(k): (r.recalibrated.count(False), len(r.recalibrated))
            for k, r in results.items() if r.recalibrated and not all(r.recalibrated)}


def _check_subjects(scans, y, groups):
    """Warn of subjects whose scans carry different labels (grouped studies), or whose
    scans a study without groups counts as independent (BIDS file names)."""
    if groups is not None:
        warn_if_subjects_change_label(y, groups, stacklevel=4)
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
            stacklevel=4)


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


def _slice_outputs(embeddings, embedder, scored):
    """``n_slices`` and, for tri-planar bags, ``slice_axis`` of the scored scans."""
    firsts = embeddings[:, ::embedder.rows_per_slice_]  # the first row of each slice
    real = ~np.isnan(firsts).all(axis=2)
    outputs = {"n_slices": real.sum(axis=1)[scored]}
    if len(axes_of(embedder.axis)) > 1:  # each slice's orientation, from its tag
        tags = np.nan_to_num(firsts[..., -3:]).argmax(axis=2)
        outputs["slice_axis"] = np.where(real, tags, -1)[scored]
    return outputs
