"""Compare methods on the same splits: the machinery behind ``dinoatten cv`` and the
benchmarks. Every method sees the same splits, so the scores are paired and DeLong's test
applies. Embedding-based methods share one embedding array; the 3D ResNet trains on
resampled volumes. A study runs in steps: settled before any work (:mod:`._plan`), its
inputs made once, every method fitted on every split, then its tables and description."""

import os

import numpy as np

from ..embedding import fit_embedders
from ..utils._files import file_sha256
from ..utils._fit import is_fitted
from ..utils._options import THRESHOLD
from ..volumes import axes_of, slice_weights
from ._clinical import check_threshold
from ._methods import ENCODER_SEPARATOR, REFERENCE, method_name
from ._operating_point import (
    OperatingPointClassifier,
    bare_classifier,
    describe_operating_point,
)
from ._out_of_fold import cross_validate_method
from ._plan import plan_study
from ._regression_study import describe_target, regression_parts, regression_results
from ._regression_table import regression_scored
from ._run_json import describe_study
from ._runs import Run
from ._subgroups import subgroup_levels, subgroup_table, warn_if_few_scored
from ._table import caption, metrics_table, per_class_table, scored_samples


def run_study(scans, y, methods, protocol, *, embedder=None, resampler=None,
              pos_label=None, threshold=None, recalibration=None, bias_correction=None,
              subgroups=None, target_name=None, method_inputs=None, random_state=0,
              verbose=1):
    """Evaluate classifiers, or regressors, on the same splits of the same scans: the
    loop behind ``dinoatten cv``.

    The scans are embedded once per slice encoder (for the methods on slice embeddings)
    and resampled once (for those on volumes); each method is fitted on every split's
    training scans and predicts its test scans; the metrics table compares them on the
    scans they all scored.

    Parameters
    ----------
    scans : list of paths or 3D arrays
    y : array-like of shape (n_scans,)
        Labels, or numbers (the target of regressors).
    methods : dict of str -> classifier or regressor
        Unfitted classifiers by key, each evaluated as an
        :class:`~sklearn_dinoatten.OperatingPointClassifier` with ``threshold`` and
        ``recalibration`` (fitted ones with :func:`external_test`, whose labels must be
        their classes: see :func:`fitted_classes`); or regressors (all of them: the
        study is then of a number, with a "training mean" row as the floor). A key of
        :data:`METHODS` gives the method's name and input (``make_method(key)`` builds
        one); any other key names an estimator of slice embeddings, or of resampled
        volumes (``method_inputs``).
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
    bias_correction : {"linear"}, default=None
        Regressors only: also report each method's predictions corrected for the
        regression to the mean of its errors, by the line of the error on the target
        fitted on each split's validation scans, else on out-of-fold predictions of its
        training scans (an inner 3-fold cross-validation), never on its test scans; the
        corrected rows ("<key>+bias-corrected") stand beside the uncorrected ones.
    subgroups : dict of str -> array-like of shape (n_scans,), default=None
        Subgroup columns (site, scanner, sex...), each a value per scan: the metrics
        table is repeated for each level (see ``subgroup_table``), in ``Run.subgroups``.
    target_name : str, default=None
        Regressors only: the target's name and units as the caption says them (e.g.
        ``"age (years)"``); "the target" by default.
    method_inputs : dict of str -> {"slices", "volumes"}, default=None
        What each method outside :data:`METHODS` takes: slice embeddings (the default),
        or the resampler's volumes, e.g. ``{"ridge": "volumes"}`` for a scikit-learn
        pipeline on voxels.
    random_state : int, default=0
        Seeds the bootstrap intervals and the inner folds that choose a threshold (or
        fit a bias correction).
    verbose : int, default=1
        ``1`` prints what is evaluated and a line per method and fit (the embedder
        and the classifiers print according to their own ``verbose``).

    Returns
    -------
    run : sklearn_dinoatten.evaluation.Run
        The scored scans' predictions, embeddings and attention, the metrics table and
        the study's description; :func:`sklearn_dinoatten.evaluation.write_run` writes it.
    """
    study = plan_study(scans, y, methods, protocol, embedder=embedder, pos_label=pos_label,
                       threshold=threshold, recalibration=recalibration,
                       bias_correction=bias_correction, subgroups=subgroups,
                       target_name=target_name, method_inputs=method_inputs,
                       random_state=random_state, verbose=verbose)
    _say_what_is_evaluated(study)
    inputs, resampler = _make_inputs(study, resampler)
    if study.task == "regression":
        return _run(study, regression_results(study, inputs), inputs, resampler)
    results = {}
    for n, (key, (estimator, source)) in enumerate(study.evaluated.items(), 1):
        if verbose:
            print(f"  {method_name(key)} ({n}/{len(study.evaluated)}):", flush=True)
        results[key] = cross_validate_method(
            estimator, inputs[source], study.y, protocol.splits, verbose=verbose,
            threshold=study.threshold, positive=study.positive, groups=protocol.groups,
            recalibration=study.recalibration, random_state=random_state)
    return _run(study, results, inputs, resampler)


