"""Which slices of a volume the backbone sees, in millimetres.

A volume's voxels have a physical size. :func:`slice_sets` uses it to keep slices
every so many millimetres (the same anatomy gives the same number of slices at any
resolution), crops the volume to the box around its foreground (a volume and the same
volume padded with empty margins give the same slices), and drops slices with too
little foreground. With its defaults it keeps every slice, as
``select_slices`` does.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..utils._options import CROPS as CROPS  # re-exported
from ..utils._options import PLANES
from ..utils._validation import Constraint
from ..utils._warnings import warn_once
from ._scans import box_overlap, check_axis, select_slices

MARGIN_MM = 4.0  # kept around the foreground box, at least a voxel
AXIS_NAMES = dict(enumerate(PLANES))  # 0: sagittal, 1: coronal, 2: axial


def _distinct_axes(value):
    try:
        return isinstance(value, tuple) and 0 < len(value) == len(set(map(check_axis, value)))
    except ValueError:
        return False


AXIS_TUPLE = Constraint(_distinct_axes, "a tuple of distinct axes")


def axes_of(axis):
    """The array axes of an ``axis`` setting, in the order their slices fill a bag:
    ``"all"`` is axial, coronal, sagittal."""
    if axis == "all":
        return (2, 1, 0)
    return tuple(map(check_axis, axis)) if isinstance(axis, tuple) else (check_axis(axis),)


@dataclass(frozen=True, eq=False)
class SliceSelection:
    """Which slices of a volume are kept along one axis, and which part of their plane.

    Attributes
    ----------
    axis : int
        The slicing axis of the (RAS) volume.
    indices : ndarray of int
        The slices' positions along ``axis`` in the whole volume, in ``[0, n)``.
    region : tuple of 2 (start, stop) pairs
        The in-plane rows and columns of the whole volume kept; they may reach beyond
        the volume, where the slices hold the volume's minimum (a foreground box and
        its margin at the border).
    pixel_size : tuple of 2 floats
        The size in mm of a pixel along the rows and columns.
    """

    axis: int
    indices: np.ndarray
    region: tuple
    pixel_size: tuple

    def take(self, volume, fill):
        """The kept slices ``(n, h, w)`` of a RAS volume, a numpy array or a tensor (on
        its device), with ``fill`` where the region leaves the volume; a 2D image is
        its one slice."""
        if volume.ndim == 2:
            return volume[None]
        if isinstance(volume, torch.Tensor):
            planes = volume.movedim(self.axis, 0)[torch.as_tensor(self.indices,
                                                                  device=volume.device)]
        else:
            planes = np.moveaxis(volume, self.axis, 0)[self.indices]
        if self.region == tuple((0, n) for n in planes.shape[1:]):
            return planes
        shape = (len(planes), *(stop - start for start, stop in self.region))
        out = (torch.as_tensor(fill, dtype=planes.dtype, device=planes.device)
               .expand(shape).clone() if isinstance(planes, torch.Tensor)
               else np.full(shape, fill, dtype=planes.dtype))
        inside, in_region = box_overlap(self.region, planes.shape[1:])
        out[(slice(None), *in_region)] = planes[(slice(None), *inside)]
        return out


@dataclass(frozen=True, eq=False)
class SliceSet(SliceSelection):
    """The kept slices of one volume along one axis, with their voxels.

    Attributes
    ----------
    stack : ndarray of shape (n, h, w)
        The kept slices' voxels, cropped in-plane to ``region``; the other attributes
        are those of :class:`SliceSelection`.
    """

    stack: np.ndarray


def otsu_threshold(values, *, bins=256):
    """Otsu's threshold of ``values``: the cut of their histogram that maximises the
    variance between the two sides."""
    counts, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts)[:-1]
    above = values.size - below
    sums = np.cumsum(counts * centres)[:-1]
    mean_below = sums / np.maximum(below, 1)
    mean_above = (sums[-1] + counts[-1] * centres[-1] - sums) / np.maximum(above, 1)
    between = below * above * (mean_below - mean_above) ** 2
    return float(edges[1:-1][np.argmax(between)])


def foreground_mask(data):
    """Voxels above Otsu's threshold of the voxels brighter than the volume's minimum
    (so padding with the minimum does not move the threshold)."""
    low = data.min()
    return data > otsu_threshold(data[data > low])


def foreground_box(mask, voxel_size, *, margin_mm=MARGIN_MM):
    """``(start, stop)`` per axis of the box around ``mask`` widened by ``margin_mm``
    (at least a voxel); the box may reach beyond the volume."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(mask.any(axis=others))
        margin = max(1, int(round(margin_mm / voxel_size[axis])))
        box.append((int(present[0]) - margin, int(present[-1]) + 1 + margin))
    return tuple(box)


def crop(data, box, fill):
    """``data[box]``, with ``fill`` where the box leaves the volume."""
    out = np.full([stop - start for start, stop in box], fill, dtype=data.dtype)
    inside, in_box = box_overlap(box, data.shape)
    out[in_box] = data[inside]
    return out


def spaced_slices(n, voxel_size, slice_spacing):
    """Indices of slices every ``slice_spacing`` mm among ``n`` slices ``voxel_size``
    mm apart (the nearest slice to each position), centred on the stack."""
    step = slice_spacing / voxel_size  # in slices
    count = int(np.floor((n - 1) / step + 1e-9)) + 1
    start = ((n - 1) - step * (count - 1)) / 2
    nearest = np.floor(start + step * np.arange(count) + 0.5)  # halves up, not to even
    return np.unique(np.clip(nearest, 0, n - 1)).astype(int)


def needs_foreground(crop_to, min_foreground):
    """Whether choosing slices needs the volume's foreground (not only its shape)."""
    return crop_to == "foreground" or min_foreground > 0


