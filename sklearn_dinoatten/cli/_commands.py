"""The commands of ``dinoatten``, one function each: embed, cv, report, fit, predict and
demo. Each takes the parsed arguments and prints or writes its result."""

import os
import time

import numpy as np

from ..evaluation import METHODS
from ..utils._files import atomic_write, write_csv
from ..utils._options import THRESHOLD
from ._bids import bids_record
from ._inputs import (
    build_embedders,
    build_method,
    build_model,
    build_resampler,
    check_evaluation,
    check_task_options,
    is_pickle,
    load_fitted,
    method_keys,
    protocol,
    target_name,
)
from ._outputs import (
    PROG,
    CommandError,
    output_file,
    run_directory,
)
from ._scans import (
    has_labels,
    labelled_scans,
    labels_file,
    scan_paths,
    scans_to_predict,
    subgroup_columns,
)


def embed(args):
    """Embed and cache every scan of DATA; a rerun embeds only what is not cached."""
    from ..embedding import fit_embedders

    paths = scan_paths(args)
    embedders = fit_embedders(build_embedders(args), paths)  # every backbone checked first
    for backbone, embedder in embedders.items():
        start = time.perf_counter()
        embeddings, cached = embedder.transform(paths, return_cached=True)
        rows = int((~np.isnan(embeddings).all(axis=2)).sum())
        print((f"{backbone}: " if len(embedders) > 1 else "")
              + f"{len(paths)} scans, {rows // embedder.rows_per_slice_} slices of "
              f"{embeddings.shape[2]} features: {int((~cached).sum())} scans embedded now, "
              f"{int(cached.sum())} found in the cache; "
              f"{time.perf_counter() - start:.1f} s. Cache: {args.cache_dir}")


def cv(args):
    """Evaluate methods on DATA by k-fold cross-validation (or on the held-out test set
    of a split column); write predictions, metrics and the run's parameters."""
    from ..evaluation import data_record, run_study

    paths, y, groups, split = labelled_scans(args)
    check_task_options(args)
    regression = args.task == "regression"
    evaluation = protocol(args, y, groups, split)
    methods = {key: build_method(key, args) for key in method_keys(args.method, args.task)}
    embedder = (build_embedders(args) if any(not METHODS[k].takes_volumes for k in methods)
                else None)
    classes = {} if regression else dict(pos_label=args.pos_label, threshold=args.threshold,
                                         recalibration=args.recalibration)
    with run_directory(args.out, args.overwrite) as folder:  # checked first, moved in whole
        run = run_study(paths, y, methods, evaluation, embedder=embedder,
                        resampler=build_resampler(args), **classes,
                        bias_correction=args.bias_correction,
                        target_name=target_name(args) if regression else None,
                        subgroups=subgroup_columns(args, labels_file(args)),
                        random_state=args.random_state, verbose=int(args.verbosity >= 1))
        run.info.update(command=[PROG, *args.argv],
                        data=data_record(args.data, labels_file(args), len(y))
                        | bids_record(args))
        write_and_show(folder, run)
    written(args.out)


def write_and_show(folder, run):
    """Write the run and print its metrics table and caption."""
    from ..evaluation import write_run

    write_run(folder, run)
    with open(os.path.join(folder, "metrics.md"), encoding="utf-8") as f:
        print(f"\n{f.read()}")


def written(out):
    print(f"Written to {out}: {', '.join(sorted(os.listdir(out)))}. "
          f"Next: {PROG} report {out}")


def report(args):
    """Write the HTML report of a cv run (or of a predict run with labels)."""
    from ..evaluation import write_report

    if args.out is not None:
        output_file(args.out)
    path = write_report(args.run_dir, out=args.out, overlays=args.overlays,
                        verbose=int(args.verbosity >= 1))
    print(f"Report: {path}")


