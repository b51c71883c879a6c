import warnings

import numpy as np
import pytest
import safetensors.torch
import timm
import torch

from sklearn_dinoatten.embedding.backbones import _hub as hub
from sklearn_dinoatten.embedding.backbones import _timm as timm_family
from sklearn_dinoatten.embedding.backbones import build_backbone, weights_fingerprint

from ..._helpers import CountingViT


def _parameters(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_random_weights_are_seeded_and_frozen():
    a = build_backbone("vit_small_patch14_dinov2", weights="random", image_size=28)
    b = build_backbone("vit_small_patch14_dinov2", weights="random", image_size=28)
    assert (a.embed_dim, a.patch_size, a.num_prefix_tokens) == (384, 14, 1)
    assert weights_fingerprint(a.module, "v") == weights_fingerprint(b.module, "v")
    for (name, p), q in zip(a.module.state_dict().items(), b.module.state_dict().values(),
                              strict=True):
        assert torch.equal(p, q), name
    assert not a.module.training
    assert not any(p.requires_grad for p in a.module.parameters())


def test_random_weights_warn_once():
    with pytest.warns(UserWarning, match="only good for tests and demos"):
        build_backbone("vit_small_patch14_dinov2", weights="random", image_size=28)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process and model name, not per clone
        build_backbone("vit_small_patch14_dinov2", weights="random", image_size=28)


def test_image_size_must_fit_patch_size():
    with pytest.raises(ValueError, match="image_size=30 .* patch size 14; try 28"):
        build_backbone("vit_small_patch14_dinov2", weights="random", image_size=30)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="not a timm model name"):
        build_backbone("dinov2_tiny_imaginary", weights="random", image_size=28)


def test_offline_pretrained_download_fails_with_advice(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(timm_family, "check_hub", lambda *args: None)  # the hub answers
    monkeypatch.setattr(timm, "create_model", offline)  # but the download fails
    with pytest.raises(RuntimeError, match="weights='random'"):
        build_backbone("vit_small_patch14_dinov2", weights=None, image_size=28)


def test_an_unreachable_hub_fails_before_any_download(monkeypatch, tmp_path):
    from huggingface_hub import constants

    def no_download(*args, **kwargs):
        raise AssertionError("timm was asked to download")

    def unreachable(address, timeout):
        assert timeout == hub.HUB_TIMEOUT
        raise OSError(f"cannot reach {address[0]}")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    monkeypatch.setattr(hub.socket, "create_connection", unreachable)
    monkeypatch.setattr(timm, "create_model", no_download)
    with pytest.raises(RuntimeError, match=r"not in the local cache and .* cannot be reached "
                                           r"\(cannot reach .*\): pass a checkpoint file"):
        build_backbone("vit_small_patch14_dinov2", weights=None, image_size=28)


def test_official_dinov2_checkpoint_loads_and_resamples(tmp_path):
    # The official dinov2_vits14_pretrain.pth is a plain state dict for 518 px input
    # (a 37 x 37 patch grid) with a 'mask_token', in the layout timm's DINOv2 shares.
    source = timm.create_model("vit_small_patch14_dinov2", img_size=518, num_classes=0)
    official = dict(source.state_dict(), mask_token=torch.zeros(1, 384))
    assert official["pos_embed"].shape == (1, 1 + 37 * 37, 384)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(official, path)

    built = build_backbone("vit_small_patch14_dinov2", weights=path, image_size=56)
    loaded = built.module.state_dict()
    assert loaded["pos_embed"].shape == (1, 1 + 4 * 4, 384)  # resampled to 56 px
    for name, value in source.state_dict().items():
        if name != "pos_embed":
            assert torch.equal(loaded[name], value), name


def test_safetensors_state_dict_loads(tmp_path):
    source = timm.create_model("vit_small_patch14_dinov2", img_size=28, num_classes=0)
    path = tmp_path / "vits14.safetensors"
    safetensors.torch.save_file(source.state_dict(), str(path))
    loaded = build_backbone("vit_small_patch14_dinov2", weights=path, image_size=28).module
    for name, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_weights_that_do_not_fit_name_the_file(tmp_path):
    other = timm.create_model("vit_base_patch14_dinov2", img_size=28, num_classes=0)
    path = tmp_path / "vitb14.pth"
    torch.save(other.state_dict(), path)
    with pytest.raises(ValueError, match="vitb14.pth.*does not fit backbone"):
        build_backbone("vit_small_patch14_dinov2", weights=path, image_size=28)


def test_missing_weights_file():
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        build_backbone("vit_small_patch14_dinov2", weights="nowhere.pth", image_size=28)


def test_pickle_in_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"payload": np.dtype}, path)  # needs unpickling of arbitrary objects
    with pytest.raises(ValueError, match="evil.pth"):
        build_backbone("vit_small_patch14_dinov2", weights=path, image_size=28)


