"""The command line: a folder of scans to a cross-validated result and a report.

    dinoatten embed DATA --cache-dir DIR      embed and cache every scan (resumable)
    dinoatten cv DATA --method all --out DIR  grouped stratified CV, metrics, predictions
    dinoatten report DIR                      an HTML report of a cv run
    dinoatten fit DATA --out model.safetensors    train one method on every scan
    dinoatten predict model.safetensors SCANS...  probabilities, labels, top slices
    dinoatten demo                            the whole loop on a small offline data set

``DATA`` is a folder holding the scans and ``labels.csv`` (columns ``path``, relative
to the folder, ``label`` and, optionally, ``subject``). Errors in the input end with
one line on stderr and exit status 1.
"""

import argparse
import glob
import os
import sys
import time
import warnings

import numpy as np

from . import __version__
from ._arguments import (
    add_data_arguments,
    add_embedding_arguments,
    add_training_arguments,
    integer,
)
from ._files import atomic_folder, atomic_write, writable_folder, write_csv
from .methods import METHODS, REFERENCE

PROG = "dinoatten"


class CommandError(Exception):
    """A problem with the command's input, reported as one line."""


def main(argv=None):
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args.run(args)
    except (CommandError, ValueError, OSError, MemoryError, RuntimeError) as exc:
        # OSError: a full disk, a file-size limit; RuntimeError: e.g. pretrained weights
        # without a network. The first line of the message says what happened.
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        said = ("finished embeddings are cached, rerun to go on" if args.command == "embed"
                else "no results were written"
                + ("; finished embeddings are cached" if getattr(args, "cache_dir", None)
                   else ""))
        print(f"{PROG} {args.command}: interrupted; {said}.", file=sys.stderr)
        return 130
    return 0


# Commands --------------------------------------------------------------------------


def embed(args):
    """Embed and cache every scan of DATA; a rerun embeds only what is not cached."""
    paths = _scan_paths(args)
    before = _cache_entries(args.cache_dir)
    start = time.perf_counter()
    embeddings = _embedder(args).fit_transform(paths)
    new = _cache_entries(args.cache_dir) - before
    slices = int((~np.isnan(embeddings).all(axis=2)).sum())
    print(f"{len(paths)} scans, {slices} slices of {embeddings.shape[2]} features: "
          f"{len(new)} scans embedded now, {len(paths) - len(new)} found in the cache; "
          f"{time.perf_counter() - start:.1f} s. Cache: {args.cache_dir}")


def cv(args):
    """Evaluate methods on DATA (k-fold cross-validation, or the held-out test set of a
    ``split`` column); write predictions, metrics and the run's parameters."""
    from .runs import FILES, data_record, write_run
    from .study import run_study

    paths, y, groups, split = _labelled_scans(args)
    protocol = _protocol(args, y, groups, split)
    methods = {key: _method(key, args) for key in _method_keys(args.method)}
    embedder = (_embedder(args) if any(not METHODS[k].takes_volumes for k in methods)
                else None)
    with _run_directory(args.out) as folder:  # checked before any work, moved in whole
        run = run_study(paths, y, methods, protocol, embedder=embedder,
                        volume_shape=(args.volume_size,) * 3, pos_label=args.pos_label,
                        random_state=args.seed)
        run.info.update(command=[PROG, *args.argv],
                        data=data_record(args.data, _labels_file(args), len(y)))
        write_run(folder, run)
        _print_metrics(folder)
    print(f"Written to {args.out}: {', '.join(FILES)}. Next: {PROG} report {args.out}")


def _print_metrics(folder):
    """Print the metrics table and its caption as written to the run."""
    with open(os.path.join(folder, "metrics.md"), encoding="utf-8") as f:
        print(f"\n{f.read()}")


def _run_directory(out):
    """An atomic folder for a run at ``out`` (see :func:`atomic_folder`): ``out`` may be
    absent, empty or an earlier run (a folder holding run.json), which the new run
    replaces whole; anything else is refused before any work."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise CommandError(f"--out {out!r} is a file; give a folder for the results.")
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(
            os.path.join(out, "run.json")):
        raise CommandError(f"--out {out!r} holds files that are not a {PROG} run; give a new "
                           "or empty folder (a run is replaced whole by the next one).")
    return atomic_folder(out)


def _output_file(path):
    """Check, before any work, that a file can be written at ``path``."""
    if os.path.isdir(path):
        raise CommandError(f"--out {path!r} is a folder; give a file name.")
    writable_folder(os.path.dirname(os.path.abspath(path)), "--out's folder")
    return path


def _protocol(args, y, groups, split):
    """The held-out split of the labels' split column, else k-fold cross-validation."""
    from .study import cross_validation, held_out

    if split is None:
        return cross_validation(y, args.folds or 5, groups, random_state=args.seed)
    if args.folds is not None:
        raise CommandError("the labels have a split column, so the test set is fixed: leave "
                           "out --folds, or drop the column (--split-column none) to "
                           "cross-validate.")
    return held_out(split, y, groups)