def fit(args):
    """Train one method on the scans of DATA with its operating point and recalibration
    (a regression's: the regressor), and save the fitted pipeline with its model card.

    With a split column: on the 'train' scans, stopping early, recalibrating and
    choosing a threshold rule's threshold on the 'val' ones (else on out-of-fold
    predictions of the training scans), as cv evaluates it. A ``.joblib`` path gets a
    pickle (without a card), any other a safetensors model file."""
    from ..evaluation import evaluation_record, make_card, weights_sha256

    output_file(args.out, args.overwrite)
    paths, y, groups, split = labelled_scans(args)
    check_task_options(args)
    regression = args.task == "regression"
    paths = np.asarray(paths)
    model = build_model(args, y)
    sha = weights_sha256(model[0]) if "backbone" in model[0].get_params() else None
    if args.evaluation is not None:  # before any work
        check_evaluation(args, model, sha)
    step = model.steps[-1][0]
    train, fit_params, done = np.ones(len(y), dtype=bool), {}, f"all {len(y)} labelled scans"
    if split is not None:
        train, val = split == "train", split == "val"
        done = f"{train.sum()} 'train' scans"
        if val.any():
            model[-1].set_params(**{"early_stopping" if regression
                                    else "estimator__early_stopping": True})
            fit_params = {f"{step}__X_val": model[:-1].fit_transform(list(paths[val])),
                          f"{step}__y_val": y[val]}
            done += (f", early stopping{'' if regression else _and_chosen(model[-1])} on "
                     f"{val.sum()} 'val' scans")
        done += f" ({np.sum(split == 'test')} 'test' scans left out)"
    if groups is not None and not regression:  # the inner folds of the operating point
        fit_params[f"{step}__groups"] = groups[train]
    if args.verbosity >= 1:
        print(f"Training {METHODS[args.method].name} on {done}", flush=True)
    model.fit(list(paths[train]), y[train], **fit_params)
    if is_pickle(args.out):
        import joblib

        atomic_write(args.out, lambda f: joblib.dump(model, f))
        saved = "Saved (a pickle: without a model card)"
    else:
        from ..persistence import save_model

        evaluation = (None if args.evaluation is None else
                      evaluation_record(args.evaluation, args.method, model, weights_sha256=sha))
        save_model(model, args.out, card=make_card(
            model, list(paths[train]), y[train], scans=done, labels_file=labels_file(args),
            groups=None if groups is None else groups[train], evaluation=evaluation,
            X_val=list(paths[split == "val"]) if split is not None else None,
            target_name=args.label_column if regression else None,
            units=args.units if regression else None))
        saved = ("Saved with its model card" + ("" if evaluation is None else
                                                f", which holds the metrics of "
                                                f"{args.evaluation}")
                 + f" (`{PROG} card {args.out}`)")
    print(f"{METHODS[args.method].name} trained on {done}. {_what_it_does(model, y[train])}. "
          f"{saved} to {args.out}")


def _what_it_does(model, y):
    """How the fitted model calls a scan, or, a regressor, what it predicts."""
    from sklearn.base import is_regressor

    from ..evaluation import describe_operating_point

    if is_regressor(model):
        return (f"It predicts a number (trained on targets from {y.min():.4g} to "
                f"{y.max():.4g})")
    return describe_operating_point(model[-1])


def _and_chosen(point):
    """What else the 'val' scans choose, in words."""
    from ..evaluation import is_data_driven

    chosen = (["the recalibration"] if point.recalibration else []) + (
        ["the threshold"] if is_data_driven(point.threshold) else [])
    return "".join(f", {what}" for what in chosen)


def card(args):
    """Print the model card of a model file written by `dinoatten fit` (Markdown): what
    it classifies, its training data, recipe, operating point, calibration, evaluation,
    intended use and limits."""
    from ..evaluation import card_markdown
    from ..persistence import read_card

    if args.out is not None:
        output_file(args.out, args.overwrite, inputs=[args.model])
    if is_pickle(args.model):
        raise CommandError(f"{args.model!r} is a pickle, which holds no model card: save "
                           f"models as safetensors (`{PROG} fit ... --out model.safetensors`).")
    text = card_markdown(load_fitted(args), card=read_card(args.model))
    if args.out is None:
        print(text, end="")
    else:
        atomic_write(args.out, lambda f: f.write(text.encode("utf-8")))
        print(f"Model card written to {args.out}")


