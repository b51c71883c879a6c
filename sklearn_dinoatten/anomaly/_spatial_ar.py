"""Spatial autoregressive anomaly detection: a masked CNN predicts each patch embedding
from the patches before it; the score is the prediction error.
"""

import numpy as np
import torch

from ..nn import MeanPredictionError, SpatialARNet, prediction_error
from ..utils._devices import seeded_torch
from ..utils._skorch import InterruptibleNet
from ..utils._validation import (
    VERBOSE,
    Constraint,
    integer,
    integers,
    options,
    real,
)
from ._base import COMMON_CONSTRAINTS, BaseDinoAnomalyDetector, detector_docs

ERRORS = ("squared", "cosine", "gaussian")


class _PredictOwnInput(InterruptibleNet):
    """A skorch net whose target is its input: the criterion compares prediction and X."""

    def get_loss(self, y_pred, y_true, X=None, training=False):
        return self.criterion_(y_pred, X.to(y_pred.device))


@detector_docs
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

    _params_fixed_by_fit = (*BaseDinoAnomalyDetector._params_fixed_by_fit, "hidden_channels",
                            "kernel_size", "dilations", "error")

    def __init__(self, *, embedder=None, hidden_channels=128, kernel_size=3,
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
                errors.append(prediction_error(module(target), target, error=self.error).cpu())
        return torch.cat(errors).double().numpy()


def _channels_first(grids):
    """``(n, h, w, dim)`` -> contiguous ``(n, dim, h, w)``."""
    return np.ascontiguousarray(grids.transpose(0, 3, 1, 2))
