"""VolumeResampler: volumes of any shape -> one array of volumes of one shape."""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, TransformerMixin

from ..utils._fit import FitContractMixin, check_fitted, fit_context
from ..utils._persistable import PersistableMixin
from ..utils._tags import VolumeInputMixin
from ..utils._validation import integers, options
from ._preprocessing import normalize_intensity
from ._scans import check_volumes, load_volume

VOLUME_NORMALIZATIONS = ("zscore", "minmax")


class VolumeResampler(FitContractMixin, PersistableMixin, VolumeInputMixin, TransformerMixin,
                      BaseEstimator):
    """Load volumes, normalise their intensities and resample them to one shape.

    For models that take whole volumes (:class:`ResNet3DClassifier`). Files are
    reoriented to RAS as everywhere in the package.

    Parameters
    ----------
    shape : tuple of 3 ints, default=(64, 64, 64)
        Output shape ``(x, y, z)``; trilinear interpolation.
    normalization : {"zscore", "minmax"}, default="zscore"
        ``"zscore"``: clipped to the 0.5/99.5 percentiles and standardised;
        ``"minmax"``: scaled to [0, 1]; both per volume.

    Examples
    --------
    >>> from sklearn_dinoatten import VolumeResampler
    >>> from sklearn_dinoatten.datasets import make_volumes
    >>> X, y = make_volumes(n_samples=3, shape=(40, 48, 20), random_state=0)
    >>> VolumeResampler(shape=(32, 32, 32)).fit_transform(X).shape
    (3, 32, 32, 32)
    """

    _constraints = {
        "shape": [integers(1, length=3)],
        "normalization": [options(*VOLUME_NORMALIZATIONS)],
    }

    _params_fixed_by_fit = ("shape", "normalization")
    _fitted_constraints = {"shape_": [integers(1, length=3)]}

    def __init__(self, *, shape=(64, 64, 64), normalization="zscore"):
        self.shape = shape
        self.normalization = normalization

    @fit_context
    def fit(self, X, y=None):
        """Check the parameters and ``X``; nothing is learned."""
        check_volumes(X)
        self.shape_ = tuple(int(side) for side in self.shape)
        return self

    def transform(self, X):
        """Return float32 volumes ``(n_volumes, *shape)``."""
        check_fitted(self)
        volumes = check_volumes(X)
        out = np.empty((len(volumes), *self.shape_), dtype=np.float32)
        for i, volume in enumerate(volumes):
            data = load_volume(volume, index=i)
            if self.normalization == "zscore":
                data = normalize_intensity(data, method="zscore")
            else:
                data = (data - data.min()) / (data.max() - data.min())
            resized = F.interpolate(torch.from_numpy(data)[None, None], size=self.shape_,
                                    mode="trilinear", align_corners=False)
            out[i] = resized[0, 0].numpy()
        return out
