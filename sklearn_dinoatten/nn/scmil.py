"""SC-MIL: supervised-contrastive multiple-instance learning (Juyal et al., WACV 2024)."""

import torch.nn.functional as F
from torch import nn

from .losses import supervised_contrastive_loss
from .mlp import mlp
from .pooling import AttentionPooling, padding_mask, zero_padding


class SCMILNet(nn.Module):
    """Attention-MIL pooling, a projection head for SupCon and a linear classifier.

    ``forward`` takes ``(batch, slices, dim)`` with all-NaN rows as padding and returns
    ``(logits, projection, attention)``. The classifier reads the pooled bag embedding;
    the projection (``projection_dims``, L2-normalised in the loss) serves only SupCon.
    """

    def __init__(self, in_dim, n_classes, attention_dim=64, gated=True,
                 projection_dims=(256, 128)):
        super().__init__()
        self.pooling = AttentionPooling(in_dim, attention_dim, gated=gated)
        self.projection = mlp(in_dim, projection_dims)
        self.classifier = nn.Linear(in_dim, n_classes)

    def forward(self, x):
        mask = padding_mask(x)
        pooled, attention = self.pooling(zero_padding(x, mask), mask)
        return self.classifier(pooled), self.projection(pooled), attention


class AnnealedSupConLoss(nn.Module):
    """``ce_weight * CE + (1 - ce_weight) * SupCon``; ``ce_weight`` is set from outside
    (by the training loop) as it anneals from 0 to 1."""

    def __init__(self, temperature=0.07, class_weight=None):
        super().__init__()
        self.temperature = temperature
        self.ce_weight = 0.0
        self.register_buffer("class_weight", class_weight)

    def forward(self, logits, projection, labels):
        ce = F.cross_entropy(logits, labels, weight=self.class_weight)
        supcon = supervised_contrastive_loss(projection, labels, temperature=self.temperature)
        return self.ce_weight * ce + (1.0 - self.ce_weight) * supcon
