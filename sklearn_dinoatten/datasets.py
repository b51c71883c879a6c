"""Data sets: a labelled folder of NIfTI scans, the MedMNIST 3D sets, and synthetic
volumes and images with a planted, known signal."""

import codecs
import csv
import io
import os
import warnings

import numpy as np
from sklearn.utils import check_random_state

from ._files import write_csv
from .volumes import check_axis

SPLITS = ("train", "val", "test")
# Cells that mean "no value" in what spreadsheets and pandas write (compared in lower case).
MISSING = ("", "na", "n/a", "nan", "null", "#n/a", "<na>")
_SHARED_DATA = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                             "data"))
# MedMNIST v2's 3D sets and their class names, in label order (from MedMNIST's INFO).
MEDMNIST3D = {
    "organ": ("liver", "kidney-right", "kidney-left", "femur-right", "femur-left", "bladder",
              "heart", "lung-right", "lung-left", "spleen", "pancreas"),
    "nodule": ("benign", "malignant"),
    "fracture": ("buckle rib fracture", "nondisplaced rib fracture", "displaced rib fracture"),
    "adrenal": ("normal", "hyperplasia"),
    "vessel": ("vessel", "aneurysm"),
    "synapse": ("inhibitory synapse", "excitatory synapse"),
}


def load_nifti_folder(root, labels_csv=None, path_column="path", label_column="label",
                      group_column=None, split_column=None):
    """Read a labels CSV describing the NIfTI scans of a folder.

    Parameters
    ----------
    root : str or path
        The folder; scan paths in the CSV are relative to it (absolute paths are kept).
    labels_csv : str or path, default=None
        The CSV file; ``None`` means ``root/labels.csv``.
    path_column, label_column : str, default="path", "label"
        Columns holding each scan's path and its class label.
    group_column : str or None, default=None
        A column naming the subject (or any group) of each scan, for
        :class:`~sklearn.model_selection.StratifiedGroupKFold`, so that the scans of one
        subject never fall in both the training and the test set.
    split_column : str or None, default=None
        A column giving each scan's set in a fixed split, ``train``, ``val`` or ``test``
        (see :func:`sklearn_dinoatten.study.held_out`).

    Returns
    -------
    paths : list of str
        Scan paths, in the CSV's order.
    y : ndarray of shape (n_scans,)
        Labels: integers when every label is an integer, else strings.
    groups : ndarray of shape (n_scans,) or None
        The group of each scan, as strings; ``None`` without ``group_column``.
    split : ndarray of shape (n_scans,) or None
        The set of each scan; ``None`` without ``split_column``.

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
            f"Labels file {labels_csv!r} does not exist; give a CSV with columns "
            f"{path_column!r} and {label_column!r}."
        )
    header, rows = read_csv(labels_csv)
    columns = [path_column, label_column] + [c for c in (group_column, split_column) if c]
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"Labels file {labels_csv!r} has no column {missing[0]!r}; "
                         f"its columns are {header}.")
    if not rows:
        raise ValueError(f"Labels file {labels_csv!r} lists no scans.")
    for line, row in enumerate(rows, start=2):
        for column in columns:
            value = (row[column] or "").strip()
            if value.lower() in MISSING:
                raise ValueError(f"Labels file {labels_csv!r}, line {line}: column {column!r} "
                                 + ("is empty." if not value else f"is missing ({value!r})."))
    paths = [_scan_path(root, row[path_column].strip()) for row in rows]
    _check_scans_exist_once(paths, labels_csv)
    y = _labels([row[label_column].strip() for row in rows])
    if len(np.unique(y)) < 2:
        raise ValueError(f"Labels file {labels_csv!r} has one class only ({y[0].item()!r}); "
                         "classification needs at least two.")
    groups, split = (None if not column else np.array([row[column].strip() for row in rows])
                     for column in (group_column, split_column))
    if split is not None:
        unknown = sorted(set(split.tolist()) - set(SPLITS))
        if unknown:
            line = 2 + int(np.flatnonzero(split == unknown[0])[0])
            raise ValueError(f"Labels file {labels_csv!r}, line {line}: {split_column!r} is "
                             f"{unknown[0]!r}; it must be one of {', '.join(SPLITS)}.")
    return paths, y, groups, split


def read_csv(path):
    """``(header, rows)`` of a CSV file, rows as dicts, in the encoding it was saved in:
    UTF-8 (with or without a byte-order mark), UTF-16 (what spreadsheet programs save as
    "Unicode text"), else Windows-1252 (their plain "CSV" on Windows), with a warning."""
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
    reader = csv.DictReader(io.StringIO(text, newline=""))
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
    """Every listed scan is a file, listed once: the same file under two names (``x`` and
    ``./x``, a link) would sit on both sides of a fold, or hold two labels."""
    seen = {}
    for line, path in enumerate(paths, start=2):
        if not os.path.isfile(path):
            absent = [p for p in paths if not os.path.isfile(p)]
            what = "is a folder, not a scan file" if os.path.isdir(path) else "does not exist"
            raise FileNotFoundError(f"{len(absent)} scan(s) listed in {labels_csv!r} are not "
                                    f"files: line {line}, {path!r}, {what}.")
        stat = os.stat(path)
        identity = (stat.st_dev, stat.st_ino)
        if identity in seen:
            raise ValueError(f"Labels file {labels_csv!r} lists one scan twice: line "
                             f"{seen[identity][0]} ({seen[identity][1]!r}) and line {line} "
                             f"({path!r}) are the same file; list each scan once.")
        seen[identity] = line, path


def find_nifti_files(root):
    """Every NIfTI file (``.nii``, ``.nii.gz``, in any letter case) under the folder
    ``root``, sorted, each file once: symbolic links to folders are followed, but a
    folder reached again (a link loop, or two links to one folder) is not searched again,
    and a file reached by two paths is kept under the first."""
    files, seen_folders, seen_files = [], set(), set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        stat = os.stat(folder)
        if (stat.st_dev, stat.st_ino) in seen_folders:
            subfolders[:] = []
            continue
        seen_folders.add((stat.st_dev, stat.st_ino))
        subfolders.sort()
        for name in sorted(names):
            path = os.path.join(folder, name)
            if name.lower().endswith((".nii", ".nii.gz")) and os.path.isfile(path):
                stat = os.stat(path)
                if (stat.st_dev, stat.st_ino) not in seen_files:
                    seen_files.add((stat.st_dev, stat.st_ino))
                    files.append(path)
    return files


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


def data_dir():
    """Where the demos and benchmarks look for data sets: ``$SKLEARN_DINOATTEN_DATA``, else
    the ``shared/data`` folder beside this project's checkout."""
    return os.environ.get("SKLEARN_DINOATTEN_DATA", _SHARED_DATA)


