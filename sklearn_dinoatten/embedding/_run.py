"""How a fitted :class:`DinoSliceEmbedder` embeds volumes: from the cache where it knows
them (files by their identity, without reading them), else in this process, where the next
volumes are read ahead (by reader processes or a thread) while the backbone runs and
slices of several volumes share a batch, or by parallel workers, each with a copy of the
fitted backbone."""

import copy

import numpy as np
from joblib import Parallel, cpu_count, delayed, effective_n_jobs
from tqdm.auto import tqdm

from ..utils._fit import check_fitted
from ..volumes import IMAGENET_MEAN, IMAGENET_STD, axes_of, read_scan, tag_orientations
from ._cache import EmbeddingCache, open_cache, remember_file_key, remembered_file_key
from ._reading import SliceReader, StackReader, read_volumes
from ._slice_encoder import SliceEncoder
from .backbones import weights_fingerprint

PROGRESS_DELAY_S = 1.0  # volumes served from the cache finish before a bar would show


def embed_volumes(volumes, indices, *, stack_reader, encoder, cache, n_readers, prefetch,
                  verbose, dtype):
    """Per volume (``indices``: their places in ``X``, for messages), ``[(key,
    embedding)]`` of each slice set and whether the backbone ran for it (else the cache
    held it).

    Parameters
    ----------
    stack_reader : StackReader
        Reads a volume into its stored voxels and its slice sets' keys; its
        ``slices`` make their backbone input on the encoder's device.
    encoder : SliceEncoder
        Runs the backbone over the slice sets.
    cache : EmbeddingCache
        Where each new embedding is put.
    n_readers, prefetch : int
        Reader processes, and volumes read ahead (see :func:`read_volumes`).
    verbose : int
        ``0`` hides the progress bar (shown from 5 volumes).
    dtype : str
        The forward pass's precision, named when it gives a non-finite embedding.
    """
    pin = encoder.device.type == "cuda"
    read = read_volumes(stack_reader, volumes, indices, n_readers=n_readers,
                        prefetch_depth=prefetch, pin_memory=pin)
    volume_keys, names, found, computed = [], {}, {}, set()

    def stacks():
        with tqdm(read, total=len(volumes), desc="Embedding volumes", unit="vol",
                  delay=PROGRESS_DELAY_S, disable=verbose == 0 or len(volumes) < 5) as progress:
            for volume in progress:
                todo = []
                for stack in volume.stacks:
                    if stack.key in found:
                        continue
                    names[stack.key], found[stack.key] = volume.name, stack.embedding
                    if stack.embedding is None:
                        todo.append(stack)
                    else:  # found by a reader process: this one keeps it too
                        EmbeddingCache().put(stack.key, stack.embedding)
                if todo:
                    scan = volume.scan
                    if pin and not scan.voxels.is_pinned():  # read in this process
                        scan = scan._replace(voxels=scan.voxels.pin_memory())
                    inputs = stack_reader.slices.backbone_inputs(
                        scan, [stack.selection for stack in todo], encoder.device)
                    yield from zip([stack.key for stack in todo], inputs, strict=True)
                volume_keys.append([stack.key for stack in volume.stacks])

    pending = stacks()
    try:
        for key, embedding in encoder.encode(pending):
            if not np.isfinite(embedding).all():
                raise ValueError(
                    f"The backbone gave NaN or infinite embeddings for volume {names[key]}: "
                    f"its weights are damaged, or dtype={dtype!r} overflowed (try float32). "
                    "Nothing was cached for it.")
            cache.put(key, embedding)
            found[key] = embedding
            computed.add(key)
    finally:  # also on an interrupt: the readers stop and the progress bar closes
        pending.close()
        read.close()
    return [([(key, found[key]) for key in keys], not computed.isdisjoint(keys))
            for keys in volume_keys]


