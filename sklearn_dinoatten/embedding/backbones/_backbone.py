"""What every backbone family shares: the record of a built backbone, freezing it, the
seeded initialisation of random weights, and the fingerprint of its weights.

A family (:class:`Family`) is a library of vision models: the prefix of its names, the
package its modules come from, how to build one by name and how to put one of its modules
behind the interface the embedder uses, that of a timm vision transformer:
``forward_features(images)`` returns every token (prefix tokens, then the patches in
raster order), with ``num_prefix_tokens``, ``num_features``, ``patch_size`` (or timm's
``patch_embed``) and the input normalisation in ``pretrained_cfg``.
"""

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ...utils._files import check_file
from ...volumes import IMAGENET_MEAN, IMAGENET_STD

RANDOM_WEIGHTS_SEED = 0
# weights=SAVED_WEIGHTS: the architecture only, to receive weights saved with a fitted
# model (sklearn_dinoatten.persistence); initialised as "random", without its warning,
# and buildable on the "meta" device (no memory), where the loader first checks that the
# saved tensors fit it.
SAVED_WEIGHTS = object()


class ImageSizeError(ValueError):
    """``image_size`` is not a multiple of a backbone's ``patch_size``."""

    def __init__(self, image_size, patch_size):
        self.image_size, self.patch_size = image_size, patch_size
        super().__init__(f"image_size={image_size} is not a multiple of the backbone's patch "
                         f"size {patch_size}; try {nearest_multiple(image_size, patch_size)}.")


def nearest_multiple(size, step):
    """The positive multiple of ``step`` nearest to ``size``."""
    return max(1, round(size / step)) * step


@dataclass(frozen=True)
class Family:
    """A library of vision models.

    ``build(name, weights, image_size, in_chans)`` builds the model ``name`` (without the
    prefix) with ``weights`` (``None``: its pretrained ones; ``"random"``; a file;
    :data:`SAVED_WEIGHTS`) behind the timm interface; ``adapt(module)`` puts a module of
    the library behind it.
    """

    prefix: str
    library: str
    build: Callable
    adapt: Callable


@dataclass(frozen=True)
class Backbone:
    """A built backbone and what the embedder needs to know about it."""

    module: torch.nn.Module
    embed_dim: int
    patch_size: int
    num_prefix_tokens: int
    mean: tuple = IMAGENET_MEAN  # the input normalisation it was trained with, per channel
    std: tuple = IMAGENET_STD


@dataclass(frozen=True)
class BackboneInfo:
    """What the package needs to know of a fitted embedder's backbone: the size of its
    embeddings, its patch size, the tokens before the patches (CLS, registers), its
    input normalisation per channel, and the fingerprint of its weights."""

    embed_dim: int
    patch_size: int
    num_prefix_tokens: int
    mean: tuple
    std: tuple
    fingerprint: str


def frozen_backbone(module, image_size, *, name=None):
    """Check that ``module`` is a timm-style vision transformer taking ``image_size``
    inputs, freeze it in eval mode (in place) and describe it."""
    name = module if name is None else name
    for attribute in ("forward_features", "num_prefix_tokens", "num_features"):
        if not hasattr(module, attribute):
            raise ValueError(
                f"backbone {name!r} is not a timm-style vision transformer: it has no "
                f"{attribute!r}."
            )
    if hasattr(module, "patch_embed"):  # timm's
        patch_size = module.patch_embed.patch_size
    elif hasattr(module, "patch_size"):  # an adapter's
        patch_size = module.patch_size
    else:
        raise ValueError(f"backbone {name!r} is not a timm-style vision transformer: it has "
                         "no 'patch_embed' (or 'patch_size').")
    patch_size = patch_size[0] if isinstance(patch_size, (tuple, list)) else patch_size
    if image_size % patch_size:
        raise ImageSizeError(image_size, patch_size)
    module.eval().requires_grad_(False)
    config = getattr(module, "pretrained_cfg", None) or {}  # timm's, where it says
    return Backbone(
        module=module,
        embed_dim=int(module.num_features),
        patch_size=int(patch_size),
        num_prefix_tokens=int(module.num_prefix_tokens),
        mean=tuple(map(float, config.get("mean", IMAGENET_MEAN))),
        std=tuple(map(float, config.get("std", IMAGENET_STD))),
    )


def is_random(weights):
    """Whether ``weights`` asks for a seeded random initialisation (saved models are
    built so too, before their weights are loaded)."""
    return weights is SAVED_WEIGHTS or (isinstance(weights, str) and weights == "random")


def with_weights(create, weights):
    """``create(weights)``: with ``None`` (the library's pretrained weights) or a checked
    weights file, and under a fixed seed with ``"random"`` (and for saved models)."""
    if not is_random(weights):
        if weights is not None:
            check_file(weights, "weights file")
        return create(None if weights is None else os.fspath(weights))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        return create("random")


def weights_fingerprint(module, name):
    """A digest of a module's architecture name and every tensor of its state, for cache
    keys: computed from the weights a module holds, never taken from a file's name or a
    model file's header, so that other weights never share a cache entry."""
    digest = hashlib.sha256(f"{name}|{type(module).__qualname__}".encode())
    update_digest(digest, module.state_dict())
    return digest.hexdigest()


def update_digest(digest, tensors):
    """Feed named tensors (names, dtypes, shapes and bytes) to a hashlib digest."""
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
