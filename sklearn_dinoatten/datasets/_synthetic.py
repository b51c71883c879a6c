"""Synthetic volumes and images with a planted, known signal.
"""

import numpy as np
from sklearn.utils import check_random_state

from ..volumes import check_axis


def make_volumes(*, n_samples=100, shape=(64, 64, 32), n_classes=2, n_signal_slices=None,
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


def make_anomaly_images(*, n_normal=50, n_anomalous=50, shape=(64, 64), noise=0.05,
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
