"""Vision models of other libraries behind the interface the embedder uses, that of a timm
vision transformer: ``forward_features(images)`` returns every token (prefix tokens,
then the patches in raster order), with ``num_prefix_tokens``, ``num_features``,
``patch_size`` and the input normalisation in ``pretrained_cfg``.

Hugging Face transformers models are named ``"hf:<hub id or local directory>"``; their
input normalisation comes from the image processor saved beside the model.
"""

import torch

from .preprocessing import IMAGENET_MEAN, IMAGENET_STD

HF_PREFIX = "hf:"


class TransformersViT(torch.nn.Module):
    """A transformers vision transformer (DINOv2, RAD-DINO, DINOv3, ViT...) as a timm one.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A vision model whose output has ``last_hidden_state``: CLS, register tokens
        (``config.num_register_tokens``), then the patches.
    mean, std : tuples of 3 floats
        Its input normalisation (the image processor's ``image_mean``, ``image_std``).
    """

    def __init__(self, model, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.model = model
        config = model.config
        self.num_features = int(config.hidden_size)
        self.num_prefix_tokens = 1 + int(getattr(config, "num_register_tokens", 0) or 0)
        patch_size = config.patch_size
        self.patch_size = int(patch_size[0] if isinstance(patch_size, (tuple, list))
                              else patch_size)
        self.pretrained_cfg = {"mean": tuple(mean), "std": tuple(std)}

    def forward_features(self, images):
        return self.model(pixel_values=images).last_hidden_state


def transformers_vit(source, random_init=False):
    """A :class:`TransformersViT` from a hub id or a local directory; ``random_init``:
    the architecture from the configuration only, with seeded random weights."""
    transformers = _transformers()
    try:
        if random_init:
            model = transformers.AutoModel.from_config(
                transformers.AutoConfig.from_pretrained(source))
        else:
            model = transformers.AutoModel.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"backbone='{HF_PREFIX}{source}': no transformers model there ({exc}). Give a "
            "local directory saved with save_pretrained (config.json and the weights), or "
            "a hub id the local cache or the network has.") from None
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(source)
        mean, std = processor.image_mean, processor.image_std
    except (OSError, ValueError, AttributeError):  # no image processor saved
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    return TransformersViT(model, mean, std)


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ImportError("backbone='hf:...' needs the hf extra: pip install "
                          "'sklearn-dinoatten[hf]'") from None
    return transformers
