"""Compare methods on the same splits: the machinery behind ``dinoatten cv`` and the
benchmarks.

Two protocols: k-fold cross-validation (stratified, grouped by subject when subjects
are given), where every scan is predicted once by the fold that held it out; and a
fixed held-out split, where the methods train on ``train``, stop early on ``val`` and
score ``test`` once. Every method sees the same splits, so the scores are paired and
DeLong's test applies. Embedding-based methods share one embedding array; the 3D
ResNet trains on resampled volumes.
"""

import os
import time
from dataclasses import dataclass
from functools import partial

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from .datasets import SPLITS
from .methods import ENCODER_SEPARATOR, METHODS, REFERENCE, encoder_key, method_name
from .metrics import (
    binary_auc,
    bootstrap_ci,
    delong_test,
    false_negative_rate,
    ovr_macro_auc,
    sensitivity_score,
    specificity_score,
)
from .runs import METRIC_COLUMNS, Run, jsonable, versions
from .slicing import axes_of, slice_weights

N_RESAMPLES = 1000
# The embedder's settings that choose the slices: those of the encoders a study compares
SLICING = ("axis", "n_slices", "slice_selection", "spacing", "slice_spacing", "crop",
           "min_foreground")


def positive_class(y, pos_label=None):
    """The positive class of binary labels ``y``: AUC, sensitivity, F1 and the ROC
    are computed for it.

    ``pos_label`` names it (compared as given or as text, so ``"1"`` finds ``1``).
    Without it, labels ``{0, 1}``, ``{-1, 1}`` and ``{False, True}`` (also as text)
    take ``1`` / ``True``; any other pair is ambiguous and raises ``ValueError``
    listing the classes. Returns ``None`` for more than two classes.

    Examples
    --------
    >>> from sklearn_dinoatten.study import positive_class
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


def cross_validation(y, n_folds=5, groups=None, random_state=0):
    """Stratified k-fold cross-validation, grouped when ``groups`` is given so that no
    group (subject) is in a training and a test fold at once."""
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < n_folds:
        raise ValueError(
            f"Class {classes[counts.argmin()].item()!r} has {counts.min()} scans, fewer than the "
            f"{n_folds} folds: every test fold needs one; lower the number of folds."
        )
    if groups is None:
        cv = StratifiedKFold(n_folds, shuffle=True, random_state=random_state)
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
                    f"({', '.join(map(str, subjects[:5]))}), fewer than the {n_folds} folds: "
                    "a subject's scans stay in one fold, so every test fold needs a subject "
                    "of each class; lower the number of folds, or gather more subjects."
                )
        cv = StratifiedGroupKFold(n_folds, shuffle=True, random_state=random_state)
        description = (f"{n_folds}-fold stratified cross-validation of {len(y)} scans, grouped "
                       f"by subject ({n_groups} subjects)")
    splits = [Split(train, test) for train, test in cv.split(np.zeros(len(y)), y, groups)]
    return Protocol(splits, description, groups)


def held_out(split, y, groups=None):
    """A fixed split: ``split`` names each sample's set, ``"train"``, ``"val"`` (early
    stopping; optional) or ``"test"`` (scored once)."""
    split, y = np.asarray(split).astype(str), np.asarray(y)
    unknown = sorted(set(split.tolist()) - set(SPLITS))
    if unknown:
        raise ValueError(f"split values must be {', '.join(SPLITS)}; got {unknown[0]!r}.")
    train, validation, test = (np.flatnonzero(split == name) for name in SPLITS)
    if not len(train) or not len(test):
        raise ValueError(f"The split needs 'train' and 'test' samples; it has {len(train)} "
                         f"and {len(test)}.")
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


def external_test(y, groups=None, model="a model"):
    """Score every sample once with methods fitted elsewhere, on other scans: the
    protocol of a fitted ``model`` (named in the description) on an external test set.
    A model does not record the scans it was fitted on, so the description says that
    they must be others rather than claim it."""
    description = f"external test set: {len(y)} scans predicted by {model}"
    if groups is not None:
        groups = np.asarray(groups)
        description += f" ({len(np.unique(groups))} subjects)"
    description += (", as fitted before (on scans the model does not record, which must "
                    "be other scans for an external test)")
    return Protocol([Split(None, np.arange(len(y)))], description, groups, held_out=True)


@dataclass
class OutOfFold:
    """Each scored sample predicted by the fit that held it out; rows never scored (the
    training samples of a held-out split) are NaN."""

    proba: np.ndarray  # (n_samples, n_classes)
    embedding: np.ndarray  # (n_samples, dim): the learned volume embedding
    attention: np.ndarray | None  # (n_samples, n_slices), None without slice attention
    fit_seconds: list


def cross_validate_method(estimator, X, y, splits, verbose=0):
    """Fit a clone of ``estimator`` on each split's training samples, with early
    stopping on its validation samples when it has them; collect the test predictions,
    their probability columns in the order of ``np.unique(y)`` (matched to each model's
    ``classes_`` by class). A split without training samples (:func:`external_test`)
    uses ``estimator`` as fitted. ``verbose=1`` prints a line per fit."""
    y = np.asarray(y)
    classes = np.unique(y)
    proba, embedding, attention, fit_seconds = None, None, None, []
    for i, split in enumerate(splits, 1):
        start = time.perf_counter()
        if split.train is None:
            model = estimator
        else:
            model, fit_params = clone(estimator), {}
            if split.validation is not None:
                model.set_params(early_stopping=True)
                fit_params = dict(X_val=X[split.validation], y_val=y[split.validation])
            model.fit(X[split.train], y[split.train], **fit_params)
            fit_seconds.append(time.perf_counter() - start)
        test = split.test
        fold_proba = model.predict_proba(X[test])[:, _columns_of(model, classes)]
        fold_embedding = model.volume_embeddings(X[test])
        if proba is None:
            proba = np.full((len(y), len(classes)), np.nan)
            embedding = np.full((len(y), fold_embedding.shape[1]), np.nan, dtype=np.float32)
            if hasattr(model, "attention_weights"):
                attention = np.full((len(y), X.shape[1]), np.nan)
        proba[test], embedding[test] = fold_proba, fold_embedding
        if attention is not None:
            attention[test] = model.attention_weights(X[test])
        if verbose:
            print(f"    {'fold' if len(splits) > 1 else 'split'} {i}/{len(splits)}: "
                  + (f"fitted in {fit_seconds[-1]:.1f} s, " if split.train is not None else "")
                  + f"{len(test)} scans predicted", flush=True)
    return OutOfFold(proba, embedding, attention, fit_seconds or [np.nan])


def _columns_of(model, classes):
    """The columns of ``model``'s probabilities that hold ``classes``, in that order."""
    column = {c: i for i, c in enumerate(np.asarray(model.classes_).tolist())}
    missing = [c for c in classes.tolist() if c not in column]
    if missing:
        raise ValueError(f"{type(model).__name__} was fitted on the classes "
                         f"{list(column)}, without {missing[0]!r}.")
    return [column[c] for c in classes.tolist()]


