"""The command line: a folder of scans to a cross-validated result and a report.

    dinoatten embed DATA --cache-dir DIR      embed and cache every scan (resumable)
    dinoatten cv DATA --method all --out DIR  grouped stratified CV, metrics, predictions
    dinoatten report DIR                      an HTML report of a cv run
    dinoatten fit DATA --out model.safetensors    train one method on every scan
    dinoatten predict model.safetensors SCANS...  probabilities, labels, top slices;
                                              with labels, an evaluation run
    dinoatten demo                            the whole loop on a small offline data set

``DATA`` is a folder holding the scans and ``labels.csv`` (columns ``path``, relative
to the folder, ``label`` and, optionally, ``subject``). Errors in the input end with
one line on stderr and exit status 1.
"""

import argparse
import inspect
import os
import sys
import time
import warnings

import numpy as np

from . import __version__
from ._arguments import (
    add_data_arguments,
    add_embedding_arguments,
    add_label_columns,
    add_training_arguments,
    add_verbosity_arguments,
    integer,
)
from ._files import write_csv
from ._inputs import (
    PROG,
    CommandError,
    build_embedder,
    build_embedders,
    build_method,
    build_resampler,
    cache_of,
    is_pickle,
    labelled_scans,
    labels_file,
    load_fitted,
    method_keys,
    output_file,
    protocol,
    run_directory,
    scan_paths,
    scans_to_predict,
)
from .methods import METHODS, REFERENCE


def main(argv=None):
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.verbosity = 0 if args.quiet else 1 + args.verbose
    with warnings.catch_warnings():
        warnings.showwarning = _warning_printer(args.command)
        try:
            args.run(args)
        except (CommandError, ValueError, OSError, MemoryError, RuntimeError) as exc:
            # OSError: a full disk, a file-size limit; RuntimeError: e.g. pretrained
            # weights without a network. The first line of the message says what happened.
            message = (str(exc).strip().splitlines()[0] if str(exc).strip()
                       else type(exc).__name__)
            print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"{PROG} {args.command}: interrupted; {_what_is_kept(args)}.", file=sys.stderr)
            return 130
    return 0


def _warning_printer(command):
    """A ``warnings.showwarning`` that prints each message once, without source lines."""
    said = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        if text not in said:
            said.add(text)
            print(f"{PROG} {command}: warning: {text}", file=sys.stderr)

    return show


def _what_is_kept(args):
    cache = cache_of(args)
    if args.command == "embed":
        return f"finished embeddings are cached in {cache}, rerun to go on"
    return "no results were written" + (
        f"; embeddings finished so far are cached in {cache}" if cache else
        "; no embedding was kept (only --cache-dir keeps them on disk)")


# Commands --------------------------------------------------------------------------


def embed(args):
    """Embed and cache every scan of DATA; a rerun embeds only what is not cached."""
    paths = scan_paths(args)
    embedders = build_embedders(args)
    for backbone, embedder in embedders.items():
        start = time.perf_counter()
        embeddings, cached = embedder.fit(paths).transform(paths, return_cached=True)
        rows = int((~np.isnan(embeddings).all(axis=2)).sum())
        print((f"{backbone}: " if len(embedders) > 1 else "")
              + f"{len(paths)} scans, {rows // embedder.rows_per_slice_} slices of "
              f"{embeddings.shape[2]} features: {int((~cached).sum())} scans embedded now, "
              f"{int(cached.sum())} found in the cache; "
              f"{time.perf_counter() - start:.1f} s. Cache: {args.cache_dir}")


def cv(args):
    """Evaluate methods on DATA by k-fold cross-validation (or on the held-out test set
    of a split column); write predictions, metrics and the run's parameters."""
    from .runs import data_record
    from .study import run_study

    paths, y, groups, split = labelled_scans(args)
    evaluation = protocol(args, y, groups, split)
    methods = {key: build_method(key, args) for key in method_keys(args.method)}
    embedder = (build_embedders(args) if any(not METHODS[k].takes_volumes for k in methods)
                else None)
    with run_directory(args.out, args.overwrite) as folder:  # checked first, moved in whole
        run = run_study(paths, y, methods, evaluation, embedder=embedder,
                        resampler=build_resampler(args), pos_label=args.pos_label,
                        random_state=args.random_state, verbose=int(args.verbosity >= 1))
        run.info.update(command=[PROG, *args.argv],
                        data=data_record(args.data, labels_file(args), len(y)))
        _write(folder, run)
    _written(args.out)