def report(args):
    """Write the HTML report of a cv run."""
    from .report import write_report

    if args.out is not None:
        _output_file(args.out)
    path = write_report(args.run_dir, out=args.out, overlays=args.overlays)
    print(f"Report: {path}")


def fit(args):
    """Train one method on the scans of DATA (those of 'train', stopping early on 'val',
    with a split column) and save the fitted pipeline: a ``.joblib`` path gets a pickle,
    any other a safetensors model file."""
    from sklearn.pipeline import make_pipeline

    _output_file(args.out)
    paths, y, _, split = _labelled_scans(args)
    paths = np.asarray(paths)
    classifier = _method(args.method, args)
    if METHODS[args.method].takes_volumes:
        from .resampling import VolumeResampler

        side = args.volume_size
        model = make_pipeline(VolumeResampler(shape=(side, side, side)), classifier)
    else:
        model = make_pipeline(_embedder(args), classifier)
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
    model.fit(list(paths[train]), y[train], **fit_params)
    if _is_pickle(args.out):
        import joblib

        atomic_write(args.out, lambda f: joblib.dump(model, f))
    else:
        from .persistence import save_model

        save_model(model, args.out)
    print(f"{METHODS[args.method].name} trained on {done}; saved to {args.out}")


def predict(args):
    """Predict scans with a saved model: probabilities, labels and top slices by attention."""
    _output_file(args.out)
    if not os.path.isfile(args.model):
        raise FileNotFoundError(f"Model file {args.model!r} does not exist.")
    if _is_pickle(args.model):
        if not args.allow_pickle:
            raise CommandError(
                f"{args.model!r} is a pickle, and loading a pickle can run any code: pass "
                "--allow-pickle if you made it or trust who did, or save models as "
                f"safetensors (`{PROG} fit ... --out model.safetensors`)."
            )
        import joblib

        try:
            model = joblib.load(args.model)
        except Exception as exc:  # unpickling raises many types for a wrong or damaged file
            raise CommandError(f"cannot load model {args.model!r}: {exc}") from exc
    else:
        from .persistence import load_model

        model = load_model(args.model, device=args.device, cache_dir=args.cache_dir)
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise CommandError(f"{args.model!r} holds no fitted classifier (made by `{PROG} fit`).")
    proba = model.predict_proba(args.scans)
    classes = model.classes_
    top = None
    if hasattr(model[-1], "attention_weights"):
        embedder = model[0]
        from .slicing import AXIS_NAMES

        attention = model[-1].attention_weights(model[:-1].transform(args.scans))
        top = []
        for path, weights in zip(args.scans, attention, strict=True):
            axes, kept = embedder.kept_slices(path)
            best = np.argsort(-weights[: len(kept)])[: args.top_slices]
            top.append([f"{AXIS_NAMES[axes[j]]}:{kept[j]}" if len(set(axes)) > 1
                        else str(kept[j]) for j in best])
    rows = []
    for i, path in enumerate(args.scans):
        row = {"path": path, "prediction": classes[proba[i].argmax()]}
        row.update({f"p_{c}": f"{p:.6f}" for c, p in zip(classes, proba[i], strict=True)})
        row["top_slices"] = "" if top is None else " ".join(top[i])
        rows.append(row)
    write_csv(args.out, rows)
    print(f"{len(rows)} predictions written to {args.out}"
          + ("" if top is None else f" (top_slices: the slices of highest attention, by "
                                    f"index along axis {embedder.axis!r} of the volumes "
                                    "reoriented to RAS; orientation:index in a tri-planar "
                                    "bag)"))


def _is_pickle(path):
    return path.endswith((".joblib", ".pkl", ".pickle"))


def demo(args):
    """Cross-validate every method on a small offline data set and write the report."""
    from .datasets import load_nifti_folder, write_demo_data
    from .embedding import DinoSliceEmbedder
    from .report import write_report
    from .runs import data_record, write_run
    from .methods import make_method
    from .study import cross_validation, held_out, run_study

    root, run_dir = os.path.join(args.out, "data"), os.path.join(args.out, "cv")
    source, n_written = write_demo_data(root, args.dataset, args.n_scans)
    print(f"Demo data: {source}, {n_written} scans written to {root}")
    paths, y, _, split = load_nifti_folder(  # AdrenalMNIST3D comes with its split
        root, split_column="split" if args.dataset == "adrenal" else None)
    protocol = cross_validation(y, 5) if split is None else held_out(split, y)
    methods = {key: make_method(key, max_epochs=10 if METHODS[key].takes_volumes else 30,
                                class_weight="balanced", resnet_depth=10, resnet_width=0.25)
               for key in METHODS}
    embedder = DinoSliceEmbedder(weights="random", image_size=56,
                                 cache_dir=os.path.join(args.out, "cache"))
    with _run_directory(run_dir) as folder:
        run = run_study(paths, y, methods, protocol, embedder=embedder,
                        volume_shape=(32, 32, 32))
        run.info.update(command=[PROG, *args.argv], data=data_record(
            root, os.path.join(root, "labels.csv"), len(y)))
        write_run(folder, run)
        _print_metrics(folder)
    print(f"Results: {run_dir}; report: {write_report(run_dir, overlays=4)}")
    print("\nThe demo uses random backbone weights (no network here): its scores show the "
          "machinery, not DINOv2's. Give --weights dinov2_vits14_pretrain.pth to "
          f"`{PROG} cv` for real ones.")


