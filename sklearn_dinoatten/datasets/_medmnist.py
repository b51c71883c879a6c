"""The MedMNIST 3D sets, read from their local ``.npz`` files.
"""

import os

import numpy as np

from ._folders import SPLITS

_SHARED_DATA = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
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


def data_dir():
    """Where the demos and benchmarks look for data sets: ``$SKLEARN_DINOATTEN_DATA``, else
    the ``shared/data`` folder beside this project's checkout."""
    return os.environ.get("SKLEARN_DINOATTEN_DATA", _SHARED_DATA)


def load_medmnist3d(name, path, *, split="all", size=28):
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
