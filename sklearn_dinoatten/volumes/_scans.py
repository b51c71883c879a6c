"""Read volumes and choose their slices.

A volume is a NIfTI file (``.nii`` / ``.nii.gz``) or a 3D numpy array. Files are
reoriented to the closest RAS orientation (as :func:`nibabel.as_closest_canonical`
does), so their array axes are ``(x: left->right, y: posterior->anterior,
z: inferior->superior)``. Arrays are taken to be in that same order, which makes
``axis="axial"`` mean the last axis for both.
"""

import os
from collections.abc import Iterator
from functools import lru_cache
from numbers import Integral

import numpy as np

from ..utils._files import check_file, file_identity
from ..utils._options import PLANES
from ..utils._options import SLICE_SELECTIONS as SLICE_SELECTIONS  # re-exported

AXES = {name: axis for axis, name in enumerate(PLANES)}  # sagittal: 0, coronal: 1, axial: 2


def is_image_object(volume):
    """Whether ``volume`` is a nibabel image (niimg-like, as nilearn takes them): a
    voxel-to-world ``affine`` and voxel data."""
    return hasattr(volume, "affine") and hasattr(volume, "dataobj")


def describe(volume, index=None):
    """A short name for a volume, for error messages."""
    if isinstance(volume, (str, os.PathLike)):
        return repr(os.fspath(volume))
    if is_image_object(volume):
        where = "" if index is None else f" at index {index}"
        return f"{type(volume).__name__}{where} with shape {volume.shape}"
    where = "" if index is None else f" at index {index}"
    shape = getattr(volume, "shape", None)
    return f"array{where} with shape {shape}" if shape is not None else f"input{where}"


