"""Saliency drawn over the slices of its scan, with the patient's sides on the edges."""

import numpy as np
from scipy import ndimage

from ..volumes import AXIS_NAMES, check_axis, foreground_mask, load_scan

# Where the indices of each RAS axis start and end (volumes.load_volume's orientation).
DIRECTIONS = {0: ("left", "right"), 1: ("posterior", "anterior"), 2: ("inferior", "superior")}
PANEL_INCHES = 3.6  # the side of one slice panel of plot_saliency


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
