"""A 3D ResNet (MONAI) for whole volumes, with the package's module interface."""

import numpy as np
import torch
from sklearn.utils.validation import check_array
from torch import nn

from ..utils._options import RESNET_DEPTHS
from ..utils._options import RESNET_STEMS as STEM_NAMES

# The first layer of each stem: (convolution size, its stride, max pooling after it).
_STEM_LAYERS = {"standard": (7, 1, True), "strided": (7, 2, True), "small": (3, 1, False)}
RESNET_STEMS = {name: _STEM_LAYERS[name] for name in STEM_NAMES}


def resnet_downsampling(stem):
    """How many input voxels per side make one voxel of the deepest feature map."""
    _, stride, max_pool = RESNET_STEMS[stem]
    return 8 * stride * (2 if max_pool else 1)  # layers 2 to 4 halve the side each


def check_resnet_volumes(X, stem, *, volume_shape=None, estimator="the 3D ResNet"):
    """``X`` as float32 volumes of one shape ``(n_volumes, x, y, z)`` that a 3D ResNet with
    ``stem`` takes: every side at least one voxel more than :func:`resnet_downsampling`,
    and ``volume_shape`` (the fitted one) where given. ``estimator`` names it in errors."""
    X = check_array(X, allow_nd=True, dtype=np.float32, input_name="X")
    if X.ndim != 4:
        raise ValueError(
            "X must be volumes of one shape, (n_volumes, x, y, z); got shape "
            f"{X.shape}. Resample them first, e.g. with VolumeResampler."
        )
    if volume_shape is None:
        smallest = resnet_downsampling(stem) + 1
        if min(X.shape[1:]) < smallest:
            raise ValueError(
                f"Volumes of shape {X.shape[1:]} are too small for a 3D ResNet with "
                f"stem={stem!r}: every side must be at least {smallest} voxels "
                "(VolumeResampler(shape=...) can resize them; stem='small' takes 9)."
            )
    elif tuple(X.shape[1:]) != tuple(volume_shape):
        raise ValueError(
            f"X has volumes of shape {X.shape[1:]}, but {estimator} was fitted on "
            f"{tuple(volume_shape)}: resample them to that shape (e.g. with the same "
            "VolumeResampler)."
        )
    return X


class ResNet3DNet(nn.Module):
    """MONAI's 3D ResNet on one-channel volumes ``(batch, x, y, z)``.

    ``stem`` names the first layer (see :data:`RESNET_STEMS`). ``forward`` returns
    ``(logits, embedding, weights)``: the pooled features, and an empty ``(batch, 0)``
    tensor, since a volume model has no slice weights.
    """

    def __init__(self, n_classes, depth=18, widen_factor=1.0, stem="standard"):
        super().__init__()
        from monai.networks import nets

        if depth not in RESNET_DEPTHS:
            raise ValueError(f"depth must be one of {RESNET_DEPTHS}; got {depth!r}.")
        if stem not in RESNET_STEMS:
            raise ValueError(f"stem must be one of {tuple(RESNET_STEMS)}; got {stem!r}.")
        size, stride, max_pool = RESNET_STEMS[stem]
        self.features = getattr(nets, f"resnet{depth}")(
            spatial_dims=3, n_input_channels=1, feed_forward=False, widen_factor=widen_factor,
            conv1_t_size=size, conv1_t_stride=stride, no_max_pool=not max_pool,
        )
        # MONAI's ResNet leaves in_planes at the width of its last layer's output.
        self.classifier = nn.Linear(self.features.in_planes, n_classes)

    def forward(self, x):
        embedding = self.features(x.unsqueeze(1))
        return self.classifier(embedding), embedding, embedding.new_zeros(len(x), 0)


def refresh_batch_norm(module, X, *, batch_size, device):
    """Recompute the running statistics of ``module``'s batch-norm layers as the plain
    average over the inputs ``X`` (an array, batched by ``batch_size``) of the batch
    statistics its final weights give ("precise BN", Wu & Johnson 2021).

    Training leaves them an exponential average over the last batches, taken while the
    weights still moved: on a few batches per epoch they lag the final weights enough
    to shift every output in inference (a regressor's mean error of years). No weight
    changes; ``module`` is left in inference mode.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return module
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average of the batches that follow
    module.train()
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            module(torch.as_tensor(X[start:start + batch_size]).to(device))
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    return module.eval()
