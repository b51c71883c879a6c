"""open_clip image towers, named ``"open_clip:<model>[@<pretrained tag>]"``,
``"open_clip:hf-hub:<id>"`` or ``"open_clip:local-dir:<directory>"``: their tokens are
projected into the image-text space, so the CLS row is the CLIP image embedding."""

import os

import torch

from ...utils._optional import optional_import
from ...utils._quiet import root_messages_silenced
from ._backbone import Family, with_weights
from ._hub import check_hub

OPEN_CLIP_PREFIX = "open_clip:"


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
    return adapt(model)


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



def build(spec, weights, image_size, in_chans=3):
    """The image tower of open_clip model ``spec`` (see :func:`open_clip_tower`)."""
    hub = open_clip_hub_files(spec, weights)
    if hub is not None:
        check_hub(*hub, OPEN_CLIP_PREFIX + spec, "download its folder once and give "
                  "backbone='open_clip:local-dir:<folder>' (or weights=<checkpoint file>).")
    return with_weights(lambda w: open_clip_tower(spec, w, image_size), weights)


def adapt(model):
    """An open_clip model or image tower as an :class:`OpenClipTower`."""
    visual = getattr(model, "visual", model)
    open_clip = _open_clip()
    config = getattr(visual, "preprocess_cfg", {})
    return OpenClipTower(visual, config.get("mean", open_clip.OPENAI_DATASET_MEAN),
                         config.get("std", open_clip.OPENAI_DATASET_STD))


def _open_clip():
    return optional_import("open_clip", "open_clip", "backbone='open_clip:...'")



OPEN_CLIP = Family(prefix=OPEN_CLIP_PREFIX, library="open_clip", build=build, adapt=adapt)
