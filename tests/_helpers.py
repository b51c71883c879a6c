"""Helpers shared by the tests."""

import nibabel as nib
import numpy as np
import timm
import torch

# A small, fast configuration: ViT-S/14 at 28 px (2x2 patches), random weights.
FAST = dict(weights="random", image_size=28, verbose=0)


# Slices per backbone forward, across every copy of a CountingViT (clone deep-copies
# the module, but not this module-level list).
FORWARD_SLICES = []


class CountingViT(torch.nn.Module):
    """ViT-S/14 at 28 px that records how many slices each forward embeds."""

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.vit = timm.create_model("vit_small_patch14_dinov2", img_size=28, num_classes=0)
        self.num_prefix_tokens = self.vit.num_prefix_tokens
        self.num_features = self.vit.num_features

    @property
    def patch_embed(self):
        return self.vit.patch_embed

    def forward_features(self, x):
        FORWARD_SLICES.append(len(x))
        return self.vit.forward_features(x)


def save_nifti(path, data, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), path)
    return str(path)