def _write(folder, run):
    """Write the run and print its metrics table and caption."""
    from .runs import write_run

    write_run(folder, run)
    with open(os.path.join(folder, "metrics.md"), encoding="utf-8") as f:
        print(f"\n{f.read()}")


def _written(out):
    from .runs import FILES

    print(f"Written to {out}: {', '.join(FILES)}. Next: {PROG} report {out}")


def report(args):
    """Write the HTML report of a cv run (or of a predict run with labels)."""
    from .report import write_report

    if args.out is not None:
        output_file(args.out)
    path = write_report(args.run_dir, out=args.out, overlays=args.overlays,
                        verbose=int(args.verbosity >= 1))
    print(f"Report: {path}")


def fit(args):
    """Train one method on the scans of DATA and save the fitted pipeline.

    With a split column: on the 'train' scans, stopping early on the 'val' ones. A
    ``.joblib`` path gets a pickle, any other a safetensors model file."""
    from sklearn.pipeline import make_pipeline

    output_file(args.out)
    paths, y, _, split = labelled_scans(args)
    paths = np.asarray(paths)
    classifier = build_method(args.method, args)
    if METHODS[args.method].takes_volumes:
        model = make_pipeline(build_resampler(args), classifier)
    else:
        model = make_pipeline(build_embedder(args), classifier)
    train, fit_params, done = np.ones(len(y), dtype=bool), {}, f"{len(y)} scans"
    if split is not None:
        train, val = split == "train", split == "val"
        done = f"{train.sum()} 'train' scans"
        if val.any():
            classifier.set_params(early_stopping=True)
            name = model.steps[-1][0]
            fit_params = {f"{name}__X_val": model[:-1].fit_transform(list(paths[val])),
                          f"{name}__y_val": y[val]}
            done += f", early stopping on {val.sum()} 'val' scans"
        done += f" ({np.sum(split == 'test')} 'test' scans left out)"
    if args.verbosity >= 1:
        print(f"Training {METHODS[args.method].name} on {done}", flush=True)
    model.fit(list(paths[train]), y[train], **fit_params)
    if is_pickle(args.out):
        import joblib

        from ._files import atomic_write

        atomic_write(args.out, lambda f: joblib.dump(model, f))
    else:
        from .persistence import save_model

        save_model(model, args.out)
    print(f"{METHODS[args.method].name} trained on {done}; saved to {args.out}")


def predict(args):
    """Predict scans with a saved model; with labels, evaluate it as cv does.

    Without labels: probabilities, labels and the slices of highest attention, as a
    CSV. With labels (a folder holding labels.csv, or a labels CSV): a run directory
    like cv's (metrics with CIs, predictions, embeddings), for an external test set."""
    paths, y, groups, labels = scans_to_predict(args)
    if y is None:
        output_file(args.out)
    model = load_fitted(args)
    if y is not None:
        return _evaluate(args, model, paths, y, groups, labels)
    proba = model.predict_proba(paths)
    classes = model.classes_
    top = _top_slices(model, paths, args.top_slices)
    rows = []
    for i, path in enumerate(paths):
        row = {"path": path, "prediction": classes[proba[i].argmax()]}
        row.update({f"p_{c}": repr(float(p)) for c, p in zip(classes, proba[i], strict=True)})
        row["top_slices"] = "" if top is None else " ".join(top[i])
        rows.append(row)
    write_csv(args.out, rows)
    print(f"{len(rows)} predictions written to {args.out}"
          + ("" if top is None else f" (top_slices: the slices of highest attention, by "
                                    f"index along axis {model[0].axis!r} of the volumes "
                                    "reoriented to RAS; orientation:index in a tri-planar "
                                    "bag)"))


