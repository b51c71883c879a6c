"""DICOM series: a folder of slice files, or one multi-frame file, read by pydicom as one
volume with its affine in RAS+ millimetres.

The slices are ordered by their position along the slice normal (the cross product of
ImageOrientationPatient's row and column directions), never by file name or
InstanceNumber; the in-plane step comes from PixelSpacing and the step between slices
from the positions (ImagePositionPatient), never from SliceThickness. DICOM's patient
space is LPS+; the affine is turned to RAS+, NIfTI's. A folder holding several series is
refused, naming them: the path ``FOLDER/<SeriesInstanceUID>`` chooses one (the path a
sorting tool that gives each series its own sub-folder would make).
"""

import os
import re
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from ..utils._files import check_file
from ._nifti import ras_voxel_size

# A UID: numbers separated by dots, at most 64 characters (DICOM PS3.5 9.1)
UID = re.compile(r"^[0-9]+(\.[0-9]+)+$")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# Relative tolerances of the geometry: a slice step this far from the median is a gap or
# an uneven spacing; an in-plane drift this large per step is a tilted (sheared) stack.
STEP_TOLERANCE = 0.05
DRIFT_TOLERANCE = 0.01
COMPRESSED_EXTRA = "pip install 'sklearn-dinoatten[dicom]'"


class Frame(NamedTuple):
    """One slice: where it comes from and where it lies."""

    file: str
    index: int  # the frame of a multi-frame file; 0 for a single-frame one
    position: np.ndarray  # ImagePositionPatient (LPS mm) of its first voxel
    orientation: np.ndarray  # ImageOrientationPatient: row then column direction cosines
    spacing: tuple  # PixelSpacing: between rows, between columns (mm)
    scaling: tuple  # (RescaleSlope, RescaleIntercept)


def series_selection(path):
    """``(folder or file, SeriesInstanceUID or None)`` when ``path`` is a DICOM series: a
    folder, ``FOLDER/<SeriesInstanceUID>`` naming one series of a folder, or one DICOM
    file (an enhanced multi-frame one); ``None`` otherwise."""
    path = str(os.fspath(path))  # numpy's str_ would be listed as bytes
    if os.path.isdir(path) or (os.path.isfile(path) and not path.lower().endswith(
            (".nii", ".nii.gz")) and _is_dicom_file(path)):
        return path, None
    folder, name = os.path.split(path.rstrip("/\\"))
    if (UID.match(name) and len(name) <= 64 and not os.path.exists(path)
            and os.path.isdir(folder or ".")):
        return folder or ".", name
    return None


def is_dicom_folder(path):
    """Whether ``path`` is a folder holding a DICOM file (hidden files and DICOMDIR
    aside): a folder :func:`~sklearn_dinoatten.datasets.find_scans` takes as a series,
    whose reading then refuses any other file in it."""
    names = _files_of(path) if os.path.isdir(path) else []
    return any(_is_dicom_file(os.path.join(path, name)) for name in names)


def _is_dicom_file(path):
    """Whether a file starts as DICOM files do: 128 bytes, then ``DICM``."""
    with open(path, "rb") as f:
        return f.read(132)[128:] == b"DICM"


def is_dicom_series(path):
    """Whether a path names a DICOM series (see :func:`series_selection`)."""
    return isinstance(path, (str, os.PathLike)) and series_selection(path) is not None


def series_identity(path):
    """What tells, without reading them, that a series' files are unchanged: the
    identities of its files (and the series chosen)."""
    folder, uid, names = _members(path)
    return os.path.realpath(folder), uid, tuple(
        (name, *_stat(os.path.join(folder, name))) for name in names)


def _stat(file):
    stat = os.stat(file)
    return stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def _members(path):
    """``(folder, SeriesInstanceUID or None, file names)`` of the series a path names."""
    where, uid = series_selection(path)
    if os.path.isfile(where):
        return os.path.dirname(where) or ".", None, [os.path.basename(where)]
    return where, uid, _files_of(where)


