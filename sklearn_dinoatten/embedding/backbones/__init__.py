"""Frozen 2D backbones of every supported library behind one interface, that of a timm
vision transformer (``forward_features`` returns the prefix tokens, then the patches).

One module per library: timm model names, and by prefix ``hf:`` (transformers),
``open_clip:`` and ``torchvision:``; :func:`build_backbone` looks the prefix up.
"""

from ._backbone import (
    SAVED_WEIGHTS,
    Backbone,
    BackboneInfo,
    frozen_backbone,
    update_digest,
    weights_fingerprint,
)
from ._build import ADAPTER_PREFIXES, adapted, build_backbone
from ._open_clip import OpenClipTower
from ._timm import input_normalization as timm_input_normalization
from ._torchvision import TorchvisionCNN
from ._transformers import TransformersViT

__all__ = [
    "ADAPTER_PREFIXES", "SAVED_WEIGHTS", "Backbone", "BackboneInfo", "OpenClipTower",
    "TorchvisionCNN", "TransformersViT", "adapted", "build_backbone", "frozen_backbone",
    "timm_input_normalization", "update_digest", "weights_fingerprint",
]