def fitted_classes(y, methods):
    """``y`` as the classes of methods fitted elsewhere (an external test set): labels
    are matched to each method's ``classes_`` by name (``"1"`` is ``1``); labels whose
    classes are not exactly the methods' raise ``ValueError`` naming both."""
    y = np.asarray(y)
    given = sorted(set(map(str, y.tolist())))
    by_name = None
    for key, estimator in methods.items():
        check_is_fitted(estimator)
        classes = np.asarray(estimator.classes_).tolist()
        by_name = {str(c): c for c in classes}
        if given != sorted(by_name):
            raise ValueError(
                f"The labels' classes are {given}; {method_name(key)} was fitted on "
                f"{sorted(by_name)}: an external test set is scored on the model's classes, "
                "each present (matched by name).")
    return y if by_name is None else np.array([by_name[str(label)] for label in y.tolist()])


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


def _is_fitted(estimator):
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


def run_study(scans, y, methods, protocol, *, embedder=None, resampler=None,
              pos_label=None, random_state=0, verbose=1):
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
        Unfitted classifiers by key (fitted ones with :func:`external_test`, whose labels
        must be their classes: see :func:`fitted_classes`). A key of :data:`METHODS`
        gives the method's name and input (``make_method(key)`` builds one); any other
        key names a classifier of slice embeddings.
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
        The positive class of two (see :func:`positive_class`).
    random_state : int, default=0
        Seeds the bootstrap of the AUC intervals.
    verbose : int, default=1
        ``1`` prints what is evaluated and a line per method and fit (the embedder
        and the classifiers print according to their own ``verbose``).

    Returns
    -------
    run : sklearn_dinoatten.runs.Run
        The scored scans' predictions, embeddings and attention, the metrics table and
        the study's description; :func:`sklearn_dinoatten.runs.write_run` writes it.
    """
    y = np.asarray(y)
    if all(split.train is None for split in protocol.splits):  # fitted elsewhere
        y = fitted_classes(y, methods)
    positive = positive_class(y, pos_label)  # before any work
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
        for slice_embedder in embedders.values():  # every backbone built (and checked) first
            if not _is_fitted(slice_embedder):
                slice_embedder.fit(scans)
        for name, slice_embedder in embedders.items():
            if verbose:
                print(f"Embedding {len(scans)} scans" + (f" with {name}" if several else "")
                      + ":", flush=True)
            inputs[name] = slice_embedder.transform(scans)
    if any(on_volumes.values()):
        from .resampling import VolumeResampler

        resampler = VolumeResampler() if resampler is None else resampler
        if verbose:
            shape = getattr(resampler, "shape", None)
            print(f"Resampling {len(scans)} scans" + (f" to {shape} voxels" if shape else ""),
                  flush=True)
        if not _is_fitted(resampler):
            resampler.fit(scans)
        inputs[None] = resampler.transform(scans)
    results = {}
    for n, (key, (estimator, source)) in enumerate(evaluated.items(), 1):
        if verbose:
            print(f"  {method_name(key)} ({n}/{len(evaluated)}):", flush=True)
        results[key] = cross_validate_method(estimator, inputs[source], y, protocol.splits,
                                             verbose=verbose)

    reference = next((k for k in results if k.partition(ENCODER_SEPARATOR)[0] == REFERENCE),
                     next(iter(results)))
    groups = protocol.groups
    scored = scored_samples(results)
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
        for i, split in enumerate(protocol.splits):
            folds[split.test] = i
        folds = folds[scored]
    params = {name: jsonable(e.get_params()) for name, e in embedders.items()}
    info = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "classes": classes.tolist(),
        "positive_label": positive,
        "protocol": "held-out" if protocol.held_out else "cross-validation",
        "protocol_description": protocol.description,
        "folds": None if protocol.held_out else len(protocol.splits),
        "grouped": groups is not None,
        "n_subjects": None if groups is None else len(np.unique(groups[scored])),
        "n_scored": int(scored.sum()),
        "caption": caption(protocol, positive, reference, random_weights=random_weights,
                           encoders=list(embedders) if first is not None else ()),
        "random_weights": random_weights,
        "seed": random_state,
        "reference": reference,
        "embedder": params[first] if first is not None and not several else None,
        "resampler": jsonable(resampler.get_params()) if None in inputs else None,
        "methods": {k: {"name": method_name(k), "params": jsonable(m.get_params()),
                        **({"encoder": source} if several and source else {})}
                    for k, (m, source) in evaluated.items()},
        "versions": versions(),
    }
    if several and first is not None:
        info["embedders"] = params
    names = np.array([  # files by absolute path, arrays by their place in scans
        os.path.abspath(scan) if isinstance(scan, (str, os.PathLike)) else f"#{i}"
        for i, scan in enumerate(scans)])
    return Run(info, names[scored], y[scored],
               {k: r.proba[scored] for k, r in results.items()},
               groups=None if groups is None else groups[scored], folds=folds,
               outputs=outputs,
               metrics=metrics_table(y, results, reference=reference, pos_label=positive,
                                     groups=groups, random_state=random_state))


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