def _top_slices(model, paths, n):
    """Per scan, its ``n`` slices of highest attention (None without slice attention)."""
    if not hasattr(model[-1], "attention_weights"):
        return None
    from .explain import slice_attention
    from .slicing import AXIS_NAMES

    embedder = model[0]
    attention = slice_attention(model, paths)
    top = []
    for path, weights in zip(paths, attention, strict=True):
        axes, kept = embedder.kept_slices(path)
        best = np.argsort(-weights[: len(kept)])[:n]
        top.append([f"{AXIS_NAMES[axes[j]]}:{kept[j]}" if len(set(axes)) > 1
                    else str(kept[j]) for j in best])
    return top


def _evaluate(args, model, paths, y, groups, labels):
    """Score a fitted model on labelled scans and write a run directory."""
    from .methods import method_of
    from .runs import data_record
    from .study import external_test, run_study

    classifier = model[-1]
    key = method_of(classifier) or type(classifier).__name__
    on_volumes = key in METHODS and METHODS[key].takes_volumes
    if not on_volumes and len(model) != 2:  # the slices need the embedder's own record
        raise CommandError(f"{args.model!r} is a pipeline of {len(model)} steps; an "
                           "evaluation takes a slice embedder and a classifier, as "
                           f"`{PROG} fit` saves them.")
    evaluation = external_test(y, groups, model=os.path.basename(args.model))
    with run_directory(args.out, args.overwrite) as folder:
        # The pipeline's own steps before the classifier: what its predict_proba scores
        run = run_study(paths, y, {key: classifier}, evaluation,
                        embedder=None if on_volumes else model[0],
                        resampler=model[:-1] if on_volumes else None,
                        pos_label=args.pos_label, verbose=int(args.verbosity >= 1))
        run.info.update(command=[PROG, *args.argv], model=os.path.abspath(args.model),
                        data=data_record(os.path.dirname(labels), labels, len(y)))
        _write(folder, run)
    _written(args.out)


def demo(args):
    """Cross-validate every method on a small offline data set and write the report."""
    from .datasets import load_nifti_folder, write_demo_data
    from .embedding import DinoSliceEmbedder
    from .methods import make_method
    from .report import write_report
    from .resampling import VolumeResampler
    from .runs import data_record
    from .study import cross_validation, held_out, run_study

    verbose = int(args.verbosity >= 1)
    root, run_dir = os.path.join(args.out, "data"), os.path.join(args.out, "cv")
    source, n_written = write_demo_data(root, args.dataset, args.n_scans)
    print(f"Demo data: {source}, {n_written} scans written to {root}")
    paths, y, _, split = load_nifti_folder(  # AdrenalMNIST3D comes with its split
        root, split_column="split" if args.dataset == "adrenal" else None)
    evaluation = cross_validation(y, 5) if split is None else held_out(split, y)
    methods = {key: make_method(key, max_epochs=10 if METHODS[key].takes_volumes else 30,
                                class_weight="balanced", resnet_depth=10, resnet_width=0.25)
               for key in METHODS}
    embedder = DinoSliceEmbedder(weights="random", image_size=56, verbose=verbose,
                                 cache_dir=cache_of(args))
    with run_directory(run_dir, overwrite=True) as folder:  # the demo replaces its own run
        run = run_study(paths, y, methods, evaluation, embedder=embedder,
                        resampler=VolumeResampler(shape=(32, 32, 32)), verbose=verbose)
        run.info.update(command=[PROG, *args.argv], data=data_record(
            root, os.path.join(root, "labels.csv"), len(y)))
        _write(folder, run)
    print(f"Results: {run_dir}; report: {write_report(run_dir, overlays=4, verbose=verbose)}")
    print("\nThe demo uses random backbone weights (no network here): its scores show the "
          "machinery, not DINOv2's. Give --weights dinov2_vits14_pretrain.pth to "
          f"`{PROG} cv` for real ones.")


# Parser ----------------------------------------------------------------------------


