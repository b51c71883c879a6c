"""Torch modules only: aggregators over slice embeddings and the losses that train them."""

from .attention import AttentionPooling, AttentionPoolNet
from .losses import CompositeLoss, class_variance_loss, supervised_contrastive_loss

__all__ = [
    "AttentionPooling",
    "AttentionPoolNet",
    "CompositeLoss",
    "class_variance_loss",
    "supervised_contrastive_loss",
]
