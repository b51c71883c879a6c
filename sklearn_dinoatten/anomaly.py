"""Unsupervised anomaly detection on DINO patch embeddings, with scikit-learn's
outlier-detector API.

Both detectors are fitted on normal images or volumes only. A frozen backbone embeds
every patch of every slice (``DinoSliceEmbedder(feature="patch")``, with its cache);
each patch gets an anomaly score; a slice's score reduces its patches', a volume's
reduces its slices'. ``score_samples`` is high for normal samples, as in scikit-learn.

- :class:`SpatialARAnomalyDetector`: a small masked CNN predicts each patch embedding
  from the patches before it in raster order; the score is the prediction error. One
  forward pass per image, a model of a few hundred kB, no memory bank.
- :class:`MemoryBankAnomalyDetector`: the distance of each patch to its nearest normal
  patch in a memory bank (PatchCore-style, optionally a greedy coreset of it).
"""

import hashlib

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._docs import shared_docs
from ._skorch import InterruptibleNet, unfitted_on_error
from ._tags import VolumeInputMixin
from ._validation import (
    DEVICE,
    NONE,
    RANDOM_STATE,
    VERBOSE,
    Constraint,
    check_params,
    integer,
    integers,
    options,
    real,
)
from .devices import resolve_device, seeded_torch
from .embedding import DinoSliceEmbedder
from .nn.autoregressive import MeanPredictionError, SpatialARNet, prediction_error
from .nn.coreset import greedy_coreset
from .preprocessing import grid_to_slices
from .slicing import axes_of
from .volumes import check_volumes, load_scan, place_slices

ERRORS = ("squared", "cosine", "gaussian")
SLICE_REDUCTIONS = ("max", "mean")

COMMON_PARAMETERS = """embedder : DinoSliceEmbedder or None, default=None
        The patch embedder (cloned; its ``feature`` is set to ``"patch"``). ``None``:
        ``DinoSliceEmbedder(feature="patch")``, DINOv2 ViT-S/14 at 224 px.
    reduction : "max", "mean" or float in (0, 1], default="max"
        A slice's score from its patches' scores: the largest, the mean, or the mean of
        the given top fraction (e.g. ``0.01`` for the top 1 %).
    slice_reduction : {"max", "mean"}, default="max"
        A volume's score from its slices' scores (2D images have one slice)."""

COMMON_TAIL = """contamination : float in (0, 0.5], default=0.1
        The share of outliers expected in the training data: sets ``offset_`` so that
        ``predict`` flags that share of it, as in :class:`~sklearn.covariance.EllipticEnvelope`."""

COMMON_ATTRIBUTES = """embedder_ : DinoSliceEmbedder
        The fitted patch embedder.
    offset_ : float
        ``decision_function = score_samples - offset_``.
    mean_, scale_ : ndarray of shape (dim,)
        Per-channel mean and standard deviation of the normal patch embeddings, used
        to standardise every embedding."""


COMMON_CONSTRAINTS = {
    "embedder": [NONE, Constraint(
        lambda v: isinstance(v, DinoSliceEmbedder) and len(axes_of(v.axis)) == 1,
        "a DinoSliceEmbedder with one slicing axis")],
    "reduction": [options("max", "mean"), real(0, 1, low_open=True)],
    "slice_reduction": [options(*SLICE_REDUCTIONS)],
    "contamination": [real(0, 0.5, low_open=True)],
    "device": [DEVICE],
    "random_state": [RANDOM_STATE],
}


_docs = shared_docs(common=COMMON_PARAMETERS, contamination=COMMON_TAIL,
                    attributes=COMMON_ATTRIBUTES)