def _parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="Classify 3D scans with DINOv2 slice embeddings.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `dinoatten COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(function, name):
        text = inspect.cleandoc(function.__doc__).replace("``", "")
        sub = commands.add_parser(name, help=" ".join(text.split("\n\n")[0].split()),
                                  description=text,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(run=function)
        add_verbosity_arguments(sub)
        return sub

    sub = command(embed, "embed")
    add_data_arguments(sub)
    add_embedding_arguments(sub, cache_required=True)

    sub = command(cv, "cv")
    add_data_arguments(sub)
    add_embedding_arguments(sub)
    sub.add_argument("--method", default=REFERENCE,
                     help=f"one of {', '.join(METHODS)}, several comma-separated, or all "
                          f"(default: {REFERENCE})")
    sub.add_argument("--n-folds", "--folds", dest="folds", type=integer(2), default=None,
                     help="number of folds (default: 5; not with a split column)")
    sub.add_argument("--pos-label",
                     help="the positive class of two (needed unless the labels are 0/1 or "
                          "false/true): AUC, sensitivity, F1 and the ROC are computed for it")
    sub.add_argument("--out", required=True, help="folder for the results")
    sub.add_argument("--overwrite", action="store_true",
                     help="replace the run already in --out (refused without it)")
    add_training_arguments(sub)

    sub = command(fit, "fit")
    add_data_arguments(sub)
    add_embedding_arguments(sub)
    sub.add_argument("--method", default=REFERENCE, choices=list(METHODS),
                     help=f"the method to train (default: {REFERENCE})")
    sub.add_argument("--out", required=True,
                     help="the model file to write: .safetensors (safe to share and load), "
                          "or .joblib (a pickle)")
    add_training_arguments(sub)

    sub = command(predict, "predict")
    sub.add_argument("model", help="a model file written by `dinoatten fit`")
    sub.add_argument("scans", nargs="+", metavar="SCAN",
                     help="NIfTI files; or one folder (its labels.csv, else every NIfTI file "
                          "in it); or one labels CSV (paths relative to its folder)")
    sub.add_argument("--out", required=True,
                     help="the CSV file of predictions; with labels, the folder of the "
                          "evaluation run (what `dinoatten report` reads)")
    sub.add_argument("--overwrite", action="store_true",
                     help="replace the evaluation run already in --out")
    add_label_columns(sub, split=False)
    sub.add_argument("--pos-label", help="the positive class, with labels (as for cv)")
    sub.add_argument("--top-slices", type=integer(1), default=3,
                     help="how many slices of highest attention to list (default: 3)")
    sub.add_argument("--allow-pickle", action="store_true",
                     help="load a .joblib model (a pickle: only from a source you trust, "
                          "as loading it can run code)")
    sub.add_argument("--device", default=None,
                     help="auto, cpu or cuda (default: the model's own, or auto where that "
                          "is not available here; safetensors models)")
    sub.add_argument("--cache-dir", help="folder of the on-disk embedding cache (default: "
                                         "memory only; safetensors models)")
    sub.add_argument("--batch-size", type=integer(1), default=None,
                     help="slices per forward pass (volumes, for the 3D ResNet) "
                          "(default: the model's)")

    sub = command(report, "report")
    sub.add_argument("run_dir", metavar="DIR", help="a folder written by `dinoatten cv`")
    sub.add_argument("--out", help="the HTML file (default: DIR/report.html)")
    sub.add_argument("--overlays", type=integer(0), default=4,
                     help="how many scans to show with attention overlays (default: 4)")

    sub = command(demo, "demo")
    sub.add_argument("--out", default="results/demo", help="folder for everything "
                                                           "(default: results/demo)")
    sub.add_argument("--dataset", choices=("synthetic", "adrenal"), default="synthetic",
                     help="synthetic volumes with a planted signal (default), or "
                          "AdrenalMNIST3D (real CT masks, its official train/val/test split) "
                          "from $SKLEARN_DINOATTEN_DATA/adrenalmnist3d, by default the "
                          "project's ../shared/data")
    sub.add_argument("--n-scans", type=integer(10), default=100,
                     help="scans to use, at least 10 (default: 100)")
    return parser