def read_series(path):
    """``(voxels, slope, intercept, affine)`` of a DICOM series: the stored pixels as an
    array ``(columns, rows, slices)``, the rescaling that gives their values (applied
    here, in float32, when it differs between slices), and the RAS+ affine of that
    array. ``ValueError`` naming the series for anything that is not one volume."""
    datasets, label = _series_datasets(path, pixels=True)
    frames = _frames(datasets, label)
    order, affine = _geometry(frames, label)
    by_file = {ds.filename: _pixels(ds, label) for ds in datasets}
    slices = [by_file[frames[k].file][frames[k].index] for k in order]
    scalings = {frames[k].scaling for k in order}
    if len(scalings) == 1:
        (slope, intercept), = scalings
        voxels = np.stack(slices, axis=-1)
    else:  # a slope per slice: the values themselves, in float32
        slope, intercept = 1.0, 0.0
        voxels = np.stack([s * np.float64(frames[k].scaling[0]) + frames[k].scaling[1]
                           for s, k in zip(slices, order, strict=True)],
                          axis=-1).astype(np.float32)
    return voxels.transpose(1, 0, 2), float(slope), float(intercept), affine


def series_header(path):
    """``(shape, affine)`` of a DICOM series from its headers alone (no pixel is
    decoded), with every check :func:`read_series` makes of the geometry."""
    datasets, label = _series_datasets(path, pixels=False)
    frames = _frames(datasets, label)
    _, affine = _geometry(frames, label)
    first = datasets[0]
    return (int(first.Columns), int(first.Rows), len(frames)), affine


def _series_datasets(path, pixels):
    """The datasets of the one series ``path`` names, and how messages name it."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    check_series_folder(path, "Volume")
    folder, uid, names = _members(path)
    label = f"DICOM series {os.fspath(path)!r}"
    series = {}
    for name in names:
        file = os.path.join(folder, name)
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=not pixels)
        except InvalidDicomError:
            raise ValueError(f"{label}: file {name!r} is not DICOM (no 'DICM' preamble); a "
                             "series folder holds the series' files only.") from None
        except Exception as exc:  # pydicom raises many types for damaged files
            raise ValueError(f"{label}: cannot read file {name!r} as DICOM: "
                             f"{str(exc) or type(exc).__name__}") from exc
        if "Rows" in ds:  # not an image (a structured report, a presentation state)
            series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(ds)
    if not series:
        raise ValueError(f"{label} holds DICOM files but no image.")
    if uid is not None:
        if uid not in series:
            raise ValueError(f"{label}: folder {folder!r} holds no series {uid}; it holds "
                             f"{_list_series(series)}.")
        return series[uid], label
    if len(series) > 1:
        example = os.path.join(folder, max(series, key=lambda s: len(series[s])))
        raise ValueError(
            f"{label} holds {len(series)} series: {_list_series(series)}. Choose one: "
            f"give the path FOLDER/<SeriesInstanceUID> (e.g. {example!r}), or move each "
            "series to its own sub-folder.")
    return next(iter(series.values())), label


def _list_series(series):
    """Each series as ``UID (description, n files)``, the largest first."""
    described = []
    for uid, datasets in sorted(series.items(), key=lambda item: -len(item[1])):
        description = datasets[0].get("SeriesDescription", "") or "no description"
        described.append(f"{uid or '(no SeriesInstanceUID)'} ({description}, "
                         f"{len(datasets)} file{'s' * (len(datasets) > 1)})")
    return "; ".join(described)


def _frames(datasets, label):
    """Every slice of the series, single-frame files and the frames of multi-frame
    (enhanced) files alike, with their geometry and rescaling."""
    frames = []
    for ds in datasets:
        if "LOCALIZER" in [str(v).upper() for v in ds.get("ImageType", [])]:
            raise ValueError(f"{label} is a localiser (ImageType {list(ds.ImageType)}), "
                             "not a volume; choose the series of the scan itself.")
        if int(ds.get("SamplesPerPixel", 1)) != 1:
            raise ValueError(f"{label} holds colour images ({ds.PhotometricInterpretation});"
                             " a scan's slices are grey values.")
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        shared = _first(ds, "SharedFunctionalGroupsSequence")
        per_frame = ds.get("PerFrameFunctionalGroupsSequence")
        if n_frames > 1 and not per_frame:
            raise ValueError(
                f"{label}: file {os.path.basename(ds.filename)!r} holds {n_frames} frames "
                "but no PerFrameFunctionalGroupsSequence, so where each frame lies is "
                "unknown; convert it to an enhanced or single-frame series.")
        for index in range(n_frames):
            groups = [g for g in (per_frame[index] if per_frame else None, shared) if g]
            frames.append(_frame(ds, index, groups, label))
    return frames


def _frame(ds, index, groups, label):
    """A frame's geometry from its functional groups (enhanced files), else from the
    file's own attributes."""
    def find(sequence, keyword):
        for group in groups:
            item = _first(group, sequence)
            if item is not None and keyword in item:
                return item[keyword].value
        return ds.get(keyword)

    position = find("PlanePositionSequence", "ImagePositionPatient")
    orientation = find("PlaneOrientationSequence", "ImageOrientationPatient")
    spacing = find("PixelMeasuresSequence", "PixelSpacing")
    if position is None or orientation is None or spacing is None:
        missing = [k for k, v in (("ImagePositionPatient", position),
                                  ("ImageOrientationPatient", orientation),
                                  ("PixelSpacing", spacing)) if v is None]
        raise ValueError(f"{label}: file {os.path.basename(ds.filename)!r} has no "
                         f"{', '.join(missing)}, so where its slices lie is unknown (a 2D "
                         "image, not a slice of a volume).")
    slope = find("PixelValueTransformationSequence", "RescaleSlope")
    intercept = find("PixelValueTransformationSequence", "RescaleIntercept")
    return Frame(ds.filename, index, np.array(position, dtype=np.float64),
                 np.array(orientation, dtype=np.float64),
                 tuple(float(v) for v in spacing),
                 (float(1.0 if slope is None else slope),
                  float(0.0 if intercept is None else intercept)))


