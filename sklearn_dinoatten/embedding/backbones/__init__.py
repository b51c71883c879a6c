"""Frozen 2D backbones of every supported library behind one interface, that of a timm
vision transformer: timm model names, and by prefix ``hf:`` (transformers),
``open_clip:`` and ``torchvision:``."""

from ._adapters import ADAPTER_PREFIXES, OpenClipTower, TorchvisionCNN, TransformersViT, adapted
from ._build import (
    SAVED_WEIGHTS,
    Backbone,
    build_backbone,
    frozen_backbone,
    timm_input_normalization,
    weights_fingerprint,
)

__all__ = [
    "ADAPTER_PREFIXES", "SAVED_WEIGHTS", "Backbone", "OpenClipTower", "TorchvisionCNN",
    "TransformersViT", "adapted", "build_backbone", "frozen_backbone",
    "timm_input_normalization", "weights_fingerprint",
]
