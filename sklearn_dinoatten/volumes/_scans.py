"""Read volumes and choose their slices.

A volume is a NIfTI file (``.nii`` / ``.nii.gz``), a folder holding one DICOM series, or
a 3D numpy array. Files and series are reoriented to the closest RAS orientation (as
:func:`nibabel.as_closest_canonical` does), so their array axes are ``(x: left->right,
y: posterior->anterior, z: inferior->superior)``. Arrays are taken to be in that same
order, which makes ``axis="axial"`` mean the last axis for all.
"""

import hashlib
import os
import warnings
from collections.abc import Iterator
from numbers import Integral
from typing import NamedTuple

import numpy as np
import torch

from ..utils._files import file_identity
from ..utils._options import PLANES
from ._dicom import (
    check_series_folder,
    is_dicom_series,
    read_series,
    series_identity,
    series_shape_and_voxel_size,
)
from ._nifti import (
    as_torch_dtype,
    file_header,
    file_voxel_size,
    image_voxel_size,
    open_image,
    ras_orientation,
    ras_voxel_size,
    stored_voxels,
)

AXES = {name: axis for axis, name in enumerate(PLANES)}  # sagittal: 0, coronal: 1, axial: 2


def is_image_object(volume):
    """Whether ``volume`` is a nibabel image (niimg-like, as nilearn takes them): a
    voxel-to-world ``affine`` and voxel data."""
    return hasattr(volume, "affine") and hasattr(volume, "dataobj")


def describe(volume, *, index=None):
    """A short name for a volume, for error messages."""
    if isinstance(volume, (str, os.PathLike)):
        return repr(str(os.fspath(volume)))  # a path from a numpy array: not np.str_(...)
    if is_image_object(volume):
        where = "" if index is None else f" at index {index}"
        return f"{type(volume).__name__}{where} with shape {volume.shape}"
    where = "" if index is None else f" at index {index}"
    shape = getattr(volume, "shape", None)
    return f"array{where} with shape {shape}" if shape is not None else f"input{where}"


def check_volumes(X, *, images=False):
    """Check that ``X`` is a non-empty sequence of paths or 3D arrays, reading no more of
    a file than its header: a file that is not one volume (a 2D image, a 4D series) is
    refused here, before any volume is embedded.

    With ``images``, 2D arrays (images) are accepted too. Returns the volumes as a list.
    """
    if isinstance(X, (str, os.PathLike)):
        raise ValueError(
            f"X must be a list of volumes (paths or 3D arrays), got a single path {X!r}; "
            "wrap it in a list."
        )
    if isinstance(X, Iterator):  # a generator, map(...), iter(...)
        raise ValueError(
            f"X is a {type(X).__name__}, which can be read only once (fit would use it up "
            "before transform sees it); give a list, e.g. list(X)."
        )
    if isinstance(X, np.ndarray) and X.dtype.kind not in "OU":  # not an array of paths
        if X.ndim != 4:
            raise ValueError(
                "X must be a list of volumes (paths or 3D arrays) or a 4D array "
                f"(n_volumes, x, y, z); got an array with shape {X.shape}."
            )
        volumes = list(X)
    else:
        try:
            volumes = list(X)
        except TypeError:
            raise ValueError(
                f"X must be a list of volumes (paths or 3D arrays), got {type(X).__name__}."
            ) from None
    if not volumes:
        raise ValueError("X is empty: at least one volume is needed.")
    # paths from a numpy array are np.str_, which messages would print as np.str_('...')
    volumes = [str(v) if isinstance(v, np.str_) else v for v in volumes]
    if images and len({2 if not is_image_object(v) and np.ndim(v) == 2 else 3
                       for v in volumes}) > 1:
        raise ValueError("X mixes images (2D arrays) and volumes (paths or 3D arrays); "
                         "give one kind.")
    for i, volume in enumerate(volumes):
        _check_volume(volume, i, images)
    return volumes


