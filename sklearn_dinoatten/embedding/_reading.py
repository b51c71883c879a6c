"""Volumes read, sliced and resized into backbone input, in this process or in reader
processes.

A CPU core reads, decodes and resizes a brain-sized ``.nii.gz`` volume in about the time
a GPU takes to embed dozens (``benchmarks/embed_throughput.py``), so on a GPU the
reading runs ahead in ``n_readers`` worker processes (a torch ``DataLoader`` over the
volumes, pinned memory). What they need travels to them as a :class:`StackReader`: the
embedder's preprocessing and cache settings, without its backbone.
"""

import warnings
from collections import namedtuple
from dataclasses import dataclass

from torch.utils.data import DataLoader, Dataset

from ..utils._prefetch import prefetch
from ..volumes._preprocessing import resize_stack
from ..volumes._scans import describe, load_scan
from ..volumes._slicing import AXIS_NAMES, slice_sets
from ._cache import EmbeddingCache, cache_key

Stack = namedtuple("Stack", "key name images embedding")
Stack.__doc__ = """A slice set to embed: its cache key, the name of its volume, and either
its backbone input ``(n, 1, s, s)`` or, when the cache had it, its embedding."""


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

    def slice_sets(self, data, voxel_size, name="volume"):
        """The kept slices of a loaded volume or image (a ``SliceSet`` per axis)."""
        return slice_sets(data, voxel_size, axes=self.axes, n_slices=self.n_slices,
                          selection=self.slice_selection, slice_spacing=self.slice_spacing,
                          crop_to=self.crop, min_foreground=self.min_foreground, name=name)

    def backbone_input(self, slice_set):
        """A slice set's gray backbone input ``(n, 1, s, s)``."""
        return resize_stack(slice_set.stack, self.image_size, self.normalization,
                            pixel_size=slice_set.pixel_size, pixel_spacing=self.pixel_spacing)


@dataclass(frozen=True, kw_only=True)
class StackReader:
    """Reads a volume into ``Stack`` s: each slice set's cache key and, unless the
    cache (memory or ``cache_dir``) has its embedding, its backbone input.

    ``config`` is how the slices are embedded (backbone, weights, feature...): part of
    every key. ``row_shape``: the shape of one slice's embedding, as cached.
    """

    slices: SliceReader
    config: str
    patch_size: int
    row_shape: tuple
    cache_dir: str | None

    def __call__(self, volume, index):
        name = describe(volume, index)
        data, voxel_size = load_scan(volume, index, images=True, spacing=self.slices.spacing)
        stacks = []
        for slice_set in self.slices.slice_sets(data, voxel_size, name=f"Volume {name}"):
            key = self.key(slice_set, name)
            embedding = EmbeddingCache(self.cache_dir).get(key, (len(slice_set.stack),
                                                                 *self.row_shape))
            images = None if embedding is not None else self.slices.backbone_input(slice_set)
            stacks.append(Stack(key, name, images, embedding))
        return stacks

    def key(self, slice_set, name):
        """The cache key of a slice set: its voxels, and how they are embedded."""
        stack, config = slice_set.stack, self.config
        if self.slices.pixel_spacing is None and min(stack.shape[1:]) < self.patch_size:
            warnings.warn(
                f"Volume {name} has slices of {stack.shape[1]} x {stack.shape[2]} voxels "
                f"along axis {AXIS_NAMES[slice_set.axis]!r}, thinner than one "
                f"{self.patch_size}-pixel patch: they are padded to squares, mostly "
                "padding; check the axis.", UserWarning, stacklevel=2,
            )
        if self.slices.pixel_spacing is not None:  # the voxels' size shapes the input too
            config = f"{config}|pixel_size={slice_set.pixel_size}"
        return cache_key(stack, config)


def read_volumes(reader, volumes, indices, *, n_readers=0, prefetch_depth=0,
                 pin_memory=False):
    """Yield each volume's list of ``Stack`` s, in order.

    ``n_readers=0`` reads in this process, ``prefetch_depth`` volumes ahead in a
    background thread; otherwise ``n_readers`` processes read, each ``prefetch_depth``
    volumes ahead (at least one), and the backbone input arrives in pinned memory if
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
        for stacks, caught, error in batches:
            for category, message in caught:
                warnings.warn(message, category, stacklevel=2)
            if error is not None:
                raise error
            yield stacks
    finally:  # now: left to the garbage collector after an early stop, it took 10 s
        batches._shutdown_workers()


def _unchanged(item):  # not DataLoader's default, which makes tensors of numpy arrays
    return item


class _Volumes(Dataset):
    """The volumes to read, for a ``DataLoader``: item ``i`` is ``(stacks, warnings,
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
                stacks, error = self.reader(self.volumes[i], self.indices[i]), None
            except Exception as raised:
                stacks, error = [], raised
        return stacks, [(w.category, str(w.message)) for w in caught], error
