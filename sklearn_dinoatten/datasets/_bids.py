"""A BIDS dataset read as labelled scans: its scans found by suffix and entities, their
labels in participants.tsv (or in a subject's sessions.tsv), their subjects the groups.

Only the layout the BIDS specification defines is read, ``sub-<label>/[ses-<label>/]
<datatype>/sub-<label>[_ses-<label>][_<key>-<value>...]_<suffix>.nii[.gz]``: everything
outside the ``sub-<label>`` folders (``derivatives/``, ``sourcedata/``, ``code/``, hidden
folders) is not searched.
"""

import os
import warnings
from typing import NamedTuple

import numpy as np

from ..utils._options import BIDS_SUFFIX
from ._folders import MISSING, parse_labels, read_csv, warn_if_subjects_change_label

PARTICIPANTS = "participants.tsv"


class _Table(NamedTuple):
    """A BIDS TSV file: what it is (for messages), its path, header, and rows by key."""

    what: str
    path: str
    header: list
    rows: dict  # participant_id or session_id -> (line, row)


def is_bids_dataset(root):
    """Whether the folder ``root`` is the root of a BIDS dataset.

    It is when it holds ``dataset_description.json`` (which BIDS requires), or, as many
    hand-made BIDS trees lack that file, ``participants.tsv`` and at least one
    ``sub-<label>`` folder.

    Parameters
    ----------
    root : str or path
        The folder; anything that is not a folder is not a BIDS root.

    Returns
    -------
    bool
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        return False
    return os.path.isfile(os.path.join(root, "dataset_description.json")) or (
        os.path.isfile(os.path.join(root, PARTICIPANTS)) and bool(_subject_folders(root)))


def find_bids_scans(root, *, suffix=BIDS_SUFFIX, entities=None):
    """The scans of a BIDS dataset of one suffix (and entities), in a sorted order.

    Parameters
    ----------
    root : str or path
        The dataset's root folder.
    suffix : str, default="T1w"
        The kind of scan, the last part of its file name (``..._T1w.nii.gz``).
    entities : dict, default=None
        Entities every scan's file name must have, key (without its dash) -> value:
        ``{"acq": "mprage", "ses": "01"}`` keeps ``..._ses-01_acq-mprage_...`` only.
        Values are compared as written (``run-01`` is not ``run-1``). None: every scan
        of the suffix.

    Returns
    -------
    paths : list of str
        One per file: the sessions and runs of a subject are scans of their own. Sorted
        by subject, session, datatype folder and file name.

    Raises
    ------
    FileNotFoundError
        When ``root`` does not exist or holds no NIfTI file, or a scan is a link to a
        missing file (a DataLad dataset not fetched).
    ValueError
        When no scan has the suffix (naming the suffixes there are) or the entities, or
        a file is not named for the folders it lies in.
    """
    return [path for path, _, _ in _find(os.fspath(root), suffix, entities)]


def bids_columns(root, columns, *, suffix=BIDS_SUFFIX, entities=None):
    """Columns of participants.tsv (or sessions.tsv) for each scan of a BIDS dataset.

    A scan's value of a column is its session's, in its subject's
    ``sub-<label>_sessions.tsv``, when that file has the column and a row for the
    session; else its subject's, in ``participants.tsv``.

    Parameters
    ----------
    root : str or path
        The dataset's root folder.
    columns : list of str
        The columns, each in participants.tsv or in a sessions.tsv.
    suffix, entities
        Which scans, as :func:`find_bids_scans` finds them.

    Returns
    -------
    paths : list of str
        The scans, as :func:`find_bids_scans` returns them.
    subjects : list of str
        The subject of each scan, as participants.tsv names it (``sub-01``).
    values : dict
        Column -> a value per scan, the cell as written; None where it is ``n/a`` or
        empty, or where no row holds it.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`find_bids_scans`; and when participants.tsv is missing, has no row
        for a scan's subject, or a column is in no file.
    """
    root = os.fspath(root)
    scans, values = _read_columns(root, columns, suffix, entities)
    return ([path for path, _, _ in scans], [subject for _, subject, _ in scans],
            {column: [value for value, _ in cells] for column, cells in values.items()})


def load_bids(root, *, label_column, suffix=BIDS_SUFFIX, entities=None,
              task="classification"):
    """Read the scans of a BIDS dataset and their labels, each scan grouped by subject.

    Parameters
    ----------
    root : str or path
        The dataset's root folder.
    label_column : str
        The column holding each scan's label (or target): in participants.tsv, or in a
        subject's sessions.tsv, whose value, where it has the column and a row for the
        scan's session, is taken first (an age at each visit). No default: BIDS names
        no label column (participants.tsv has ``participant_id`` and columns of each
        study's choosing, ``group``, ``diagnosis``, ``age``), so none is guessed.
    suffix : str, default="T1w"
        The kind of scan, the last part of its file name (``..._T1w.nii.gz``).
    entities : dict, default=None
        Entities the scans' file names must have, e.g. ``{"acq": "mprage"}`` (see
        :func:`find_bids_scans`).
    task : {"classification", "regression"}, default="classification"
        What the label column holds: classes (at least two), or numbers.

    Returns
    -------
    paths : list of str
        The labelled scans, one per file (sessions and runs apart), sorted.
    y : ndarray of shape (n_scans,)
        Labels, as :func:`load_nifti_folder` reads them: integers when every label is
        one, else numbers or strings; a regression's targets as floats.
    groups : ndarray of shape (n_scans,)
        The subject of each scan (``sub-01``), so that a subject's scans stay on one
        side of every split.
    split : None
        A BIDS dataset has no fixed split.

    Raises
    ------
    FileNotFoundError
        When the dataset, participants.tsv or the scans are missing.
    ValueError
        When no scan has the suffix (naming those there are), participants.tsv has no
        row for a scan's subject, the label column is in no file (naming the columns
        there are), no scan has a label, or a label is not what ``task`` reads.

    Warns
    -----
    UserWarning
        When scans have no label (``n/a``, an empty cell, no row in sessions.tsv for a
        column only sessions.tsv have): they are left out, and the warning says how
        many and of which subjects.

    Examples
    --------
    >>> import os, tempfile
    >>> import nibabel as nib, numpy as np
    >>> from sklearn_dinoatten.datasets import load_bids
    >>> root = tempfile.mkdtemp()
    >>> for subject in ("sub-01", "sub-02"):
    ...     os.makedirs(os.path.join(root, subject, "anat"))
    ...     nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)),
    ...              os.path.join(root, subject, "anat", f"{subject}_T1w.nii.gz"))
    >>> with open(os.path.join(root, "participants.tsv"), "w") as f:
    ...     _ = f.write("participant_id\\tgroup\\nsub-01\\tAD\\nsub-02\\tCN\\n")
    >>> paths, y, groups, split = load_bids(root, label_column="group")
    >>> [os.path.basename(p) for p in paths], y.tolist(), groups.tolist()
    (['sub-01_T1w.nii.gz', 'sub-02_T1w.nii.gz'], ['AD', 'CN'], ['sub-01', 'sub-02'])
    """
    root = os.fspath(root)
    scans, values = _read_columns(root, [label_column], suffix, entities)
    cells = values[label_column]
    kept = [i for i, (value, _) in enumerate(cells) if value is not None]
    if not kept:
        raise ValueError(f"BIDS dataset {root!r}: none of its {len(cells)} '_{suffix}' "
                         f"scan(s) has a value in the column {label_column!r} (all n/a or "
                         "empty).")
    if len(kept) < len(scans):
        left = sorted({scans[i][1] for i, (value, _) in enumerate(cells) if value is None})
        warnings.warn(f"{len(scans) - len(kept)} '_{suffix}' scan(s) of BIDS dataset "
                      f"{root!r} have no {label_column!r} (n/a, empty or no row) and are "
                      f"left out: those of {_named(left)}.", UserWarning, stacklevel=2)
    y = parse_labels([cells[i][0] for i in kept], task, column=label_column,
                     source=f"The column {label_column!r} of BIDS dataset {root!r}",
                     where=[cells[i][1] for i in kept])
    groups = np.array([scans[i][1] for i in kept])
    if task == "classification":
        warn_if_subjects_change_label(y, groups)
    return [scans[i][0] for i in kept], y, groups, None


def _read_columns(root, columns, suffix, entities):
    """The scans ``(path, subject, session)`` and, per column, each scan's ``(value or
    None, where it was read)``."""
    scans = _find(root, suffix, entities)
    path = os.path.join(root, PARTICIPANTS)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"BIDS dataset {root!r} has no {PARTICIPANTS}, which lists "
                                "each subject (participant_id) with its labels.")
    participants = _table("Participants", path, "participant_id")
    sessions = {}  # subject -> its sessions.tsv
    for subject in sorted({subject for _, subject, session in scans if session}):
        path = os.path.join(root, subject, f"{subject}_sessions.tsv")
        if os.path.isfile(path):
            sessions[subject] = _table("Sessions", path, "session_id")
    for column in columns:
        if column not in participants.header and not any(
                column in table.header for table in sessions.values()):
            raise ValueError(f"Participants file {participants.path!r} has no column "
                             f"{column!r}" + (" (nor has any sessions.tsv)" if sessions
                                               else "")
                             + f"; its columns are {', '.join(participants.header)}.")
    values = {column: [] for column in columns}
    for path, subject, session in scans:
        if subject not in participants.rows:
            raise ValueError(f"Participants file {participants.path!r} has no row for the "
                             f"subject {subject} (participant_id {subject}) of the scan "
                             f"{path!r}.")
        for column in columns:
            values[column].append(_value(column, (session, sessions.get(subject)),
                                         (subject, participants)))
    return scans, values


def _value(column, *sources):
    """A scan's ``(value or None, where)`` of ``column``: from the first source, ``(key,
    table)``, whose table has the column and a row for the key."""
    for key, table in sources:
        if table is not None and column in table.header and key in table.rows:
            line, row = table.rows[key]
            value = (row.get(column) or "").strip()
            return (None if value.lower() in MISSING else value), (
                f"{table.what} file {table.path!r}, line {line}")
    return None, None


def _table(what, path, key):
    """The BIDS TSV file ``path``, rows by their column ``key`` (``participant_id``,
    ``session_id``), each once."""
    header, rows = read_csv(path, delimiter="\t")
    if key not in header:
        raise ValueError(f"{path!r} has no column {key!r}, which BIDS requires; its columns "
                         f"are {', '.join(header) or 'none'} (columns separated by tabs).")
    table = {}
    for line, row in enumerate(rows, start=2):
        name = (row[key] or "").strip()
        if name in table:
            raise ValueError(f"{path!r} lists {key} {name!r} twice, on lines "
                             f"{table[name][0]} and {line}; list each once.")
        table[name] = line, row
    return _Table(what, path, header, table)


def _find(root, suffix, entities):
    """``(path, subject, session or None)`` of each scan of ``suffix`` with
    ``entities``, sorted; refused, saying what there is, when there is none."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"BIDS dataset {root!r} does not exist.")
    wanted = {key: str(value) for key, value in (entities or {}).items()}
    found, suffixes, seen, unfetched = [], {}, set(), []
    for path, subject, session in _nifti_files(root):
        kind, named = _entities(os.path.basename(path))
        suffixes[kind] = suffixes.get(kind, 0) + 1
        if kind != suffix:
            continue
        if named.get("sub") != subject[4:] or (session and named.get("ses") != session[4:]):
            raise ValueError(f"BIDS file {path!r} is not named for the folder "
                             f"{'/'.join(filter(None, (subject, session)))!r} it lies in: BIDS "
                             "names a scan sub-<label>[_ses-<label>]_... after its folders.")
        if any(named.get(key) != value for key, value in wanted.items()):
            seen.update(f"{key}-{named[key]}" if key in named else f"no {key}"
                        for key in wanted)
        elif not os.path.isfile(path):
            unfetched.append(path)
        else:
            found.append((path, subject, session))
    if unfetched:
        raise FileNotFoundError(f"{len(unfetched)} scan(s) of BIDS dataset {root!r} are links "
                                f"to missing files, e.g. {unfetched[0]!r}: a DataLad dataset "
                                "whose files are not fetched (datalad get)?")
    if found:
        return found
    if not suffixes:
        raise FileNotFoundError(f"BIDS dataset {root!r} holds no NIfTI scan (.nii, .nii.gz) "
                                "in sub-<label>/[ses-<label>/]<datatype>/ folders.")
    if suffix not in suffixes:
        raise ValueError(f"BIDS dataset {root!r} has no '_{suffix}' scan; the suffixes of "
                         "its scans are " + ", ".join(f"{kind} ({n})" for kind, n in
                                                      sorted(suffixes.items())) + ".")
    raise ValueError(f"BIDS dataset {root!r} has no '_{suffix}' scan with "
                     + ", ".join(f"{key}-{value}" for key, value in wanted.items())
                     + f"; its '_{suffix}' scans have {', '.join(sorted(seen))}.")


