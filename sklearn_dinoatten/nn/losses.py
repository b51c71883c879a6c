"""DinoAtten3D's composite loss: cross-entropy + SupCon + within-class variance; and the
point losses of a regressor.

Both embedding terms work on L2-normalised embeddings and are defined for every batch:
a sample with no positive in the batch contributes no SupCon term, a class with one
sample has zero variance, and a batch of one gives 0 for both.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..utils._options import REGRESSION_LOSSES


def supervised_contrastive_loss(embedding, labels, *, temperature=0.07):
    """SupCon (Khosla et al. 2020), averaged over anchors that have a positive."""
    n = embedding.shape[0]
    if n < 2:
        return embedding.sum() * 0.0
    z = F.normalize(embedding, dim=1)
    self_pair = torch.eye(n, dtype=torch.bool, device=z.device)
    similarity = (z @ z.T / temperature).masked_fill(self_pair, float("-inf"))
    log_prob = similarity - torch.logsumexp(similarity, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_pair
    n_positive = positive.sum(dim=1)
    has_positive = n_positive > 0
    if not has_positive.any():
        return embedding.sum() * 0.0
    per_anchor = -log_prob.masked_fill(~positive, 0.0).sum(dim=1)
    return (per_anchor[has_positive] / n_positive[has_positive]).mean()


def class_variance_loss(embedding, labels):
    """Mean squared distance of each normalised embedding to its class mean in the batch."""
    z = F.normalize(embedding, dim=1)
    classes, index = torch.unique(labels, return_inverse=True)
    sums = torch.zeros(len(classes), z.shape[1], dtype=z.dtype, device=z.device)
    sums.index_add_(0, index, z)
    counts = torch.bincount(index, minlength=len(classes)).to(z.dtype)
    means = sums / counts[:, None]
    return ((z - means[index]) ** 2).sum(dim=1).mean()


class CompositeLoss(nn.Module):
    """``CE + supcon_weight * SupCon + variance_weight * within-class variance``."""

    def __init__(self, supcon_weight=1.0, variance_weight=0.1, temperature=0.07,
                 class_weight=None):
        super().__init__()
        self.supcon_weight = supcon_weight
        self.variance_weight = variance_weight
        self.temperature = temperature
        self.register_buffer(
            "class_weight", None if class_weight is None else torch.as_tensor(class_weight)
        )

    def forward(self, logits, embedding, labels):
        loss = F.cross_entropy(logits, labels, weight=self.class_weight)
        if self.supcon_weight:
            loss = loss + self.supcon_weight * supervised_contrastive_loss(
                embedding, labels, temperature=self.temperature
            )
        if self.variance_weight:
            loss = loss + self.variance_weight * class_variance_loss(embedding, labels)
        return loss


def rank_n_contrast_loss(embedding, target, *, temperature=2.0):
    """Rank-N-Contrast (Zha et al., NeurIPS 2023): for each anchor ``i`` and other sample
    ``j``, ``j`` is pulled closer than every ``k`` whose target is at least as far from
    ``i``'s as ``j``'s is, so that the embeddings are ordered as the targets are.
    Similarity: the negative L2 distance of the L2-normalised embeddings, over
    ``temperature``. 0 for a batch of fewer than 3 samples."""
    n = embedding.shape[0]
    if n < 3:
        return embedding.sum() * 0.0
    z = F.normalize(embedding, dim=1)
    logits = -torch.cdist(z, z) / temperature
    distance = (target[:, None] - target[None, :]).abs()
    others = ~torch.eye(n, dtype=torch.bool, device=z.device)
    # negatives[i, j, k]: k (not i) is at least as far from i in target as j is
    negatives = (distance[:, None, :] >= distance[:, :, None]) & others[:, None, :]
    denominator = torch.logsumexp(logits[:, None, :].masked_fill(~negatives, float("-inf")),
                                  dim=2)
    return (denominator - logits)[others].mean()


class RegressionLoss(nn.Module):
    """A point loss of the first output column against the target: ``"mse"`` (squared
    error), ``"l1"`` (absolute error) or ``"huber"`` (squared within 1, absolute beyond:
    one standard deviation of a standardised target); plus ``rank_weight`` times the
    Rank-N-Contrast term of the embedding (:func:`rank_n_contrast_loss`), if not 0."""

    def __init__(self, loss="mse", rank_weight=0.0, temperature=2.0):
        super().__init__()
        if loss not in REGRESSION_LOSSES:
            raise ValueError(f"loss must be one of {REGRESSION_LOSSES}; got {loss!r}.")
        self.loss = loss
        self.rank_weight = rank_weight
        self.temperature = temperature

    def point_loss(self, outputs, target):
        """The loss of predictions ``outputs[:, 0]`` against ``target``, averaged."""
        prediction = outputs[:, 0]
        if self.loss == "mse":
            return F.mse_loss(prediction, target)
        if self.loss == "l1":
            return F.l1_loss(prediction, target)
        return F.huber_loss(prediction, target, delta=1.0)

    def forward(self, outputs, embedding, target):
        loss = self.point_loss(outputs, target)
        if self.rank_weight:
            loss = loss + self.rank_weight * rank_n_contrast_loss(
                embedding, target, temperature=self.temperature)
        return loss
