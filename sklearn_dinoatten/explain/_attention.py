"""Where a model looks: the head's weight on each kept slice (slice attention) and the
backbone's last-layer CLS -> patch attention inside each kept slice (in-plane attention)."""

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ..volumes import grid_to_slices, load_scan, slice_weights, to_channels


def slice_attention(model, X):
    """Per-slice attention of a fitted pipeline ``[embedder, ..., classifier]``.

    Returns an array ``(n_volumes, n_slices)``; padding gets 0. Column ``j`` is the
    ``j``-th slice the embedder kept (``embedder.kept_slices``); with
    ``feature="patch"``, the sum of the attention on its patches.
    """
    check_is_fitted(model)
    weights = model[-1].attention_weights(model[:-1].transform(X))
    return slice_weights(weights, model[0].rows_per_slice_)


def in_plane_attention(embedder, volume):
    """The backbone's last-layer CLS -> patch attention on each kept slice of a volume.

    Parameters
    ----------
    embedder : fitted DinoSliceEmbedder
        Its backbone must be a timm vision transformer (``blocks[-1].attn``).
    volume : path, nibabel image or 3D array

    Returns
    -------
    maps : list of ndarrays of shape (n_kept, h, w)
        Per slicing axis, attention averaged over heads, brought back onto each kept
        slice (the part of it the embedder used: the padding to a square or the crop
        undone), scaled to a maximum of 1 per slice.
    slice_sets : list of SliceSet
        Per slicing axis, which slices the maps belong to (``axis``, ``indices``) and
        the in-plane ``region`` of the volume they cover.
    """
    check_is_fitted(embedder)
    attention = _last_attention_layer(embedder.backbone_)
    if attention is None:
        raise ValueError(
            "In-plane attention needs a timm vision transformer backbone (with "
            f"blocks[-1].attn.qkv); got {type(embedder.backbone_).__name__}."
        )
    reader, info = embedder.slice_reader(), embedder.backbone_info_
    slice_sets = reader.slice_sets(*load_scan(volume, spacing=embedder.spacing))
    maps = []
    for slice_set in slice_sets:
        images = to_channels(reader.backbone_input(slice_set), method=embedder.normalization,
                             mean=info.mean, std=info.std)
        cls_rows = _cls_attention(embedder, attention, images)
        grid = embedder.image_size // embedder.patch_size_
        plane = grid_to_slices(cls_rows.float().cpu().reshape(-1, grid, grid),
                               *slice_set.stack.shape[1:], image_size=embedder.image_size,
                               pixel_size=slice_set.pixel_size,
                               pixel_spacing=embedder.pixel_spacing)
        peak = plane.max(axis=(1, 2), keepdims=True)
        maps.append(np.divide(plane, peak, out=np.zeros_like(plane), where=peak > 0))
    return maps, slice_sets


def has_in_plane_attention(embedder):
    """Whether the fitted ``embedder``'s backbone is a timm vision transformer, whose
    in-plane attention :func:`in_plane_attention` reads."""
    return _last_attention_layer(embedder.backbone_) is not None


def _last_attention_layer(backbone):
    """The last attention layer of a timm vision transformer (``blocks[-1].attn``, with
    its ``qkv``), or None for another backbone."""
    blocks = getattr(backbone, "blocks", None)
    attention = getattr(blocks[-1], "attn", None) if blocks is not None else None
    return attention if hasattr(attention, "qkv") else None


def _cls_attention(embedder, attention, images):
    """The CLS -> patch rows of the last attention layer for backbone inputs ``images``."""
    captured = []
    hook = attention.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    try:
        with torch.inference_mode():
            for start in range(0, len(images), embedder.batch_size):
                embedder.backbone_.forward_features(
                    images[start:start + embedder.batch_size].to(embedder.device_))
            prefix = embedder.backbone_info_.num_prefix_tokens
            return torch.cat([_cls_to_patches(attention, x, prefix) for x in captured])
    finally:
        hook.remove()


def _cls_to_patches(attention, x, num_prefix_tokens):
    """Head-averaged attention of the CLS token to the patch tokens, from the layer's input."""
    batch, tokens, _ = x.shape
    heads = attention.num_heads
    qkv = attention.qkv(x).reshape(batch, tokens, 3, heads, -1).permute(2, 0, 3, 1, 4)
    q, k = attention.q_norm(qkv[0]), attention.k_norm(qkv[1])
    weights = torch.softmax(q[:, :, :1] @ k.transpose(-2, -1) * attention.scale, dim=-1)
    return weights[:, :, 0, num_prefix_tokens:].mean(dim=1)
