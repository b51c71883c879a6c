"""Where a model looks: slice attention, in-plane attention, volume saliency and plots.

The volume saliency is the Medical Slice Transformer's: the weight the classifier
gives each slice times the backbone's in-plane attention on that slice (the last
layer's CLS -> patch attention, averaged over heads), brought back to the volume's
geometry. It works for every classifier with ``attention_weights`` (attention, gated,
mean and max pooling, the slice transformer, SC-MIL) over a timm vision transformer.
"""

import numpy as np
import torch
from scipy import ndimage
from sklearn.utils.validation import check_is_fitted

from .volumes import (
    AXIS_NAMES,
    check_axis,
    foreground_mask,
    grid_to_slices,
    load_scan,
    load_volume,
    place_slices,
    slice_weights,
    to_channels,
)

# Where the indices of each RAS axis start and end (volumes.load_volume's orientation).
__all__ = ["DIRECTIONS", "in_plane_attention", "plot_saliency", "saliency_from_parts",
           "slice_attention", "volume_saliency"]

DIRECTIONS = {0: ("left", "right"), 1: ("posterior", "anterior"), 2: ("inferior", "superior")}
PANEL_INCHES = 3.6  # the side of one slice panel of plot_saliency


def slice_attention(model, X):
    """Per-slice attention of a fitted pipeline ``[embedder, ..., classifier]``.

    Returns an array ``(n_volumes, n_slices)``; padding gets 0. Column ``j`` is the
    ``j``-th slice the embedder kept (``embedder.kept_slices``); with
    ``feature="patch"``, the sum of the attention on its patches.
    """
    check_is_fitted(model)
    weights = model[-1].attention_weights(model[:-1].transform(X))
    return slice_weights(weights, model[0].rows_per_slice_)


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
    reader, info = embedder.slice_reader(), embedder.backbone_info_
    slice_sets = reader.slice_sets(*load_scan(volume, spacing=embedder.spacing))
    maps = []
    for slice_set in slice_sets:
        images = to_channels(reader.backbone_input(slice_set), method=embedder.normalization,
                             mean=info.mean, std=info.std)
        cls_rows = _cls_attention(embedder, attention, images)
        grid = embedder.image_size // embedder.patch_size_
        plane = grid_to_slices(cls_rows.float().cpu().reshape(-1, grid, grid),
                               *slice_set.stack.shape[1:], image_size=embedder.image_size,
                               pixel_size=slice_set.pixel_size,
                               pixel_spacing=embedder.pixel_spacing)
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
            prefix = embedder.backbone_info_.num_prefix_tokens
            return torch.cat([_cls_to_patches(attention, x, prefix) for x in captured])
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
                                 volume_shape, slice_set.axis, region=slice_set.region)
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


