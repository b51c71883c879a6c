"""A labelled folder of NIfTI scans: its labels CSV read and checked, its scans found.
"""

import codecs
import csv
import io
import os
import warnings

import numpy as np

from ..volumes import is_dicom_folder, series_selection

SPLITS = ("train", "val", "test")


# Cells that mean "no value" in what spreadsheets and pandas write (compared in lower case).
MISSING = ("", "na", "n/a", "nan", "null", "#n/a", "<na>")


def load_nifti_folder(root, *, labels_csv=None, path_column="path", label_column="label",
                      group_column="auto", split_column="auto", task="classification"):
    """Read a labels CSV describing the NIfTI scans of a folder.

    Parameters
    ----------
    root : str or path
        The folder; scan paths in the CSV are relative to it (absolute paths are kept).
    labels_csv : str or path, default=None
        The CSV file; ``None`` means ``root/labels.csv``.
    path_column, label_column : str, default="path", "label"
        Columns holding each scan's path and its class label (or target);
        ``label_column=None`` reads no label (the scans alone, as ``dinoatten explain``
        takes them).
    group_column : str, "auto" or None, default="auto"
        A column naming the subject (or any group) of each scan, for
        :class:`~sklearn.model_selection.StratifiedGroupKFold`, so that the scans of one
        subject never fall in both the training and the test set. ``"auto"``: the
        column ``subject`` if the CSV has one (as ``dinoatten`` does); ``None``: none.
    split_column : str, "auto" or None, default="auto"
        A column giving each scan's set in a fixed split, ``train``, ``val`` or ``test``
        (see :func:`sklearn_dinoatten.evaluation.held_out`). ``"auto"``: the column
        ``split`` if the CSV has one; ``None``: none.
    task : {"classification", "regression"}, default="classification"
        What the label column holds: classes (at least two), or numbers, the target of a
        regression (a subject's scans may then differ, as ages at several visits do).

    Returns
    -------
    paths : list of str
        Scan paths, in the CSV's order.
    y : ndarray of shape (n_scans,) or None
        Labels: integers when every label is an integer, else strings; the targets of a
        regression as floats; ``None`` with ``label_column=None``.
    groups : ndarray of shape (n_scans,) or None
        The group of each scan, as strings; ``None`` without a group column.
    split : ndarray of shape (n_scans,) or None
        The set of each scan; ``None`` without a split column.

    Raises
    ------
    FileNotFoundError
        When the folder, the CSV or a scan it lists does not exist.
    ValueError
        When a column is missing, a cell is empty, a split is not ``train``, ``val`` or
        ``test``, or fewer than two classes are present.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn_dinoatten.datasets import load_nifti_folder
    >>> root = tempfile.mkdtemp()
    >>> for name in ("a.nii.gz", "b.nii.gz"):
    ...     open(os.path.join(root, name), "w").close()
    >>> with open(os.path.join(root, "labels.csv"), "w") as f:
    ...     _ = f.write("path,label\\na.nii.gz,0\\nb.nii.gz,1\\n")
    >>> paths, y, groups, split = load_nifti_folder(root)
    >>> [os.path.basename(p) for p in paths], y.tolist(), groups, split
    (['a.nii.gz', 'b.nii.gz'], [0, 1], None, None)
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Data folder {root!r} does not exist.")
    labels_csv = os.path.join(root, "labels.csv") if labels_csv is None else os.fspath(labels_csv)
    if not os.path.isfile(labels_csv):
        raise FileNotFoundError(
            f"Labels file {labels_csv!r} does not exist; give a CSV with the columns "
            f"{', '.join(repr(c) for c in (path_column, label_column) if c)}."
        )
    header, rows = read_csv(labels_csv)
    group_column, split_column = (
        (default if default in header else None) if given == "auto" else given
        for given, default in ((group_column, "subject"), (split_column, "split")))
    columns = [c for c in (path_column, label_column, group_column, split_column) if c]
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"Labels file {labels_csv!r} has no column {missing[0]!r}; "
                         f"its columns are {header}.")
    _check_cells(rows, columns, labels_csv)
    paths = [_scan_path(root, row[path_column].strip()) for row in rows]
    _check_scans_exist_once(paths, labels_csv)
    y = None if label_column is None else parse_labels(
        [row[label_column].strip() for row in rows], task, column=label_column,
        source=f"Labels file {labels_csv!r}")
    groups, split = (None if not column else np.array([row[column].strip() for row in rows])
                     for column in (group_column, split_column))
    if groups is not None and y is not None and task == "classification":
        warn_if_subjects_change_label(y, groups)
    if split is not None:
        _check_split(split, split_column, labels_csv)
    return paths, y, groups, split


def _check_cells(rows, columns, labels_csv):
    """Refuse a labels file without rows, or with an empty or missing cell in a column
    read, naming its line."""
    if not rows:
        raise ValueError(f"Labels file {labels_csv!r} lists no scans.")
    for line, row in enumerate(rows, start=2):
        for column in columns:
            value = (row[column] or "").strip()
            if value.lower() in MISSING:
                raise ValueError(f"Labels file {labels_csv!r}, line {line}: column {column!r} "
                                 + ("is empty." if not value else f"is missing ({value!r})."))


def _check_split(split, split_column, labels_csv):
    """Refuse a split that is not ``train``, ``val`` or ``test``, naming its line."""
    unknown = sorted(set(split.tolist()) - set(SPLITS))
    if unknown:
        line = 2 + int(np.flatnonzero(split == unknown[0])[0])
        raise ValueError(f"Labels file {labels_csv!r}, line {line}: {split_column!r} is "
                         f"{unknown[0]!r}; it must be one of {', '.join(SPLITS)}.")


def warn_if_subjects_change_label(y, groups, *, stacklevel=3):
    """Warn, naming them, of the subjects whose scans carry different labels: a subject
    usually has one (a typo, or a conversion the study should say it handles)."""
    y, groups = np.asarray(y), np.asarray(groups)
    labels = {}
    for subject, label in zip(groups.tolist(), y.tolist(), strict=True):
        labels.setdefault(subject, []).append(label)
    mixed = {s: sorted(set(map(str, ls))) for s, ls in labels.items() if len(set(ls)) > 1}
    if mixed:
        first = next(iter(mixed))
        named = ", ".join(map(str, list(mixed)[:5])) + (
            f" and {len(mixed) - 5} more" if len(mixed) > 5 else "")
        warnings.warn(f"{len(mixed)} subject(s) have scans of different labels "
                      f"({named}; {first}: {', '.join(mixed[first])}). A subject's scans "
                      "stay in one fold; check the labels if a subject should have one.",
                      UserWarning, stacklevel=stacklevel)


def read_csv(path, *, delimiter=","):
    """``(header, rows)`` of a CSV file, rows as dicts, in the encoding it was saved in:
    UTF-8 (with or without a byte-order mark), UTF-16 (what spreadsheet programs save as
    "Unicode text"), else Windows-1252 (their plain "CSV" on Windows), with a warning.
    ``delimiter="\\t"`` reads a TSV file (BIDS's participants.tsv)."""
    with open(path, "rb") as f:
        data = f.read()
    text = None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16")
    elif b"\x00" in data[:1000] and len(data) % 2 == 0:  # UTF-16 without a BOM
        text = data.decode("utf-16-le" if data[1:2] == b"\x00" else "utf-16-be")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                line = data[:exc.start].count(b"\n") + 1
                raise ValueError(f"{path!r} is not text in UTF-8, UTF-16 or Windows-1252 "
                                 f"(byte {data[exc.start]:#04x} on line {line}); save it as "
                                 "UTF-8 CSV.") from None
            warnings.warn(f"{path!r} is not UTF-8: read as Windows-1252 (what spreadsheet "
                          "programs save as CSV on Windows); save it as UTF-8 CSV to be sure "
                          "of its accents.", UserWarning, stacklevel=3)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = list(reader)
    return reader.fieldnames or [], rows


def _scan_path(root, listed):
    """A listed path under ``root``; ``sub\\scan.nii`` written on Windows is read with
    this system's separator when only that file exists."""
    path = os.path.join(root, listed)
    if os.sep != "\\" and "\\" in listed and not os.path.exists(path):
        other = os.path.join(root, *listed.split("\\"))
        return other if os.path.exists(other) else path
    return path


def _check_scans_exist_once(paths, labels_csv):
    """Every listed scan is a file or a DICOM series, listed once: the same scan under two
    names (``x`` and ``./x``, a link) would sit on both sides of a fold, or hold two
    labels."""
    seen = {}
    for line, path in enumerate(paths, start=2):
        if not _is_scan(path):
            absent = [p for p in paths if not _is_scan(p)]
            what = ("is a folder without DICOM files" if os.path.isdir(path)
                    else "does not exist")
            raise FileNotFoundError(f"{len(absent)} scan(s) listed in {labels_csv!r} are not "
                                    f"scans: line {line}, {path!r}, {what}.")
        selection = series_selection(path)
        stat = os.stat(selection[0] if selection else path)
        identity = (stat.st_dev, stat.st_ino, selection and selection[1])
        if identity in seen:
            raise ValueError(f"Labels file {labels_csv!r} lists one scan twice: line "
                             f"{seen[identity][0]} ({seen[identity][1]!r}) and line {line} "
                             f"({path!r}) are the same scan; list each scan once.")
        seen[identity] = line, path


def _is_scan(path):
    """A file, a folder of DICOM files, or one series of it (``FOLDER/<UID>``)."""
    selection = series_selection(path)
    return os.path.isfile(path) or is_dicom_folder(path) or bool(selection and selection[1])


def find_scans(root):
    """Every scan under the folder ``root``, sorted: NIfTI files (``.nii``, ``.nii.gz``, in
    any letter case) and the folders holding a DICOM series (whose first file is DICOM;
    see :func:`~sklearn_dinoatten.volumes.is_dicom_folder`), each once: symbolic links to
    folders are followed, but a folder reached again (a link loop, or two links to one
    folder) is not searched again, and a file reached by two paths is kept under the
    first."""
    scans, seen_folders, seen_files = [], set(), set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        stat = os.stat(folder)
        if (stat.st_dev, stat.st_ino) in seen_folders:
            subfolders[:] = []
            continue
        seen_folders.add((stat.st_dev, stat.st_ino))
        subfolders.sort()
        if is_dicom_folder(folder):
            scans.append(folder)
        for name in sorted(names):
            path = os.path.join(folder, name)
            if name.lower().endswith((".nii", ".nii.gz")) and os.path.isfile(path):
                stat = os.stat(path)
                if (stat.st_dev, stat.st_ino) not in seen_files:
                    seen_files.add((stat.st_dev, stat.st_ino))
                    scans.append(path)
    return scans


def parse_labels(values, task, *, column, source, where=None):
    """The label column ``column`` (its cells, as strings) as ``task`` reads it: classes
    (two or more: integers when every one is, numbers when every one is, else strings), or
    a regression's finite numbers. ``source`` names the labels in errors (``"Labels file
    'labels.csv'"``); ``where``, one per value, the file and line it was read from
    (default: ``source``'s lines 2, 3, ...)."""
    if task == "regression":
        return _targets(values, column, where or [f"{source}, line {line}"
                                                  for line in range(2, len(values) + 2)])
    if task != "classification":
        raise ValueError(f"task must be 'classification' or 'regression'; got {task!r}.")
    y = _labels(values)
    if len(np.unique(y)) < 2:
        raise ValueError(f"{source} has one class only ({y[0].item()!r}); classification "
                         "needs at least two.")
    return y


def _targets(values, column, where):
    """The numbers of a regression's target column, naming where one that is not was read."""
    numbers = []
    for value, place in zip(values, where, strict=True):
        try:
            numbers.append(float(value))
        except ValueError:
            raise ValueError(f"{place}: column {column!r} is {value!r}, not a number (the "
                             "target of a regression).") from None
        if not np.isfinite(numbers[-1]):
            raise ValueError(f"{place}: column {column!r} is {value!r}, not a finite number.")
    return np.array(numbers)


def looks_continuous(y):
    """Whether labels ``y`` look like continuous values rather than classes (ages,
    scores): numbers, most of them held by one scan, and some not whole (or ten or more
    distinct ones)."""
    classes, counts = np.unique(np.asarray(y), return_counts=True)
    try:
        numbers = classes.astype(float)
    except (TypeError, ValueError):
        return False
    fractional = not np.all(numbers == np.round(numbers))
    return bool(len(classes) >= (3 if fractional else 10) and np.mean(counts == 1) > 0.5)


def _labels(values):
    """Numbers when every label is one (integers when they all are, so that ``1`` and
    ``1.0`` are one class), else the strings as written."""
    try:
        numbers = np.array([float(v) for v in values])
    except ValueError:
        return np.array(values)
    if not np.isfinite(numbers).all():
        return np.array(values)
    return numbers.astype(np.int64) if (numbers == np.round(numbers)).all() else numbers