def _check_volume(volume, index, images):
    """Refuse a volume that is not one: a missing file, or one whose header says it is
    not 3D; an image object or array of another dimensionality."""
    if isinstance(volume, (str, os.PathLike)):
        check_series_folder(volume, "Volume")
        header = (series_shape_and_voxel_size(volume, strict=True) if is_dicom_series(volume)
                  else file_header(volume))  # None: unreadable, which reading it will say
        if header is not None:
            _check_dimensions(header[0], describe(volume), images=False)
    elif is_image_object(volume):
        if len(volume.shape) not in (3, 4):
            raise ValueError(f"Volume {describe(volume, index=index)} is not 3D.")
    elif np.ndim(volume) != 3 and not (images and np.ndim(volume) == 2):
        raise ValueError(
            f"Volume {describe(volume, index=index)} is not 3D: expected a path or an array "
            f"(x, y, z){' or an image (h, w)' if images else ''}, got "
            f"{np.ndim(volume)} dimensions."
        )


class Scan(NamedTuple):
    """A volume as read: its voxels as stored, and what gives their RAS values.

    ``voxels`` is a CPU tensor in file order and in the dtype the file stores (widened
    where torch lacks it); ``orientation`` maps its axes to RAS (nibabel's ``(axis,
    flip)`` rows); ``slope`` and ``intercept`` scale it (the header's ``scl_slope``,
    ``scl_inter``); ``voxel_size`` is in mm along the RAS axes; ``affine`` maps its voxel
    indices, in file order, to RAS+ millimetres (an array's: its spacing on the
    diagonal). Reading a scan only decodes it: :meth:`to_tensor` does the arithmetic, on
    any device.
    """

    voxels: torch.Tensor
    orientation: np.ndarray
    slope: float
    intercept: float
    voxel_size: tuple
    affine: np.ndarray

    @property
    def shape(self):
        """The shape of the RAS volume."""
        shape = [0] * len(self.voxels.shape)
        for axis, (ras_axis, _) in enumerate(self.orientation.astype(int)):
            shape[ras_axis] = self.voxels.shape[axis]
        return tuple(shape)

    def to_tensor(self, device="cpu"):
        """The RAS volume as float32 on ``device``: the stored voxels copied there (not
        blocking the host), scaled, and flipped and transposed to RAS there."""
        volume = self.voxels.to(device, non_blocking=True).float()
        if (self.slope, self.intercept) != (1.0, 0.0):
            volume = volume * self.slope + self.intercept
        flips = [axis for axis, flip in enumerate(self.orientation[:, 1]) if flip < 0]
        if flips:
            volume = volume.flip(flips)
        return volume.permute(*np.argsort(self.orientation[:, 0]).tolist())

    def digest(self):
        """sha256 of the stored voxels, their dtype and shape, and their orientation,
        scaling and voxel size: the same for the same scan, however it is held."""
        voxels = np.asfortranarray(self.voxels.numpy())
        digest = hashlib.sha256(
            f"{voxels.dtype.str}|{voxels.shape}|{self.orientation.tolist()}|{self.slope!r}|"
            f"{self.intercept!r}|{tuple(map(float, self.voxel_size))}".encode())
        digest.update(memoryview(voxels.T))  # F-order bytes: the transposed C-order
        return digest.hexdigest()

    def to_image(self, ras_data):
        """A NIfTI image of ``ras_data`` (an array of the RAS shape, as :meth:`to_tensor`
        orders it) on this scan's own voxel grid: in file order, with its affine, so
        that a viewer overlays it on the scan."""
        import nibabel as nib

        ras_data = np.asarray(ras_data)
        if ras_data.shape[:3] != self.shape[:3]:
            raise ValueError(f"The map has shape {ras_data.shape}; the scan's (RAS) shape "
                             f"is {self.shape}.")
        order = self.orientation[:, 0].astype(int)
        data = np.transpose(ras_data, [*order, *range(3, ras_data.ndim)])
        flips = [axis for axis, flip in enumerate(self.orientation[:, 1]) if flip < 0]
        return nib.Nifti1Image(np.flip(data, flips) if flips else data, self.affine)


def load_volume(volume, *, index=None, images=False):
    """Return a volume as a float32 array ``(x, y, z)``, RAS-oriented for files and
    nibabel images; see :func:`load_scan`, which also gives the voxel size."""
    return load_scan(volume, index=index, images=images)[0]