def _first(ds, keyword):
    sequence = ds.get(keyword)
    return sequence[0] if sequence else None


def _geometry(frames, label):
    """The order of the frames along the slice normal, and the RAS+ affine of the
    volume they make; ``ValueError`` for slices that do not make one."""
    if len(frames) < 2:
        raise ValueError(f"{label} has a single slice: a 2D image, not a volume.")
    orientations = np.array([f.orientation for f in frames])
    if np.abs(orientations - orientations[0]).max() > 1e-4:
        n_planes = len({tuple(np.round(o, 3)) for o in orientations})
        raise ValueError(f"{label}: its slices lie in {n_planes} different orientations (a "
                         "localiser, or slices that are not parallel); it is not one volume.")
    if len({f.spacing for f in frames}) > 1:
        raise ValueError(f"{label}: its slices have different PixelSpacing "
                         f"({sorted({f.spacing for f in frames})}); it is not one volume.")
    row, column = orientations[0][:3], orientations[0][3:]
    normal = np.cross(row, column)
    positions = np.array([f.position for f in frames])
    depth = positions @ normal
    order = np.argsort(depth, kind="stable")
    depth, positions = depth[order], positions[order]
    steps = np.diff(depth)
    if steps.min() < 1e-3:
        k = int(np.argmin(steps))
        raise ValueError(
            f"{label}: {_where(frames, order, k)} and {_where(frames, order, k + 1)} lie at "
            f"the same position ({depth[k]:.2f} mm along the slice normal): several echoes, "
            "phases or time points in one series; give one of them as its own series.")
    step = np.median(steps)
    uneven = np.flatnonzero(np.abs(steps - step) > STEP_TOLERANCE * step)
    if len(uneven):
        k = int(uneven[0])
        what = (f"a gap of {steps[k]:.3g} mm where slices are {step:.3g} mm apart "
                f"(about {round(steps[k] / step) - 1} missing slice(s))"
                if steps[k] > step else
                f"slices {steps[k]:.3g} mm apart where the others are {step:.3g} mm")
        raise ValueError(f"{label}: {what}, between {_where(frames, order, k)} and "
                         f"{_where(frames, order, k + 1)}; a volume needs evenly spaced "
                         "slices (find the missing files, or resample the series).")
    span = positions[-1] - positions[0]
    drift = np.linalg.norm(span - (span @ normal) * normal) / (len(frames) - 1)
    if drift > DRIFT_TOLERANCE * step:
        raise ValueError(
            f"{label}: each slice is shifted {drift:.3g} mm in-plane from the one before "
            f"(a tilted gantry or a sheared stack: the slices are not stacked along their "
            "normal); resample it to an orthogonal grid first (dcm2niix corrects gantry "
            "tilt).")
    row_step, column_step = frames[0].spacing
    affine = np.eye(4)
    affine[:3, 0] = row * column_step  # array axis 0: along a row (the column index)
    affine[:3, 1] = column * row_step  # array axis 1: down a column (the row index)
    affine[:3, 2] = span / (len(frames) - 1)
    affine[:3, 3] = positions[0]
    return order, LPS_TO_RAS @ affine


