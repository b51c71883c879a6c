"""DinoSliceEmbedder: volumes -> per-slice embeddings from a frozen 2D backbone."""


import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from ..utils._devices import resolve_device, warn_if_slow_precision
from ..utils._fit import FitContractMixin, check_fitted, fit_context
from ..utils._options import ALL_PLANES, SLICE_SELECTIONS
from ..utils._persistable import PersistableMixin
from ..utils._tags import VolumeInputMixin
from ..utils._validation import (
    BOOLEAN,
    DEVICE,
    NONE,
    PATH,
    VERBOSE,
    Constraint,
    instance,
    integer,
    integers,
    options,
    real,
)
from ..volumes import (
    AXES,
    AXIS_TUPLE,
    CROPS,
    NORMALIZATIONS,
    axes_of,
    check_volumes,
    voxel_size_of,
    warn_if_spacings_differ,
)
from ._cache import (
    cache_folder_is_writable,
)
from ._engines import ENGINES, forward_features
from ._reading import warn_if_view_cuts
from ._run import EmbeddingRunMixin
from ._slice_encoder import DTYPES, FEATURES
from .backbones import (
    SAVED_WEIGHTS,
    BackboneInfo,
    build_backbone,
    frozen_backbone,
)


class DinoSliceEmbedder(FitContractMixin, PersistableMixin, EmbeddingRunMixin,
                        VolumeInputMixin, TransformerMixin, BaseEstimator):
    """Embed every slice of 3D volumes with a frozen 2D backbone (DINOv2 by default).

    Each chosen slice is normalised, padded to a square, resized to ``image_size``,
    replicated to three channels and passed through the backbone in batches (slices
    of several volumes share a batch). Embeddings are cached per volume content and
    configuration, so a volume is embedded once however many folds or grid points
    use it. 2D images (a list of 2D arrays) are taken as volumes of one slice.

    Parameters
    ----------
    backbone : str or torch.nn.Module, default="vit_small_patch14_dinov2"
        A timm model name (any DINOv2 size, with or without registers), another
        library's model (``"hf:..."``, ``"open_clip:..."``, ``"torchvision:..."``: see
        :mod:`sklearn_dinoatten.embedding.backbones`) or a module, used with its own weights
        (``fit`` copies it: changing it later changes nothing until the next ``fit``).
    weights : None, "random" or path, default=None
        ``None``: the pretrained weights (downloaded once; needs a network), or those in
        the ``hf:`` directory. ``"random"``: seeded, the same in every clone, for tests and
        demos only. A path: a local checkpoint (for timm also DINOv2's official ``.pth``).
    image_size : int, default=224
        Side of the square backbone input; a multiple of the patch size (14 for DINOv2).
    axis : {"axial", "coronal", "sagittal", "all"}, int or tuple, default="axial"
        Slicing axis. Files are reoriented to RAS, arrays are taken as ``(x, y, z)`` in
        RAS order, so ``"axial"`` is the last axis. ``"all"`` (or a tuple of axes): a
        tri-planar bag, the slices of each orientation in turn (axial, coronal,
        sagittal for ``"all"``), each row tagged with its orientation by three last
        columns, one-hot in sagittal, coronal, axial order.
    n_slices : int or None, default=None
        How many slices to keep per volume (per orientation); ``None`` keeps all. A
        volume with fewer slices keeps all of them and the missing rows are padding (NaN).
    slice_selection : {"uniform", "center"}, default="uniform"
        ``"uniform"``: ``n_slices`` evenly spaced slices; ``"center"``: the ``n_slices``
        central ones.
    spacing : tuple of 3 floats or None, default=None
        Voxel size in mm of volumes given as arrays, ``(x, y, z)``; ``None``: 1 mm.
        Files and nibabel images have theirs in their header.
    slice_spacing : float or None, default=None
        Keep a slice every ``slice_spacing`` mm along the axis (the nearest slice), so
        the same anatomy gives the same number of slices at any resolution (before
        ``n_slices``). ``None`` keeps every slice, whatever the spacing.
    pixel_spacing : float or None, default=None
        mm per pixel of the backbone input: each slice is resampled in-plane to it and
        centred on the ``image_size`` square (cropped or padded), so a structure has the
        same size in pixels in every scan. ``None`` resizes each slice to fit, whatever
        its voxel size. When neither spacing option is set and the volumes of one
        ``fit`` have voxel sizes more than 20 % apart, ``fit`` warns; with it, ``fit``
        warns when the field of view, ``image_size * pixel_spacing`` mm, is narrower
        than the foreground of the first volumes in plane (naming the size that holds
        it).
    crop : {"none", "foreground"}, default="none"
        ``"foreground"``: crop each volume to the box around its foreground (voxels
        above Otsu's threshold of those above the volume's minimum), 4 mm wider,
        before slicing: empty margins cost no backbone time, and a volume padded with
        its minimum gives the same embedding.
    min_foreground : float in [0, 1), default=0.0
        Drop slices whose share of foreground voxels is below it (the empty slices of a
        head); a volume with no slice left keeps its central one, with a warning.
    normalization : {"minmax", "zscore"}, default="minmax"
        ``"minmax"``: each slice scaled to [0, 1], then standardised with the mean/std
        the backbone was trained with (its ``pretrained_cfg``; ImageNet's for DINOv2).
        ``"zscore"``: the volume clipped to its 0.5/99.5 percentiles and standardised (MST).
    feature : {"cls", "mean", "cls+mean", "patch"}, default="cls"
        The CLS token after the final norm, the mean of the patch tokens, or both
        concatenated: one row per slice. ``"patch"``: every patch token, one row per
        patch, slice after slice, each slice's patches in raster order (``grid_shape_``),
        so that patches are the instances an :class:`AttentionPoolClassifier` pools.
    batch_size : int, default=32
        Slices per backbone forward pass.
    dtype : {"float32", "bfloat16", "float16", "int8"}, default="float32"
        Precision of the forward pass (each has its own cache entries). ``"bfloat16"``,
        ``"float16"``: autocast (cosine 0.999 to float32, tested), much faster on GPUs
        and CPUs with AVX-512 BF16 / AMX, several times slower on others (``fit`` warns);
        OpenVINO's own bfloat16 with ``engine="openvino"``. ``"int8"``: linear layers
        dynamically quantised at ``fit`` (CPU only).
    engine : {"torch", "onnxruntime", "openvino"}, default="torch"
        Not torch: the backbone exported to ONNX (once per weights and size, kept in
        ``cache_dir``) and run on the CPU by ONNX Runtime (float32, int8; the ``onnx``
        extra) or OpenVINO (float32; bfloat16 on CPUs with AVX-512 BF16 or AMX, with
        AMX the fastest; the ``openvino`` extra); float32 equals torch within 1e-4.
    channels_last, compile : bool, default=False
        Channels-last input to the patch embedding; ``torch.compile`` of the backbone
        (seconds to minutes on the first batch; needs a C++ compiler on the CPU).
    n_readers : int or "auto", default="auto"
        Processes that read the volumes (decode them and hash them) while the backbone
        runs (a torch ``DataLoader``; pinned memory on CUDA); the embedding device then
        scales, slices and resizes them. ``0``: this process. ``"auto"``: on CUDA, the
        CPU cores less one (at most 8); on the CPU 0, as readers would take the
        backbone's cores.
    prefetch : int or "auto", default="auto"
        Volumes read ahead: by each reader process, or with ``n_readers=0`` by a
        background thread. ``"auto"``: 2 on CUDA, 0 on the CPU (where the thread
        competes with the backbone: 0.8x measured).
    n_jobs : int, default=None
        Processes (or Dask workers, inside ``joblib.parallel_backend("dask")``) that
        embed disjoint shares of the volumes, each with its own backbone; ``None``: 1
        unless in a :func:`joblib.parallel_config` context; ``-1``: all. Like
        ``channels_last``, ``compile``, ``n_readers`` and ``prefetch``, it changes
        embeddings by float32 rounding at most (1e-4, tested) and shares their cache
        entries. Each worker reads its own volumes (``n_readers=0`` inside it).
    device : str, default="auto"
        ``"auto"`` uses CUDA when present, else the CPU; the CPU with
        ``engine="onnxruntime"``, ``"openvino"`` or ``dtype="int8"``, which run there
        only.
    cache_dir : str or path, default=None
        Directory for an on-disk cache shared across processes and runs; one that
        cannot be written is read (a shared, read-only cache), with a warning.
        Embeddings are always cached in memory for the life of the process, and a file
        seen before is not read again while its path, inode, size, modification and
        change times are the same (a rewrite moves the change time, even with ``cp
        -p``).
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
    rows_per_slice_ : int
        Rows of the output per slice: 1, or with ``feature="patch"`` the patches of
        one slice (:func:`~sklearn_dinoatten.volumes.slice_weights` turns weights over
        rows into weights over slices).
    backbone_info_ : BackboneInfo
        What the backbone is: its embedding size, patch size, prefix tokens (CLS,
        registers) before the patches, input normalisation (``mean``, ``std``) and the
        fingerprint of its weights (part of every cache key).

    Examples
    --------
    >>> from sklearn_dinoatten import DinoSliceEmbedder
    >>> from sklearn_dinoatten.datasets import make_volumes
    >>> X, y = make_volumes(n_samples=2, shape=(32, 32, 8), random_state=0)
    >>> embedder = DinoSliceEmbedder(weights="random", image_size=28, verbose=0)
    >>> embedder.fit_transform(X).shape
    (2, 8, 384)
    """

    _constraints = {
        "backbone": [instance(str, "a model name"),
                     instance(torch.nn.Module, "a torch.nn.Module")],
        "weights": [NONE, PATH],
        "image_size": [integer(1)],
        "axis": [options(*AXES, ALL_PLANES, 0, 1, 2, -1, -2, -3), AXIS_TUPLE],
        "n_slices": [NONE, integer(1)],
        "slice_selection": [options(*SLICE_SELECTIONS)],
        "spacing": [NONE, Constraint(
            lambda v: isinstance(v, tuple) and len(v) == 3 and all(real(0, low_open=True)
                                                                   .accepts(x) for x in v),
            "a tuple of 3 numbers > 0 (mm)")],
        "slice_spacing": [NONE, real(0, low_open=True)],
        "pixel_spacing": [NONE, real(0, low_open=True)],
        "crop": [options(*CROPS)],
        "min_foreground": [real(0, 1, high_open=True)],
        "normalization": [options(*NORMALIZATIONS)],
        "feature": [options(*FEATURES)],
        "batch_size": [integer(1)],
        "dtype": [options(*DTYPES)],
        "engine": [options(*ENGINES)],
        "channels_last": [BOOLEAN],
        "compile": [BOOLEAN],
        "n_readers": [options("auto"), integer(0)],
        "prefetch": [options("auto"), integer(0)],
        "n_jobs": [NONE, integer(1), integer(high=-1)],
        "device": [DEVICE],
        "cache_dir": [NONE, PATH],
        "verbose": [VERBOSE],
    }

    _fitted_constraints = {
        "embedding_dim_": [integer(1)], "patch_size_": [integer(1)],
        "grid_shape_": [integers(1, length=2)], "rows_per_slice_": [integer(1)],
        "_forward_for": [Constraint(lambda v: isinstance(v, tuple) and len(v) == 2
                                    and v[0] in ENGINES and v[1] in DTYPES,
                                    "a tuple (engine, dtype)")],
    }

    # What transform produces depends on these; the others are how it runs.
    _params_fixed_by_fit = ("backbone", "weights", "image_size", "axis", "n_slices",
                            "slice_selection", "spacing", "slice_spacing", "pixel_spacing",
                            "crop", "min_foreground", "normalization", "feature", "device")

    def __init__(
        self,
        *,
        backbone="vit_small_patch14_dinov2",
        weights=None,
        image_size=224,
        axis="axial",
        n_slices=None,
        slice_selection="uniform",
        spacing=None,
        slice_spacing=None,
        pixel_spacing=None,
        crop="none",
        min_foreground=0.0,
        normalization="minmax",
        feature="cls",
        batch_size=32,
        dtype="float32",
        engine="torch",
        channels_last=False,
        compile=False,
        n_readers="auto",
        prefetch="auto",
        n_jobs=None,
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
        self.spacing = spacing
        self.slice_spacing = slice_spacing
        self.pixel_spacing = pixel_spacing
        self.crop = crop
        self.min_foreground = min_foreground
        self.normalization = normalization
        self.feature = feature
        self.batch_size = batch_size
        self.dtype = dtype
        self.engine = engine
        self.channels_last = channels_last
        self.compile = compile
        self.n_readers = n_readers
        self.prefetch = prefetch
        self.n_jobs = n_jobs
        self.device = device
        self.cache_dir = cache_dir
        self.verbose = verbose

    @fit_context
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
        if self.cache_dir is not None:
            cache_folder_is_writable(self.cache_dir, "cache_dir")
        volumes = check_volumes(X, images=True)
        if self.slice_spacing is None and self.pixel_spacing is None:
            warn_if_spacings_differ(voxel_size_of(volume) for volume in volumes)
        self._use_backbone(build_backbone(self.backbone, weights=self.weights,
                                          image_size=self.image_size))
        warn_if_view_cuts(self.slice_reader(), volumes, self.patch_size_)
        return self

    def _use_backbone(self, built):
        self.device_ = resolve_device(
            "cpu" if self._cpu_only() and self.device == "auto" else self.device)
        if self.engine == "torch":  # the other engines refuse what they cannot run
            warn_if_slow_precision(self.dtype, self.device_)
        self.backbone_info_ = BackboneInfo(  # the fingerprint: of the weights held
            embed_dim=built.embed_dim, patch_size=built.patch_size,
            num_prefix_tokens=built.num_prefix_tokens, mean=built.mean, std=built.std,
            fingerprint=self._fingerprint(built.module))
        self.backbone_ = built.module.to(self.device_)
        if self.channels_last:
            self.backbone_ = self.backbone_.to(memory_format=torch.channels_last)
        self.embedding_dim_ = (built.embed_dim * (2 if self.feature == "cls+mean" else 1)
                               + (3 if len(axes_of(self.axis)) > 1 else 0))  # orientation tags
        self.patch_size_ = built.patch_size
        self.grid_shape_ = (self.image_size // built.patch_size,) * 2
        self.rows_per_slice_ = int(np.prod(self.grid_shape_)) if self.feature == "patch" else 1
        self._compile_forward()

    def _saved_modules(self):
        return {"backbone": self.backbone_}

    def _empty_modules(self):
        return {"backbone": build_backbone(self.backbone, weights=SAVED_WEIGHTS,
                                           image_size=self.image_size).module}

    def _restore(self, modules):
        self._use_backbone(frozen_backbone(modules["backbone"], self.image_size))

    def _compile_forward(self):
        if self._cpu_only() and self.device_.type != "cpu":
            raise ValueError(f"engine={self.engine!r} with dtype={self.dtype!r} runs on the "
                             f"CPU only; the device is {self.device_.type!r}.")
        features = forward_features(self.backbone_, engine=self.engine, dtype=self.dtype,
                                    image_size=self.image_size, cache_dir=self.cache_dir,
                                    fingerprint=self.backbone_info_.fingerprint)
        self._forward_features = torch.compile(features) if self.compile else features
        self._forward_for = (self.engine, self.dtype)

    def _cpu_only(self):  # ONNX Runtime, OpenVINO and int8 run on the CPU only
        return self.engine != "torch" or self.dtype == "int8"

    def __getstate__(self):  # a compiled function does not pickle: rebuilt on load
        state = dict(super().__getstate__())  # a copy: the base may return __dict__ itself
        state.pop("_forward_features", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if hasattr(self, "backbone_"):
            self._compile_forward()

    def transform(self, X, return_cached=False):
        """Embed the slices of each volume.

        Parameters
        ----------
        X : list of paths, 3D arrays or 2D images
            NIfTI files (``.nii``, ``.nii.gz``), folders of a DICOM series (see
            :func:`~sklearn_dinoatten.volumes.series_selection`) or arrays ``(x, y, z)``;
            shapes may differ.
        return_cached : bool, default=False
            Also return, per volume, whether the cache (memory or ``cache_dir``) held its
            whole embedding, so that the backbone did not run for it in this call.

        Returns
        -------
        embeddings : ndarray of shape (n_volumes, n_slices_max, ``embedding_dim_``)
            float32; rows of NaN pad volumes with fewer slices than the widest. With
            ``feature="patch"``: ``(n_volumes, n_slices_max * n_patches, embedding_dim_)``.
        cached : ndarray of bool of shape (n_volumes,)
            With ``return_cached`` only.
        """
        check_fitted(self)
        embeddings, cached = self._embed(check_volumes(X, images=True))
        width = (self.n_slices * len(axes_of(self.axis)) if self.n_slices
                 else max(len(embedding) for embedding in embeddings))
        rows = width * self.rows_per_slice_
        out = np.full((len(embeddings), rows, self.embedding_dim_), np.nan, dtype=np.float32)
        for i, embedding in enumerate(embeddings):
            embedding = embedding.reshape(-1, self.embedding_dim_)
            out[i, : len(embedding)] = embedding
        return (out, cached) if return_cached else out