def load_scan(volume, *, index=None, images=False, spacing=None):
    """Return a volume as a float32 array ``(x, y, z)`` and its voxel size in mm along
    those axes.

    Files and nibabel images are reoriented to RAS and their voxel size is read from
    the affine; an array is taken as RAS, with voxel size ``spacing`` (one number per
    axis; 1 mm when ``None``). With ``images``, a 2D array is returned as it is; a 4D
    volume whose 4th axis has length 1 is taken as 3D. Raises ``FileNotFoundError`` for
    a missing file and ``ValueError`` for an unreadable file, any other 4D volume (pick
    one of its volumes yourself), a volume that is not 3D, NaN or infinite voxels, or a
    constant volume.
    """
    scan = read_scan(volume, index=index, images=images, spacing=spacing)
    return scan.to_tensor().numpy(), scan.voxel_size


def read_scan(volume, *, index=None, images=False, spacing=None):
    """A volume's :class:`Scan`: its voxels decoded, checked, not converted.

    Takes and checks what :func:`load_scan` does, with the same errors.
    """
    name = describe(volume, index=index)
    if is_dicom_series(volume):
        voxels, slope, intercept, affine = read_series(volume)
        voxels = as_torch_dtype(voxels, name)
        _check_dimensions(voxels.shape, name, images=False)
    elif isinstance(volume, (str, os.PathLike)) or is_image_object(volume):
        image = open_image(volume)
        label = describe(volume) if is_image_object(volume) else f"file {os.fspath(volume)!r}"
        _check_dimensions(image.shape, name, images=False)
        voxels, slope, intercept = stored_voxels(image, label)
        affine = np.asarray(image.affine, dtype=np.float64)
    else:
        voxels = as_torch_dtype(volume, name)
        _check_dimensions(voxels.shape, name, images)
        slope, intercept = 1.0, 0.0
        affine = _array_affine(voxels.ndim, spacing, name)
    if voxels.ndim == 4:
        voxels = voxels[..., 0]
    _check_values(voxels, slope, intercept, name)
    orientation = ras_orientation(affine)[:voxels.ndim]  # a 2D image: its first two axes
    voxel_size = ras_voxel_size(affine)[:voxels.ndim]
    with warnings.catch_warnings():  # a read-only array: never written through the tensor
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        tensor = torch.from_numpy(voxels)
    return Scan(tensor, orientation, slope, intercept, tuple(float(v) for v in voxel_size),
                affine)


def _array_affine(ndim, spacing, name):
    """The affine of an array taken as RAS: its voxel size (``spacing``; 1 mm when
    ``None``) on the diagonal."""
    voxel_size = np.ones(min(ndim, 3)) if spacing is None else np.atleast_1d(
        np.asarray(spacing, dtype=np.float64))[:min(ndim, 3)]
    if len(voxel_size) != min(ndim, 3) or not (np.isfinite(voxel_size).all()
                                              and (voxel_size > 0).all()):
        raise ValueError(f"Volume {name}: spacing must be {min(ndim, 3)} positive numbers "
                         f"(mm per voxel); got {tuple(voxel_size)}.")
    return np.diag([*voxel_size, *[1.0] * (4 - len(voxel_size))])


def _check_dimensions(shape, name, images):
    """Refuse a shape that is not a volume's (or, with ``images``, an image's), before
    any voxel is read; a 4th axis of length 1 is dropped later."""
    if len(shape) == 4 and shape[3] != 1:
        raise ValueError(
            f"Volume {name} is 4D, {shape[3]} volumes of shape {tuple(shape[:3])} (a time "
            "series or channels); give one of them, e.g. nibabel.load(path).slicer[..., k] "
            "saved as its own file, or the array data[..., k]."
        )
    if len(shape) not in (3, 4) and not (images and len(shape) == 2):
        raise ValueError(f"Volume {name} is not 3D: it has shape {tuple(shape)}.")
    if 0 in shape:
        raise ValueError(f"Volume {name} is empty: it has shape {tuple(shape)}.")