def slice_sets(data, voxel_size, *, axes, n_slices=None, selection="uniform",
               slice_spacing=None, crop_to="none", min_foreground=0.0, name="volume"):
    """The kept slices of a 3D volume along each of ``axes``.

    Parameters
    ----------
    data : ndarray of shape (x, y, z)
    voxel_size : tuple of 3 floats
        mm per voxel along each axis.
    axes, n_slices, selection, slice_spacing, crop_to, min_foreground, name :
        As :func:`choose_slices`.

    Returns
    -------
    list of SliceSet, one per axis; one slice for a 2D image, as along the first axis
    """
    mask = foreground_mask(data) if needs_foreground(crop_to, min_foreground) else None
    chosen = choose_slices(data.shape, voxel_size, axes=axes, n_slices=n_slices,
                           selection=selection, slice_spacing=slice_spacing, crop_to=crop_to,
                           min_foreground=min_foreground, mask=mask, name=name)
    fill = data.min()
    return [SliceSet(axis=kept.axis, indices=kept.indices, region=kept.region,
                     pixel_size=kept.pixel_size,
                     stack=np.ascontiguousarray(kept.take(data, fill))) for kept in chosen]


def choose_slices(shape, voxel_size, *, axes, n_slices=None, selection="uniform",
                  slice_spacing=None, crop_to="none", min_foreground=0.0, mask=None,
                  name="volume"):
    """Which slices of a volume of ``shape`` to keep along each of ``axes``.

    Parameters
    ----------
    shape : tuple of 3 ints
    voxel_size : tuple of 3 floats
        mm per voxel along each axis.
    axes : tuple of int
    n_slices, selection :
        As ``select_slices``, applied last.
    slice_spacing : float or None
        Keep slices every ``slice_spacing`` mm; ``None`` keeps every slice.
    crop_to : {"none", "foreground"}
        ``"foreground"``: crop to the box around the foreground, ``MARGIN_MM`` wider.
    min_foreground : float
        Drop slices whose share of foreground voxels is below it; a volume left with
        none keeps its central slice, with a warning naming ``name``.
    mask : ndarray of bool, default=None
        The volume's :func:`foreground_mask`, needed by ``crop_to="foreground"`` and
        ``min_foreground`` only.

    Returns
    -------
    list of SliceSelection, one per axis; one slice for a 2D image, as along the first
    axis
    """
    if len(shape) == 2:
        return [SliceSelection(axes[0], np.array([0]), ((0, shape[0]), (0, shape[1])),
                               tuple(map(float, voxel_size)))]
    box = tuple((0, n) for n in shape)
    if crop_to == "foreground":
        box = foreground_box(mask, voxel_size)
        mask = crop(mask, box, False)
    chosen = []
    for axis in axes:
        # Where the box's margin passes the volume's edge, its slices there are padding,
        # not slices of the volume: never kept (in-plane, the padding stays).
        first = max(0, -box[axis][0])
        n_inside = min(box[axis][1], shape[axis]) - box[axis][0] - first
        keep = first + (np.arange(n_inside) if slice_spacing is None
                        else spaced_slices(n_inside, voxel_size[axis], slice_spacing))
        if min_foreground > 0:
            share = np.moveaxis(mask, axis, 0)[keep].mean(axis=(1, 2))
            enough = keep[share >= min_foreground]
            if not len(enough):
                warnings.warn(
                    f"{name} has no {AXIS_NAMES[axis]} slice with a foreground share of "
                    f"{min_foreground} or more; its central slice is kept.", UserWarning,
                    stacklevel=3)
                enough = keep[[len(keep) // 2]]
            keep = enough
        keep = keep[select_slices(len(keep), n_slices, selection)]
        chosen.append(SliceSelection(
            axis, box[axis][0] + keep, tuple(box[a] for a in range(3) if a != axis),
            tuple(float(voxel_size[a]) for a in range(3) if a != axis)))
    return chosen


def slice_weights(row_weights, rows_per_slice):
    """Per-slice weights from weights over an embedding's rows ``(..., n_rows)``: the
    rows of a slice (its patches, with ``feature="patch"``) summed, ``(..., n_rows //
    rows_per_slice)``; with one row a slice, the weights as they are."""
    weights = np.asarray(row_weights)
    return weights.reshape(*weights.shape[:-1], -1, rows_per_slice).sum(axis=-1)


def tag_orientations(parts, axes):
    """One bag from the embeddings of a volume's slices along each of ``axes`` (in that
    order), each row with three more columns, the one-hot code of its axis (sagittal,
    coronal, axial); a 2D image has one part, tagged with the first axis."""
    tagged = []
    for axis, part in zip(axes, parts, strict=False):
        tag = np.zeros((*part.shape[:-1], 3), dtype=np.float32)
        tag[..., axis] = 1.0
        tagged.append(np.concatenate([part, tag], axis=-1))
    return np.concatenate(tagged)


def warn_if_spacings_differ(voxel_sizes):
    """Warn once when ``voxel_sizes`` (``None`` for arrays, left out) differ by more than
    20 % along an axis while slices are taken by index and resized to fit: the same
    anatomy is then not the same backbone input."""
    sizes = np.array([size for size in voxel_sizes if size is not None])
    if len(sizes) > 1 and (sizes.max(axis=0) > 1.2 * sizes.min(axis=0)).any():
        seen = sorted({tuple(round(float(v), 3) for v in size) for size in sizes})
        warn_once(
            f"The volumes have voxel sizes {seen[:4]}{' ...' if len(seen) > 4 else ''} mm, "
            "more than 20 % apart, but slices are taken by index and resized to fit: set "
            "slice_spacing= and pixel_spacing= (mm) to give the backbone the same anatomy "
            "at the same size.", stacklevel=3)