class EmbeddingRunMixin:
    """How a :class:`~sklearn_dinoatten.DinoSliceEmbedder` reads volumes into backbone
    input, encodes them with its fitted backbone, and embeds many with its cache, readers
    and workers."""

    def _fingerprint(self, module):
        """The digest of ``module``'s weights, as cache keys name them."""
        return weights_fingerprint(
            module, self.backbone if isinstance(self.backbone, str) else "module")

    def slice_reader(self):
        """How this embedder chooses a volume's slices and turns them into backbone
        input: a :class:`~sklearn_dinoatten.embedding.SliceReader` of its parameters
        (its ``choose(scan)`` and ``backbone_inputs(scan, selections, device)``, and
        ``slice_sets(data, voxel_size)`` and ``backbone_input(slice_set)`` for arrays)."""
        return SliceReader(axes=axes_of(self.axis), n_slices=self.n_slices,
                           slice_selection=self.slice_selection, spacing=self.spacing,
                           slice_spacing=self.slice_spacing, crop=self.crop,
                           min_foreground=self.min_foreground, image_size=self.image_size,
                           normalization=self.normalization, pixel_spacing=self.pixel_spacing)

    def slice_encoder(self):
        """The forward passes of the fitted backbone over slice stacks: a
        :class:`~sklearn_dinoatten.embedding.SliceEncoder` of this embedder's settings."""
        check_fitted(self)
        if self._forward_for != (self.engine, self.dtype):  # set_params after fit
            self._compile_forward()
        info = self.backbone_info_
        return SliceEncoder(self._forward_features, num_prefix_tokens=info.num_prefix_tokens,
                            feature=self.feature, batch_size=self.batch_size,
                            # the other engines hold their precision themselves
                            dtype=self.dtype if self.engine == "torch" else "float32",
                            device=self.device_, normalization=self.normalization,
                            channels_last=self.channels_last, mean=info.mean, std=info.std,
                            num_patches=int(np.prod(self.grid_shape_)))

    def stack_reader(self, cache_dir=None):
        """What a reader process runs for this fitted embedder: a volume to its stored
        voxels and each slice set's cache key and embedding, if ``cache_dir`` (or
        memory) holds it (a :class:`~sklearn_dinoatten.embedding.StackReader`)."""
        check_fitted(self)
        return StackReader(slices=self.slice_reader(), config=self._config_string(),
                           patch_size=self.patch_size_, row_shape=self._row_shape(),
                           cache_dir=cache_dir)

    def kept_slices(self, volume):
        """The slices of ``volume`` that :meth:`transform` embeds, in order.

        Parameters
        ----------
        volume : path, nibabel image, 3D array or 2D image
            As ``transform`` takes it (files and images are reoriented to RAS).

        Returns
        -------
        axes, indices : ndarrays of int
            Row ``j`` of the volume's embedding belongs to slice ``indices[j]`` along
            axis ``axes[j]`` of the (RAS) volume; ``[axis], [0]`` for an image.
        """
        if isinstance(volume, (list, tuple)) or (isinstance(volume, np.ndarray)
                                                 and volume.dtype.kind in "OUS"):
            raise ValueError(f"kept_slices takes one volume (a path, a nibabel image or an "
                             f"array); got a {type(volume).__name__} of {len(volume)}: call "
                             "it for each volume.")
        sets = self.slice_reader().choose(read_scan(volume, images=True, spacing=self.spacing))
        return (np.concatenate([np.full(len(s.indices), s.axis) for s in sets]),
                np.concatenate([s.indices for s in sets]))

    def _embed(self, volumes):
        """The embedding of each volume, from the cache where it is known (files by their
        identity, without reading them), else computed here or by workers; and whether
        the cache held each whole."""
        cache = open_cache(self.cache_dir)
        config = self._config_string()
        settings = (config, axes_of(self.axis), self.n_slices, self.slice_selection, self.spacing,
                    self.slice_spacing, self.crop, self.min_foreground)
        known = [remembered_file_key(volume, settings) for volume in volumes]
        embeddings = [None if k is None else self._assemble([cache.get(*part) for part in k])
                      for k in known]
        cached = np.array([embedding is not None for embedding in embeddings])
        todo = np.flatnonzero(~cached)
        if not len(todo):
            return embeddings, cached
        n_jobs = min(effective_n_jobs(self.n_jobs), len(todo))
        if n_jobs == 1:
            computed = self._embed_in_process([volumes[i] for i in todo], todo.tolist(), cache)
        else:
            # The fitted embedder itself, not a clone: a clone would build its backbone
            # again from the parameters, which may no longer give the fitted weights (a
            # module or checkpoint changed since, a model loaded from a file).
            worker = copy.copy(self).set_params(n_jobs=None, n_readers=0, verbose=0)
            results = Parallel(n_jobs=n_jobs)(
                delayed(_embed_in_worker)(worker, [volumes[i] for i in chunk], chunk.tolist(),
                                          cache)
                for chunk in np.array_split(todo, n_jobs)
            )
            computed = [volume for result in results for volume in result]
            for parts, _ in computed:
                for key, embedding in parts:  # the workers wrote cache_dir already
                    EmbeddingCache().put(key, embedding)
        for i, (parts, embedded_now) in zip(todo, computed, strict=True):
            remember_file_key(volumes[i], settings, [(key, e.shape) for key, e in parts])
            embeddings[i] = self._assemble([embedding for _, embedding in parts])
            cached[i] = not embedded_now
        return embeddings, cached

    def _assemble(self, parts):
        """A volume's embedding from those of its slices along each axis (tagged with
        their orientation when there are several); ``None`` if a part is missing."""
        if any(part is None for part in parts):
            return None
        axes = axes_of(self.axis)
        return parts[0] if len(axes) == 1 else tag_orientations(parts, axes)

    def _embed_in_process(self, volumes, indices, cache):
        """:func:`embed_volumes` in this process, with this embedder's reader, encoder
        and read-ahead."""
        cuda = self.device_.type == "cuda"
        return embed_volumes(
            volumes, indices, stack_reader=self.stack_reader(cache.cache_dir),
            encoder=self.slice_encoder(),
            cache=cache, verbose=self.verbose, dtype=self.dtype,
            # "auto": on CUDA the cores less one (at most 8) and 2 volumes each; on the
            # CPU no reader and no read-ahead thread
            n_readers=(self.n_readers if self.n_readers != "auto"
                       else min(8, cpu_count() - 1) * cuda),
            prefetch=self.prefetch if self.prefetch != "auto" else 2 * cuda)

    def _row_shape(self):
        """The shape of one slice's embedding as cached: before orientation tags."""
        dim = self.embedding_dim_ - (3 if len(axes_of(self.axis)) > 1 else 0)
        return (self.rows_per_slice_, dim) if self.feature == "patch" else (dim,)

    def _config_string(self):
        info = self.backbone_info_
        # v2: keys hash a volume's stored voxels once, not each slice set's float32 copy
        parts = ["v2", info.fingerprint, f"image_size={self.image_size}",
                 f"normalization={self.normalization}", f"feature={self.feature}",
                 f"dtype={self.dtype}"]
        if self.pixel_spacing is not None:
            parts.append(f"pixel_spacing={self.pixel_spacing}")
        if self.engine != "torch":  # int8 differs between engines
            parts.append(f"engine={self.engine}")
        if (info.mean, info.std) != (IMAGENET_MEAN, IMAGENET_STD):  # keys of DINOv2 kept
            parts.append(f"mean={info.mean}|std={info.std}")
        return "|".join(parts)


def _embed_in_worker(embedder, volumes, indices, cache):
    """Run by each parallel worker: embed its share with the fitted backbone it was sent,
    once its weights are checked against the fingerprint of the fit (the cache keys')."""
    if embedder._fingerprint(embedder.backbone_) != embedder.backbone_info_.fingerprint:
        raise ValueError("DinoSliceEmbedder: the weights of backbone_ changed after fit "
                         "(its cache keys name the weights of the fit); call fit again.")
    return embedder._embed_in_process(volumes, indices, cache)
