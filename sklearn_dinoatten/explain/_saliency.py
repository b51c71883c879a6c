"""Attention brought back to a volume's voxels: the volume saliency (slice weight x
in-plane attention, the Medical Slice Transformer's) and the slice-attention map."""

import numpy as np

from ..volumes import place_slices, read_scan
from ._attention import in_plane_attention, slice_attention


def saliency_from_parts(slice_weights, maps, slice_sets, volume_shape):
    """Slice weight x in-plane map, placed in a zero volume of ``volume_shape`` (summed
    over the slicing axes of a tri-planar bag).

    ``slice_weights`` holds one weight per kept slice, in the bag's order (extra padding
    columns are ignored); ``maps`` and ``slice_sets`` come from
    :func:`in_plane_attention`.
    """
    weights = np.asarray(slice_weights, dtype=np.float64)
    saliency, start = np.zeros(volume_shape), 0
    for plane, slice_set in zip(maps, slice_sets, strict=True):
        part = weights[start:start + len(slice_set.indices)]
        start += len(slice_set.indices)
        saliency += place_slices(part[:, None, None] * plane, slice_set.indices,
                                 volume_shape, slice_set.axis, region=slice_set.region)
    return saliency


def scan_saliency(embedder, volume, weights):
    """The saliency of one volume from its slice weights: each kept slice's weight
    times the backbone's in-plane attention on it, in the volume's (RAS) shape.

    ``embedder`` is the fitted :class:`~sklearn_dinoatten.DinoSliceEmbedder` of a timm
    vision transformer; ``weights`` the volume's row of :func:`slice_attention`.
    """
    maps, slice_sets = in_plane_attention(embedder, volume)
    return saliency_from_parts(weights, maps, slice_sets, read_scan(volume).shape)


def slice_attention_map(embedder, volume, weights):
    """The slice attention of one volume as a volume of its (RAS) shape: every voxel of a
    kept slice holds that slice's weight (summed over the axes of a tri-planar bag), the
    other slices 0.

    ``embedder`` is the fitted :class:`~sklearn_dinoatten.DinoSliceEmbedder`, of any
    backbone; ``weights`` the volume's row of :func:`slice_attention`.
    """
    axes, indices = embedder.kept_slices(volume)
    attention = np.zeros(read_scan(volume).shape)
    for axis, index, weight in zip(axes, indices, np.asarray(weights)[:len(indices)],
                                   strict=True):
        np.moveaxis(attention, axis, 0)[index] += weight
    return attention


def volume_saliency(model, X):
    """MST-style saliency of each volume for a fitted pipeline ``[embedder, classifier]``.

    Parameters
    ----------
    model : fitted Pipeline
        First step a :class:`~sklearn_dinoatten.DinoSliceEmbedder` over a timm vision
        transformer, last step a classifier or regressor with ``attention_weights``.
    X : list of paths or 3D arrays

    Returns
    -------
    saliency : list of ndarrays, one per volume, each of the volume's (RAS) shape
        Slice attention x in-plane attention (:func:`scan_saliency`); 0 on slices the
        embedder did not keep.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder
    >>> from sklearn_dinoatten.datasets import make_volumes
    >>> from sklearn_dinoatten.explain import volume_saliency
    >>> X, y = make_volumes(n_samples=6, shape=(28, 28, 8), random_state=0)
    >>> model = make_pipeline(
    ...     DinoSliceEmbedder(weights="random", image_size=28, verbose=0),
    ...     AttentionPoolClassifier(max_epochs=2, random_state=0)).fit(X, y)
    >>> saliency = volume_saliency(model, X[:2])
    >>> saliency[0].shape
    (28, 28, 8)
    """
    weights = slice_attention(model, X)
    return [scan_saliency(model[0], volume, volume_weights)
            for volume, volume_weights in zip(X, weights, strict=True)]
