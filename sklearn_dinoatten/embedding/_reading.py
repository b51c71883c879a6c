"""Volumes read into what the embedding device needs: each volume's voxels as stored,
and the kept slices' cache keys.

Reader processes (``n_readers``) or a thread only decode: a :class:`StackReader` reads a
volume's stored voxels (``.nii.gz`` inflated by ISA-L where installed), hashes them
once, chooses its slices and looks their embeddings up in the cache. Scaling,
reorienting, slicing, normalising and resizing run as batched tensor operations on the
embedding device (:meth:`SliceReader.backbone_inputs`), so on a GPU the readers keep up
with the backbone (``benchmarks/embed_throughput.py --readers-only``). What a reader
process needs travels to it as a :class:`StackReader`: the embedder's preprocessing and
cache settings, without its backbone.
"""

import math
import warnings
from collections import namedtuple
from dataclasses import dataclass, replace

from torch.utils.data import DataLoader, Dataset

from ..utils._prefetch import prefetch
from ..utils._warnings import warn_once
from ..volumes import (
    AXIS_NAMES,
    MARGIN_MM,
    choose_slices,
    describe,
    foreground_mask,
    needs_foreground,
    read_scan,
    resize_stack,
    slice_sets,
)
from ._cache import EmbeddingCache, cache_key

Stack = namedtuple("Stack", "key selection embedding")
FIELD_OF_VIEW_CHECKED = 3  # the volumes whose foreground a fit compares with the view
Stack.__doc__ = """A slice set to embed: its cache key, its ``SliceSelection``, and its
embedding when the cache had it (else ``None``)."""

ReadVolume = namedtuple("ReadVolume", "name scan stacks")
ReadVolume.__doc__ = """A volume as a reader delivers it: its name (for messages), its
``Scan`` (``None`` when the cache had every slice set's embedding) and its ``Stack`` s."""


@dataclass(frozen=True, kw_only=True)
class SliceReader:
    """A volume's slice sets and their backbone input, as the parameters of the same names
    of :class:`~sklearn_dinoatten.DinoSliceEmbedder` make them."""

    axes: tuple
    n_slices: int | None
    slice_selection: str
    spacing: tuple | None
    slice_spacing: float | None
    crop: str
    min_foreground: float
    image_size: int
    normalization: str
    pixel_spacing: float | None

    def choose(self, scan, name="volume"):
        """The kept slices of a :class:`~sklearn_dinoatten.volumes.Scan` (a
        ``SliceSelection`` per axis); its voxels are converted, on the CPU, only when
        the foreground decides (``crop``, ``min_foreground``)."""
        mask = (foreground_mask(scan.to_tensor().numpy())
                if needs_foreground(self.crop, self.min_foreground) else None)
        return choose_slices(scan.shape, scan.voxel_size, mask=mask, name=name,
                             **self._choice())

    def slice_sets(self, data, voxel_size, name="volume"):
        """The kept slices of a loaded volume or image (a ``SliceSet`` per axis)."""
        return slice_sets(data, voxel_size, name=name, **self._choice())

    def _choice(self):
        return dict(axes=self.axes, n_slices=self.n_slices, selection=self.slice_selection,
                    slice_spacing=self.slice_spacing, crop_to=self.crop,
                    min_foreground=self.min_foreground)

    def backbone_inputs(self, scan, selections, device="cpu"):
        """Yield the gray backbone input ``(n, 1, s, s)`` of each selection of ``scan``,
        computed on ``device``: the stored voxels go there once, and are scaled,
        reoriented, sliced, normalised and resized there."""
        volume = scan.to_tensor(device)
        fill = volume.min()  # beyond the volume's edge, its minimum
        for selection in selections:
            yield self._resize(selection.take(volume, fill), selection.pixel_size)

    def backbone_input(self, slice_set):
        """A ``SliceSet``'s gray backbone input ``(n, 1, s, s)``, on the CPU."""
        return self._resize(slice_set.stack, slice_set.pixel_size)

    def _resize(self, stack, pixel_size):
        return resize_stack(stack, self.image_size, method=self.normalization,
                            pixel_size=pixel_size, pixel_spacing=self.pixel_spacing)


