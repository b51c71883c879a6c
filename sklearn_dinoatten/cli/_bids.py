"""DATA as a BIDS dataset, when it is one and no labels CSV is given or found: its scans
of ``--bids-suffix``, labelled by the column ``--label-column`` of participants.tsv (or
of a subject's sessions.tsv), grouped by subject; and where they came from, said."""

import os
from contextlib import contextmanager

from ._outputs import CommandError


def bids_root(args):
    """The folder read as a BIDS dataset: DATA (or ``predict``'s one SCAN folder) when it
    is one (see :func:`~sklearn_dinoatten.datasets.is_bids_dataset`), unless a labels CSV
    is given (``--labels``) or found in it (labels.csv), which is read instead; else
    None."""
    from ..datasets import is_bids_dataset

    scans = getattr(args, "scans", None)  # predict's
    folder = getattr(args, "data", None) or (scans[0] if scans and len(scans) == 1 else None)
    if (folder is None or getattr(args, "labels", None)
            or os.path.isfile(os.path.join(folder, "labels.csv"))):
        return None
    return folder if is_bids_dataset(folder) else None


def bids_scans(args, task):
    """``(paths, y, groups, None)`` of the BIDS dataset, ``task``'s labels, said in one
    line; the options of a labels CSV's columns refused."""
    from ..datasets import load_bids

    root = bids_root(args)
    given = [option for option, value in (
        ("--group-column", args.group_column), ("--split-column", getattr(args, "split_column",
                                                                           None)),
        ("--path-column", None if args.path_column == "path" else args.path_column))
        if value is not None]
    if given:
        raise CommandError(f"{given[0]} is for a labels CSV; {root!r} is a BIDS dataset, "
                           "whose scans are its files, grouped by subject.")
    with _label_column_said(args):
        paths, y, groups, split = load_bids(root, label_column=args.label_column,
                                            suffix=args.bids_suffix, task=task)
    if args.verbosity >= 1:
        print(f"BIDS dataset {root}: {len(paths)} '_{args.bids_suffix}' scans of "
              f"{len(set(groups.tolist()))} subjects, labelled by the column "
              f"{args.label_column!r} of participants.tsv (of a subject's sessions.tsv "
              "first, where it has the column).", flush=True)
    return paths, y, groups, split


def bids_label_values(args):
    """The label column's values of the BIDS dataset's scans (but ``n/a``), one per
    subject and value: a subject's age in participants.tsv is not one scan's, but the
    age of each of its scans."""
    from ..datasets import bids_columns

    with _label_column_said(args):
        _, subjects, values = bids_columns(bids_root(args), [args.label_column],
                                           suffix=args.bids_suffix)
    return [value for _, value in sorted({
        (subject, value) for subject, value in zip(subjects, values[args.label_column],
                                                   strict=True) if value is not None})]


@contextmanager
def _label_column_said(args):
    """A missing label column's error, with what to do when it is the default's: BIDS
    names no label column."""
    try:
        yield
    except ValueError as error:
        if args.label_column != "label" or "has no column 'label'" not in str(error):
            raise
        raise CommandError(f"{error} A BIDS dataset names no label column: give "
                           "--label-column (group, diagnosis, age...).") from None


def bids_subgroups(args, names):
    """``--subgroups``' columns ``names`` of participants.tsv (or sessions.tsv): name ->
    a value per labelled scan, in the order :func:`bids_scans` reads them."""
    from ..datasets import bids_columns

    if not names:
        raise CommandError(f"--subgroups {args.subgroups!r}: name columns of participants.tsv "
                           "(site, scanner, sex...).")
    taken = {args.label_column: "the labels",
             "participant_id": "the subjects (each level one subject)"}
    for name in names:
        if name in taken:
            raise CommandError(f"--subgroups {args.subgroups!r}: {name!r} is the column of "
                               f"{taken[name]}, not a subgroup (site, scanner, sex...).")
    try:
        _, _, values = bids_columns(bids_root(args), [args.label_column, *names],
                                    suffix=args.bids_suffix)
    except ValueError as error:  # a column in no file (the rest was read before)
        raise CommandError(f"--subgroups {args.subgroups!r}: {error}") from None
    labelled = [value is not None for value in values[args.label_column]]
    return {name: [value or "" for value, kept in zip(values[name], labelled, strict=True)
                   if kept] for name in names}


def bids_scan_paths(args):
    """Every scan of ``--bids-suffix`` of the BIDS dataset, labelled or not."""
    from ..datasets import find_bids_scans

    return find_bids_scans(bids_root(args), suffix=args.bids_suffix)


def bids_record(args):
    """What run.json's data record adds for a BIDS dataset: its suffix and label column
    (the record's labels file is its participants.tsv); empty for a labels CSV."""
    if bids_root(args) is None:
        return {}
    return {"bids_suffix": args.bids_suffix, "label_column": args.label_column}