def _where(frames, order, k):
    frame = frames[order[k]]
    name = repr(os.path.basename(frame.file))
    return f"file {name}" + (f" frame {frame.index + 1}" if frame.index else "")


def _pixels(ds, label):
    """A dataset's stored pixels as ``(frames, rows, columns)``; a compressed one
    decoded by pylibjpeg's plugins, where installed."""
    try:
        pixels = ds.pixel_array
    except Exception as exc:
        syntax = ds.file_meta.get("TransferSyntaxUID")
        if syntax is not None and syntax.is_compressed:
            raise ValueError(
                f"{label} is compressed ({syntax.name}), which needs pylibjpeg's plugins: "
                f"{COMPRESSED_EXTRA}.") from exc
        raise ValueError(f"{label}: cannot decode the pixels of "
                         f"{os.path.basename(ds.filename)!r}: "
                         f"{str(exc) or type(exc).__name__}") from exc
    return pixels.reshape(-1, int(ds.Rows), int(ds.Columns))


def check_series_folder(path, what):
    """``FileNotFoundError`` unless ``path`` is a file or a folder holding files (read as
    a DICOM series, which says what is wrong with them)."""
    if series_selection(path) is None:
        check_file(path, f"{what} file")
    elif not _members(path)[2]:
        raise FileNotFoundError(f"{what} {str(os.fspath(path))!r} is a folder holding no "
                                "files: neither a NIfTI file nor a DICOM series.")


def _files_of(folder):
    """The files of a series folder, by name: hidden files and DICOMDIR aside."""
    return sorted(n for n in os.listdir(folder) if not n.startswith(".")
                  and n.upper() != "DICOMDIR" and os.path.isfile(os.path.join(folder, n)))


def series_shape_and_voxel_size(path, *, strict=False):
    """``(shape, RAS voxel size)`` of a series from its headers, remembered while its
    files are unchanged; ``None`` for one that cannot be read, or, with ``strict``, the
    ``ValueError`` that says why (what the headers alone show: several series, gaps,
    tilted stacks... before any voxel is read)."""
    try:
        header, problem = _series_header(str(os.fspath(path)), series_identity(path))
    except OSError:
        return None
    if problem is not None and strict:
        raise ValueError(problem)
    return header


@lru_cache(maxsize=4096)
def _series_header(path, identity):
    """``(header or None, the problem or None)`` of a series' headers."""
    try:
        shape, affine = series_header(path)
    except (ValueError, FileNotFoundError) as error:
        return None, str(error)
    return (shape, tuple(ras_voxel_size(affine))), None