class BaseDinoAnomalyDetector(VolumeInputMixin, OutlierMixin, BaseEstimator):
    """Shared by the detectors: patch embedding, standardisation, reductions, threshold
    and anomaly maps. Subclasses define ``_fit_patches(grids)`` and ``_patch_errors(grids)``
    on standardised grids ``(n_slices, h, w, dim)``."""

    def fit(self, X, y=None):
        """Fit on normal images or volumes only.

        Parameters
        ----------
        X : list of paths, 3D arrays (volumes) or 2D arrays (images)
        y : ignored

        Returns
        -------
        self
        """
        check_params(self)
        with unfitted_on_error(self):  # an interrupted or failed fit leaves no model
            self.device_ = resolve_device(self.device)
            embedder = DinoSliceEmbedder() if self.embedder is None else self.embedder
            self.embedder_ = clone(embedder).set_params(feature="patch").fit(X)
            grids = self._grids(X, standardize=False)
            real = ~np.isnan(grids).all(axis=(2, 3, 4))
            self.mean_ = grids[real].mean(axis=(0, 1, 2))
            self.scale_ = np.maximum(grids[real].std(axis=(0, 1, 2)), 1e-6)
            slices = ((grids[real] - self.mean_) / self.scale_).astype(np.float32)
            self._fit_patches(slices)
            errors = np.full(grids.shape[:4], np.nan)
            errors[real] = self._patch_errors(slices)
            self.offset_ = float(np.percentile(-self._reduce(errors),
                                               100 * self.contamination))
        return self

    def score_samples(self, X):
        """Normality of each sample: minus its anomaly score (higher is more normal)."""
        check_is_fitted(self)
        return -self._reduce(self._errors(self._grids(X)))

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """``+1`` for inliers (normal), ``-1`` for outliers (anomalies)."""
        return np.where(self.decision_function(X) >= 0, 1, -1)

    def anomaly_map(self, X):
        """Per-patch anomaly scores upsampled to each input's own shape.

        Returns a list with, per sample, an array of the image's ``(h, w)`` or the
        volume's (RAS) shape; slices the embedder did not keep are 0.
        """
        check_is_fitted(self)
        errors = self._errors(self._grids(X))
        maps = []
        embedder = self.embedder_
        for volume, volume_errors in zip(check_volumes(X, images=True), errors, strict=True):
            data, voxel_size = load_scan(volume, images=True, spacing=embedder.spacing)
            (kept,) = embedder._reader().slice_sets(data, voxel_size)  # one slicing axis
            planes = grid_to_slices(volume_errors[: len(kept.indices)], *kept.stack.shape[1:],
                                    embedder.image_size, kept.pixel_size,
                                    embedder.pixel_spacing)
            maps.append(planes[0] if data.ndim == 2 else place_slices(
                planes, kept.indices, data.shape, kept.axis, kept.region))
        return maps

    def _grids(self, X, standardize=True):
        """Patch embeddings ``(n, n_slices, h, w, dim)``, NaN on padding slices."""
        tokens = self.embedder_.transform(X)
        h, w = self.embedder_.grid_shape_
        grids = tokens.reshape(len(tokens), -1, h, w, tokens.shape[-1])
        return (grids - self.mean_) / self.scale_ if standardize else grids

    def _errors(self, grids):
        """Per-patch anomaly scores ``(n, n_slices, h, w)``, NaN on padding slices."""
        real = ~np.isnan(grids).all(axis=(2, 3, 4))
        errors = np.full(grids.shape[:4], np.nan)
        errors[real] = self._patch_errors(grids[real].astype(np.float32))
        return errors

    def _reduce(self, errors):
        """Sample scores from per-patch scores: patches -> slice, slices -> sample."""
        patches = errors.reshape(*errors.shape[:2], -1)
        if self.reduction == "max":
            per_slice = patches.max(axis=2)
        elif self.reduction == "mean":
            per_slice = patches.mean(axis=2)
        else:
            k = max(1, int(round(self.reduction * patches.shape[2])))
            per_slice = np.sort(patches, axis=2)[:, :, -k:].mean(axis=2)
        return (np.nanmax if self.slice_reduction == "max" else np.nanmean)(per_slice, axis=1)

    # For sklearn_dinoatten.persistence: the networks saved (the embedder's are saved
    # with it), an untrained one to receive them, and the loaded ones put to use.
    def _saved_modules(self):
        return {}

    def _empty_modules(self):
        return {}

    def _restore(self, modules):
        self.device_ = resolve_device(self.device)


class _PredictOwnInput(InterruptibleNet):
    """A skorch net whose target is its input: the criterion compares prediction and X."""

    def get_loss(self, y_pred, y_true, X=None, training=False):
        return self.criterion_(y_pred, X.to(y_pred.device))