def _check_values(voxels, slope, intercept, name):
    """Refuse NaN or infinite values, values beyond float32's range (in which volumes
    are processed), and a constant volume, from the stored voxels' extremes."""
    with np.errstate(invalid="ignore"):
        extremes = np.array([voxels.min(), voxels.max()], dtype=np.float64)
    values = np.sort(extremes * slope + intercept)
    if not np.isfinite(values).all():
        raise ValueError(f"Volume {name} contains {voxels.size - np.isfinite(voxels).sum()} "
                         "NaN or infinite voxels.")
    largest = np.abs(values).max()
    if largest > np.finfo(np.float32).max:
        raise ValueError(
            f"Volume {name} holds values up to {largest:.3g}, beyond float32's range "
            f"({np.finfo(np.float32).max:.3g}), in which volumes are processed; rescale it."
        )
    low, high = values.astype(np.float32)
    if low == high:
        raise ValueError(f"Volume {name} is constant (every voxel is {low}).")


def scan_identity(path):
    """What tells, without reading it, that the file or DICOM series at ``path`` still
    holds what it held: the real path, inode, size and modification and change times of
    the file, or of each file of the series' folder."""
    return series_identity(path) if is_dicom_series(path) else file_identity(path)


def voxel_size_of(volume):
    """The RAS voxel size of a file or nibabel image, from its header alone (no voxel
    is read; a file's is remembered while it is unchanged); ``None`` for an array or a
    header that cannot be read (the error comes when the voxels are)."""
    if is_dicom_series(volume):
        header = series_shape_and_voxel_size(volume)
        return None if header is None else header[1]
    if isinstance(volume, (str, os.PathLike)):
        return file_voxel_size(volume)
    return image_voxel_size(volume, describe(volume)) if is_image_object(volume) else None


def check_axis(axis):
    """Return the array axis (0, 1 or 2) for an axis name or integer."""
    if isinstance(axis, str):
        if axis not in AXES:
            raise ValueError(f"axis must be one of {sorted(AXES)} or 0, 1, 2; got {axis!r}.")
        return AXES[axis]
    if isinstance(axis, Integral) and -3 <= axis <= 2:
        return int(axis) % 3
    raise ValueError(f"axis must be one of {sorted(AXES)} or 0, 1, 2; got {axis!r}.")


def select_slices(n_total, n_slices=None, selection="uniform"):
    """Indices of the slices to keep out of ``n_total``.

    ``n_slices=None`` keeps all. ``"center"`` keeps the ``n_slices`` central slices,
    ``"uniform"`` ``n_slices`` evenly spaced ones. A volume with fewer slices than asked
    keeps all of them; the caller pads the rest.
    """
    if n_slices is None or n_slices >= n_total:
        return np.arange(n_total)
    if selection == "center":
        start = (n_total - n_slices) // 2
        return np.arange(start, start + n_slices)
    return np.round(np.linspace(0, n_total - 1, n_slices)).astype(int)


def place_slices(maps, slice_indices, volume_shape, axis, *, region=None):
    """A zero array of ``volume_shape`` with ``maps[j]`` as its slice ``slice_indices[j]``
    along ``axis``; with ``region`` (``(start, stop)`` of the rows and columns the maps
    cover, which may reach beyond the volume), in that part of each slice."""
    axis = check_axis(axis)
    slice_indices = np.asarray(slice_indices, dtype=int)
    if len(slice_indices) and not (0 <= slice_indices.min()
                                   and slice_indices.max() < volume_shape[axis]):
        raise ValueError(f"Slice indices must lie in [0, {volume_shape[axis]}) along axis "
                         f"{axis}; got {slice_indices.min()} to {slice_indices.max()}.")
    in_plane = [n for a, n in enumerate(volume_shape) if a != axis]
    region = region or tuple((0, n) for n in in_plane)
    out = np.zeros((volume_shape[axis], *in_plane), dtype=np.float64)
    inside, source = box_overlap(region, in_plane)
    out[(slice_indices, *inside)] = np.asarray(maps)[(slice(None), *source)]
    return np.moveaxis(out, 0, axis)


def box_overlap(box, shape):
    """Where a box (``(start, stop)`` per axis, possibly beyond an array of ``shape``)
    meets the array: the slices of the array, and the same voxels' slices in the box."""
    inside = tuple(slice(max(start, 0), min(stop, n))
                   for (start, stop), n in zip(box, shape, strict=True))
    in_box = tuple(slice(s.start - start, s.stop - start)
                   for s, (start, _) in zip(inside, box, strict=True))
    return inside, in_box