# Helpers ---------------------------------------------------------------------------


def _method_keys(method):
    keys = list(METHODS) if method == "all" else [m.strip() for m in method.split(",")]
    unknown = [k for k in keys if k not in METHODS]
    if unknown or not keys:
        raise CommandError(f"unknown method {unknown[0] if unknown else method!r}; choose from "
                           f"{', '.join(METHODS)} or all (comma-separated for several).")
    return keys


def _method(key, args):
    from ._validation import check_params
    from .methods import make_method

    on_volumes = METHODS[key].takes_volumes
    epochs = args.resnet_epochs if on_volumes and args.resnet_epochs else args.epochs
    method = make_method(key, max_epochs=epochs, random_state=args.seed,
                         class_weight=None if args.class_weight == "none" else "balanced",
                         resnet_depth=args.resnet_depth, resnet_width=args.resnet_width)
    check_params(method)  # a nonsense setting ends the command before any work
    return method


def _labels_file(args):
    return args.labels or os.path.join(args.data, "labels.csv")


def _labelled_scans(args):
    """``(paths, y, groups, split)``; groups and split from their columns, when present."""
    from .datasets import load_nifti_folder

    header = _csv_header(_labels_file(args))
    group_column, split_column = (
        None if given == "none" else given or (default if default in header else None)
        for given, default in ((args.group_column, "subject"), (args.split_column, "split"))
    )
    return load_nifti_folder(args.data, _labels_file(args), args.path_column,
                             args.label_column, group_column, split_column)


def _scan_paths(args):
    """The labelled scans, or every NIfTI file of the folder when it has no labels file."""
    if args.labels or os.path.isfile(_labels_file(args)):
        return _labelled_scans(args)[0]
    from .datasets import find_nifti_files

    if not os.path.isdir(args.data):
        raise FileNotFoundError(f"Data folder {args.data!r} does not exist.")
    paths = find_nifti_files(args.data)
    if not paths:
        raise CommandError(f"{args.data!r} holds no labels.csv and no .nii/.nii.gz files.")
    return paths


def _csv_header(path):
    from .datasets import read_csv

    if not os.path.isfile(path):
        return []
    with warnings.catch_warnings():  # said once, when the scans are read
        warnings.simplefilter("ignore")
        return read_csv(path)[0]


def _embedder(args):
    from ._validation import check_params
    from .embedding import DinoSliceEmbedder

    weights = args.weights
    if weights not in (None, "random") and not os.path.isfile(weights):
        raise FileNotFoundError(f"Weights file {weights!r} does not exist.")
    embedder = DinoSliceEmbedder(
        backbone=args.backbone, weights=weights, image_size=args.image_size,
        axis=args.axis, n_slices=args.n_slices, slice_spacing=args.slice_spacing,
        pixel_spacing=args.pixel_spacing, crop=args.crop, min_foreground=args.min_foreground,
        batch_size=args.batch_size,
        dtype=args.dtype, n_jobs=args.n_jobs, device=args.device, cache_dir=args.cache_dir,
    )
    check_params(embedder)
    if args.cache_dir is not None:
        writable_folder(args.cache_dir, "--cache-dir")
    return embedder


def _cache_entries(cache_dir):
    return set(glob.glob(os.path.join(cache_dir, "**", "*.npz"), recursive=True))


# Parser ----------------------------------------------------------------------------


def _parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="Classify 3D scans with DINOv2 slice embeddings.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `dinoatten COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(function, name, **kwargs):
        sub = commands.add_parser(name, help=function.__doc__.splitlines()[0],
                                  description=function.__doc__, **kwargs)
        sub.set_defaults(run=function)
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
    sub.add_argument("--folds", type=integer(2), default=None,
                     help="number of folds (default: 5; not with a split column)")
    sub.add_argument("--pos-label",
                     help="the positive class of two (needed unless the labels are 0/1 or "
                          "false/true): AUC, sensitivity, F1 and the ROC are computed for it")
    sub.add_argument("--out", required=True, help="folder for the results")
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
    sub.add_argument("--allow-pickle", action="store_true",
                     help="load a .joblib model (a pickle: only from a source you trust, "
                          "as loading it can run code)")
    sub.add_argument("scans", nargs="+", metavar="SCAN", help="NIfTI files to predict")
    sub.add_argument("--out", required=True, help="the CSV file to write")
    sub.add_argument("--top-slices", type=integer(1), default=3,
                     help="how many slices of highest attention to list (default: 3)")
    sub.add_argument("--device", default=None,
                     help="auto, cpu or cuda (default: the model's own, or auto where that "
                          "is not available here; safetensors models)")
    sub.add_argument("--cache-dir", help="folder of the on-disk embedding cache (default: "
                                         "memory only; safetensors models)")

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
