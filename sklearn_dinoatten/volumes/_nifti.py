"""NIfTI headers and voxels as stored, read by nibabel, ``.gz`` files inflated by ISA-L.

Inflating dominates reading a ``.nii.gz`` (``benchmarks/embed_throughput.py
--readers-only``: ISA-L's igzip reads a brain-sized file about 2x as fast as the
standard library, zlib-ng about 1.8x). nibabel reads the header; the voxels of a ``.gz``
file are then read here through ISA-L's igzip, when the ``isal`` package is installed,
from the offset, shape, dtype and order nibabel found (else by nibabel itself). Both
give the same bytes, and nibabel's own openers are left as they are: reading a scan here
changes nothing in how the user's own ``nibabel.load`` reads files.
"""

import os
from functools import lru_cache

import numpy as np

from ..utils._files import check_file, file_identity

# dtypes torch holds as they are; others are widened first (without loss) to one of them
TORCH_DTYPES = frozenset(np.dtype(t) for t in (np.uint8, np.int8, np.int16, np.int32,
                                               np.int64, np.float32, np.float64))
WIDER = {np.dtype(np.uint16): np.int32, np.dtype(np.uint32): np.int64}


def fast_gzip():
    """ISA-L's ``igzip`` module, where the ``isal`` package is installed; else None."""
    try:
        from isal import igzip
    except ImportError:
        return None
    return igzip


def _unscaled(proxy):
    """An array proxy's voxels as stored: inflated by ISA-L for a ``.gz`` file where it
    is installed, else read by nibabel. A file ISA-L refuses (a damaged gzip stream:
    bytes after its end, a bad trailer) is read by nibabel, so that every file reads, or
    fails, as nibabel reads it."""
    path, igzip = proxy.file_like, fast_gzip()
    if igzip is not None and isinstance(path, str) and path.lower().endswith(".gz"):
        from nibabel.volumeutils import array_from_file

        try:
            with igzip.open(path, "rb") as f:
                return array_from_file(proxy.shape, proxy.dtype, f, offset=proxy.offset,
                                       order=proxy.order, mmap=False)
        except (OSError, EOFError, ValueError):
            pass  # nibabel's own reading says what is wrong, if anything is
    return proxy.get_unscaled()


def open_image(volume):
    """The nibabel image of a file (its header read, not its voxels), or the image
    itself; ``ValueError`` naming the file when nibabel cannot read it."""
    import nibabel as nib

    if not isinstance(volume, (str, os.PathLike)):
        return volume
    path = os.fspath(volume)
    check_file(path, "Volume file")
    try:
        return nib.load(path)
    except Exception as exc:  # nibabel raises many types for damaged files
        raise ValueError(f"Cannot read volume file {path!r} as NIfTI: "
                         f"{str(exc) or type(exc).__name__}") from exc


def stored_voxels(image, label):
    """``(voxels, slope, intercept)``: an image's voxels in file order and in the dtype
    they are stored in (widened where torch lacks it, native byte order), and the
    scaling that gives their values (``voxels * slope + intercept``)."""
    from nibabel.arrayproxy import is_proxy

    check_header(image, label)
    try:
        if is_proxy(image.dataobj):
            proxy = image.dataobj
            voxels, slope, intercept = _unscaled(proxy), proxy.slope, proxy.inter
        else:  # an image made from an array holds its values
            voxels, slope, intercept = np.asarray(image.dataobj), 1.0, 0.0
    except Exception as exc:
        raise ValueError(f"Cannot read volume {label} as NIfTI (its voxels): "
                         f"{str(exc) or type(exc).__name__}") from exc
    return as_torch_dtype(voxels, label), float(slope), float(intercept)


def as_torch_dtype(voxels, label):
    """``voxels`` as torch can hold them without a copy: in native byte order, widened
    to a dtype torch holds when theirs is not one, without negative strides (a copy
    where they need one); ``ValueError`` naming ``label`` for non-numbers."""
    voxels = np.asanyarray(voxels)
    if voxels.dtype.fields is not None or voxels.dtype.kind not in "iuf":
        raise ValueError(f"Volume {label} has dtype {voxels.dtype}; expected numbers.")
    native = voxels.dtype.newbyteorder("=")
    wanted = (native if native in TORCH_DTYPES
              else WIDER.get(native, np.float32 if native.itemsize <= 4 else np.float64))
    voxels = voxels.astype(wanted, copy=False)
    return voxels.copy(order="K") if min(voxels.strides, default=0) < 0 else voxels


def ras_orientation(affine):
    """The nibabel orientation (file axis -> RAS axis and flip) of an affine."""
    from nibabel.orientations import io_orientation

    return io_orientation(np.asarray(affine, dtype=np.float64))


def ras_voxel_size(affine):
    """The voxel size in mm along the RAS axes an affine's voxels are reoriented to."""
    affine = np.asarray(affine, dtype=np.float64)
    voxel_size = np.empty(3)
    # Column k of the affine's 3x3 part is the step in mm of voxel axis k.
    voxel_size[ras_orientation(affine)[:, 0].astype(int)] = np.linalg.norm(affine[:3, :3],
                                                                           axis=0)
    return voxel_size


def file_voxel_size(path):
    """The RAS voxel size of a file from its header alone, remembered while the file is
    unchanged; ``None`` for a file that cannot be read (reading it says why)."""
    header = file_header(path)
    return None if header is None else header[1]


def file_header(path):
    """``(shape, voxel size)`` of a file from its header alone (no voxel is read),
    remembered while the file is unchanged; ``None`` for a file that cannot be read
    (reading it says why)."""
    try:
        return _file_header(file_identity(path))
    except OSError:
        return None


@lru_cache(maxsize=65536)
def _file_header(identity):
    try:
        image = open_image(identity[0])
    except (ValueError, OSError):
        return None
    return tuple(image.shape), image_voxel_size(image, repr(identity[0]))


def image_voxel_size(image, label):
    """The RAS voxel size of a nibabel image from its header; ``None`` for a header that
    gives none."""
    if len(image.shape) < 3:
        return None
    try:
        check_header(image, label)
    except ValueError:
        return None
    return tuple(ras_voxel_size(image.affine))


def check_header(image, label):
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
