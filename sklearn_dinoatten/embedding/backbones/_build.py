"""Build a frozen 2D backbone: a timm model name, another library's model by prefix
(``hf:``, ``open_clip:``, ``torchvision:``) or a module, with weights from a local file,
the pretrained download, or a seeded random initialisation. Each library is a
:class:`~._backbone.Family` in a module of its own; this one looks them up."""

import copy

import torch

from ...utils._warnings import warn_once
from ._backbone import RANDOM_WEIGHTS_SEED, frozen_backbone
from ._open_clip import OPEN_CLIP
from ._timm import TIMM
from ._torchvision import TORCHVISION
from ._transformers import TRANSFORMERS

FAMILIES = (TRANSFORMERS, OPEN_CLIP, TORCHVISION)  # by prefix; other names are timm's
ADAPTER_PREFIXES = tuple(family.prefix for family in FAMILIES)


def build_backbone(backbone, *, weights=None, image_size=224, in_chans=3):
    """Build a frozen backbone in eval mode.

    Parameters
    ----------
    backbone : str or torch.nn.Module
        A timm model name such as ``"vit_small_patch14_dinov2"``;
        ``"hf:<hub id or directory>"`` (transformers), ``"open_clip:<model>[@<tag>]"``
        or ``"torchvision:<name>"``; or a module, used with its own weights (a copy; the
        module itself is left as it is): a timm-style vision transformer
        (``forward_features``, ``num_prefix_tokens``, ``patch_embed``), a transformers
        vision model, an open_clip model or tower, or a torchvision classifier.
    weights : None, "random" or path
        ``None``: the library's pretrained weights (needs a network once; for ``hf:``
        the model's directory). ``"random"``: a seeded random initialisation, identical
        on every call (tests, demos). A path: a local checkpoint, ``.pth``/``.pt``
        (loaded with ``weights_only=True``) or ``.safetensors`` for timm; a state dict
        file for torchvision; a checkpoint for open_clip.
    image_size : int
        Input side in pixels; must be a multiple of the patch size. The position
        embedding of a checkpoint is interpolated to it (timm).
    in_chans : int, default=3
        Input channels of a timm model; with 1, timm adapts a checkpoint's RGB patch
        embedding to grayscale (its kernels summed over the colours).

    Returns
    -------
    Backbone
        The frozen module and its embedding size, patch size, prefix tokens and input
        normalisation.
    """
    if isinstance(backbone, str) and isinstance(weights, str) and weights == "random":
        warn_once(f"weights='random': {backbone} is randomly initialised (seed "
                  f"{RANDOM_WEIGHTS_SEED}). Its embeddings are only good for tests and demos; "
                  "give a checkpoint file for real work.", stacklevel=4)
    if isinstance(backbone, torch.nn.Module):
        if weights is not None:
            raise ValueError(
                "weights must be None when backbone is a torch.nn.Module: the module's own "
                f"weights are used; got weights={weights!r}."
            )
        # A copy: the caller's module keeps its mode and gradients, and changing its
        # weights later cannot change a fitted embedder (or its cache keys).
        module = adapted(copy.deepcopy(backbone))
    elif isinstance(backbone, str):
        family = next((f for f in FAMILIES if backbone.startswith(f.prefix)), TIMM)
        module = family.build(backbone.removeprefix(family.prefix), weights, image_size,
                              in_chans)
    else:
        raise ValueError(
            f"backbone must be a model name or a torch.nn.Module; got {backbone!r}."
        )
    return frozen_backbone(module, image_size, name=backbone)


def adapted(module):
    """``module`` behind the timm interface: as it is when it has that interface, else
    through the adapter of its library (a transformers vision model, an open_clip model or
    image tower, a torchvision classifier); any other module is returned as it is."""
    if hasattr(module, "forward_features") and hasattr(module, "num_prefix_tokens"):
        return module
    library = type(module).__module__.partition(".")[0]
    family = next((f for f in FAMILIES if f.library == library), None)
    return module if family is None else family.adapt(module)