def warn_if_view_cuts(reader, volumes, patch_size):
    """Warn once when, with ``pixel_spacing``, the backbone's field of view
    (``image_size x pixel_spacing`` mm a side) is narrower than the foreground in the
    plane of the slices of one of the first :data:`FIELD_OF_VIEW_CHECKED` volumes: how
    much of it is cut off, and the image size (a multiple of ``patch_size``) that holds
    it."""
    if reader.pixel_spacing is None:
        return
    view = reader.image_size * reader.pixel_spacing
    boxes = replace(reader, crop="foreground", min_foreground=0.0)
    widest, where = 0.0, None
    for i, volume in enumerate(volumes[:FIELD_OF_VIEW_CHECKED]):
        name = describe(volume, index=i)
        scan = read_scan(volume, index=i, images=True, spacing=reader.spacing)
        for selection in boxes.choose(scan, name=f"Volume {name}"):
            for (start, stop), size in zip(selection.region, selection.pixel_size,
                                           strict=True):
                extent = (stop - start) * size - 2 * max(MARGIN_MM, size)  # the box's margin
                if extent > widest:
                    widest, where = extent, (name, AXIS_NAMES[selection.axis])
    if widest > view:
        fits = patch_size * math.ceil(widest / reader.pixel_spacing / patch_size)
        spacing = math.ceil(10 * widest / reader.image_size) / 10  # mm, up to 0.1
        warn_once(
            f"The backbone sees {view:g} x {view:g} mm of each slice (image_size="
            f"{reader.image_size} x pixel_spacing={reader.pixel_spacing:g} mm), and the "
            f"foreground of volume {where[0]} spans {widest:.0f} mm in its {where[1]} "
            f"slices: {widest - view:.0f} mm of it is cut off at the edges. image_size="
            f"{fits} would hold it, or pixel_spacing={spacing:g}.", stacklevel=3,
            key=("field of view", reader))  # once per configuration, whichever volume


@dataclass(frozen=True, kw_only=True)
class StackReader:
    """Reads a volume into a ``ReadVolume``: its stored voxels and, per slice set, its
    cache key and the embedding the cache (memory or ``cache_dir``) holds, if any.

    ``config`` is how the slices are embedded (backbone, weights, feature...): part of
    every key. ``row_shape``: the shape of one slice's embedding, as cached.
    """

    slices: SliceReader
    config: str
    patch_size: int
    row_shape: tuple
    cache_dir: str | None

    def __call__(self, volume, index):
        name = describe(volume, index=index)
        scan = read_scan(volume, index=index, images=True, spacing=self.slices.spacing)
        digest = scan.digest()  # once per volume, of the stored bytes
        stacks = []
        for selection in self.slices.choose(scan, name=f"Volume {name}"):
            self._warn_if_thin(selection, name)
            key = cache_key(digest, selection, self.config)
            stacks.append(Stack(key, selection, EmbeddingCache(self.cache_dir).get(
                key, (len(selection.indices), *self.row_shape))))
        needed = any(stack.embedding is None for stack in stacks)
        return ReadVolume(name, scan if needed else None, stacks)

    def _warn_if_thin(self, selection, name):
        height, width = (stop - start for start, stop in selection.region)
        if self.slices.pixel_spacing is None and min(height, width) < self.patch_size:
            warnings.warn(
                f"Volume {name} has slices of {height} x {width} voxels along axis "
                f"{AXIS_NAMES[selection.axis]!r}, thinner than one {self.patch_size}-pixel "
                "patch: they are padded to squares, mostly padding; check the axis.",
                UserWarning, stacklevel=3,
            )


def read_volumes(reader, volumes, indices, *, n_readers=0, prefetch_depth=0,
                 pin_memory=False):
    """Yield each volume's ``ReadVolume``, in order.

    ``n_readers=0`` reads in this process, ``prefetch_depth`` volumes ahead in a
    background thread; otherwise ``n_readers`` processes read, each ``prefetch_depth``
    volumes ahead (at least one), the stored voxels arriving in pinned memory if
    ``pin_memory``. Warnings and errors of a reader process are raised here, as if it
    had read in this process; stopping early stops the readers.
    """
    n_readers = min(n_readers, len(volumes))  # no idle reader
    if n_readers == 0:
        yield from prefetch(map(reader, volumes, indices), prefetch_depth)
        return
    loader = DataLoader(_Volumes(reader, volumes, indices), batch_size=None,
                        collate_fn=_unchanged, num_workers=n_readers,
                        prefetch_factor=max(prefetch_depth, 1), pin_memory=pin_memory)
    batches = iter(loader)
    try:
        for read, caught, error in batches:
            for category, message in caught:
                warnings.warn(message, category, stacklevel=2)
            if error is not None:
                raise error
            yield read
    finally:  # now: left to the garbage collector after an early stop, it took 10 s
        batches._shutdown_workers()


def _unchanged(item):  # not DataLoader's default, which makes tensors of numpy arrays
    return item


class _Volumes(Dataset):
    """The volumes to read, for a ``DataLoader``: item ``i`` is ``(read, warnings,
    error)``, the error returned rather than raised so that it reaches the caller as it
    is, not wrapped in the worker's traceback."""

    def __init__(self, reader, volumes, indices):
        self.reader, self.volumes, self.indices = reader, volumes, indices

    def __len__(self):
        return len(self.volumes)

    def __getitem__(self, i):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                read, error = self.reader(self.volumes[i], self.indices[i]), None
            except Exception as raised:
                read, error = None, raised
        return read, [(w.category, str(w.message)) for w in caught], error
