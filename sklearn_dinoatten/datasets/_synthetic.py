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


# The phantom head's brain (radii in mm, x: left-right, y: back-front, z: down-up) and the
# voxel sizes (mm) its scans are written at, as scanners of a multi-site study differ
_BRAIN_RADII = np.array([62.0, 75.0, 58.0])
_VOXEL_SIZES = ((3.0, 3.0, 3.0), (2.5, 2.5, 4.0), (4.0, 3.5, 3.0))


def make_brain_ages(*, n_subjects=60, scans_per_subject=1, age_range=(20, 90),
                    noise=0.05, random_state=None):
    """Phantom heads that age: the ventricles widen and the cortex thins with age, scanned
    at varied voxel sizes and orientations, with the header that says so.

    Each subject's brain is an ellipsoid of white matter (intensity about 0.8) under a
    shell of cortex (0.55) whose thickness falls from 5.5 mm at 20 to 2.7 mm at 90, around
    ventricles of CSF (0.15) whose radii grow from 6 mm to 16.5 mm over the same years;
    head size, ventricle shape and intensity vary between subjects, so that age is not
    read from one voxel. Every scan is sampled in world space (mm, RAS) through its
    affine: one of three voxel sizes, and an orientation that flips and permutes the
    array's axes (as LPS or coronal acquisitions do), so that a reader that ignores the
    header sees anatomy in different places.

    Parameters
    ----------
    n_subjects : int, default=60
    scans_per_subject : int, default=1
        Scans of each subject, two years apart (a follow-up study: group them by subject).
    age_range : tuple of 2 numbers, default=(20, 90)
        The ages at the first scan are uniform in it.
    noise : float, default=0.05
        Standard deviation of the Gaussian noise.
    random_state : int, RandomState or None, default=None

    Returns
    -------
    X : list of float32 ndarrays
        The scans, of shapes that follow their voxel sizes and orientations.
    ages : ndarray of shape (n_scans,)
        Each scan's age, in years.
    subjects : ndarray of shape (n_scans,)
        Each scan's subject, ``"sub-000"`` etc.
    affines : list of (4, 4) ndarrays
        Each scan's voxel-to-world (RAS, mm) affine, for its NIfTI header.

    Examples
    --------
    >>> from sklearn_dinoatten.datasets import make_brain_ages
    >>> X, ages, subjects, affines = make_brain_ages(n_subjects=3, scans_per_subject=2,
    ...                                              random_state=0)
    >>> len(X), ages.shape, subjects[:2].tolist()
    (6, (6,), ['sub-000', 'sub-000'])
    >>> float(ages[1] - ages[0])
    2.0
    """
    if n_subjects < 1 or scans_per_subject < 1:
        raise ValueError(f"n_subjects and scans_per_subject must be at least 1; got "
                         f"{n_subjects} and {scans_per_subject}.")
    low, high = age_range
    if not low < high:
        raise ValueError(f"age_range must be (youngest, oldest); got {age_range!r}.")
    rng = check_random_state(random_state)
    X, ages, subjects, affines = [], [], [], []
    for subject in range(n_subjects):
        first_age = rng.uniform(low, high)
        head = dict(scale=rng.uniform(0.92, 1.08), ventricles=rng.uniform(0.85, 1.15, 3),
                    intensity=rng.uniform(0.9, 1.1))
        for visit in range(scans_per_subject):
            age = first_age + 2.0 * visit
            affine, shape = _scan_affine(rng)
            X.append(_aged_brain(affine, shape, age, head, noise, rng))
            ages.append(age)
            subjects.append(f"sub-{subject:03d}")
            affines.append(affine)
    return X, np.array(ages), np.array(subjects), affines


def _scan_affine(rng, field_of_view=(150.0, 176.0, 140.0)):
    """``(affine, shape)`` of a scan: one of the voxel sizes (per world axis), its array
    axes flipped and, half the time, permuted, the array's centre at the world's origin."""
    sizes = np.array(_VOXEL_SIZES[rng.randint(len(_VOXEL_SIZES))])
    world_axis = rng.permutation(3) if rng.uniform() < 0.5 else np.arange(3)  # per array axis
    affine = np.zeros((4, 4))
    affine[3, 3] = 1.0
    affine[world_axis, np.arange(3)] = rng.choice([-1.0, 1.0], size=3) * sizes[world_axis]
    shape = np.round(np.array(field_of_view)[world_axis] / sizes[world_axis]).astype(int)
    affine[:3, 3] = -affine[:3, :3] @ ((shape - 1) / 2)
    return affine, tuple(int(n) for n in shape)


def _aged_brain(affine, shape, age, head, noise, rng):
    """A scan of the phantom at ``age``, sampled through ``affine`` on an array of
    ``shape``."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    world = index @ affine[:3, :3].T + affine[:3, 3]
    radii = _BRAIN_RADII * head["scale"]
    r = np.sqrt(((world / radii) ** 2).sum(axis=-1))  # 1 on the brain's surface
    years = age - 20.0
    cortex = (5.5 - 0.04 * years) / radii.mean()  # its thickness, in units of r
    ventricle_radii = (6.0 + 0.15 * years) * np.array([0.6, 1.4, 0.8]) * head["ventricles"]
    in_ventricles = ((world / ventricle_radii) ** 2).sum(axis=-1) < 1
    volume = np.where(r < 1, np.where(r > 1 - cortex, 0.55, 0.8), 0.0)
    volume = np.where(in_ventricles, 0.15, volume) * head["intensity"]
    return (volume + rng.normal(0, noise, size=shape)).astype(np.float32)
