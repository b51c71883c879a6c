"""Data sets: a synthetic volume generator with a planted, known signal."""

import numpy as np
from sklearn.utils import check_random_state

from .volumes import check_axis


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