def _nifti_files(root):
    """``(path, subject, session or None)`` of every NIfTI file of the dataset's
    ``sub-<label>/[ses-<label>/]<datatype>/`` folders, sorted."""
    for subject in _subject_folders(root):
        for name in _folders_in(os.path.join(root, subject)):
            session = name if name.startswith("ses-") else None
            folder = os.path.join(root, subject, name)
            for datatype in [folder] if session is None else [
                    os.path.join(folder, d) for d in _folders_in(folder)]:
                for file in sorted(os.listdir(datatype)):
                    if file.lower().endswith((".nii", ".nii.gz")):
                        yield os.path.join(datatype, file), subject, session


def _entities(name):
    """``(suffix, {key: value})`` of a BIDS file name (``sub-01_run-1_T1w.nii.gz``)."""
    stem = name[:-len(".nii.gz")] if name.lower().endswith(".nii.gz") else name[:-len(".nii")]
    *pairs, suffix = stem.split("_")
    return suffix, dict(pair.split("-", 1) for pair in pairs if "-" in pair)


def _subject_folders(root):
    return [name for name in _folders_in(root) if name.startswith("sub-")]


def _folders_in(folder):
    """The folders in ``folder`` (not hidden ones), sorted."""
    return sorted(name for name in os.listdir(folder) if not name.startswith(".")
                  and os.path.isdir(os.path.join(folder, name)))


def _named(subjects, shown=5):
    """Subjects named in a message, the first ``shown`` of them."""
    return ", ".join(subjects[:shown]) + (f" and {len(subjects) - shown} more"
                                          if len(subjects) > shown else "")
