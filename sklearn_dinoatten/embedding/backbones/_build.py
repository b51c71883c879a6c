"""Build a frozen 2D backbone: a timm model name, another library's model by prefix
(``hf:``, ``open_clip:``, ``torchvision:``; see :mod:`sklearn_dinoatten.embedding.backbones`) or a
module, with weights from a local file, the pretrained download, or a seeded random
initialisation.

Local checkpoints go through timm's own loader and checkpoint filter, so both the
official DINOv2 files (``dinov2_vits14_pretrain.pth``, as published with the paper) and
timm/safetensors state dicts load, with the position embedding resampled to
``image_size``.
"""

import copy
import hashlib
import os
import socket
import warnings
from dataclasses import dataclass
from urllib.parse import urlparse

import torch

from ...utils._files import check_file
from ...volumes._preprocessing import IMAGENET_MEAN, IMAGENET_STD
from ._adapters import (
    HF_PREFIX,
    OPEN_CLIP_PREFIX,
    TORCHVISION_PREFIX,
    adapted,
    open_clip_hub_files,
    open_clip_tower,
    torchvision_cnn,
    transformers_vit,
)

RANDOM_WEIGHTS_SEED = 0
HUB_TIMEOUT = 3  # seconds to reach the weights' hub before giving up
_WARNED_RANDOM = set()  # warn once per process and model name, not once per clone
# weights=SAVED_WEIGHTS: the architecture only, to receive weights saved with a fitted
# model (sklearn_dinoatten.persistence); initialised as "random", without its warning,
# and buildable on the "meta" device (no memory), where the loader first checks that the
# saved tensors fit it.
SAVED_WEIGHTS = object()


@dataclass(frozen=True)
class Backbone:
    """A built backbone and what the embedder needs to know about it."""

    module: torch.nn.Module
    embed_dim: int
    patch_size: int
    num_prefix_tokens: int
    mean: tuple = IMAGENET_MEAN  # the input normalisation it was trained with, per channel
    std: tuple = IMAGENET_STD


def build_backbone(backbone, weights=None, image_size=224, in_chans=3):
    """Build a frozen backbone in eval mode.

    Parameters
    ----------
    backbone : str or torch.nn.Module
        A timm model name such as ``"vit_small_patch14_dinov2"``;
        ``"hf:<hub id or directory>"`` (transformers), ``"open_clip:<model>[@<tag>]"``
        or ``"torchvision:<name>"`` (see :mod:`sklearn_dinoatten.embedding.backbones`); or a module,
        used with its own weights (a copy; the module itself is left as it is): a
        timm-style vision transformer (``forward_features``, ``num_prefix_tokens``,
        ``patch_embed``), a transformers vision model, an open_clip model or tower, or a
        torchvision classifier.
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
    """
    if isinstance(backbone, str) and isinstance(weights, str) and weights == "random" and (
            backbone not in _WARNED_RANDOM):
        _WARNED_RANDOM.add(backbone)
        warnings.warn(f"weights='random': {backbone} is randomly initialised (seed "
                      f"{RANDOM_WEIGHTS_SEED}). Its embeddings are only good for tests and "
                      "demos; give a checkpoint file for real work.", UserWarning, stacklevel=4)
    if isinstance(backbone, torch.nn.Module):
        if weights is not None:
            raise ValueError(
                "weights must be None when backbone is a torch.nn.Module: the module's own "
                f"weights are used; got weights={weights!r}."
            )
        # A copy: the caller's module keeps its mode and gradients, and changing its
        # weights later cannot change a fitted embedder (or its cache keys).
        module = adapted(copy.deepcopy(backbone))
    elif isinstance(backbone, str) and backbone.startswith(HF_PREFIX):
        source = backbone.removeprefix(HF_PREFIX)
        if weights is not None and not (weights is SAVED_WEIGHTS or weights == "random"):
            raise ValueError(
                f"backbone={backbone!r} takes its weights from the model's directory or hub "
                f"id; leave weights=None (or 'random' for a test); got weights={weights!r}.")
        if not os.path.isdir(source):  # a hub id
            from huggingface_hub.utils import HFValidationError, validate_repo_id

            try:
                validate_repo_id(source)
            except HFValidationError:
                raise ValueError(f"backbone={backbone!r}: there is no folder {source!r}, "
                                 "and it is not a hub id.") from None
            _check_hub(source, ("config.json",), backbone,
                       f"there is no folder {source!r} here either; download the model's "
                       "folder once and give backbone='hf:<folder>'.")
        module = _adapted(lambda w: transformers_vit(source, random_init=w == "random"),
                          weights)
    elif isinstance(backbone, str) and backbone.startswith(OPEN_CLIP_PREFIX):
        spec = backbone.removeprefix(OPEN_CLIP_PREFIX)
        hub = open_clip_hub_files(spec, weights)
        if hub is not None:
            _check_hub(*hub, backbone, "download its folder once and give backbone="
                       "'open_clip:local-dir:<folder>' (or weights=<checkpoint file>).")
        module = _adapted(lambda w: open_clip_tower(spec, w, image_size), weights)
    elif isinstance(backbone, str) and backbone.startswith(TORCHVISION_PREFIX):
        name = backbone.removeprefix(TORCHVISION_PREFIX)
        module = _adapted(lambda w: torchvision_cnn(name, w), weights)
    elif isinstance(backbone, str):
        module = _create_timm_model(backbone, weights, image_size, in_chans)
    else:
        raise ValueError(
            f"backbone must be a model name or a torch.nn.Module; got {backbone!r}."
        )
    return frozen_backbone(module, image_size, backbone)


