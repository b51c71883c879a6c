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
import csv
import glob
import hashlib
import json
import os
import platform
import sys
import time
import warnings
from importlib import metadata

import numpy as np

from . import __version__
from ._files import atomic_folder, atomic_write, writable_folder
from ._validation import check_params
from .study import METHODS, REFERENCE

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
    from .study import (
        caption,
        cross_validate_method,
        metrics_table,
        positive_class,
        scored_samples,
        to_markdown,
        uses_volumes,
    )

    paths, y, groups, split = _labelled_scans(args)
    keys = _method_keys(args.method)
    protocol = _protocol(args, y, groups, split)
    positive = positive_class(y, args.pos_label)
    methods = {key: _method(key, args) for key in keys}
    embedder = _embedder(args) if any(not uses_volumes(k) for k in keys) else None
    with _run_directory(args.out) as folder:  # checked before any work, moved in whole
        classes, counts = np.unique(y, return_counts=True)
        counts = ", ".join(f"{c}: {n}" for c, n in zip(classes, counts, strict=True))
        print(f"{len(y)} scans ({counts}); {protocol.description}; "
              + (f"positive class: {positive!r}; " if positive is not None else "")
              + f"methods: {', '.join(METHODS[k] for k in keys)}")
        inputs = {}
        if embedder is not None:
            inputs["embeddings"] = embedder.fit_transform(paths)
        if any(uses_volumes(k) for k in keys):
            from .resampling import VolumeResampler

            side = args.volume_size
            inputs["volumes"] = VolumeResampler(shape=(side, side, side)).fit_transform(paths)

        results = {}
        for key, estimator in methods.items():
            X = inputs["volumes" if uses_volumes(key) else "embeddings"]
            results[key] = cross_validate_method(estimator, X, y, protocol.splits)
            print(f"  {METHODS[key]}: {len(protocol.splits)} fit(s), "
                  f"{np.mean(results[key].fit_seconds):.1f} s each")
        reference = REFERENCE if REFERENCE in results else keys[0]
        rows = metrics_table(y, results, reference=reference, pos_label=positive, groups=groups,
                             random_state=args.seed)
        random_weights = embedder is not None and embedder.weights == "random"
        text = caption(protocol, positive, reference, random_weights=random_weights)
        table = to_markdown(rows, reference=reference)
        print(f"\n{table}\n\n{text}\n")

        scored = scored_samples(results)
        fold = np.full(len(y), -1)
        for i, fit in enumerate(protocol.splits):
            fold[fit.test] = i
        _write_predictions(os.path.join(folder, "predictions.csv"), np.asarray(paths)[scored],
                           y[scored], None if groups is None else groups[scored],
                           fold[scored] if split is None else None, classes,
                           {k: r.proba[scored] for k, r in results.items()})
        _write_metrics(folder, rows, f"{table}\n\n{text}")
        arrays = {f"embedding_{k}": r.embedding[scored] for k, r in results.items()}
        arrays.update({f"attention_{k}": r.attention[scored] for k, r in results.items()
                       if r.attention is not None})
        if "embeddings" in inputs:
            arrays["n_slices"] = (~np.isnan(inputs["embeddings"]).all(axis=2)).sum(axis=1)[scored]
        atomic_write(os.path.join(folder, "outputs.npz"), lambda f: np.savez(f, **arrays))
        run = {
            "command": [PROG, *args.argv],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "data": _data_record(args, y),
            "classes": classes.tolist(),
            "positive_label": positive,
            "protocol": "held-out" if split is not None else "cross-validation",
            "protocol_description": protocol.description,
            "folds": None if split is not None else len(protocol.splits),
            "grouped": groups is not None,
            "n_subjects": None if groups is None else len(np.unique(groups[scored])),
            "n_scored": int(scored.sum()),
            "caption": text,
            "random_weights": random_weights,
            "seed": args.seed,
            "reference": reference,
            "embedder": embedder.get_params() if embedder is not None else None,
            "volume_size": args.volume_size if "volumes" in inputs else None,
            "methods": {k: {"name": METHODS[k], "params": _jsonable(m.get_params())}
                        for k, m in methods.items()},
            "versions": _versions(),
        }
        atomic_write(os.path.join(folder, "run.json"),
                     lambda f: f.write(json.dumps(run, indent=2, default=str).encode()))
    print(f"Written to {args.out}: predictions.csv, metrics.csv, metrics.md, outputs.npz, "
          f"run.json. Next: {PROG} report {args.out}")


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

    from .study import uses_volumes

    _output_file(args.out)
    paths, y, _, split = _labelled_scans(args)
    paths = np.asarray(paths)
    classifier = _method(args.method, args)
    if uses_volumes(args.method):
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
    print(f"{METHODS[args.method]} trained on {done}; saved to {args.out}")


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
        from .volumes import check_axis, load_volume, select_slices

        embedder = model[0]
        attention = model[-1].attention_weights(model[:-1].transform(args.scans))
        top = []
        for path, weights in zip(args.scans, attention, strict=True):
            kept = select_slices(load_volume(path).shape[check_axis(embedder.axis)],
                                 embedder.n_slices, embedder.slice_selection)
            top.append(kept[np.argsort(-weights[: len(kept)])[: args.top_slices]])
    rows = []
    for i, path in enumerate(args.scans):
        row = {"path": path, "prediction": classes[proba[i].argmax()]}
        row.update({f"p_{c}": f"{p:.6f}" for c, p in zip(classes, proba[i], strict=True)})
        row["top_slices"] = "" if top is None else " ".join(map(str, top[i]))
        rows.append(row)
    atomic_write(args.out, lambda f: f.write(_csv_text(rows).encode()))
    print(f"{len(rows)} predictions written to {args.out}"
          + ("" if top is None else f" (top_slices: {embedder.axis} slice indices of the "
                                    "volumes, reoriented to RAS, by attention)"))


