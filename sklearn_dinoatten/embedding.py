"""DinoSliceEmbedder: volumes -> per-slice embeddings from a frozen 2D backbone."""

import os
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from .backbones import build_backbone
from .cache import EmbeddingCache, cache_key
from .devices import resolve_device
from .preprocessing import NORMALIZATIONS, to_backbone_input
from .volumes import SLICE_SELECTIONS, check_axis, check_volumes, load_volume, slice_stack

FEATURES = ("cls", "mean", "cls+mean", "patch")
PROGRESS_DELAY_S = 1.0  # volumes served from the cache finish before a bar would show


class DinoSliceEmbedder(TransformerMixin, BaseEstimator):
    """Embed every slice of 3D volumes with a frozen 2D backbone (DINOv2 by default).

    Each chosen slice is normalised, padded to a square, resized to ``image_size``,
    replicated to three channels and passed through the backbone in batches (slices
    of several volumes share a batch). Embeddings are cached per volume content and
    configuration, so a volume is embedded once however many folds or grid points
    use it. 2D images (a list of 2D arrays) are taken as volumes of one slice.

    Parameters
    ----------
    backbone : str or torch.nn.Module, default="vit_small_patch14_dinov2"
        A timm model name (any DINOv2 size, with or without registers) or a
        timm-style vision transformer module used with its own weights.
    weights : None, "random" or path, default=None
        ``None``: timm's pretrained weights (downloaded once; needs a network).
        ``"random"``: a seeded random initialisation that is the same in every clone,
        for tests and demos only. A path: a local checkpoint, either the official
        DINOv2 format (``dinov2_vits14_pretrain.pth``) or a timm / safetensors state dict.
    image_size : int, default=224
        Side of the square backbone input; a multiple of the patch size (14 for DINOv2).
    axis : {"axial", "coronal", "sagittal"} or int, default="axial"
        Slicing axis. Files are reoriented to RAS, arrays are taken as ``(x, y, z)`` in
        RAS order, so ``"axial"`` is the last axis.
    n_slices : int or None, default=None
        How many slices to keep per volume; ``None`` keeps all. A volume with fewer
        slices keeps all of them and the missing rows are padding (NaN).
    slice_selection : {"uniform", "center"}, default="uniform"
        ``"uniform"``: ``n_slices`` evenly spaced slices; ``"center"``: the ``n_slices``
        central ones.
    normalization : {"minmax", "zscore"}, default="minmax"
        ``"minmax"``: each slice scaled to [0, 1], then ImageNet mean/std (DinoAtten3D).
        ``"zscore"``: the volume clipped to its 0.5/99.5 percentiles and standardised (MST).
    feature : {"cls", "mean", "cls+mean", "patch"}, default="cls"
        The CLS token after the final norm, the mean of the patch tokens, or both
        concatenated: one row per slice. ``"patch"``: every patch token, one row per
        patch, slice after slice, each slice's patches in raster order (``grid_shape_``),
        so that patches are the instances an :class:`AttentionPoolClassifier` pools.
    batch_size : int, default=32
        Slices per backbone forward pass.
    device : str, default="auto"
        ``"auto"`` uses CUDA when present, else the CPU.
    cache_dir : str or path, default=None
        Directory for an on-disk cache shared across processes and runs. Embeddings
        are always cached in memory for the life of the process.
    verbose : int, default=1
        ``0`` silences the progress bar shown while volumes are embedded.

    Attributes
    ----------
    backbone_ : torch.nn.Module
        The frozen backbone, in eval mode on ``device_``.
    device_ : torch.device
        The device the backbone runs on.
    embedding_dim_ : int
        Size of one slice (or patch) embedding: the last axis of the output.
    patch_size_ : int
        The backbone's patch size in pixels.
    grid_shape_ : tuple of 2 ints
        The patch grid of one slice, ``(image_size // patch_size_,) * 2``.

    Examples
    --------
    >>> from sklearn_dinoatten import DinoSliceEmbedder
    >>> from sklearn_dinoatten.datasets import make_volumes
    >>> X, y = make_volumes(n_samples=2, shape=(32, 32, 8), random_state=0)
    >>> embedder = DinoSliceEmbedder(weights="random", image_size=28, verbose=0)
    >>> embedder.fit_transform(X).shape
    (2, 8, 384)
    """

    def __init__(
        self,
        backbone="vit_small_patch14_dinov2",
        weights=None,
        image_size=224,
        axis="axial",
        n_slices=None,
        slice_selection="uniform",
        normalization="minmax",
        feature="cls",
        batch_size=32,
        device="auto",
        cache_dir=None,
        verbose=1,
    ):
        self.backbone = backbone
        self.weights = weights
        self.image_size = image_size
        self.axis = axis
        self.n_slices = n_slices
        self.slice_selection = slice_selection
        self.normalization = normalization
        self.feature = feature
        self.batch_size = batch_size
        self.device = device
        self.cache_dir = cache_dir
        self.verbose = verbose

    def fit(self, X, y=None):
        """Check the parameters and ``X`` and build the backbone; nothing is learned.

        Parameters
        ----------
        X : list of paths, 3D arrays or 2D images
            The volumes; only their existence and dimensionality are checked here.
        y : ignored

        Returns
        -------
        self : DinoSliceEmbedder
        """
        self._check_params()
        check_volumes(X, images=True)
        self.device_ = resolve_device(self.device)
        built = build_backbone(self.backbone, self.weights, self.image_size)
        self.backbone_ = built.module.to(self.device_)
        self.embedding_dim_ = built.embed_dim * (2 if self.feature == "cls+mean" else 1)
        self.patch_size_ = built.patch_size
        self.grid_shape_ = (self.image_size // built.patch_size,) * 2
        self._num_prefix_tokens = built.num_prefix_tokens
        self._backbone_fingerprint = built.fingerprint
        return self

    def transform(self, X):
        """Embed the slices of each volume.

        Parameters
        ----------
        X : list of paths, 3D arrays or 2D images
            NIfTI files (``.nii``, ``.nii.gz``) or arrays ``(x, y, z)``; shapes may differ.

        Returns
        -------
        embeddings : ndarray of shape (n_volumes, n_slices_max, embedding_dim_)
            float32; rows of NaN pad volumes with fewer slices than the widest. With
            ``feature="patch"``: ``(n_volumes, n_slices_max * n_patches, embedding_dim_)``.
        """
        check_is_fitted(self)
        volumes = check_volumes(X, images=True)
        axis = check_axis(self.axis)
        cache = EmbeddingCache(self.cache_dir)
        config = self._config_string()
        keys = [None] * len(volumes)
        found = {}

        def stacks_to_embed():
            progress = tqdm(
                enumerate(volumes), total=len(volumes), desc="Embedding volumes",
                unit="vol", disable=self.verbose == 0 or len(volumes) < 5,
                delay=PROGRESS_DELAY_S,
            )
            for i, volume in progress:
                data = load_volume(volume, i, images=True)
                stack = data[None] if data.ndim == 2 else slice_stack(
                    data, axis, self.n_slices, self.slice_selection
                )
                key = keys[i] = cache_key(stack, config)
                if key in found:
                    continue
                found[key] = cache.get(key)
                if found[key] is None:
                    yield key, stack

        for key, embedding in self._embed_stacks(stacks_to_embed()):
            cache.put(key, embedding)
            found[key] = embedding

        width = self.n_slices or max(len(found[key]) for key in keys)
        rows = width * (np.prod(self.grid_shape_) if self.feature == "patch" else 1)
        out = np.full((len(volumes), rows, self.embedding_dim_), np.nan, dtype=np.float32)
        for i, key in enumerate(keys):
            embedding = found[key].reshape(-1, self.embedding_dim_)
            out[i, : len(embedding)] = embedding
        return out

    def _embed_stacks(self, stacks):
        """Yield ``(key, embedding)`` for each ``(key, stack)``, batching across volumes."""
        pending = []  # [key, preprocessed slices not yet embedded]
        parts, remaining = {}, {}
        for key, stack in stacks:
            images = to_backbone_input(stack, self.image_size, self.normalization)
            pending.append([key, images])
            parts[key], remaining[key] = [], len(images)
            while sum(len(images) for _, images in pending) >= self.batch_size:
                yield from self._embed_batch(pending, parts, remaining)
        while pending:
            yield from self._embed_batch(pending, parts, remaining)

    def _embed_batch(self, pending, parts, remaining):
        owners, chunks, room = [], [], self.batch_size
        while pending and room:
            key, images = pending[0]
            take = images[:room]
            owners.append((key, len(take)))
            chunks.append(take)
            room -= len(take)
            if len(take) == len(images):
                pending.pop(0)
            else:
                pending[0][1] = images[len(take):]
        features = self._forward(torch.cat(chunks))
        for key, count in owners:
            parts[key].append(features[:count])
            features = features[count:]
            remaining[key] -= count
            if remaining[key] == 0:
                del remaining[key]
                yield key, np.concatenate(parts.pop(key))

    def _forward(self, images):
        with torch.inference_mode():
            tokens = self.backbone_.forward_features(images.to(self.device_))
            cls = tokens[:, 0]
            patch_mean = tokens[:, self._num_prefix_tokens:].mean(dim=1)
            feature = {
                "cls": cls,
                "mean": patch_mean,
                "cls+mean": torch.cat([cls, patch_mean], dim=1),
                "patch": tokens[:, self._num_prefix_tokens:],
            }[self.feature]
        return feature.float().cpu().numpy()

    def _config_string(self):
        return "|".join([
            "v1",
            self._backbone_fingerprint,
            f"image_size={self.image_size}",
            f"normalization={self.normalization}",
            f"feature={self.feature}",
        ])

    def _check_params(self):
        _check_choice("normalization", self.normalization, NORMALIZATIONS)
        _check_choice("feature", self.feature, FEATURES)
        _check_choice("slice_selection", self.slice_selection, SLICE_SELECTIONS)
        check_axis(self.axis)
        _check_positive_int("image_size", self.image_size)
        _check_positive_int("batch_size", self.batch_size)
        if self.n_slices is not None:
            _check_positive_int("n_slices", self.n_slices)
        if self.cache_dir is not None and not isinstance(self.cache_dir, (str, os.PathLike)):
            raise ValueError(f"cache_dir must be a path or None; got {self.cache_dir!r}.")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


def _check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}; got {value!r}.")


def _check_positive_int(name, value):
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
