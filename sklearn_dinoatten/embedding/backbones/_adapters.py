"""Vision models of other libraries behind the interface the embedder uses, that of a timm
vision transformer: ``forward_features(images)`` returns every token (prefix tokens,
then the patches in raster order), with ``num_prefix_tokens``, ``num_features``,
``patch_size`` and the input normalisation in ``pretrained_cfg``.

Hugging Face transformers models are named ``"hf:<hub id or local directory>"``; their
input normalisation comes from the image processor saved beside the model. torchvision
classification CNNs are named ``"torchvision:<model name>"``: the pooled feature map is
their one prefix token, its cells their patches. open_clip image towers are named
``"open_clip:<model>[@<pretrained tag>]"``, ``"open_clip:hf-hub:<id>"`` or
``"open_clip:local-dir:<directory>"``: their tokens are projected into the image-text
space, so the CLS row is the CLIP image embedding. :func:`adapted` wraps a module of any
of these libraries.
"""

import inspect
import os
import warnings

import torch

from ...utils._quiet import root_messages_silenced
from ...volumes._preprocessing import IMAGENET_MEAN, IMAGENET_STD

HF_PREFIX = "hf:"
TORCHVISION_PREFIX = "torchvision:"
OPEN_CLIP_PREFIX = "open_clip:"
ADAPTER_PREFIXES = (HF_PREFIX, TORCHVISION_PREFIX, OPEN_CLIP_PREFIX)


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


