"""Where a model looks: slice attention, in-plane attention, volume saliency and plots.

The volume saliency is the Medical Slice Transformer's: the weight the classifier
gives each slice times the backbone's in-plane attention on that slice (the last
layer's CLS -> patch attention, averaged over heads), brought back to the volume's
geometry. It works for every classifier with ``attention_weights`` (attention, gated,
mean and max pooling, the slice transformer, SC-MIL) over a timm vision transformer.
"""

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from .preprocessing import grid_to_slices, to_channels
from .volumes import check_axis, load_scan, load_volume, place_slices


def slice_attention(model, X):
    """Per-slice attention of a fitted pipeline ``[embedder, ..., classifier]``.

    Returns an array ``(n_volumes, n_slices)``; padding gets 0. Column ``j`` is the
    ``j``-th slice the embedder kept (all slices unless it has ``n_slices``).
    """
    check_is_fitted(model)
    return model[-1].attention_weights(model[:-1].transform(X))


def in_plane_attention(embedder, volume):
    """The backbone's last-layer CLS -> patch attention on each kept slice of a volume.

    Parameters
    ----------
    embedder : fitted DinoSliceEmbedder
        Its backbone must be a timm vision transformer (``blocks[-1].attn``).
    volume : path, nibabel image or 3D array

    Returns
    -------
    maps : list of ndarrays of shape (n_kept, h, w)
        Per slicing axis, attention averaged over heads, brought back onto each kept
        slice (the part of it the embedder used: the padding to a square or the crop
        undone), scaled to a maximum of 1 per slice.
    slice_sets : list of SliceSet
        Per slicing axis, which slices the maps belong to (``axis``, ``indices``) and
        the in-plane ``region`` of the volume they cover.
    """
    check_is_fitted(embedder)
    attention = _last_attention_layer(embedder.backbone_)
    slice_sets = embedder._slices(*load_scan(volume, spacing=embedder.spacing))
    maps = []
    for slice_set in slice_sets:
        images = to_channels(embedder._backbone_input(slice_set), embedder.normalization)
        cls_rows = _cls_attention(embedder, attention, images)
        grid = embedder.image_size // embedder.patch_size_
        plane = grid_to_slices(cls_rows.float().cpu().reshape(-1, grid, grid),
                               *slice_set.stack.shape[1:], embedder.image_size,
                               slice_set.pixel_size, embedder.pixel_spacing)
        peak = plane.max(axis=(1, 2), keepdims=True)
        maps.append(np.divide(plane, peak, out=np.zeros_like(plane), where=peak > 0))
    return maps, slice_sets


def _cls_attention(embedder, attention, images):
    """The CLS -> patch rows of the last attention layer for backbone inputs ``images``."""
    captured = []
    hook = attention.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    try:
        with torch.inference_mode():
            for start in range(0, len(images), embedder.batch_size):
                embedder.backbone_.forward_features(
                    images[start:start + embedder.batch_size].to(embedder.device_))
            return torch.cat([_cls_to_patches(attention, x, embedder._num_prefix_tokens)
                              for x in captured])
    finally:
        hook.remove()


def _last_attention_layer(backbone):
    blocks = getattr(backbone, "blocks", None)
    attention = getattr(blocks[-1], "attn", None) if blocks is not None else None
    if attention is None or not hasattr(attention, "qkv"):
        raise ValueError(
            "In-plane attention needs a timm vision transformer backbone (with "
            f"blocks[-1].attn.qkv); got {type(backbone).__name__}."
        )
    return attention


def _cls_to_patches(attention, x, num_prefix_tokens):
    """Head-averaged attention of the CLS token to the patch tokens, from the layer's input."""
    batch, tokens, _ = x.shape
    heads = attention.num_heads
    qkv = attention.qkv(x).reshape(batch, tokens, 3, heads, -1).permute(2, 0, 3, 1, 4)
    q, k = attention.q_norm(qkv[0]), attention.k_norm(qkv[1])
    weights = torch.softmax(q[:, :, :1] @ k.transpose(-2, -1) * attention.scale, dim=-1)
    return weights[:, :, 0, num_prefix_tokens:].mean(dim=1)


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
                                 volume_shape, slice_set.axis, slice_set.region)
    return saliency


def volume_saliency(model, X):
    """MST-style saliency of each volume for a fitted pipeline ``[embedder, classifier]``.

    Parameters
    ----------
    model : fitted Pipeline
        First step a :class:`~sklearn_dinoatten.DinoSliceEmbedder` over a timm vision
        transformer, last step a classifier with ``attention_weights``.
    X : list of paths or 3D arrays

    Returns
    -------
    saliency : list of ndarrays, one per volume, each of the volume's (RAS) shape
        Slice attention x in-plane attention; 0 on slices the embedder did not keep.

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
    embedder = model[0]
    saliency = []
    for volume, volume_weights in zip(X, weights, strict=True):
        shape = load_volume(volume).shape
        maps, slice_sets = in_plane_attention(embedder, volume)
        saliency.append(saliency_from_parts(volume_weights, maps, slice_sets, shape))
    return saliency


def plot_saliency(volume, saliency, axis="axial", n_slices=4, slices=None, alpha=0.6,
                  cmap="inferno", axes=None):
    """Overlay a saliency volume on the slices of a scan.

    Parameters
    ----------
    volume : path or 3D array
    saliency : 3D array of the volume's shape
    axis : {"axial", "coronal", "sagittal"} or int, default="axial"
    n_slices : int, default=4
        How many slices to show: those of highest total saliency, in slice order.
    slices : sequence of int, default=None
        The slices to show instead.
    alpha : float, default=0.6
        Opacity of the overlay where the saliency is highest; it fades with the
        saliency, so low values leave the scan visible.
    cmap : str, default="inferno"
    axes : sequence of matplotlib Axes, default=None
        Where to draw, one per slice; a new figure when ``None``.

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    data = np.moveaxis(load_volume(volume), check_axis(axis), 0)
    saliency = np.moveaxis(np.asarray(saliency, dtype=np.float64), check_axis(axis), 0)
    if saliency.shape != data.shape:
        raise ValueError(f"saliency has shape {saliency.shape} along axis {axis!r}; the "
                         f"volume has {data.shape}.")
    if slices is None:
        top = np.argsort(saliency.sum(axis=(1, 2)))[::-1][:n_slices]
        slices = np.sort(top)
    if axes is None:
        _, axes = plt.subplots(1, len(slices), figsize=(2.4 * len(slices), 2.6), squeeze=False)
        axes = axes[0]
    peak = saliency.max() or 1.0
    for ax, index in zip(axes, slices, strict=True):
        ax.imshow(data[index].T, cmap="gray", origin="lower")
        relative = saliency[index].T / peak
        overlay = plt.get_cmap(cmap)(relative)
        overlay[..., 3] = alpha * relative  # low saliency stays transparent
        ax.imshow(overlay, origin="lower")
        ax.set_title(f"slice {index}", fontsize=9)
        ax.axis("off")
    return axes[0].figure