def test_module_backbone_fingerprint_follows_its_weights():
    def fingerprint(module):
        return weights_fingerprint(build_backbone(module, weights=None, image_size=28).module,
                                   "module")

    module = CountingViT()
    first = fingerprint(module)
    assert fingerprint(CountingViT()) == first
    with torch.no_grad():
        module.vit.norm.weight.add_(1.0)
    assert fingerprint(module) != first


def test_module_backbone_rejects_weights_and_non_vits():
    with pytest.raises(ValueError, match="weights must be None"):
        build_backbone(CountingViT(), weights="random", image_size=28)
    with pytest.raises(ValueError, match="not a timm-style vision transformer"):
        build_backbone(torch.nn.Linear(2, 2), weights=None, image_size=28)
    with pytest.raises(ValueError, match="a model name or a torch.nn.Module"):
        build_backbone(42, weights=None, image_size=28)


def test_a_module_backbone_is_copied_not_changed(fresh_cache):
    from sklearn_dinoatten import DinoSliceEmbedder

    module = CountingViT().train()
    X = [np.random.default_rng(0).normal(size=(20, 24, 4)).astype(np.float32)]
    embedder = DinoSliceEmbedder(backbone=module, image_size=28, verbose=0).fit(X)
    before = embedder.transform(X)
    assert module.training and all(p.requires_grad for p in module.parameters())
    with torch.no_grad():  # the user changes the weights after fit
        module.vit.norm.bias.add_(1.0)
    np.testing.assert_array_equal(embedder.transform(X), before)  # the fitted copy
    refitted = DinoSliceEmbedder(backbone=module, image_size=28, verbose=0).fit(X)
    after = refitted.transform(X)  # new weights: new cache keys, new embeddings
    assert not np.allclose(after, before)
    assert refitted.backbone_info_.fingerprint != embedder.backbone_info_.fingerprint


def test_the_input_normalisation_is_the_backbones_own(volume, fresh_cache):
    """Slices are standardised with the mean/std in the model's configuration (timm's
    ``pretrained_cfg``): DINOv2's are ImageNet's, with the cache keys of before; other
    statistics give other inputs and other keys."""
    from sklearn_dinoatten import DinoSliceEmbedder
    from sklearn_dinoatten.volumes import IMAGENET_MEAN, IMAGENET_STD

    dinov2 = build_backbone("vit_small_patch14_dinov2", weights="random", image_size=28)
    assert (dinov2.mean, dinov2.std) == (IMAGENET_MEAN, IMAGENET_STD)
    module = timm.create_model("vit_small_patch14_dinov2", img_size=28, num_classes=0)
    module.pretrained_cfg = {**module.pretrained_cfg, "mean": (0.5,) * 3, "std": (0.25,) * 3}
    assert build_backbone(module).mean == (0.5,) * 3
    plain = DinoSliceEmbedder(backbone=module, image_size=28, verbose=0)
    imagenet = DinoSliceEmbedder(backbone=module, image_size=28, verbose=0)
    imagenet.backbone = timm.create_model("vit_small_patch14_dinov2", img_size=28,
                                          num_classes=0)
    imagenet.backbone.load_state_dict(module.state_dict())  # the same weights
    own, reference = plain.fit_transform([volume]), imagenet.fit_transform([volume])
    assert "mean=(0.5, 0.5, 0.5)|std=(0.25, 0.25, 0.25)" in plain._config_string()
    assert "mean=" not in imagenet._config_string()
    assert not np.allclose(own, reference)