def check_volumes(X, images=False):
    """Check that ``X`` is a non-empty sequence of paths or 3D arrays, without reading files.

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
    if images and len({2 if not is_image_object(v) and np.ndim(v) == 2 else 3
                       for v in volumes}) > 1:
        raise ValueError("X mixes images (2D arrays) and volumes (paths or 3D arrays); "
                         "give one kind.")
    for i, volume in enumerate(volumes):
        if isinstance(volume, (str, os.PathLike)):
            check_file(volume, "Volume file")
        elif is_image_object(volume):
            if len(volume.shape) not in (3, 4):
                raise ValueError(f"Volume {describe(volume, i)} is not 3D.")
        elif np.ndim(volume) != 3 and not (images and np.ndim(volume) == 2):
            raise ValueError(
                f"Volume {describe(volume, i)} is not 3D: expected a path or an array "
                f"(x, y, z){' or an image (h, w)' if images else ''}, got "
                f"{np.ndim(volume)} dimensions."
            )
    return volumes


def load_volume(volume, index=None, images=False):
    """Return a volume as a float32 array ``(x, y, z)``, RAS-oriented for files and
    nibabel images; see :func:`load_scan`, which also gives the voxel size."""
    return load_scan(volume, index, images)[0]


def load_scan(volume, index=None, images=False, spacing=None):
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
    name = describe(volume, index)
    if isinstance(volume, (str, os.PathLike)) or is_image_object(volume):
        data, voxel_size = _read_nifti(volume)
    else:
        data = np.asarray(volume)
        if data.dtype == object or not np.issubdtype(data.dtype, np.number):
            raise ValueError(f"Volume {name} has dtype {data.dtype}; expected numbers.")
        voxel_size = np.ones(min(data.ndim, 3)) if spacing is None else np.asarray(
            spacing, dtype=np.float64)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim == 4:
        raise ValueError(
            f"Volume {name} is 4D, {data.shape[3]} volumes of shape {data.shape[:3]} (a time "
            "series or channels); give one of them, e.g. nibabel.load(path).slicer[..., k] "
            "saved as its own file, or the array data[..., k]."
        )
    if data.ndim != 3 and not (images and data.ndim == 2):
        raise ValueError(f"Volume {name} is not 3D: it has shape {data.shape}.")
    original = data
    with np.errstate(over="ignore"):  # values beyond float32's range: said below
        data = data.astype(np.float32, copy=False)
    low, high = data.min(), data.max()  # NaN or infinite when any voxel is
    if not (np.isfinite(low) and np.isfinite(high)):
        is_file = isinstance(volume, (str, os.PathLike)) or is_image_object(volume)
        # Finite values too large for float32 became infinite above: say that instead.
        _check_float32_range(_read_nifti(volume, np.float64)[0] if is_file else original,
                             name)
        raise ValueError(
            f"Volume {name} contains {data.size - np.isfinite(data).sum()} NaN or "
            "infinite voxels."
        )
    if low == high:
        raise ValueError(f"Volume {name} is constant (every voxel is {data.flat[0]}).")
    voxel_size = np.asarray(voxel_size[:data.ndim])  # a 2D image: the first two
    if len(voxel_size) != data.ndim or not (np.isfinite(voxel_size).all()
                                            and (voxel_size > 0).all()):
        raise ValueError(f"Volume {name}: spacing must be {data.ndim} positive numbers "
                         f"(mm per voxel); got {tuple(voxel_size)}.")
    return data, tuple(float(v) for v in voxel_size)


def _check_float32_range(data, name):
    """Say so when finite values overflow float32 (to infinity) rather than calling them
    NaN or infinite voxels."""
    finite = data[np.isfinite(data)]
    largest = np.abs(finite).max() if finite.size else 0.0
    if largest > np.finfo(np.float32).max:
        raise ValueError(
            f"Volume {name} holds values up to {largest:.3g}, beyond float32's range "
            f"({np.finfo(np.float32).max:.3g}), in which volumes are processed; rescale it."
        )


def _read_nifti(volume, dtype=np.float32):
    """The voxels of a NIfTI file or nibabel image, reoriented to RAS, and their size in
    mm along the RAS axes."""
    import nibabel as nib
    from nibabel.orientations import apply_orientation, io_orientation

    if is_image_object(volume):
        image, label = volume, describe(volume)
    else:
        path = os.fspath(volume)
        label = f"file {path!r}"
        check_file(path, "Volume file")
        try:
            image = nib.load(path)  # the header only; the voxels are read below
        except Exception as exc:  # nibabel raises many types for damaged files
            raise ValueError(f"Cannot read volume file {path!r} as NIfTI: "
                             f"{str(exc) or type(exc).__name__}") from exc
    _check_header(image, label)
    try:
        # Scaled straight to float32 and reoriented to RAS by views: one copy in memory.
        with np.errstate(over="ignore"):  # checked by load_scan
            data = np.asarray(image.get_fdata(dtype=dtype, caching="unchanged"))
    except Exception as exc:
        raise ValueError(f"Cannot read volume {label} as NIfTI (its voxels): "
                         f"{str(exc) or type(exc).__name__}") from exc
    return apply_orientation(data, io_orientation(image.affine)), _ras_voxel_size(image)


def _ras_voxel_size(image):
    """The voxel size in mm of a nibabel image along the RAS axes it is reoriented to."""
    from nibabel.orientations import io_orientation

    affine = np.asarray(image.affine, dtype=np.float64)
    voxel_size = np.empty(3)
    # Column k of the affine's 3x3 part is the step in mm of voxel axis k.
    voxel_size[io_orientation(affine)[:, 0].astype(int)] = np.linalg.norm(affine[:3, :3],
                                                                          axis=0)
    return voxel_size


def voxel_size_of(volume):
    """The RAS voxel size of a file or nibabel image, from its header alone (no voxel
    is read; a file's is remembered while it is unchanged); ``None`` for an array or a
    header that cannot be read (the error comes when the voxels are)."""
    if isinstance(volume, (str, os.PathLike)):
        try:
            return _file_voxel_size(file_identity(volume))
        except OSError:
            return None
    return _header_voxel_size(volume) if is_image_object(volume) else None


@lru_cache(maxsize=65536)
def _file_voxel_size(identity):
    import nibabel as nib

    try:
        return _header_voxel_size(nib.load(identity[0]))
    except Exception:  # damaged: load_scan says what is wrong, naming the file
        return None


def _header_voxel_size(image):
    if len(image.shape) < 3:
        return None
    try:
        _check_header(image, describe(image))
    except ValueError:
        return None
    return tuple(_ras_voxel_size(image))


def _check_header(image, label):
    """Refuse a header whose voxels would not fit in memory, or whose voxel-to-world
    matrix (affine) gives no orientation, before reading any voxel."""
    shape = image.shape
    needed = 4 * float(np.prod(shape, dtype=np.float64))  # bytes as float32
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on this system
        memory = None
    if memory is not None and needed > memory:
        raise ValueError(
            f"Volume {label}: its header claims {' x '.join(map(str, shape))} voxels, "
            f"{needed / 1024**3:.3g} GiB as float32, more than this machine's "
            f"{memory / 1024**3:.3g} GiB of memory; the file is damaged or not one volume."
        )
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or np.linalg.matrix_rank(affine[:3, :3]) < 3:
        problem = ("NaN or infinite entries" if not np.isfinite(affine).all()
                   else "a zero or degenerate voxel-to-world matrix")
        raise ValueError(
            f"Volume {label}: its header's affine (sform/qform) has {problem}, so its "
            "orientation and voxel size are unknown; fix the header (e.g. with nibabel or "
            "fslorient)."
        )


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
