"""Volumes read as physical objects and turned into slices: NIfTI files and DICOM series
reoriented to RAS with their voxel size, the slices kept (in millimetres, cropped to the
foreground), intensity preprocessing, and whole volumes resampled to one shape.

- :func:`load_volume`, :func:`load_scan`, :func:`read_scan` (a :class:`Scan`),
  :func:`is_dicom_series`, :func:`is_dicom_folder`, :func:`series_selection`,
  :func:`scan_identity`, :func:`describe`, :func:`place_slices`,
  :func:`check_volumes`, :func:`check_axis`
- :func:`choose_slices` (a :class:`SliceSelection` per axis), :func:`slice_sets`,
  :func:`slice_weights`, :func:`foreground_mask`, :func:`needs_foreground`,
  :func:`foreground_box`, :func:`spaced_slices`, :func:`axes_of`,
  :func:`tag_orientations`, :func:`warn_if_spacings_differ`
- :func:`normalize_intensity`, :func:`resize_stack`, :func:`to_channels`,
  :func:`grid_to_slices`
- :class:`VolumeResampler`
"""

from ._dicom import is_dicom_folder, is_dicom_series, series_selection
from ._preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NORMALIZATIONS,
    grid_to_slices,
    normalize_intensity,
    resize_stack,
    to_channels,
)
from ._resampling import VolumeResampler
from ._scans import (
    AXES,
    Scan,
    check_axis,
    check_volumes,
    describe,
    load_scan,
    load_volume,
    place_slices,
    read_scan,
    scan_identity,
    voxel_size_of,
)
from ._slicing import (
    AXIS_NAMES,
    AXIS_TUPLE,
    CROPS,
    MARGIN_MM,
    SliceSelection,
    SliceSet,
    axes_of,
    choose_slices,
    foreground_box,
    foreground_mask,
    needs_foreground,
    otsu_threshold,
    slice_sets,
    slice_weights,
    spaced_slices,
    tag_orientations,
    warn_if_spacings_differ,
)

__all__ = [
    "AXES", "AXIS_NAMES", "AXIS_TUPLE", "CROPS", "IMAGENET_MEAN", "IMAGENET_STD",
    "MARGIN_MM", "NORMALIZATIONS", "Scan", "SliceSelection", "SliceSet",
    "VolumeResampler", "axes_of", "check_axis", "check_volumes", "choose_slices", "describe",
    "foreground_box", "foreground_mask", "grid_to_slices", "is_dicom_folder", "is_dicom_series",
    "load_scan",
    "load_volume", "needs_foreground", "normalize_intensity", "otsu_threshold", "place_slices",
    "read_scan", "resize_stack", "scan_identity", "series_selection", "slice_sets", "slice_weights",
    "spaced_slices", "tag_orientations", "to_channels", "voxel_size_of", "warn_if_spacings_differ",
]
