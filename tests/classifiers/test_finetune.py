import joblib
import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder, FineTunedSliceClassifier
from sklearn_dinoatten.datasets import make_anomaly_images, make_volumes
from sklearn_dinoatten.embedding.backbones import build_backbone
from sklearn_dinoatten.volumes import IMAGENET_MEAN, IMAGENET_STD

TINY = dict(embedder=DinoSliceEmbedder(weights="random", image_size=28, n_slices=8),
            batch_size=8, random_state=0)


@pytest.fixture(scope="module")
def volumes():
    return make_volumes(n_samples=60, shape=(28, 28, 8), random_state=0)


@pytest.mark.parametrize("aggregator", [  # the transformer head: `make test-all` (10 s)
    pytest.param("transformer", marks=pytest.mark.slow), "attention"])
def test_learns_the_planted_signal(volumes, aggregator):
    X, y = volumes
    clf = FineTunedSliceClassifier(aggregator=aggregator, lr=1e-3, backbone_lr=1e-4,
                                   max_epochs=10, **TINY).fit(X[:40], y[:40])
    assert roc_auc_score(y[40:], clf.predict_proba(X[40:])[:, 1]) > 0.9  # chance: 0.5
    assert clf.attention_weights(X[:3]).shape == (3, 8)


def trained_blocks(clf, before):
    """Which of the backbone's blocks changed in training."""
    after = clf.net_.module_.backbone.blocks
    return [not all(torch.equal(a, b) for a, b in zip(old.parameters(), new.parameters(),
                                                        strict=True))
            for old, new in zip(before.blocks, after, strict=True)]


@pytest.mark.parametrize("freeze, expected", [
    ("all", [False] * 12), ("none", [True] * 12), ("last_n_blocks", [False] * 10 + [True] * 2),
])
def test_freeze_chooses_what_trains(volumes, freeze, expected):
    X, y = volumes
    before = build_backbone("vit_small_patch14_dinov2", weights="random", image_size=28,
                            in_chans=1).module
    clf = FineTunedSliceClassifier(freeze=freeze, max_epochs=1, **TINY).fit(X[:16], y[:16])
    assert trained_blocks(clf, before) == expected


def test_backbone_has_its_own_learning_rate(volumes):
    X, y = volumes
    clf = FineTunedSliceClassifier(lr=1e-3, backbone_lr=1e-6, max_epochs=1, **TINY)
    groups = clf.fit(X[:8], y[:8]).net_.optimizer_.param_groups
    assert [g["lr"] for g in groups] == [1e-6, 1e-3]
    n_backbone = sum(1 for _ in clf.net_.module_.backbone.parameters())
    assert len(groups[0]["params"]) == n_backbone
    with pytest.raises(ValueError, match="sets optimizer__param_groups itself"):
        FineTunedSliceClassifier(optimizer__param_groups=[], **TINY).fit(X[:8], y[:8])


def test_grayscale_patch_embedding_adapted_from_a_checkpoint(tmp_path):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        rgb = timm.create_model("vit_small_patch14_dinov2", img_size=56, num_classes=0)
    save_file(rgb.state_dict(), tmp_path / "vits14.safetensors")
    gray = build_backbone("vit_small_patch14_dinov2", weights=str(tmp_path / "vits14.safetensors"),
                          image_size=28, in_chans=1).module
    torch.testing.assert_close(gray.patch_embed.proj.weight,
                               rgb.patch_embed.proj.weight.sum(dim=1, keepdim=True))
    assert gray.pos_embed.shape[1] == 1 + 4  # interpolated from 4 x 4 to 2 x 2 patches


def test_images_pickling_and_bad_parameters(tmp_path):
    X, y = make_anomaly_images(n_normal=6, n_anomalous=6, random_state=0)
    clf = FineTunedSliceClassifier(in_chans=3, max_epochs=1, **{
        **TINY, "embedder": DinoSliceEmbedder(weights="random", image_size=28)})
    clf.fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (12, 2) and clf.attention_weights(X).shape == (12, 1)
    joblib.dump(clf, tmp_path / "clf.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "clf.joblib").predict_proba(X), proba)
    for params, message in [(dict(freeze="half"), "freeze must be"),
                            (dict(n_trainable_blocks=13), "n_trainable_blocks must be in"),
                            (dict(aggregator="mean"), "aggregator must be one of"),
                            (dict(in_chans=2), "in_chans must be one of 1, 3"),
                            (dict(embedder=DinoSliceEmbedder(backbone="hf:x")),
                             "with a timm model name as backbone")]:
        with pytest.raises(ValueError, match=message):
            FineTunedSliceClassifier(**{**TINY, **params}).fit(X, y)


def test_attention_head_over_patch_tokens_classifies_images():
    """The fine-tuning study's frozen setting: patch tokens are the instances of an
    attention head, with no new head: DinoSliceEmbedder(feature="patch") feeds
    AttentionPoolClassifier, whose attention gathers on the lesion's patches."""
    X, y, masks = make_anomaly_images(n_normal=60, n_anomalous=60, return_masks=True,
                                      random_state=0)
    order = np.random.default_rng(0).permutation(120)
    X, y, masks = [X[i] for i in order], y[order], [masks[i] for i in order]
    model = make_pipeline(
        DinoSliceEmbedder(weights="random", image_size=112, feature="patch", verbose=0),
        AttentionPoolClassifier(max_epochs=30, random_state=0),
    ).fit(X[:80], y[:80])
    assert roc_auc_score(y[80:] == -1, model.predict_proba(X[80:])[:, 0]) > 0.9
    attention = model[-1].attention_weights(model[0].transform(X[80:]))  # (40, 64 patches)
    lesion = [m.reshape(8, 8, 8, 8).any(axis=(1, 3)).ravel() for m in masks[80:]]
    sick = [i for i in range(40) if y[80 + i] == -1]
    mass = np.mean([attention[i][lesion[i]].sum() for i in sick])
    chance = np.mean([lesion[i].mean() for i in sick])  # ~2 of 64 patches
    assert mass > 4 * chance


def test_inputs_are_standardised_as_the_backbone_was_trained(volumes):
    """A CLIP ViT of timm is fine-tuned on inputs standardised with CLIP's mean/std, as
    its frozen embedder gives them, not ImageNet's."""
    from sklearn_dinoatten.classifiers._finetune import _backbone_inputs

    X, _ = volumes
    clip_name = "vit_base_patch16_clip_224.openai"
    config = timm.get_pretrained_cfg(clip_name)
    dinov2 = _backbone_inputs(DinoSliceEmbedder(image_size=28), X[:1], in_chans=3)
    clip = _backbone_inputs(DinoSliceEmbedder(backbone=clip_name, image_size=28), X[:1],
                            in_chans=3)
    for channel in range(3):  # both undo to the same [0, 1] slices
        np.testing.assert_allclose(
            clip[0, :, channel] * config.std[channel] + config.mean[channel],
            dinov2[0, :, channel] * IMAGENET_STD[channel] + IMAGENET_MEAN[channel], atol=1e-5)
    assert not np.allclose(clip, dinov2)