def load_medmnist3d(name, path, split="all", size=28):
    """A MedMNIST 3D data set (MedMNIST v2, Yang et al., Scientific Data 10:41, 2023),
    read from its local ``.npz`` file; nothing is downloaded.

    The sets (:data:`MEDMNIST3D`) are ``organ`` (11 organs, CT), ``nodule`` (benign or
    malignant lung nodule, CT), ``fracture`` (3 rib fracture types, CT), ``adrenal``
    (normal adrenal gland or hyperplasia: 0/255 shape masks from CT, two glands of each
    patient), ``vessel`` (vessel or aneurysm, MRA shapes) and ``synapse`` (inhibitory or
    excitatory, electron microscopy). Each comes with an official train/val/test
    split; MedMNIST's published baselines train on train, select on val and score
    test. AdrenalMNIST3D's split is at patient level, and its files hold no patient
    ids: k-fold cross-validation of it would put a patient's two glands on both sides
    of a fold, so evaluate it on the official split.

    Parameters
    ----------
    name : str
        One of :data:`MEDMNIST3D` (``"adrenal"``; ``"adrenalmnist3d"`` also works).
    path : str or path
        The ``.npz`` file, or the folder holding ``<name>mnist3d.npz`` (28^3) or
        ``<name>mnist3d_64.npz`` (64^3).
    split : {"train", "val", "test", "all"}, default="all"
        The official split, or all three concatenated in that order.
    size : {28, 64}, default=28
        The file to read when ``path`` is a folder.

    Returns
    -------
    X : uint8 ndarray of shape (n, size, size, size)
    y : int ndarray of shape (n,)
        Class indices, named in ``MEDMNIST3D[name]``.

    Examples
    --------
    >>> from sklearn_dinoatten.datasets import MEDMNIST3D, data_dir, load_medmnist3d
    >>> folder = f"{data_dir()}/adrenalmnist3d"
    >>> X, y = load_medmnist3d("adrenal", folder, split="val")  # doctest: +SKIP
    >>> MEDMNIST3D["adrenal"]
    ('normal', 'hyperplasia')
    """
    key = name[: -len("mnist3d")] if isinstance(name, str) and name.endswith("mnist3d") else name
    if key not in MEDMNIST3D:
        raise ValueError(f"name must be one of {tuple(MEDMNIST3D)}; got {name!r}.")
    if split not in (*SPLITS, "all"):
        raise ValueError(f"split must be one of {(*SPLITS, 'all')}; got {split!r}.")
    if size not in (28, 64):
        raise ValueError(f"size must be 28 or 64; got {size!r}.")
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, f"{key}mnist3d{'' if size == 28 else '_64'}.npz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MedMNIST file {path!r} does not exist; MedMNIST publishes "
                                "it (https://medmnist.com).")
    splits = SPLITS if split == "all" else (split,)
    with np.load(path) as data:
        missing = [k for s in splits for k in (f"{s}_images", f"{s}_labels") if k not in data]
        if missing:
            raise ValueError(f"{path!r} is not a MedMNIST file: it has no {missing[0]!r}.")
        X = np.concatenate([data[f"{s}_images"] for s in splits])
        y = np.concatenate([data[f"{s}_labels"] for s in splits]).ravel().astype(int)
    if X.ndim != 4 or len(X) != len(y):
        raise ValueError(f"{path!r} does not hold 3D volumes with one label each: images "
                         f"{X.shape}, labels {y.shape}.")
    n_classes = len(MEDMNIST3D[key])
    if y.size and not 0 <= y.min() <= y.max() < n_classes:
        raise ValueError(f"{path!r} has labels outside 0..{n_classes - 1}: is it {key}?")
    return X, y


