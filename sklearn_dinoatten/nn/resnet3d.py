"""A 3D ResNet (MONAI) for whole volumes, with the package's module interface."""

import torch
from torch import nn

RESNET_DEPTHS = (10, 18, 34, 50)


class ResNet3DNet(nn.Module):
    """MONAI's 3D ResNet on one-channel volumes ``(batch, x, y, z)``.

    ``forward`` returns ``(logits, embedding, weights)``: the pooled features, and an
    empty ``(batch, 0)`` tensor, since a volume model has no slice weights.
    """

    def __init__(self, n_classes, depth=18, widen_factor=1.0):
        super().__init__()
        from monai.networks import nets

        if depth not in RESNET_DEPTHS:
            raise ValueError(f"depth must be one of {RESNET_DEPTHS}; got {depth!r}.")
        self.features = getattr(nets, f"resnet{depth}")(
            spatial_dims=3, n_input_channels=1, feed_forward=False, widen_factor=widen_factor
        )
        with torch.no_grad():
            width = self.features(torch.zeros(2, 1, 32, 32, 32)).shape[1]
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, x):
        embedding = self.features(x.unsqueeze(1))
        return self.classifier(embedding), embedding, embedding.new_zeros(len(x), 0)
