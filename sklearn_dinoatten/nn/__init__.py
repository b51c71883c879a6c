"""Torch modules only: the aggregators over slice embeddings and the losses that train
them, the 3D ResNet, the fine-tuned slice network, the anomaly networks and the coreset."""

from .autoregressive import MeanPredictionError, SpatialARNet, prediction_error
from .coreset import greedy_coreset
from .finetune import AGGREGATORS, FREEZE_MODES, FineTunedSliceNet, set_trainable
from .losses import (
    CompositeLoss,
    RegressionLoss,
    class_variance_loss,
    rank_n_contrast_loss,
    supervised_contrastive_loss,
)
from .pooling import (
    POOLINGS,
    AttentionPooling,
    AttentionPoolNet,
    MaxPooling,
    MeanPooling,
    make_pooling,
)
from .resnet3d import (
    RESNET_DEPTHS,
    RESNET_STEMS,
    ResNet3DNet,
    check_resnet_volumes,
    refresh_batch_norm,
    resnet_downsampling,
)
from .scmil import AnnealedSupConLoss, SCMILNet
from .transformer import PreNormLayer, SliceTransformerNet

__all__ = [
    "AGGREGATORS",
    "FREEZE_MODES",
    "POOLINGS",
    "RESNET_DEPTHS",
    "RESNET_STEMS",
    "AnnealedSupConLoss",
    "AttentionPooling",
    "AttentionPoolNet",
    "FineTunedSliceNet",
    "MaxPooling",
    "MeanPooling",
    "MeanPredictionError",
    "PreNormLayer",
    "ResNet3DNet",
    "SCMILNet",
    "SliceTransformerNet",
    "SpatialARNet",
    "check_resnet_volumes",
    "greedy_coreset",
    "make_pooling",
    "prediction_error",
    "refresh_batch_norm",
    "resnet_downsampling",
    "set_trainable",
    "CompositeLoss",
    "RegressionLoss",
    "class_variance_loss",
    "rank_n_contrast_loss",
    "supervised_contrastive_loss",
]