class TorchvisionCNN(torch.nn.Module):
    """A torchvision classifier with an ``avgpool`` module (ResNet, EfficientNet, ConvNeXt,
    RegNet, MobileNetV3, Swin, VGG...) as a timm vision transformer: the mean of the
    feature map that module pools is the one prefix token, its cells are the patches (in
    raster order), and the network's total stride is the patch size.

    Parameters
    ----------
    model : torch.nn.Module
        A torchvision classifier with an ``avgpool`` module before its head.
    mean, std : tuples of 3 floats
        Its input normalisation (its weights' ``transforms()``).
    """

    def __init__(self, model, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        if not isinstance(getattr(model, "avgpool", None), torch.nn.Module):
            raise ValueError(f"{type(model).__name__} has no 'avgpool' module to take its "
                             "feature map from: use a ResNet (ResNeXt, Wide ResNet), "
                             "EfficientNet, ConvNeXt, RegNet, MobileNetV3, Swin or VGG.")
        self.model = model.eval()  # the forward below must not move BatchNorm statistics
        self.num_prefix_tokens = 1
        with torch.no_grad():  # the channels and the stride, from one small forward
            feature_map = self._feature_map(torch.zeros(1, 3, 64, 64))
        self.num_features = int(feature_map.shape[1])
        self.patch_size = 64 // int(feature_map.shape[-1])
        self.pretrained_cfg = {"mean": tuple(mean), "std": tuple(std)}

    def _feature_map(self, images):
        maps = []
        hook = self.model.avgpool.register_forward_hook(
            lambda module, inputs, output: maps.append(inputs[0]))
        try:
            self.model(images)
        finally:
            hook.remove()
        return maps[0]

    def forward_features(self, images):
        feature_map = self._feature_map(images)
        pooled = feature_map.mean(dim=(2, 3))
        return torch.cat([pooled[:, None], feature_map.flatten(2).transpose(1, 2)], dim=1)


def torchvision_cnn(name, weights):
    """A :class:`TorchvisionCNN` of torchvision model ``name``; ``weights``: ``None``
    for its default pretrained weights (downloaded once), ``"random"`` for a seeded
    random initialisation, or a path to a state dict file."""
    import torchvision

    try:
        default = torchvision.models.get_model_weights(name).DEFAULT
    except (KeyError, ValueError):
        raise ValueError(
            f"backbone='{TORCHVISION_PREFIX}{name}' is not a torchvision classification "
            f"model; they are {torchvision.models.list_models(torchvision.models)}.") from None
    if weights is None:
        try:
            model = torchvision.models.get_model(name, weights=default)
        except Exception as exc:
            raise RuntimeError(
                f"Could not get the pretrained weights of {name!r} ({type(exc).__name__}: "
                f"{exc}). Without a network, pass weights=<path to its state dict file> or "
                "weights='random'.") from exc
    else:
        model = torchvision.models.get_model(name, weights=None)
    if isinstance(weights, str) and weights != "random":
        try:
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        except Exception as exc:
            raise ValueError(f"weights file {weights!r} does not fit backbone {name!r}: "
                             f"{type(exc).__name__}: {str(exc)[:1000]}") from exc
    transforms = default.transforms()
    return TorchvisionCNN(model, transforms.mean, transforms.std)


class OpenClipTower(torch.nn.Module):
    """An open_clip image tower as a timm vision transformer: every token after the final
    norm, projected as the tower projects its pooled CLS token, so that the CLS row is the
    CLIP image embedding and the patches share its space. Native ViT towers and timm
    ones (BiomedCLIP: a timm ViT trunk and a linear projection head) are taken.

    Parameters
    ----------
    visual : open_clip VisionTransformer or TimmModel
        A tower that pools its CLS token (no attention or average pooling).
    mean, std : tuples of 3 floats
        Its input normalisation (its ``preprocess_cfg``).
    """

    def __init__(self, visual, mean, std):
        super().__init__()
        trunk = getattr(visual, "trunk", None)
        if trunk is not None:  # a timm tower
            pools_cls = (getattr(trunk, "global_pool", None) == "token"
                         and set(dict(visual.head.named_children())) <= {"drop", "proj"})
            proj = getattr(visual.head, "proj", None)
            width = trunk.num_features if proj is None else proj.out_features
            self.num_prefix_tokens = int(trunk.num_prefix_tokens)
            patch_size = trunk.patch_embed.patch_size
        else:
            pools_cls = (hasattr(visual, "transformer") and visual.attn_pool is None
                         and visual.pool_type == "tok" and not visual.final_ln_after_pool)
            width = visual.transformer.width if visual.proj is None else visual.proj.shape[1]
            self.num_prefix_tokens = 1
            patch_size = visual.patch_size
        if not pools_cls:
            raise ValueError(f"{type(visual).__name__}: only open_clip image towers that pool "
                             "their CLS token can be slice encoders (not attention or average "
                             "pooling, nor a projection other than linear).")
        self.visual = visual
        self.num_features = int(width)
        self.patch_size = int(patch_size[0])
        self.pretrained_cfg = {"mean": tuple(mean), "std": tuple(std)}

    def forward_features(self, images):
        visual = self.visual
        if hasattr(visual, "trunk"):
            return visual.head(visual.trunk.forward_features(images))
        tokens = visual.ln_post(visual.transformer(visual._embeds(images)))
        return tokens if visual.proj is None else tokens @ visual.proj


def open_clip_tower(spec, weights, image_size):
    """An :class:`OpenClipTower` of ``spec``: ``"<model>"`` or ``"<model>@<pretrained
    tag>"`` (open_clip's built-in configurations), ``"hf-hub:<id>"`` or
    ``"local-dir:<directory>"`` (``open_clip_config.json`` and the weights, as the hub
    holds them). ``weights``: ``None`` for the tagged, hub or directory weights,
    ``"random"``, or a checkpoint file. Only the image tower's weights are loaded: the
    text tower is built as a small stand-in, so that one on a transformers model
    (BiomedCLIP's PubMedBERT) needs neither its configuration nor a network."""
    open_clip = _open_clip()
    model_name, _, tag = spec.partition("@")
    if weights is None and not tag and not model_name.startswith(("hf-hub:", "local-dir:")):
        raise ValueError(
            f"backbone='{OPEN_CLIP_PREFIX}{spec}' names no weights: add a pretrained tag "
            f"('{OPEN_CLIP_PREFIX}{model_name}@<tag>', see open_clip.list_pretrained()), or "
            "pass weights=<checkpoint file> or 'random'.")
    tagged = (open_clip.get_pretrained_cfg(model_name, tag) or {}) if tag else {}
    if tag and not tagged:
        raise ValueError(f"backbone='{OPEN_CLIP_PREFIX}{spec}': open_clip has no weights "
                         f"tagged {tag!r} for {model_name!r}; see open_clip.list_pretrained().")
    try:
        with root_messages_silenced(  # it loads no weights: they are loaded below
                "No pretrained weights loaded", "no CLIP weights found", "initialized partially"):
            model = open_clip.create_model(  # on the default device: "meta" for a saved model
                model_name, load_weights=False, force_image_size=image_size,
                text_cfg=_STAND_IN_TEXT, device=torch.get_default_device(),
                force_quick_gelu=bool(tagged.get("quick_gelu")),  # OpenAI's were trained so
                force_preprocess_cfg={k: tagged[k] for k in ("mean", "std") if k in tagged})
        if weights != "random":
            checkpoint = weights or _open_clip_checkpoint(open_clip, model_name, tagged)
            _load_image_tower(model, checkpoint)
    except (RuntimeError, FileNotFoundError, ValueError, KeyError) as exc:
        raise ValueError(f"backbone='{OPEN_CLIP_PREFIX}{spec}': "
                         f"{str(exc).splitlines()[0]}") from None
    return adapted(model)


def open_clip_hub_files(spec, weights):
    """``(repository, files)`` of the Hugging Face hub that building ``spec`` with
    ``weights`` downloads from, or None when it downloads nothing from the hub."""
    model_name, _, tag = spec.partition("@")
    if model_name.startswith("hf-hub:"):
        return model_name.removeprefix("hf-hub:"), ("open_clip_config.json",)
    if weights is None and tag:
        repo = (_open_clip().get_pretrained_cfg(model_name, tag) or {}).get("hf_hub", "")
        if repo:
            return repo.strip("/"), _OPEN_CLIP_CHECKPOINTS[:2]
    return None


_STAND_IN_TEXT = {"context_length": 2, "vocab_size": 2, "width": 8, "heads": 1, "layers": 1}
_OPEN_CLIP_CHECKPOINTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin",
                          "open_clip_pytorch_model.pth", "model.safetensors",
                          "pytorch_model.bin")  # the names open_clip looks for, in order