def _say_what_is_evaluated(study):
    if study.verbose and study.task == "regression":
        print(f"{len(study.y)} scans ({study.target_name} from {study.y.min():g} to "
              f"{study.y.max():g}, mean {study.y.mean():.4g}); {study.protocol.description}"
              f"; methods: {', '.join(map(method_name, study.evaluated))}")
    elif study.verbose:
        classes, counts = np.unique(study.y, return_counts=True)
        counts = ", ".join(f"{c}: {n}" for c, n in zip(classes, counts, strict=True))
        print(f"{len(study.y)} scans ({counts}); {study.protocol.description}; "
              + (f"positive class: {study.positive!r}; " if study.positive is not None
                 else "")
              + f"methods: {', '.join(map(method_name, study.evaluated))}")


def _make_inputs(study, resampler):
    """``(inputs, resampler)``: each encoder's slice embeddings of the scans, by name
    (every backbone built and checked first), and the resampled volumes under ``None``
    when a method takes them."""
    scans, verbose, inputs = study.scans, study.verbose, {}
    sources = {source for _, source in study.evaluated.values()}
    if sources - {None}:
        fit_embedders(study.embedders, scans)
        for name, slice_embedder in study.embedders.items():
            if verbose:
                print(f"Embedding {len(scans)} scans"
                      + (f" with {name}" if study.several else "") + ":", flush=True)
            inputs[name], cached = slice_embedder.transform(scans, return_cached=True)
            if verbose and cached.all():  # the embedder had nothing to show progress of
                print(f"  all {len(scans)} found in the cache", flush=True)
    if None in sources:
        from ..volumes import VolumeResampler

        resampler = VolumeResampler() if resampler is None else resampler
        if verbose:
            shape = getattr(resampler, "shape", None)
            print(f"Resampling {len(scans)} scans" + (f" to {shape} voxels" if shape else ""),
                  flush=True)
        if not is_fitted(resampler):
            resampler.fit(scans)
        inputs[None] = resampler.transform(scans)
    return inputs, resampler


def _run(study, results, inputs, resampler):
    """The :class:`Run` of a study's results: its scored scans' predictions and outputs,
    the tables, and the description run.json holds."""
    y, groups, regression = study.y, study.protocol.groups, study.task == "regression"
    reference = next((k for k in results if k.partition(ENCODER_SEPARATOR)[0] == REFERENCE),
                     next(iter(results)))
    scored = regression_scored(results) if regression else scored_samples(results)
    warn_if_few_scored(y[scored], stacklevel=4, classes=not regression)
    first = next((name for name in study.embedders if name in inputs), None)  # embedded
    parts = (regression_parts(study, results, reference) if regression
             else _classification_parts(study, results, reference, first, scored))
    info = describe_study(
        study, scored=scored, reference=reference, calls=parts["calls"],
        caption=parts["caption"], embedders=study.embedders if first is not None else {},
        resampler=resampler if None in inputs else None,
        methods={k: (bare_classifier(m), source) for k, (m, source)
                 in study.evaluated.items()},
        extra_methods=[k for k in results if k not in study.evaluated],
        weights_sha256={name: weights_sha256(e) for name, e in study.embedders.items()},
        protocol_name=_protocol_name(study.protocol, study.external))
    info["methods"] = {k: info["methods"][k] for k in results}  # the tables' order
    if regression:
        info["target"] = describe_target(y[scored], study.target_name)
    return Run(info, _names(study.scans)[scored], y[scored],
               {} if regression else {k: r.proba[scored] for k, r in results.items()},
               groups=None if groups is None else groups[scored],
               folds=_folds(study.protocol, len(y), scored),
               outputs=_outputs(study, results, inputs, first, scored),
               metrics=parts["metrics"], subgroups=parts["subgroups"],
               per_class=parts.get("per_class"),
               subgroup_values={name: subgroup_levels(values)[scored]
                                for name, values in study.subgroups.items()},
               predictions={k: r.pred[scored] for k, r in results.items()} if regression
               else {})


