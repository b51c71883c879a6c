"""Torch modules only: the aggregators over slice embeddings and the losses that train
them, the 3D ResNet, the fine-tuned slice network, the anomaly networks and the coreset."""

from .losses import CompositeLoss, class_variance_loss, supervised_contrastive_loss
from .pooling import (
    POOLINGS,
    AttentionPooling,
    AttentionPoolNet,
    MaxPooling,
    MeanPooling,
    make_pooling,
)
from .resnet3d import RESNET_DEPTHS, RESNET_STEMS, ResNet3DNet
from .scmil import AnnealedSupConLoss, SCMILNet
from .transformer import PreNormLayer, SliceTransformerNet

__all__ = [
    "POOLINGS",
    "RESNET_DEPTHS",
    "RESNET_STEMS",
    "AnnealedSupConLoss",
    "AttentionPooling",
    "AttentionPoolNet",
    "MaxPooling",
    "MeanPooling",
    "PreNormLayer",
    "ResNet3DNet",
    "SCMILNet",
    "SliceTransformerNet",
    "make_pooling",
    "CompositeLoss",
    "class_variance_loss",
    "supervised_contrastive_loss",
]