def make_volumes(n_samples=100, shape=(64, 64, 32), n_classes=2, n_signal_slices=None,
                 noise=0.05, axis="axial", return_signal=False, random_state=None):
    """Brain-like synthetic volumes where class ``c`` carries ``c`` bright blobs.

    Each volume is a noisy ellipsoid ("brain") with a darker inner ellipsoid
    ("ventricles"), jittered in size, position and intensity. A volume of class
    ``c > 0`` has ``c`` bright blobs confined to ``n_signal_slices`` consecutive slices
    along ``axis``, at a random depth; class 0 has none. The classes are balanced.

    Parameters
    ----------
    n_samples : int, default=100
    shape : tuple of 3 ints, default=(64, 64, 32)
        Array shape ``(x, y, z)``; with ``axis="axial"`` there are ``shape[2]`` slices.
    n_classes : int, default=2
    n_signal_slices : int or None, default=None
        How many consecutive slices hold the signal; ``None`` means one in eight
        (at least two).
    noise : float, default=0.05
        Standard deviation of the Gaussian noise (the brain's intensity is about 1).
    axis : {"axial", "coronal", "sagittal"} or int, default="axial"
        The slicing axis the signal is confined along.
    return_signal : bool, default=False
        Also return, per volume, the indices of the slices holding the signal (empty
        for class 0).
    random_state : int, RandomState or None, default=None

    Returns
    -------
    X : list of float32 ndarrays of shape ``shape``
    y : ndarray of shape (n_samples,), int labels ``0 .. n_classes - 1``
    signal_slices : list of int ndarrays, only if ``return_signal``

    Examples
    --------
    >>> from sklearn_dinoatten.datasets import make_volumes
    >>> X, y, signal = make_volumes(n_samples=4, shape=(32, 32, 16), return_signal=True,
    ...                             random_state=0)
    >>> len(X), X[0].shape, sorted(set(y.tolist()))
    (4, (32, 32, 16), [0, 1])
    >>> [len(s) for s in signal] == [2 * int(label > 0) for label in y]
    True
    """
    if len(shape) != 3 or min(shape) < 4:
        raise ValueError(f"shape must be 3 sizes of at least 4; got {shape!r}.")
    if n_classes < 2 or n_samples < n_classes:
        raise ValueError(
            f"Need n_classes >= 2 and n_samples >= n_classes; got n_classes={n_classes}, "
            f"n_samples={n_samples}."
        )
    axis = check_axis(axis)
    depth = shape[axis]
    if n_signal_slices is None:
        n_signal_slices = max(2, depth // 8)
    if not 1 <= n_signal_slices <= depth // 2:
        raise ValueError(
            f"n_signal_slices must be between 1 and half the {depth} slices; got {n_signal_slices}."
        )
    rng = check_random_state(random_state)
    y = rng.permutation(np.arange(n_samples) % n_classes)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    X, signal = [], []
    for label in y:
        center = rng.uniform(-0.05, 0.05, size=3)[:, None, None, None]
        radii = rng.uniform(0.7, 0.9, size=3)[:, None, None, None]
        r2 = (((grid - center) / radii) ** 2).sum(axis=0)
        volume = np.where(r2 < 1, 0.6 + 0.4 * (1 - r2), 0.0)
        volume[r2 < 0.08] *= 0.4
        slices = np.array([], dtype=int)
        if label > 0:
            start = rng.randint(depth // 4, depth - depth // 4 - n_signal_slices + 1)
            slices = np.arange(start, start + n_signal_slices)
            for _ in range(label):
                volume = volume + _blob(grid, axis, slices, depth, rng)
        volume = volume * rng.uniform(0.8, 1.2) + rng.normal(0, noise, size=shape)
        X.append(volume.astype(np.float32))
        signal.append(slices)
    return (X, y, signal) if return_signal else (X, y)


def _blob(grid, axis, slices, depth, rng):
    """A bright disc in the plane, restricted to ``slices`` along ``axis``."""
    in_plane = [a for a in range(3) if a != axis]
    center = rng.uniform(-0.35, 0.35, size=2)
    radius = 0.2
    d2 = sum((grid[a] - c) ** 2 for a, c in zip(in_plane, center, strict=True))
    along = np.zeros(depth, dtype=bool)
    along[slices] = True
    along = along.reshape([-1 if a == axis else 1 for a in range(3)])
    return np.where((d2 < radius**2) & along, 1.2, 0.0)


def make_anomaly_images(n_normal=50, n_anomalous=50, shape=(64, 64), noise=0.05,
                        return_masks=False, random_state=None):
    """Synthetic 2D scans for anomaly detection: anomalous ones carry one dark lesion.

    Every image is a noisy ellipse ("organ") with a darker core, slightly jittered in
    size, position and intensity, as aligned scans are. An anomalous image has a dark
    disc of radius about 7 % of the side at a random place inside the organ; it stays
    within the image's intensity range, so intensity normalisation cannot reveal it.

    Parameters
    ----------
    n_normal, n_anomalous : int, default=50
    shape : tuple of 2 ints, default=(64, 64)
    noise : float, default=0.05
        Standard deviation of the Gaussian noise (the organ's intensity is about 1).
    return_masks : bool, default=False
        Also return each image's lesion mask (all False for normal images).
    random_state : int, RandomState or None, default=None

    Returns
    -------
    X : list of float32 ndarrays of shape ``shape``
        Normal images first, then anomalous ones.
    y : ndarray of shape (n_normal + n_anomalous,)
        ``1`` for normal, ``-1`` for anomalous: scikit-learn's outlier convention.
    masks : list of bool ndarrays, only if ``return_masks``

    Examples
    --------
    >>> from sklearn_dinoatten.datasets import make_anomaly_images
    >>> X, y, masks = make_anomaly_images(n_normal=3, n_anomalous=2, return_masks=True,
    ...                                   random_state=0)
    >>> len(X), X[0].shape, y.tolist(), [bool(m.any()) for m in masks]
    (5, (64, 64), [1, 1, 1, -1, -1], [False, False, False, True, True])
    """
    if len(shape) != 2 or min(shape) < 8:
        raise ValueError(f"shape must be 2 sizes of at least 8; got {shape!r}.")
    if n_normal < 0 or n_anomalous < 0 or n_normal + n_anomalous == 0:
        raise ValueError(f"Need at least one image; got n_normal={n_normal}, "
                         f"n_anomalous={n_anomalous}.")
    rng = check_random_state(random_state)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    X, masks = [], []
    for anomalous in [False] * n_normal + [True] * n_anomalous:
        center = rng.uniform(-0.02, 0.02, size=2)[:, None, None]
        radii = rng.uniform(0.78, 0.82, size=2)[:, None, None]
        r2 = (((grid - center) / radii) ** 2).sum(axis=0)
        image = np.where(r2 < 1, 0.6 + 0.4 * (1 - r2), 0.0)
        image[r2 < 0.08] *= 0.4
        mask = np.zeros(shape, dtype=bool)
        if anomalous:
            where = rng.uniform(-0.45, 0.45, size=2)[:, None, None]
            mask = ((grid - where) ** 2).sum(axis=0) < 0.15**2
            image = np.where(mask, 0.2, image)
        image = image * rng.uniform(0.8, 1.2) + rng.normal(0, noise, size=shape)
        X.append(image.astype(np.float32))
        masks.append(mask)
    y = np.array([1] * n_normal + [-1] * n_anomalous)
    return (X, y, masks) if return_masks else (X, y)


def write_demo_data(root, dataset="synthetic", n_scans=100):
    """Write ``n_scans`` labelled NIfTI scans and labels.csv into ``root``, for the demo;
    returns the source's name and the number of scans written.

    ``dataset="synthetic"``: volumes of :func:`make_volumes` (class 1 has a bright blob
    in 3 of 24 slices).

    AdrenalMNIST3D holds two glands per patient and no patient ids, so its scans come
    from the official patient-level split (60 % train, 15 % val, 25 % test of
    ``n_scans``), written to a ``split`` column: cross-validating them would leak."""
    import nibabel as nib

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
    write_csv(os.path.join(root, "labels.csv"), rows)
    return source, len(rows)
