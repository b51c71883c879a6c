"""What both anomaly detectors share: patch embedding, standardisation, the reductions of
patch scores to slice and volume scores, the threshold and the anomaly maps.
"""

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, clone

from ..embedding import DinoSliceEmbedder
from ..utils._devices import resolve_device
from ..utils._docs import shared_docs
from ..utils._fit import FitContractMixin, check_fitted, fit_context
from ..utils._persistable import PersistableMixin
from ..utils._tags import VolumeInputMixin
from ..utils._validation import (
    DEVICE,
    NONE,
    RANDOM_STATE,
    Constraint,
    array,
    instance,
    options,
    real,
)
from ..volumes import axes_of, check_volumes, grid_to_slices, load_scan, place_slices

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


detector_docs = shared_docs(common=COMMON_PARAMETERS, contamination=COMMON_TAIL,
                    attributes=COMMON_ATTRIBUTES)


class BaseDinoAnomalyDetector(FitContractMixin, PersistableMixin, VolumeInputMixin,
                              OutlierMixin, BaseEstimator):
    """Shared by the detectors: patch embedding, standardisation, reductions, threshold
    and anomaly maps. Subclasses define ``_fit_patches(grids)`` and ``_patch_errors(grids)``
    on standardised grids ``(n_slices, h, w, dim)``."""

    _fitted_constraints = {
        "embedder_": [instance(DinoSliceEmbedder, "a fitted DinoSliceEmbedder")],
        "mean_": [array("f", 1, "a 1D array of finite floats")],
        "scale_": [array("f", 1, "a 1D array of finite floats")],
        "offset_": [real()],
    }

    # The threshold and the scores follow these; the subclasses add their own.
    _params_fixed_by_fit = ("embedder", "reduction", "slice_reduction", "contamination")

    @fit_context
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
        check_fitted(self)
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
        check_fitted(self)
        errors = self._errors(self._grids(X))
        maps = []
        embedder = self.embedder_
        for volume, volume_errors in zip(check_volumes(X, images=True), errors, strict=True):
            data, voxel_size = load_scan(volume, images=True, spacing=embedder.spacing)
            (kept,) = embedder.slice_reader().slice_sets(data, voxel_size)  # one slicing axis
            planes = grid_to_slices(volume_errors[: len(kept.indices)], *kept.stack.shape[1:],
                                    image_size=embedder.image_size, pixel_size=kept.pixel_size,
                                    pixel_spacing=embedder.pixel_spacing)
            maps.append(planes[0] if data.ndim == 2 else place_slices(
                planes, kept.indices, data.shape, kept.axis, region=kept.region))
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

    # For sklearn_dinoatten.persistence: no network of its own here (the embedder's are
    # saved with it); the device put to use on load.
    def _restore(self, modules):
        self.device_ = resolve_device(self.device)