def plot_saliency(volume, saliency, *, axis="axial", n_slices=4, slices=None, alpha=0.6,
                  cmap="inferno", axes=None, raw=True, foreground=True):
    """Overlay a saliency volume on the slices of a scan.

    Each shown slice gets a row: the slice itself (with ``raw``), then the slice with
    the saliency over it. Letters on the edges name the patient's sides in the scan
    reoriented to RAS (L/R, P/A, I/S); the title gives the slice index (from 0) and the
    direction the indices run in. A colorbar gives the scale: saliency relative to its
    maximum over the scan (over its foreground with ``foreground``).

    Parameters
    ----------
    volume : path or 3D array
        A file is reoriented to RAS; an array is taken as RAS (``(x, y, z)``).
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
        Where to draw: per slice, the raw slice's axes (with ``raw``) then the
        overlay's; a new figure when ``None``.
    raw : bool, default=True
        Show each slice without the overlay beside it.
    foreground : bool, default=True
        Show the saliency on the scan's foreground only, so that the background stays
        untinted: the voxels above Otsu's threshold
        (:func:`~sklearn_dinoatten.volumes.foreground_mask`), in each slice less
        isolated ones and with the holes they enclose (dark anatomy inside the body)
        filled.

    Returns
    -------
    figure : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dinoatten.explain import plot_saliency
    >>> volume = np.random.default_rng(0).normal(size=(16, 16, 10))
    >>> saliency = np.zeros(volume.shape)
    >>> saliency[:, :, 7] = 1.0
    >>> figure = plot_saliency(volume, saliency, n_slices=1, foreground=False)
    >>> figure.axes[0].get_title()
    'axial slice 7 of 10 (inferior → superior)'
    """
    import matplotlib.pyplot as plt

    data, voxel_size = load_scan(volume)
    saliency = np.asarray(saliency, dtype=np.float64)
    if saliency.shape != data.shape:
        raise ValueError(f"saliency has shape {saliency.shape}; the volume has {data.shape}.")
    axis = check_axis(axis)
    data, saliency = np.moveaxis(data, axis, 0), np.moveaxis(saliency, axis, 0)
    if foreground:
        saliency = np.where(_foreground(data), saliency, 0.0)
    if slices is None:
        slices = np.sort(np.argsort(saliency.sum(axis=(1, 2)))[::-1][:n_slices])
    columns = 2 if raw else 1
    if axes is None:
        _, axes = plt.subplots(len(slices), columns, layout="constrained", figsize=(
            PANEL_INCHES * columns + 1, PANEL_INCHES * len(slices)))
    axes = np.ravel(axes)
    if len(axes) != columns * len(slices):
        raise ValueError(f"axes must hold {columns} per slice ({len(slices)} slices); got "
                         f"{len(axes)}.")
    in_plane = [a for a in range(3) if a != axis]  # drawn as x (right) and y (up)
    aspect = voxel_size[in_plane[1]] / voxel_size[in_plane[0]]
    peak = saliency.max() or 1.0
    for index, row in zip(slices, axes.reshape(-1, columns), strict=True):
        for ax in row:
            ax.imshow(data[index].T, cmap="gray", origin="lower", aspect=aspect)
            _label_sides(ax, in_plane)
        relative = saliency[index].T / peak
        overlay = plt.get_cmap(cmap)(relative)
        overlay[..., 3] = alpha * relative  # low saliency stays transparent
        row[-1].imshow(overlay, origin="lower", aspect=aspect)
        low, high = DIRECTIONS[axis]
        row[0].set_title(f"{AXIS_NAMES[axis]} slice {index} of {len(data)} ({low} → {high})",
                         fontsize=9)
        if raw:
            row[-1].set_title("saliency", fontsize=9)
    colorbar = axes[0].figure.colorbar(
        plt.cm.ScalarMappable(plt.Normalize(0, 1), cmap), ax=list(axes), shrink=0.8)
    colorbar.set_label("relative saliency, 0 to max of this scan")
    return axes[0].figure


def _foreground(data):
    """Otsu's foreground of a volume, cleaned slice by slice (along axis 0): isolated
    voxels dropped, enclosed holes filled."""
    in_plane = ndimage.generate_binary_structure(2, 1)[None]
    mask = ndimage.binary_opening(foreground_mask(data), in_plane)
    return ndimage.binary_fill_holes(mask, in_plane)


def _label_sides(ax, in_plane):
    """Letters for the patient's sides on the edges of a slice drawn ``.T`` with
    ``origin="lower"``: ``in_plane[0]`` runs left to right, ``in_plane[1]`` upwards."""
    ax.set_axis_off()
    (left, right), (bottom, top) = (DIRECTIONS[a] for a in in_plane)
    style = dict(transform=ax.transAxes, color="white", fontsize=10, fontweight="bold",
                 bbox=dict(facecolor="black", alpha=0.6, lw=0, pad=1.5))
    ax.text(0.02, 0.5, left[0].upper(), ha="left", va="center", **style)
    ax.text(0.98, 0.5, right[0].upper(), ha="right", va="center", **style)
    ax.text(0.5, 0.02, bottom[0].upper(), ha="center", va="bottom", **style)
    ax.text(0.5, 0.98, top[0].upper(), ha="center", va="top", **style)