def predict(args):
    """Predict scans with a saved model; with labels, evaluate it as cv does.

    Without labels: probabilities, labels and the slices of highest attention, as a
    CSV. With labels (a folder holding labels.csv, or a labels CSV): a run directory
    like cv's (metrics with CIs, predictions, embeddings), for an external test set."""
    from sklearn.base import is_regressor

    labelled = has_labels(args)
    if not labelled:  # checked before the model is loaded
        if args.subgroups:
            raise CommandError("--subgroups needs labels: give a labels CSV, a folder "
                               "holding labels.csv, or a BIDS dataset with --label-column.")
        paths, y, groups, labels = scans_to_predict(args)
        output_file(args.out, args.overwrite, inputs=[args.model, *paths])
    model = load_fitted(args)
    regression = is_regressor(model)
    if regression and (args.threshold is not None or args.pos_label is not None):
        raise CommandError(f"--threshold and --pos-label are for classifiers; "
                           f"{args.model!r} is a regressor.")
    if labelled:
        from ..persistence import read_card

        card = None if is_pickle(args.model) else read_card(args.model)  # read once
        target = card and card["training"].get("target")
        if args.label_column is None:  # a regressor's card names its target's column
            args.label_column = target["name"] if target else "label"
        paths, y, groups, labels = scans_to_predict(  # a regressor's labels are numbers
            args, task="regression" if regression else "classification")
        return _evaluate(args, model, card, paths, y, groups, labels)
    if regression:
        return _write_predictions(args, model, paths, None, model.predict(paths),
                                  "Each scan's predicted number (uncorrected)")
    proba = model.predict_proba(paths)
    classes = model.classes_
    predicted, called = _decisions(args, model, proba)
    _write_predictions(args, model, paths, {f"p_{c}": proba[:, i]
                                            for i, c in enumerate(classes)}, predicted, called)


def _write_predictions(args, model, paths, columns, predicted, called):
    """predict's CSV: each scan's prediction (a number at full precision), the
    ``columns`` (name -> a value per scan: the probabilities) and its top slices."""
    top = _top_slices(model, paths, args.top_slices)
    rows = []
    for i, path in enumerate(paths):
        value = predicted[i]
        row = {"path": path, "prediction": repr(float(value))
               if isinstance(value, (float, np.floating)) else value}
        row.update({name: repr(float(values[i])) for name, values in (columns or {}).items()})
        row["top_slices"] = "" if top is None else " ".join(top[i])
        rows.append(row)
    write_csv(args.out, rows)
    from ..volumes import axes_of

    print(f"{len(rows)} predictions written to {args.out}. {called}."
          + ("" if top is None else f" top_slices: the slices of highest attention, by "
                                   f"index along axis {model[0].axis!r} of the volumes "
                                   "reoriented to RAS"
                                   + ("; orientation:index in a tri-planar bag."
                                      if len(axes_of(model[0].axis)) > 1 else ".")))


