"""Turn a stack of 2D slices into backbone input.

Steps: intensity normalisation, zero-padding to a square (anatomy keeps its aspect
ratio), resizing to ``image_size``, gray replicated to three channels, and for
``"minmax"`` the ImageNet mean/std the backbone was trained with.
"""

import numpy as np
import torch
import torch.nn.functional as F

from ..utils._options import NORMALIZATIONS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_intensity(stack, *, method="minmax", percentiles=(0.5, 99.5)):
    """Normalise the intensities of a slice stack ``(n, h, w)``: a float32 array, or a
    float32 tensor on the device of a tensor ``stack``.

    ``"minmax"`` scales each slice to [0, 1] on its own (DinoAtten3D); a constant slice
    becomes 0. ``"zscore"`` clips the whole stack to the given percentiles (linear
    interpolation, as numpy's), then standardises it (MST).
    """
    if method not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}; got {method!r}.")
    if not isinstance(stack, torch.Tensor):
        return normalize_intensity(torch.from_numpy(np.asarray(stack, dtype=np.float32)),
                                   method=method, percentiles=percentiles).numpy()
    stack = stack.float()
    if method == "minmax":
        low = stack.amin(dim=(1, 2), keepdim=True)
        span = stack.amax(dim=(1, 2), keepdim=True) - low
        out = stack - low  # a constant slice is 0 here and stays 0
        return torch.where(span > 0, out / span, out)
    low, high = _percentiles(stack.flatten(), percentiles)
    out = stack.clamp(low, high)
    # float64 sums: a constant stack has std exactly 0, not float32 rounding noise.
    mean, std = out.double().mean(), out.double().std(correction=0)
    out = out - mean.float()
    if std > 1e-6 * max(abs(float(mean)), 1.0):
        out = out / std.float()
    return out


def _percentiles(values, percentiles):
    """The ``percentiles`` of a flat tensor, interpolated linearly between the two
    nearest order statistics (numpy's default), by selection rather than sorting."""
    found = []
    for q in percentiles:
        position = q / 100 * (len(values) - 1)
        below = int(np.floor(position))
        low = values.kthvalue(below + 1).values.double()
        high = values.kthvalue(min(below + 2, len(values))).values.double()
        found.append(float(low + (high - low) * (position - below)))
    return found


def to_backbone_input(stack, image_size, method="minmax"):
    """Preprocess a slice stack ``(n, h, w)`` into a float32 tensor ``(n, 3, s, s)``."""
    return to_channels(resize_stack(stack, image_size, method=method), method=method)


def resize_stack(stack, image_size, *, method="minmax", pixel_size=None, pixel_spacing=None):
    """Normalise a slice stack ``(n, h, w)`` and bring it to ``image_size`` pixels a side:
    a float32 tensor ``(n, 1, s, s)``, one gray channel (a third of the memory of three),
    on the device of a tensor ``stack`` (a numpy ``stack``: on the CPU).

    Without ``pixel_spacing``, each slice is padded to a square and resized to fit.
    With it, each slice is resampled so that a pixel is ``pixel_spacing`` mm (its own
    pixels being ``pixel_size`` mm, rows and columns), then centred on the ``s x s``
    image, cropped or padded with the background: a structure has the same size in
    pixels in every scan.
    """
    if not isinstance(stack, torch.Tensor):
        stack = torch.from_numpy(np.asarray(stack, dtype=np.float32))
    stack = normalize_intensity(stack, method=method)
    if pixel_spacing is None:
        images = _pad_to_square(stack)[:, None]
        return F.interpolate(images, size=(image_size, image_size), mode="bilinear",
                             antialias=True, align_corners=False)
    size = resampled_size(stack.shape[1:], pixel_size, pixel_spacing)
    images = F.interpolate(stack[:, None], size=size, mode="bilinear", antialias=True,
                           align_corners=False)
    out = stack.min().expand(len(stack), 1, image_size, image_size).clone()
    source, target = _overlap(size, image_size)
    out[:, :, target[0], target[1]] = images[:, :, source[0], source[1]]
    return out


def resampled_size(shape, pixel_size, pixel_spacing):
    """The ``(rows, columns)`` of a slice of ``shape`` with ``pixel_size`` mm pixels,
    resampled to ``pixel_spacing`` mm pixels (at least one of each)."""
    return tuple(max(1, round(n * size / pixel_spacing))
                 for n, size in zip(shape, pixel_size, strict=True))


def _overlap(size, image_size):
    """Where a ``size`` image centred on an ``image_size`` square meets it: the slices of
    the image and of the square that hold the same pixels."""
    source, target = [], []
    for n in size:
        offset = (image_size - n) // 2  # < 0: the image is cropped
        start, stop = max(offset, 0), min(offset + n, image_size)
        target.append(slice(start, stop))
        source.append(slice(start - offset, stop - offset))
    return source, target


def to_channels(images, *, method="minmax", mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Gray images ``(n, 1, s, s)`` to the backbone's three channels ``(n, 3, s, s)``,
    on the images' device; ``"minmax"`` input (in [0, 1]) is also standardised with the
    backbone's per-channel ``mean`` and ``std`` (ImageNet's by default)."""
    images = images.expand(-1, 3, -1, -1)
    if method == "minmax":
        mean = torch.tensor(mean, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(std, device=images.device).view(1, 3, 1, 1)
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
    out = stack.min().expand(n, side, side).clone()  # on the device, without a sync
    out[:, top:top + h, left:left + w] = stack
    return out


def grid_to_slices(grid_maps, height, width, *, image_size=None, pixel_size=None,
                   pixel_spacing=None):
    """Per-patch maps ``(n, g, g)`` of the backbone input back onto slices ``(n, height,
    width)``, undoing :func:`resize_stack`: bilinear upsampling to the padded square,
    then the padding cropped; with ``pixel_spacing`` (and the ``image_size`` and
    ``pixel_size`` of the input), the part of the input the slice was resampled into,
    resized back to the slice, 0 where it was cropped away."""
    maps = torch.as_tensor(np.asarray(grid_maps, dtype=np.float32))[:, None]
    if pixel_spacing is None:
        side, top, left = square_padding(height, width)
        maps = F.interpolate(maps, size=(side, side), mode="bilinear", align_corners=False)
        return maps[:, 0, top:top + height, left:left + width].numpy()
    size = resampled_size((height, width), pixel_size, pixel_spacing)
    canvas = F.interpolate(maps, size=(image_size, image_size), mode="bilinear",
                           align_corners=False)
    resampled = torch.zeros((len(maps), 1, *size))
    source, target = _overlap(size, image_size)
    resampled[:, :, source[0], source[1]] = canvas[:, :, target[0], target[1]]
    return F.interpolate(resampled, size=(height, width), mode="bilinear",
                         align_corners=False)[:, 0].numpy()
