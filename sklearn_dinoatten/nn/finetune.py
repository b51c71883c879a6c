"""A 2D backbone trained end to end with a slice aggregator on top."""

import torch
from torch import nn

from .pooling import AttentionPoolNet
from .transformer import SliceTransformerNet

AGGREGATORS = ("transformer", "attention")
FREEZE_MODES = ("last_n_blocks", "none", "all")


class FineTunedSliceNet(nn.Module):
    """Backbone CLS token per slice, then a slice aggregator.

    ``forward`` takes preprocessed slices ``(batch, slices, channels, side, side)``
    where all-NaN slices are padding, runs the backbone on the real slices only (under
    bfloat16 autocast on CUDA when ``mixed_precision``) and returns the aggregator's
    ``(logits, embedding, attention)``.
    """

    def __init__(self, backbone, n_classes, aggregator="transformer", mixed_precision=True):
        super().__init__()
        if aggregator not in AGGREGATORS:
            raise ValueError(f"aggregator must be one of {AGGREGATORS}; got {aggregator!r}.")
        self.backbone = backbone
        self.mixed_precision = mixed_precision
        dim = int(backbone.num_features)
        self.aggregator = (SliceTransformerNet(dim, n_classes) if aggregator == "transformer"
                           else AttentionPoolNet(dim, n_classes))

    def forward(self, x):
        real = ~torch.isnan(x).flatten(2).all(dim=2)
        with torch.autocast("cuda", dtype=torch.bfloat16,
                            enabled=self.mixed_precision and x.is_cuda):
            cls = self.backbone.forward_features(x[real])[:, 0]
        slices = torch.full((*x.shape[:2], cls.shape[-1]), float("nan"), device=x.device)
        slices[real] = cls.float()
        return self.aggregator(slices)


def set_trainable(backbone, *, freeze="last_n_blocks", n_trainable_blocks=2):
    """Choose what of a timm vision transformer trains: nothing (``"all"`` frozen), all of
    it (``"none"``), or its last ``n_trainable_blocks`` blocks and final norm."""
    if freeze == "all":
        backbone.requires_grad_(False)
    elif freeze == "none":
        backbone.requires_grad_(True)
    elif freeze == "last_n_blocks":
        blocks = getattr(backbone, "blocks", None)
        if blocks is None:
            raise ValueError("freeze='last_n_blocks' needs a timm vision transformer (blocks).")
        if not 1 <= n_trainable_blocks <= len(blocks):
            raise ValueError(f"n_trainable_blocks must be in [1, {len(blocks)}]; got "
                             f"{n_trainable_blocks!r}.")
        backbone.requires_grad_(False)
        for block in blocks[-n_trainable_blocks:]:
            block.requires_grad_(True)
        backbone.norm.requires_grad_(True)
    else:
        raise ValueError(
            f"freeze must be 'none', 'all' or 'last_n_blocks'; got {freeze!r}."
        )
    return backbone