def _decisions(args, model, proba):
    """Each scan's predicted class, and how it was called: with two classes, the
    positive one where its probability is at least the model's threshold (as its card
    says), or ``--threshold`` instead (a number: a rule is chosen on training scans,
    which ``predict`` has none of); else the most probable. A model saved without an
    operating point takes ``--threshold`` or 0.5."""
    from ..evaluation import (
        OperatingPointClassifier,
        decide,
        describe_operating_point,
        is_data_driven,
        models_positive,
        no_training_scans,
        positive_class,
    )

    classes, point = model.classes_, model[-1]
    own = isinstance(point, OperatingPointClassifier)
    given = args.threshold is not None or args.pos_label is not None
    if len(classes) != 2:
        if given:
            raise CommandError(f"--threshold and --pos-label are for models of two classes; "
                               f"this one has {len(classes)}, and each scan takes its most "
                               "probable class.")
        return (classes[proba.argmax(axis=1)], describe_operating_point(point) if own
                else "Each scan called its most probable class")
    if args.threshold is not None and is_data_driven(args.threshold):
        raise CommandError(str(no_training_scans(args.threshold)))
    try:
        positive = (models_positive({"model": point}, pos_label=args.pos_label) if own
                    else positive_class(classes, pos_label=args.pos_label))
    except ValueError as error:
        if given:
            raise CommandError(str(error)) from None
        return classes[proba.argmax(axis=1)], "Each scan called its most probable class"
    if own and args.threshold is None:
        return (decide(proba, classes, positive, point.threshold_),
                describe_operating_point(point))
    threshold = THRESHOLD if args.threshold is None else args.threshold
    called = f"{positive!r} called where its probability is at least {threshold:g}"
    if own:
        return (decide(proba, classes, positive, threshold),
                f"{describe_operating_point(point)}. Here {called} instead (--threshold)")
    return decide(proba, classes, positive, threshold), called[0].upper() + called[1:]


def _top_slices(model, paths, n):
    """Per scan, its ``n`` slices of highest attention (None without slice attention)."""
    if not hasattr(model[-1], "attention_weights"):
        return None
    from ..explain import slice_attention
    from ..volumes import AXIS_NAMES

    embedder = model[0]
    attention = slice_attention(model, paths)
    top = []
    for path, weights in zip(paths, attention, strict=True):
        axes, kept = embedder.kept_slices(path)
        best = np.argsort(-weights[: len(kept)])[:n]
        top.append([f"{AXIS_NAMES[axes[j]]}:{kept[j]}" if len(set(axes)) > 1
                    else str(kept[j]) for j in best])
    return top


def _evaluate(args, model, card, paths, y, groups, labels):
    """Score a fitted model (its model ``card``, None without) on labelled scans and
    write a run directory."""
    from sklearn.base import is_regressor

    from ..evaluation import (
        bare_classifier,
        data_record,
        external_test,
        method_of,
        run_study,
        training_scans_scored,
    )
    classifier = model[-1]
    key = method_of(bare_classifier(classifier)) or type(classifier).__name__
    on_volumes = key in METHODS and METHODS[key].takes_volumes
    if not on_volumes and len(model) != 2:  # the slices need the embedder's own record
        raise CommandError(f"{args.model!r} is a pipeline of {len(model)} steps; an "
                           "evaluation takes a slice embedder and a classifier, as "
                           f"`{PROG} fit` saves them.")
    used = training_scans_scored(card, paths)
    evaluation = external_test(y, groups=groups, model=os.path.basename(args.model), used=used)
    target = card and card["training"].get("target")
    classes = (dict(pos_label=args.pos_label, threshold=args.threshold) if target is None
               and not is_regressor(classifier) else
               dict(target_name=None if not target else target["name"] + (
                   f" ({target['units']})" if target.get("units") else "")))
    with run_directory(args.out, args.overwrite) as folder:
        # The pipeline's own steps before the classifier: what its predict_proba scores
        run = run_study(paths, y, {key: classifier}, evaluation,
                        embedder=None if on_volumes else model[0],
                        resampler=model[:-1] if on_volumes else None, **classes,
                        subgroups=subgroup_columns(args, labels),
                        verbose=int(args.verbosity >= 1))
        run.info.update(command=[PROG, *args.argv], model=os.path.abspath(args.model),
                        data=data_record(os.path.dirname(labels), labels, len(y))
                        | bids_record(args),
                        training_scans_scored=used)
        write_and_show(folder, run)
    written(args.out)