def _is_pickle(path):
    return path.endswith((".joblib", ".pkl", ".pickle"))


def demo(args):
    """Cross-validate every method on a small offline data set and write the report."""
    root = os.path.join(args.out, "data")
    source, n_written = _write_demo_data(root, args.dataset, args.n_scans)
    print(f"Demo data: {source}, {n_written} scans written to {root}")
    run_dir = os.path.join(args.out, "cv")
    common = ["--weights", "random", "--image-size", "56", "--class-weight", "balanced",
              "--cache-dir", os.path.join(args.out, "cache")]
    steps = [
        ["cv", root, "--method", "all", *(["--folds", "5"] if args.dataset == "synthetic"
                                          else []), "--epochs", "30", "--out", run_dir,
         "--volume-size", "32", "--resnet-depth", "10", "--resnet-width", "0.25",
         "--resnet-epochs", "10", *common],
        ["report", run_dir, "--overlays", "4"],
    ]
    for step in steps:
        print(f"\n$ {PROG} {' '.join(step)}")
        status = main(step)
        if status:
            raise CommandError(f"step `{step[0]}` failed")
    print("\nThe demo uses random backbone weights (no network here): its scores show the "
          "machinery, not DINOv2's. Give --weights dinov2_vits14_pretrain.pth to cv for "
          "real ones.")


# Helpers ---------------------------------------------------------------------------


def _method_keys(method):
    keys = list(METHODS) if method == "all" else [m.strip() for m in method.split(",")]
    unknown = [k for k in keys if k not in METHODS]
    if unknown or not keys:
        raise CommandError(f"unknown method {unknown[0] if unknown else method!r}; choose from "
                           f"{', '.join(METHODS)} or all (comma-separated for several).")
    return keys


def _method(key, args):
    from .study import make_method

    epochs = args.resnet_epochs if key == "resnet3d" and args.resnet_epochs else args.epochs
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
    from .embedding import DinoSliceEmbedder

    weights = args.weights
    if weights not in (None, "random") and not os.path.isfile(weights):
        raise FileNotFoundError(f"Weights file {weights!r} does not exist.")
    embedder = DinoSliceEmbedder(
        backbone=args.backbone, weights=weights, image_size=args.image_size,
        axis=args.axis, n_slices=args.n_slices, batch_size=args.batch_size,
        dtype=args.dtype, n_jobs=args.n_jobs, device=args.device, cache_dir=args.cache_dir,
    )
    check_params(embedder)
    if args.cache_dir is not None:
        writable_folder(args.cache_dir, "--cache-dir")
    return embedder


def _cache_entries(cache_dir):
    return set(glob.glob(os.path.join(cache_dir, "**", "*.npz"), recursive=True))


def _write_predictions(path, paths, y, groups, fold, classes, probabilities):
    """One row per scored scan; probabilities at full precision (they round-trip)."""
    rows = []
    for i, scan in enumerate(paths):
        row = {"path": scan, "label": y[i]}
        if groups is not None:
            row["subject"] = groups[i]
        if fold is not None:
            row["fold"] = fold[i]
        for key, proba in probabilities.items():
            row[f"{key}_pred"] = classes[proba[i].argmax()]
            row.update({f"{key}_p_{c}": repr(float(p))
                        for c, p in zip(classes, proba[i], strict=True)})
        rows.append(row)
    atomic_write(path, lambda f: f.write(_csv_text(rows).encode()))


