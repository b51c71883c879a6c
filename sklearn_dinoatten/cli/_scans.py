"""The command line's SCAN and DATA arguments turned into scans and their labels: a
labels CSV, a folder of scans (NIfTI files, DICOM series), a BIDS dataset; the task the
labels hold. Checked before any work, so that a mistake ends the command in one line."""

import os

from ..utils._files import check_file
from ._bids import bids_label_values, bids_root, bids_scan_paths, bids_scans, bids_subgroups
from ._outputs import CommandError


def labels_file(args):
    """DATA's labels: ``--labels``, DATA/labels.csv, or a BIDS dataset's participants.tsv."""
    root = bids_root(args)
    return (os.path.join(root, "participants.tsv") if root is not None
            else args.labels or os.path.join(args.data, "labels.csv"))


def labelled_scans(args):
    """``(paths, y, groups, split)`` of DATA's labels file; groups and split from their
    columns, when present (or named); a BIDS dataset's, grouped by subject. ``args.task``
    is settled here (see :func:`settle_task`)."""
    labels = labels_file(args)
    args.task = settle_task(args, labels)
    if bids_root(args) is not None:
        return bids_scans(args, args.task)
    return _read_labels(args.data, labels, args, split=True, task=args.task)


def settle_task(args, labels):
    """``--task``, or, without it, regression where the label column holds numbers most
    of them distinct (said in one line, by a command with ``--task``), else
    classification."""
    if getattr(args, "task", None) is not None:
        return args.task
    from ..datasets import looks_continuous, read_csv

    if not os.path.isfile(labels):  # the reader says what is missing
        return "classification"
    bids = bids_root(args) is not None  # participants.tsv's values: one per subject
    values = bids_label_values(args) if bids else [
        (row.get(args.label_column) or "").strip() for row in read_csv(labels)[1]]
    if not looks_continuous(values):
        return "classification"
    if hasattr(args, "task") and args.verbosity >= 1:
        print(f"Regression: the column {args.label_column!r} holds "
              f"{len(set(values))} distinct numbers among {len(values)} "
              + ("values of subjects" if bids else "scans") + " (give --task classification "
              "to take them as classes).", flush=True)
    return "regression"


def _read_labels(root, labels, args, split=False, task="classification"):
    """A labels CSV read with the command's column options; a command without
    ``--label-column`` (explain) reads its scans alone."""
    from ..datasets import load_nifti_folder

    def column(given):  # "none": ignored; not given: the default column, if present
        return None if given == "none" else given or "auto"

    return load_nifti_folder(root, labels_csv=labels, path_column=args.path_column,
                             label_column=getattr(args, "label_column", None),
                             group_column=column(getattr(args, "group_column", "none")),
                             split_column=column(args.split_column) if split else None,
                             task=task)


def subgroup_columns(args, labels):
    """``--subgroups``' columns of the labels CSV: name -> a value per labelled scan, in
    the order of its rows (those ``load_nifti_folder`` reads), or a BIDS dataset's;
    ``None`` without it."""
    if not args.subgroups:
        return None
    from ..datasets import read_csv

    names = [name.strip() for name in args.subgroups.split(",") if name.strip()]
    if bids_root(args) is not None:
        return bids_subgroups(args, names)
    header, rows = read_csv(labels)
    missing = [name for name in names if name not in header]
    if missing or not names:
        raise CommandError(f"--subgroups {args.subgroups!r}: {labels!r} has no column "
                           f"{(missing or [''])[0]!r}; its columns are {header}.")
    taken = {args.path_column: "the scans", args.label_column: "the labels",
             args.group_column or "subject": "the subjects (each level one subject)"}
    for name in names:
        if name in taken:
            raise CommandError(f"--subgroups {args.subgroups!r}: {name!r} is the column of "
                               f"{taken[name]}, not a subgroup (site, scanner, sex...).")
    return {name: [row[name] or "" for row in rows] for name in names}


def scan_paths(args):
    """The labelled scans; a BIDS dataset's of ``--bids-suffix``, labelled or not; or
    every scan of the folder when it has no labels file."""
    if bids_root(args) is not None:
        return bids_scan_paths(args)
    if args.labels or os.path.isfile(labels_file(args)):
        return labelled_scans(args)[0]
    return _scans_in(args.data)


def has_labels(args):
    """Whether ``predict``'s SCAN arguments come with labels: a labels CSV, a folder
    holding labels.csv, or a BIDS dataset with ``--label-column``."""
    scans = args.scans
    if bids_root(args) is not None:
        return getattr(args, "label_column", None) is not None
    return len(scans) == 1 and (scans[0].lower().endswith(".csv") or (
        os.path.isdir(scans[0]) and os.path.isfile(os.path.join(scans[0], "labels.csv"))))


def scans_to_predict(args, task="classification"):
    """``(paths, y, groups, labels_file)`` of ``predict``'s SCAN arguments: NIfTI files or
    DICOM series; a folder (with labels.csv: its labelled scans, else every scan in it,
    or itself if it holds a DICOM series); a BIDS dataset (see :func:`has_labels`); or a
    labels CSV (paths relative to its folder). ``y`` is None without labels; the labels
    are ``task``'s (a regression's: numbers)."""
    if bids_root(args) is not None:
        if not has_labels(args):
            return bids_scan_paths(args), None, None, None
        paths, y, groups, _ = bids_scans(args, task)
        return paths, y, groups, labels_file(args)
    if len(args.scans) == 1 and args.scans[0].lower().endswith(".csv"):
        labels = args.scans[0]
        check_file(labels, "Labels file")
        paths, y, groups, _ = _read_labels(os.path.dirname(labels) or ".", labels, args,
                                           task=task)
        return paths, y, groups, labels
    if len(args.scans) == 1 and os.path.isdir(args.scans[0]):
        labels = os.path.join(args.scans[0], "labels.csv")
        if os.path.isfile(labels):
            paths, y, groups, _ = _read_labels(args.scans[0], labels, args, task=task)
            return paths, y, groups, labels
        return _scans_in(args.scans[0]), None, None, None
    from ..volumes import is_dicom_series

    missing = [s for s in args.scans if not (os.path.isfile(s) or is_dicom_series(s))]
    if missing:
        raise FileNotFoundError(f"Volume file {missing[0]!r} does not exist.")
    return list(args.scans), None, None, None


def _scans_in(folder):
    from ..datasets import find_scans

    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Data folder {folder!r} does not exist.")
    paths = find_scans(folder)
    if not paths:
        raise CommandError(f"{folder!r} holds no labels.csv and no scans (.nii/.nii.gz "
                           "files or DICOM series).")
    return paths