@_docs
class SpatialARAnomalyDetector(BaseDinoAnomalyDetector):
    """Spatial autoregressive anomaly detection on DINO patch embeddings.

    A lightweight masked CNN (PixelCNN-style: a type-A masked convolution, then type-B
    ones, optionally dilated) is trained on normal data to predict each patch
    embedding from the patches before it in raster order. A patch's anomaly score is
    its prediction error. Works on 2D images and, slice by slice, on 3D volumes.

    Parameters
    ----------
    {common}
    hidden_channels : int, default=128
        Width of the masked convolutions.
    kernel_size : int, default=3
        Odd kernel size of the masked convolutions.
    dilations : tuple of int, default=(1, 2, 4, 1)
        Dilation of each type-B layer after the type-A one: their number sets the depth.
    error : {"squared", "cosine", "gaussian"}, default="squared"
        Squared error, cosine distance, or per-channel Gaussian negative log-likelihood
        (the network then also predicts a variance per channel).
    {contamination}
    lr : float, default=1e-3
        AdamW learning rate.
    max_epochs : int, default=30
    batch_size : int, default=32
        Slices per training batch.
    device : str, default="auto"
    random_state : int, RandomState or None, default=None
        Seeds initialisation and shuffling: a fixed value gives identical fits on the CPU.
    verbose : int, default=0
        ``1`` prints skorch's training table.

    Attributes
    ----------
    {attributes}
    net_ : skorch.NeuralNet
        The trained network (``net_.module_``) and its history.

    Examples
    --------
    >>> from sklearn_dinoatten import DinoSliceEmbedder
    >>> from sklearn_dinoatten.anomaly import SpatialARAnomalyDetector
    >>> from sklearn_dinoatten.datasets import make_anomaly_images
    >>> X, y = make_anomaly_images(n_normal=20, n_anomalous=4, random_state=0)
    >>> normal = [image for image, label in zip(X, y) if label == 1]
    >>> detector = SpatialARAnomalyDetector(
    ...     embedder=DinoSliceEmbedder(weights="random", image_size=56, verbose=0),
    ...     max_epochs=5, random_state=0).fit(normal)
    >>> detector.predict(X).shape, detector.anomaly_map(X[:1])[0].shape
    ((24,), (64, 64))
    """

    _constraints = {
        **COMMON_CONSTRAINTS,
        "hidden_channels": [integer(1)],
        "kernel_size": [Constraint(lambda v: integer(1).accepts(v) and v % 2 == 1,
                                   "an odd integer >= 1")],
        "dilations": [integers(1)],
        "error": [options(*ERRORS)],
        "lr": [real(0, low_open=True)],
        "max_epochs": [integer(1)],
        "batch_size": [integer(1)],
        "verbose": [VERBOSE],
    }

    def __init__(self, embedder=None, hidden_channels=128, kernel_size=3,
                 dilations=(1, 2, 4, 1), error="squared", reduction="max",
                 slice_reduction="max", contamination=0.1, lr=1e-3, max_epochs=30,
                 batch_size=32, device="auto", random_state=None, verbose=0):
        self.embedder = embedder
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.dilations = dilations
        self.error = error
        self.reduction = reduction
        self.slice_reduction = slice_reduction
        self.contamination = contamination
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _fit_patches(self, grids):
        with seeded_torch(self.random_state, self.device_):
            self.net_ = self._new_net(self._build_module(grids.shape[-1]))
            self.net_.fit(_channels_first(grids), None)

    def _build_module(self, dim):
        return SpatialARNet(dim, self.hidden_channels, self.kernel_size, tuple(self.dilations),
                            gaussian=self.error == "gaussian")

    def _new_net(self, module):
        return _PredictOwnInput(
            module,
            criterion=MeanPredictionError(self.error),
            optimizer=torch.optim.AdamW, lr=self.lr, max_epochs=self.max_epochs,
            batch_size=self.batch_size, train_split=None, iterator_train__shuffle=True,
            device=str(self.device_), verbose=self.verbose,
        )

    # For sklearn_dinoatten.persistence: see BaseDinoAnomalyDetector.
    def _saved_modules(self):
        return {"module": self.net_.module_}

    def _empty_modules(self):
        return {"module": self._build_module(len(self.mean_))}

    def _restore(self, modules):
        super()._restore(modules)
        self.net_ = self._new_net(modules["module"]).initialize()

    def _patch_errors(self, grids):
        module, errors = self.net_.module_.eval(), []
        with torch.inference_mode():
            for start in range(0, len(grids), self.batch_size):
                target = torch.from_numpy(_channels_first(grids[start:start + self.batch_size]))
                target = target.to(self.device_)
                errors.append(prediction_error(module(target), target, self.error).cpu())
        return torch.cat(errors).double().numpy()