def frozen_backbone(module, image_size, name=None):
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
        raise ValueError(
            f"image_size={image_size} is not a multiple of the backbone's patch size "
            f"{patch_size}; try {max(1, round(image_size / patch_size)) * patch_size}."
        )
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


def _create_timm_model(name, weights, image_size, in_chans=3):
    import timm

    if not timm.is_model(name):
        raise ValueError(
            f"backbone={name!r} is not a timm model name; DINOv2 ones are "
            f"{timm.list_models('*dinov2*')}."
        )
    kwargs = dict(num_classes=0, img_size=image_size, in_chans=in_chans)
    random = isinstance(weights, str) and weights == "random"
    if random or weights is SAVED_WEIGHTS:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            module = timm.create_model(name, pretrained=False, **kwargs)
        _unit_layer_scale(module)
        return module
    if weights is None:
        repo = getattr(timm.models.get_pretrained_cfg(name), "hf_hub_id", None)
        if repo is not None:  # else timm's own download
            _check_hub(repo, ("model.safetensors", "pytorch_model.bin"), name,
                       "pass a checkpoint file, weights='dinov2_vits14_pretrain.pth' "
                       "(--weights FILE on the command line; see the user guide's "
                       "'Official weights'), or weights='random' for a test.")
        try:
            module = timm.create_model(name, pretrained=True, **kwargs)
        except Exception as exc:
            raise RuntimeError(
                f"Could not get the pretrained weights of {name!r} ({type(exc).__name__}: "
                f"{exc}). Without a network, pass weights=<path to a checkpoint file> "
                "(e.g. the official dinov2_vits14_pretrain.pth) or weights='random'."
            ) from exc
        return module
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        check_file(path, "weights file")
        try:
            module = timm.create_model(
                name, pretrained=True, pretrained_cfg_overlay={"file": path}, **kwargs
            )
        except Exception as exc:
            raise ValueError(
                f"weights file {path!r} does not fit backbone {name!r}: "
                f"{type(exc).__name__}: {str(exc)[:1000]}"
            ) from exc
        return module
    raise ValueError(
        f"weights must be None, 'random' or a path to a checkpoint file; got {weights!r}."
    )


def timm_input_normalization(name):
    """The per-channel ``(mean, std)`` timm model ``name`` was trained with, from its
    pretrained configuration (ImageNet's where it has none), without building it."""
    import timm

    config = timm.models.get_pretrained_cfg(name)
    if config is None:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(map(float, config.mean)), tuple(map(float, config.std))


def _adapted(create, weights):
    """``create(weights)`` of an adapter: with ``None`` (its library's pretrained weights)
    or a weights file, and under a fixed seed with ``"random"`` (and for saved models)."""
    if weights is None or (isinstance(weights, (str, os.PathLike)) and weights != "random"):
        if weights is not None:
            check_file(weights, "weights file")
        return create(None if weights is None else os.fspath(weights))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        return create("random")


def _check_hub(repo, files, name, instead):
    """Fail at once, in one line, when the hub repository ``repo`` that ``name`` loads
    from has none of ``files`` in the local Hugging Face cache and the hub cannot be
    reached, instead of after a minute of download retries; ``instead`` says what to
    pass."""
    from huggingface_hub import constants, try_to_load_from_cache

    if any(isinstance(try_to_load_from_cache(repo, file), str) for file in files):
        return  # downloaded before
    endpoint = urlparse(constants.ENDPOINT)
    try:
        if constants.HF_HUB_OFFLINE:
            raise OSError("HF_HUB_OFFLINE is set")
        socket.create_connection(
            (endpoint.hostname, endpoint.port or (80 if endpoint.scheme == "http" else 443)),
            timeout=HUB_TIMEOUT).close()
    except OSError as exc:
        raise RuntimeError(
            f"The pretrained weights of {name!r} are not in the local cache and "
            f"{endpoint.hostname} cannot be reached ({exc}): {instead}") from None


def _unit_layer_scale(module):
    """Set LayerScale factors to 1 in a randomly initialised model.

    DINOv2 initialises them to 1e-5, so random blocks barely touch the residual stream
    and the CLS token comes out nearly the same for every image. With 1, random
    weights still mix image content into it, which makes ``weights="random"`` a usable
    stand-in in tests and demos.
    """
    for name, parameter in module.named_parameters():
        if name.endswith(".gamma"):
            torch.nn.init.ones_(parameter)


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
