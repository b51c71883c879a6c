"""timm models by name (every DINOv2 size, with or without registers): built with timm's
own loader and checkpoint filter, so that both the official DINOv2 files
(``dinov2_vits14_pretrain.pth``, as published with the paper) and timm/safetensors state
dicts load, with the position embedding resampled to ``image_size``."""

import os

import torch

from ...utils._files import check_file
from ...volumes import IMAGENET_MEAN, IMAGENET_STD
from ._backbone import RANDOM_WEIGHTS_SEED, Family, is_random
from ._hub import check_hub


def build(name, weights, image_size, in_chans=3):
    """timm model ``name`` without its classifier, taking ``image_size`` inputs of
    ``in_chans`` channels (with 1, a checkpoint's RGB patch embedding is summed over the
    colours)."""
    import timm

    if not timm.is_model(name):
        raise ValueError(
            f"backbone={name!r} is not a timm model name; DINOv2 ones are "
            f"{timm.list_models('*dinov2*')}."
        )
    kwargs = dict(num_classes=0, img_size=image_size, in_chans=in_chans)
    if is_random(weights):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            module = timm.create_model(name, pretrained=False, **kwargs)
        _unit_layer_scale(module)
        return module
    if weights is None:
        repo = getattr(timm.models.get_pretrained_cfg(name), "hf_hub_id", None)
        if repo is not None:  # else timm's own download
            check_hub(repo, ("model.safetensors", "pytorch_model.bin"), name,
                      "pass a checkpoint file, weights='dinov2_vits14_pretrain.pth' "
                      "(--weights FILE on the command line; see the user guide's "
                      "'Official weights'), or weights='random' for a test.")
        try:
            return timm.create_model(name, pretrained=True, **kwargs)
        except Exception as exc:
            raise RuntimeError(
                f"Could not get the pretrained weights of {name!r} ({type(exc).__name__}: "
                f"{exc}). Without a network, pass weights=<path to a checkpoint file> "
                "(e.g. the official dinov2_vits14_pretrain.pth) or weights='random'."
            ) from exc
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        check_file(path, "weights file")
        try:
            return timm.create_model(
                name, pretrained=True, pretrained_cfg_overlay={"file": path}, **kwargs
            )
        except Exception as exc:
            raise ValueError(
                f"weights file {path!r} does not fit backbone {name!r}: "
                f"{type(exc).__name__}: {str(exc)[:1000]}"
            ) from exc
    raise ValueError(
        f"weights must be None, 'random' or a path to a checkpoint file; got {weights!r}."
    )


def input_normalization(name):
    """The per-channel ``(mean, std)`` timm model ``name`` was trained with, from its
    pretrained configuration (ImageNet's where it has none), without building it."""
    import timm

    config = timm.models.get_pretrained_cfg(name)
    if config is None:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(map(float, config.mean)), tuple(map(float, config.std))


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


TIMM = Family(prefix="", library="timm", build=build, adapt=lambda module: module)
