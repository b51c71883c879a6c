"""Hugging Face transformers vision models, named ``"hf:<hub id or local directory>"``
(DINOv2, RAD-DINO, DINOv3, ViT, DeiT...); their input normalisation comes from the image
processor saved beside the model."""

import inspect
import os
import warnings

import torch

from ...utils._optional import optional_import
from ...volumes import IMAGENET_MEAN, IMAGENET_STD
from ._backbone import SAVED_WEIGHTS, Family, with_weights
from ._hub import check_hub

HF_PREFIX = "hf:"


class TransformersViT(torch.nn.Module):
    """A transformers vision transformer (DINOv2, RAD-DINO, DINOv3, ViT, DeiT...) as a
    timm one.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A vision model whose output has ``last_hidden_state``: the CLS token and any
        other token its embedding layer puts before the patches (DeiT's distillation
        token, DINOv3's registers), then the patches.
    mean, std : tuples of 3 floats
        Its input normalisation (the image processor's ``image_mean``, ``image_std``).
    """

    def __init__(self, model, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.model = model
        config = model.config
        if not all(hasattr(config, name) for name in ("patch_size", "hidden_size",
                                                      "image_size")) or not hasattr(
                model, "embeddings"):
            raise ValueError(f"{type(model).__name__} is not a vision transformer (its config "
                             "has no patch_size, hidden_size or image_size, or it has no "
                             "embedding layer).")
        self.num_features = int(config.hidden_size)
        self.patch_size = _first(config.patch_size)
        self.num_prefix_tokens = self._count_prefix_tokens(_first(config.image_size))
        # ViT, DeiT... resample their position embedding to another input size if asked
        self._interpolate = ("interpolate_pos_encoding" in
                             inspect.signature(model.forward).parameters)
        self.pretrained_cfg = {"mean": tuple(mean), "std": tuple(std)}

    def _count_prefix_tokens(self, side):
        """The tokens the embedding layer puts before the patches of an image of the
        configured size (CLS, distillation, registers): its tokens less the patches."""
        parameter = next(self.model.parameters())
        image = torch.zeros(1, self.model.config.num_channels, side, side,
                            device=parameter.device, dtype=parameter.dtype)
        with torch.no_grad():
            tokens = self.model.embeddings(image)
        tokens = tokens[0] if isinstance(tokens, tuple) else tokens
        return int(tokens.shape[1]) - (side // self.patch_size) ** 2

    def forward_features(self, images):
        extra = {"interpolate_pos_encoding": True} if self._interpolate else {}
        return self.model(pixel_values=images, **extra).last_hidden_state


def _first(size):
    """An int of a size given as an int or a (height, width) pair."""
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def transformers_vit(source, random_init=False):
    """A :class:`TransformersViT` from a hub id or a local directory; ``random_init``:
    the architecture from the configuration only, with seeded random weights."""
    transformers = _transformers()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # its "Loading weights" bar
    try:
        if random_init:
            model = transformers.AutoModel.from_config(
                transformers.AutoConfig.from_pretrained(source))
        else:
            model = transformers.AutoModel.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"backbone='{HF_PREFIX}{source}': no transformers model there "
            f"({str(exc).splitlines()[0]}). Give a "
            "local directory saved with save_pretrained (config.json and the weights), or "
            "a hub id the local cache or the network has.") from None
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    return TransformersViT(model, *_processor_normalization(source, local_files_only=False))


def _processor_normalization(source, local_files_only=True):
    """The mean/std of the image processor saved at ``source`` (a directory or a hub id);
    ImageNet's, with a warning, where there is none."""
    try:
        processor = _transformers().AutoImageProcessor.from_pretrained(
            source, local_files_only=local_files_only)
        return processor.image_mean, processor.image_std
    except (OSError, ValueError, AttributeError):
        warnings.warn(f"No image processor found for transformers model {source!r}: its "
                      "inputs are standardised with ImageNet's mean/std. Save the processor "
                      "beside the model to use its own.", UserWarning, stacklevel=3)
        return IMAGENET_MEAN, IMAGENET_STD




def build(source, weights, image_size, in_chans=3):
    """The transformers model in folder or hub id ``source``, with its own weights
    (``weights`` only ``None``, or ``"random"`` for a test)."""
    backbone = HF_PREFIX + source
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
        check_hub(source, ("config.json",), backbone,
                  f"there is no folder {source!r} here either; download the model's "
                  "folder once and give backbone='hf:<folder>'.")
    return with_weights(lambda w: transformers_vit(source, random_init=w == "random"), weights)


def adapt(model):
    """A transformers vision model as a :class:`TransformersViT`."""
    return TransformersViT(model, *_processor_normalization(model.name_or_path))


def _transformers():
    return optional_import("transformers", "hf", "backbone='hf:...'")



TRANSFORMERS = Family(prefix=HF_PREFIX, library="transformers", build=build, adapt=adapt)
