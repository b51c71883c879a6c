"""Volumes read as physical objects and turned into slices: NIfTI files reoriented to RAS
with their voxel size, the slices kept (in millimetres, cropped to the foreground),
intensity preprocessing, and whole volumes resampled to one shape.

- :func:`load_volume`, :func:`load_scan`, :func:`read_scan` (a :class:`Scan`),
  :func:`describe`, :func:`place_slices`
- :func:`choose_slices` (a :class:`SliceSelection` per axis), :func:`slice_sets`,
  :func:`slice_weights`, :func:`foreground_mask`,
  :func:`foreground_box`, :func:`spaced_slices`, :func:`axes_of`
- :func:`normalize_intensity`, :func:`resize_stack`, :func:`to_channels`,
  :func:`grid_to_slices`
- :class:`VolumeResampler`
"""

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
    describe,
    load_scan,
    load_volume,
    place_slices,
    read_scan,
    voxel_size_of,
)
from ._slicing import (
    AXIS_NAMES,
    CROPS,
    SliceSelection,
    SliceSet,
    axes_of,
    choose_slices,
    foreground_box,
    foreground_mask,
    otsu_threshold,
    slice_sets,
    slice_weights,
    spaced_slices,
)

__all__ = [
    "AXES", "AXIS_NAMES", "CROPS", "IMAGENET_MEAN", "IMAGENET_STD", "NORMALIZATIONS",
    "Scan", "SliceSelection", "SliceSet", "VolumeResampler", "axes_of", "choose_slices",
    "describe", "foreground_box", "foreground_mask", "grid_to_slices", "load_scan",
    "load_volume", "normalize_intensity", "otsu_threshold", "place_slices", "read_scan",
    "resize_stack", "slice_sets", "slice_weights", "spaced_slices", "to_channels",
    "voxel_size_of",
]
