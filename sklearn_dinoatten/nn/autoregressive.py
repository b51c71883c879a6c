"""A spatial autoregressive CNN over a grid of patch embeddings (PixelCNN-style masks).

Each output position sees only the positions before it in raster order (rows top to
bottom, left to right within a row), so the network predicts every patch embedding
from the patches before it, in one forward pass.
"""

import torch
from torch import nn


class MaskedConv2d(nn.Conv2d):
    """A 2D convolution whose kernel is masked to the positions before its centre in
    raster order; ``include_center`` (PixelCNN's type B) keeps the centre too, type A
    does not. Dilation spreads the same mask over a wider field."""

    def __init__(self, in_channels, out_channels, kernel_size, include_center, dilation=1):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation,
                         padding=dilation * (kernel_size // 2))
        mask = torch.zeros(kernel_size, kernel_size)
        center = kernel_size // 2
        mask[:center] = 1
        mask[center, : center + int(include_center)] = 1
        self.register_buffer("mask", mask[None, None])

    def forward(self, x):
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class SpatialARNet(nn.Module):
    """Predict each patch embedding of a ``(batch, dim, h, w)`` grid from the ones before it.

    A type-A masked convolution, then type-B ones with the given dilations (GELU
    between), then a 1x1 convolution to ``dim`` outputs (``2 * dim`` with ``gaussian``:
    a mean and a log-variance per channel).
    """

    def __init__(self, dim, hidden=128, kernel_size=3, dilations=(1, 2, 4, 1),
                 gaussian=False):
        super().__init__()
        layers = [MaskedConv2d(dim, hidden, kernel_size, include_center=False), nn.GELU()]
        for dilation in dilations:
            layers += [MaskedConv2d(hidden, hidden, kernel_size, include_center=True,
                                    dilation=dilation), nn.GELU()]
        layers.append(nn.Conv2d(hidden, dim * (2 if gaussian else 1), 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, grid):
        return self.layers(grid)


def prediction_error(prediction, target, *, error="squared"):
    """Per-position error ``(batch, h, w)`` of predicted patch embeddings.

    ``"squared"``: mean squared error over channels; ``"cosine"``: 1 - cosine
    similarity; ``"gaussian"``: the per-channel Gaussian negative log-likelihood (up to
    a constant) with the predicted mean and log-variance, averaged over channels.
    """
    if error == "squared":
        return (prediction - target).pow(2).mean(dim=1)
    if error == "cosine":
        return 1 - torch.cosine_similarity(prediction, target, dim=1)
    if error == "gaussian":
        mean, log_var = prediction.chunk(2, dim=1)
        log_var = log_var.clamp(-10, 10)
        return 0.5 * (log_var + (target - mean).pow(2) * torch.exp(-log_var)).mean(dim=1)
    raise ValueError(f"error must be 'squared', 'cosine' or 'gaussian'; got {error!r}.")


class MeanPredictionError(nn.Module):
    """The training loss: :func:`prediction_error` averaged over the batch and grid."""

    def __init__(self, error="squared"):
        super().__init__()
        self.error = error

    def forward(self, prediction, target):
        return prediction_error(prediction, target, error=self.error).mean()