@_docs
class MemoryBankAnomalyDetector(BaseDinoAnomalyDetector):
    """Nearest-neighbour anomaly detection on DINO patch embeddings (PatchCore-style).

    Every normal patch embedding goes into a memory bank (or a greedy coreset of it); a
    patch's anomaly score is the Euclidean distance to its nearest neighbour in the
    bank. The baseline :class:`SpatialARAnomalyDetector` is compared with: no training,
    but memory and scoring time grow with the training set.

    A slice seen in ``fit`` (recognised by its embedding) is scored against the patches
    of the other training slices, in ``fit`` and whenever it is scored again: its own
    patches would give it a score of 0. So ``fit_predict`` and ``predict`` on the
    training data flag the ``contamination`` share of it.

    Parameters
    ----------
    {common}
    coreset_ratio : float in (0, 1] or None, default=None
        Keep this share of the bank, chosen by greedy farthest-point sampling on a
        random projection (as in PatchCore); ``None`` keeps every patch.
    {contamination}
    device : str, default="auto"
    random_state : int, RandomState or None, default=None
        Seeds the coreset's projection and first point.

    Attributes
    ----------
    {attributes}
    memory_bank_ : ndarray of shape (n_kept_patches, dim)
        The standardised normal patch embeddings kept.

    Examples
    --------
    >>> from sklearn_dinoatten.anomaly import MemoryBankAnomalyDetector
    >>> from sklearn_dinoatten.datasets import make_anomaly_images
    >>> from sklearn_dinoatten import DinoSliceEmbedder
    >>> X, y = make_anomaly_images(n_normal=20, n_anomalous=4, random_state=0)
    >>> embedder = DinoSliceEmbedder(weights="random", image_size=56, verbose=0)
    >>> detector = MemoryBankAnomalyDetector(embedder, coreset_ratio=0.5, random_state=0)
    >>> detector.fit([x for x, label in zip(X, y) if label == 1]).memory_bank_.shape
    (160, 384)
    """

    def __init__(self, embedder=None, coreset_ratio=None, reduction="max",
                 slice_reduction="max", contamination=0.1, device="auto", random_state=None):
        self.embedder = embedder
        self.coreset_ratio = coreset_ratio
        self.reduction = reduction
        self.slice_reduction = slice_reduction
        self.contamination = contamination
        self.device = device
        self.random_state = random_state

    _constraints = {
        **COMMON_CONSTRAINTS,
        "coreset_ratio": [NONE, real(0, 1, low_open=True)],
    }

    def _fit_patches(self, grids):
        ratio = self.coreset_ratio
        bank = grids.reshape(-1, grids.shape[-1])
        owner = np.repeat(np.arange(len(grids)), np.prod(grids.shape[1:3]))
        if ratio is not None and ratio < 1:
            keep = greedy_coreset(bank, max(1, int(ratio * len(bank))),
                                  check_random_state(self.random_state), self.device_)
            bank, owner = bank[keep], owner[keep]
        self.memory_bank_, self._bank_owner = bank, owner
        self._slice_digests = np.array([_digest(grid) for grid in grids])

    def _patch_errors(self, grids):
        """Distance of each patch to the nearest bank patch not of the same training slice."""
        bank = torch.from_numpy(self.memory_bank_).to(self.device_)
        owner = torch.from_numpy(self._bank_owner).to(self.device_)
        first_seen = {digest: i for i, digest in reversed(list(enumerate(self._slice_digests)))}
        own_slice = torch.tensor([first_seen.get(_digest(grid), -1) for grid in grids],
                                 device=self.device_)  # -1: not a training slice
        patches = np.prod(grids.shape[1:3])
        queries = torch.from_numpy(grids.reshape(-1, grids.shape[-1])).to(self.device_)
        distances = []
        for start in range(0, len(queries), 1024):
            chunk = torch.cdist(queries[start:start + 1024], bank)
            query_slice = torch.arange(start, start + len(chunk), device=self.device_) // patches
            own = owner[None, :] == own_slice[query_slice][:, None]
            distances.append(chunk.masked_fill(own, float("inf")).min(dim=1).values.cpu())
        return torch.cat(distances).double().numpy().reshape(grids.shape[:3])


def _digest(grid):
    """A slice's identity: the hash of its standardised patch embeddings."""
    return hashlib.blake2b(np.ascontiguousarray(grid).tobytes(), digest_size=16).hexdigest()


def _channels_first(grids):
    """``(n, h, w, dim)`` -> contiguous ``(n, dim, h, w)``."""
    return np.ascontiguousarray(grids.transpose(0, 3, 1, 2))