def _open_clip_checkpoint(open_clip, model_name, tagged):
    """The file of the weights ``model_name`` (or its tag's configuration, ``tagged``)
    names, downloaded once."""
    if model_name.startswith("local-dir:"):
        folder = model_name.removeprefix("local-dir:")
        found = [os.path.join(folder, name) for name in _OPEN_CLIP_CHECKPOINTS
                 if os.path.isfile(os.path.join(folder, name))]
        if not found:
            raise FileNotFoundError(
                f"{folder!r} holds none of {', '.join(_OPEN_CLIP_CHECKPOINTS)}.")
        return found[0]
    if model_name.startswith("hf-hub:"):
        from open_clip.pretrained import download_pretrained_from_hf

        return download_pretrained_from_hf(model_name.removeprefix("hf-hub:"))
    return open_clip.download_pretrained(tagged)


def _load_image_tower(model, checkpoint):
    """Load the ``visual.`` weights of an open_clip checkpoint into ``model``'s image tower,
    the position embedding resampled to its input size."""
    from open_clip.factory import load_state_dict
    from open_clip.model import resize_pos_embed

    state = load_state_dict(checkpoint)
    resize_pos_embed(state, model)  # a native ViT's
    trunk = getattr(model.visual, "trunk", None)
    if trunk is not None and "visual.trunk.pos_embed" in state:  # a timm tower's
        from timm.layers import resample_abs_pos_embed

        state["visual.trunk.pos_embed"] = resample_abs_pos_embed(
            state["visual.trunk.pos_embed"], list(trunk.patch_embed.grid_size),
            num_prefix_tokens=trunk.num_prefix_tokens)
    visual = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
    try:
        model.visual.load_state_dict(visual)
    except RuntimeError as exc:
        raise ValueError(f"the image tower of checkpoint {checkpoint!r} does not fit: "
                         f"{str(exc)[:1000]}") from None


def adapted(module):
    """``module`` behind the timm interface: as it is when it has that interface, else
    through the adapter of its library (a transformers vision model, an open_clip model or
    image tower, a torchvision classifier); any other module is returned as it is."""
    if hasattr(module, "forward_features") and hasattr(module, "num_prefix_tokens"):
        return module
    library = type(module).__module__.partition(".")[0]
    if library == "transformers":
        return TransformersViT(module, *_processor_normalization(module.name_or_path))
    if library == "open_clip":
        visual, open_clip = getattr(module, "visual", module), _open_clip()
        config = getattr(visual, "preprocess_cfg", {})
        return OpenClipTower(visual, config.get("mean", open_clip.OPENAI_DATASET_MEAN),
                             config.get("std", open_clip.OPENAI_DATASET_STD))
    if library == "torchvision":  # every torchvision classifier's weights use ImageNet's
        return TorchvisionCNN(module)
    return module


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


def _open_clip():
    try:
        import open_clip
    except ImportError:
        raise ImportError("backbone='open_clip:...' needs the open_clip extra: pip install "
                          "'sklearn-dinoatten[open_clip]'") from None
    return open_clip


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ImportError("backbone='hf:...' needs the hf extra: pip install "
                          "'sklearn-dinoatten[hf]'") from None
    return transformers
