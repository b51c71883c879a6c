"""Turn a stack of 2D slices into backbone input.

Steps: intensity normalisation, zero-padding to a square (anatomy keeps its aspect
ratio), resizing to ``image_size``, gray replicated to three channels, and for
``"minmax"`` the ImageNet mean/std the backbone was trained with.
"""

import numpy as np
import torch
import torch.nn.functional as F

NORMALIZATIONS = ("minmax", "zscore")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_intensity(stack, method="minmax", percentiles=(0.5, 99.5)):
    """Normalise the intensities of a slice stack ``(n, h, w)``.

    ``"minmax"`` scales each slice to [0, 1] on its own (DinoAtten3D); a constant slice
    becomes 0. ``"zscore"`` clips the whole stack to the given percentiles, then
    standardises it (MST).
    """
    stack = np.asarray(stack, dtype=np.float32)
    # One new array each, changed in place after: a few copies of a volume at most.
    if method == "minmax":
        low = stack.min(axis=(1, 2), keepdims=True)
        span = stack.max(axis=(1, 2), keepdims=True) - low
        out = np.subtract(stack, low)  # a constant slice is 0 here and stays 0
        return np.divide(out, span, out=out, where=span > 0)
    if method == "zscore":
        low, high = np.percentile(stack, percentiles).astype(np.float32)
        out = np.clip(stack, low, high)
        # float64 sums: a constant stack has std exactly 0, not float32 rounding noise.
        mean, std = out.mean(dtype=np.float64), out.std(dtype=np.float64)
        out -= np.float32(mean)
        if std > 1e-6 * max(abs(mean), 1.0):
            out /= np.float32(std)
        return out
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}; got {method!r}.")


def to_backbone_input(stack, image_size, method="minmax"):
    """Preprocess a slice stack ``(n, h, w)`` into a float32 tensor ``(n, 3, s, s)``."""
    return to_channels(resize_stack(stack, image_size, method), method)


def resize_stack(stack, image_size, method="minmax"):
    """Normalise, pad to a square and resize a slice stack ``(n, h, w)`` at once: a
    float32 tensor ``(n, 1, s, s)``, one gray channel (a third of the memory of three)."""
    images = torch.from_numpy(_pad_to_square(normalize_intensity(stack, method)))[:, None]
    return F.interpolate(
        images, size=(image_size, image_size), mode="bilinear", antialias=True,
        align_corners=False,
    )


def to_channels(images, method="minmax"):
    """Gray images ``(n, 1, s, s)`` to the backbone's three channels ``(n, 3, s, s)``,
    on the images' device; ``"minmax"`` input also gets the ImageNet mean/std."""
    images = images.expand(-1, 3, -1, -1)
    if method == "minmax":
        mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
        images = (images - mean) / std
    return images.contiguous()


def square_padding(height, width):
    """``(side, top, left)``: a ``height x width`` slice sits at ``[top, left]`` of the
    ``side x side`` square it is padded to."""
    side = max(height, width)
    return side, (side - height) // 2, (side - width) // 2


def _pad_to_square(stack):
    """Pad with the stack's minimum (the background) to a square."""
    n, h, w = stack.shape
    if h == w:
        return stack
    side, top, left = square_padding(h, w)
    out = np.full((n, side, side), stack.min(), dtype=stack.dtype)
    out[:, top:top + h, left:left + w] = stack
    return out


def grid_to_slices(grid_maps, height, width):
    """Per-patch maps ``(n, g, g)`` of the backbone input back onto slices ``(n, height,
    width)``: bilinear upsampling to the padded square, then the padding cropped."""
    side, top, left = square_padding(height, width)
    maps = torch.as_tensor(np.asarray(grid_maps, dtype=np.float32))[:, None]
    maps = F.interpolate(maps, size=(side, side), mode="bilinear", align_corners=False)[:, 0]
    return maps[:, top:top + height, left:left + width].numpy()