def _classification_parts(study, results, reference, first, scored):
    """A classification run's ``calls``, caption, metrics, subgroup and per-class
    tables."""
    y, groups = study.y, study.protocol.groups
    calls = _calls(study, results)
    tables = dict(reference=reference, pos_label=study.positive, groups=groups,
                  random_state=study.random_state)
    return dict(
        calls=calls, caption=_caption(study, results, reference, first, calls),
        metrics=metrics_table(y, results, **tables),
        subgroups=(subgroup_table(y, results, study.subgroups, **tables)
                   if study.subgroups else None),
        per_class=None if study.positive is not None else per_class_table(
            y, results, reference=reference, groups=groups,
            random_state=study.random_state))


def _caption(study, results, reference, first, calls):
    return caption(study.protocol, study.positive, reference=reference,
                   random_weights=any(e.weights == "random"
                                      for e in study.embedders.values()),
                   encoders=list(study.embedders) if first is not None else (),
                   threshold=calls["threshold_rule"], recalibration=study.recalibration,
                   operating_points={method_name(k): text for k, text in
                                     calls.get("operating_points", {}).items()},
                   not_recalibrated=_not_recalibrated(results))


def _names(scans):
    """Files by absolute path, arrays by their place in ``scans``."""
    return np.array([os.path.abspath(scan) if isinstance(scan, (str, os.PathLike))
                     else f"#{i}" for i, scan in enumerate(scans)])


def _folds(protocol, n, scored):
    """Each scored scan's fold, 1 to k as the progress lines number them (None for a
    held-out split or an external test)."""
    if protocol.held_out:
        return None
    folds = np.full(n, -1)
    for i, split in enumerate(protocol.splits, 1):
        folds[split.test] = i
    return folds[scored]


def _outputs(study, results, inputs, first, scored):
    """outputs.npz's arrays of the scored scans: each method's learned embedding and
    slice attention (per slice: with feature="patch", a slice's patches summed), the
    slices kept and, in tri-planar bags, each slice's axis."""
    outputs = {f"embedding_{k}": r.embedding[scored] for k, r in results.items()
               if r.embedding is not None}
    for k, r in results.items():
        if r.attention is not None:
            rows_per_slice = study.embedders[study.evaluated[k][1]].rows_per_slice_
            outputs[f"attention_{k}"] = slice_weights(r.attention[scored], rows_per_slice)
    if first is not None:
        outputs.update(_slice_outputs(inputs[first], study.embedders[first], scored))
    return outputs


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


def _calls(study, results):
    """run.json's record of how the scans were called: the threshold rule (two classes)
    and each method's threshold per split, the recalibration and whether each split's
    was applied. An external test of fitted models records theirs (a ``threshold`` given
    overrides their thresholds) and how each calls a scan (``operating_points``)."""
    threshold, recalibration, positive = study.threshold, study.recalibration, study.positive
    fitted = {k: m for k, m in study.methods.items()
              if study.external and isinstance(m, OperatingPointClassifier)}
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


def _slice_outputs(embeddings, embedder, scored):
    """``n_slices`` and, for tri-planar bags, ``slice_axis`` of the scored scans."""
    firsts = embeddings[:, ::embedder.rows_per_slice_]  # the first row of each slice
    real = ~np.isnan(firsts).all(axis=2)
    outputs = {"n_slices": real.sum(axis=1)[scored]}
    if len(axes_of(embedder.axis)) > 1:  # each slice's orientation, from its tag
        tags = np.nan_to_num(firsts[..., -3:]).argmax(axis=2)
        outputs["slice_axis"] = np.where(real, tags, -1)[scored]
    return outputs