def _write_metrics(out, rows, table):
    atomic_write(os.path.join(out, "metrics.csv"), lambda f: f.write(_csv_text(rows).encode()))
    atomic_write(os.path.join(out, "metrics.md"), lambda f: f.write((table + "\n").encode()))


def _csv_text(rows):
    import io

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def _data_record(args, y):
    labels = _labels_file(args)
    with open(labels, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return {"root": os.path.abspath(args.data), "labels_csv": os.path.abspath(labels),
            "labels_sha256": digest, "n_scans": len(y)}


def _jsonable(params):
    return {k: v if isinstance(v, (str, int, float, bool, type(None), list, tuple, dict))
            else (f"{v.__module__}.{v.__qualname__}" if isinstance(v, type) else repr(v))
            for k, v in params.items()}


def _versions():
    import torch

    versions = {"python": platform.python_version(), "sklearn_dinoatten": __version__,
                "platform": platform.platform(),
                "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    for package in ("numpy", "torch", "timm", "scikit-learn", "skorch", "nibabel", "monai"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _write_demo_data(root, dataset, n_scans):
    """Write ``n_scans`` labelled NIfTI scans and labels.csv; returns the source's name.

    AdrenalMNIST3D holds two glands per patient and no patient ids, so its scans come
    from the official patient-level split (60 % train, 15 % val, 25 % test of
    ``n_scans``), written to a ``split`` column: cross-validating them would leak."""
    import nibabel as nib

    from .datasets import SPLITS, data_dir, load_medmnist3d, make_volumes

    affine, split = np.eye(4), None
    if dataset == "adrenal":
        from sklearn.model_selection import train_test_split

        X, y, split = [], [], []
        for name, share in zip(SPLITS, (0.6, 0.15, 0.25), strict=True):
            images, labels = load_medmnist3d("adrenal", os.path.join(data_dir(),
                                             "adrenalmnist3d"), split=name)
            keep = np.sort(train_test_split(  # both classes in proportion
                np.arange(len(labels)), train_size=max(2, round(share * n_scans)),
                stratify=labels, random_state=0)[0])
            X += list(images[keep].astype(np.float32))
            y += list(labels[keep])
            split += [name] * len(keep)
        affine = np.diag([64 / 28] * 3 + [1])  # a 64 mm cube in 28 voxels per side
        source = "AdrenalMNIST3D, official train/val/test split (MedMNIST v2, CC BY 4.0)"
    else:
        X, y = make_volumes(n_samples=n_scans, shape=(48, 48, 24), n_signal_slices=3,
                            noise=0.2, random_state=0)
        source = "synthetic volumes (class 1 has a bright blob in 3 of 24 slices)"
    os.makedirs(root, exist_ok=True)
    rows = []
    for i, (volume, label) in enumerate(zip(X, y, strict=True)):
        name = f"scan_{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(volume, affine), os.path.join(root, name))
        rows.append({"path": name, "label": int(label)}
                    | ({} if split is None else {"split": split[i]}))
    atomic_write(os.path.join(root, "labels.csv"), lambda f: f.write(_csv_text(rows).encode()))
    return source, len(rows)


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
    _data_arguments(sub)
    _embedding_arguments(sub, cache_required=True)

    sub = command(cv, "cv")
    _data_arguments(sub)
    _embedding_arguments(sub)
    sub.add_argument("--method", default=REFERENCE,
                     help=f"one of {', '.join(METHODS)}, several comma-separated, or all "
                          f"(default: {REFERENCE})")
    sub.add_argument("--folds", type=_integer(2), default=None,
                     help="number of folds (default: 5; not with a split column)")
    sub.add_argument("--pos-label",
                     help="the positive class of two (needed unless the labels are 0/1 or "
                          "false/true): AUC, sensitivity, F1 and the ROC are computed for it")
    sub.add_argument("--out", required=True, help="folder for the results")
    _training_arguments(sub)

    sub = command(fit, "fit")
    _data_arguments(sub)
    _embedding_arguments(sub)
    sub.add_argument("--method", default=REFERENCE, choices=list(METHODS),
                     help=f"the method to train (default: {REFERENCE})")
    sub.add_argument("--out", required=True,
                     help="the model file to write: .safetensors (safe to share and load), "
                          "or .joblib (a pickle)")
    _training_arguments(sub)

    sub = command(predict, "predict")
    sub.add_argument("model", help="a model file written by `dinoatten fit`")
    sub.add_argument("--allow-pickle", action="store_true",
                     help="load a .joblib model (a pickle: only from a source you trust, "
                          "as loading it can run code)")
    sub.add_argument("scans", nargs="+", metavar="SCAN", help="NIfTI files to predict")
    sub.add_argument("--out", required=True, help="the CSV file to write")
    sub.add_argument("--top-slices", type=_integer(1), default=3,
                     help="how many slices of highest attention to list (default: 3)")
    sub.add_argument("--device", default=None,
                     help="auto, cpu or cuda (default: the model's own, or auto where that "
                          "is not available here; safetensors models)")
    sub.add_argument("--cache-dir", help="folder of the on-disk embedding cache (default: "
                                         "memory only; safetensors models)")

    sub = command(report, "report")
    sub.add_argument("run_dir", metavar="DIR", help="a folder written by `dinoatten cv`")
    sub.add_argument("--out", help="the HTML file (default: DIR/report.html)")
    sub.add_argument("--overlays", type=_integer(0), default=4,
                     help="how many scans to show with attention overlays (default: 4)")

    sub = command(demo, "demo")
    sub.add_argument("--out", default="results/demo", help="folder for everything "
                                                           "(default: results/demo)")
    sub.add_argument("--dataset", choices=("synthetic", "adrenal"), default="synthetic",
                     help="synthetic volumes with a planted signal (default), or "
                          "AdrenalMNIST3D (real CT masks, its official train/val/test split) "
                          "from $SKLEARN_DINOATTEN_DATA/adrenalmnist3d, by default the "
                          "project's ../shared/data")
    sub.add_argument("--n-scans", type=_integer(10), default=100,
                     help="scans to use, at least 10 (default: 100)")
    return parser


def _integer(low):
    """An argparse type: an integer >= ``low`` (argparse names the option in its error)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer; got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}; got {value}")
        return value

    return parse


def _data_arguments(sub):
    sub.add_argument("data", metavar="DATA", help="folder of NIfTI scans with labels.csv")
    sub.add_argument("--labels", help="the labels CSV (default: DATA/labels.csv)")
    sub.add_argument("--path-column", default="path",
                     help="column of scan paths, relative to DATA (default: path)")
    sub.add_argument("--label-column", default="label", help="column of labels (default: label)")
    sub.add_argument("--group-column",
                     help="column of subject ids for grouped folds and statistics clustered "
                          "by subject (default: subject, if present; none: ignore it)")
    sub.add_argument("--split-column",
                     help="column of train/val/test for a held-out test set instead of "
                          "cross-validation (default: split, if present; none: ignore it)")


def _embedding_arguments(sub, cache_required=False):
    sub.add_argument("--backbone", default="vit_small_patch14_dinov2",
                     help="timm model name (default: vit_small_patch14_dinov2)")
    sub.add_argument("--weights", default=None,
                     help="a local checkpoint (.pth, .safetensors), 'random' (demos, tests), "
                          "or by default timm's pretrained download (needs a network)")
    sub.add_argument("--image-size", type=_integer(1), default=224,
                     help="backbone input side, a multiple of the patch size (default: 224)")
    sub.add_argument("--n-slices", type=_integer(1), default=None,
                     help="slices per scan, evenly spaced (default: all)")
    sub.add_argument("--axis", default="axial", choices=("axial", "coronal", "sagittal"),
                     help="slicing axis (default: axial)")
    sub.add_argument("--batch-size", type=_integer(1), default=32,
                     help="slices per forward pass (default: 32)")
    sub.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                     help="precision of the forward pass; bfloat16 is much faster on GPUs "
                          "and AVX-512 BF16 / AMX CPUs (default: float32)")
    sub.add_argument("--n-jobs", type=int, default=None,
                     help="processes that embed in parallel, each with its own model "
                          "(default: 1)")
    sub.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    sub.add_argument("--cache-dir", required=cache_required,
                     help="folder of the on-disk embedding cache" +
                          ("" if cache_required else " (default: memory only)"))


def _training_arguments(sub):
    sub.add_argument("--epochs", type=_integer(1), default=50, help="training epochs (default: 50)")
    sub.add_argument("--seed", type=_integer(0), default=0, help="random seed (default: 0)")
    sub.add_argument("--class-weight", choices=("none", "balanced"), default="none",
                     help="balanced: weigh the classes' losses by inverse frequency, for "
                          "imbalanced data (default: none)")
    sub.add_argument("--volume-size", type=_integer(1), default=64,
                     help="3D ResNet: volumes resampled to this cube side (default: 64)")
    sub.add_argument("--resnet-depth", type=int, default=18, choices=(10, 18, 34, 50),
                     help="3D ResNet depth (default: 18)")
    sub.add_argument("--resnet-width", type=float, default=1.0,
                     help="3D ResNet width factor (default: 1.0)")
    sub.add_argument("--resnet-epochs", type=_integer(1), default=None,
                     help="3D ResNet training epochs (default: --epochs)")
