"""Other libraries' vision models as slice encoders, built offline from a configuration
with random weights: shapes, the normalisation from the model's own configuration, and
cache keys of their own."""

import glob
import json

import numpy as np
import pytest
import torch

from sklearn_dinoatten import DinoSliceEmbedder
from sklearn_dinoatten.cli import main
from sklearn_dinoatten.embedding.backbones import _hub as hub
from sklearn_dinoatten.embedding.backbones import _open_clip as open_clip_family
from sklearn_dinoatten.embedding.backbones import build_backbone
from sklearn_dinoatten.evaluation import write_report
from sklearn_dinoatten.persistence import load_model, save_model

from ..._helpers import CountingViT, hide_module

transformers = pytest.importorskip("transformers")
RAD_DINO_MEAN, RAD_DINO_STD = (0.5307,) * 3, (0.2583,) * 3


@pytest.fixture(scope="module")
def hf_dinov2(tmp_path_factory):
    """A small DINOv2 saved as transformers saves one (RAD-DINO's normalisation)."""
    folder = tmp_path_factory.mktemp("hf_dinov2")
    config = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=64)
    transformers.Dinov2Model(config).save_pretrained(folder)
    transformers.BitImageProcessor(image_mean=RAD_DINO_MEAN,
                                   image_std=RAD_DINO_STD).save_pretrained(folder)
    return f"hf:{folder}"


def test_a_transformers_model_embeds_slices(hf_dinov2, volume, fresh_cache):
    built = build_backbone(hf_dinov2)
    assert (built.embed_dim, built.patch_size, built.num_prefix_tokens) == (32, 14, 1)
    assert (built.mean, built.std) == (RAD_DINO_MEAN, RAD_DINO_STD)
    embedder = DinoSliceEmbedder(backbone=hf_dinov2, image_size=28, verbose=0)
    out = embedder.fit_transform([volume])
    assert out.shape == (1, volume.shape[2], 32) and np.isfinite(out).all()
    patches = embedder.set_params(feature="patch").fit_transform([volume])
    assert patches.shape == (1, volume.shape[2] * 4, 32)  # 2 x 2 patches of 14 px
    assert "mean=(0.5307, 0.5307, 0.5307)" in embedder._config_string()
    timm_keys = DinoSliceEmbedder(weights="random", image_size=28).fit([volume])
    assert timm_keys._config_string() != embedder._config_string()


def test_a_dinov3_with_register_tokens(tmp_path, volume, fresh_cache):
    """DINOv3 (transformers): 16-px patches, CLS then 4 register tokens then the patches;
    the registers are prefix tokens, not patches."""
    config = transformers.DINOv3ViTConfig(hidden_size=32, num_hidden_layers=1,
                                          num_attention_heads=2, intermediate_size=64,
                                          num_register_tokens=4)
    transformers.DINOv3ViTModel(config).save_pretrained(tmp_path)  # no image processor
    with pytest.warns(UserWarning, match="No image processor found .* ImageNet's mean/std"):
        built = build_backbone(f"hf:{tmp_path}", image_size=32)
    assert (built.embed_dim, built.patch_size, built.num_prefix_tokens) == (32, 16, 5)
    assert built.mean == (0.485, 0.456, 0.406)
    embedder = DinoSliceEmbedder(backbone=f"hf:{tmp_path}", image_size=32, feature="patch",
                                 verbose=0)
    assert embedder.fit_transform([volume]).shape == (1, volume.shape[2] * 4, 32)


def test_a_deit_with_a_distillation_token(tmp_path, volume, fresh_cache):
    """DeiT (transformers): CLS, then its distillation token, then the patches; both are
    prefix tokens (before: feature="mean" averaged the distillation token in, and
    feature="patch" failed on a broadcast). At 56 px its position embedding, made for
    28, is interpolated."""
    config = transformers.DeiTConfig(hidden_size=32, num_hidden_layers=1, image_size=28,
                                     num_attention_heads=2, intermediate_size=64,
                                     patch_size=14)
    transformers.DeiTModel(config).save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="No image processor found"):
        built = build_backbone(f"hf:{tmp_path}", image_size=56)
    assert (built.patch_size, built.num_prefix_tokens) == (14, 2)

    def embed(feature):
        return DinoSliceEmbedder(backbone=f"hf:{tmp_path}", image_size=56, feature=feature,
                                 verbose=0).fit_transform([volume])

    patches, mean = embed("patch"), embed("mean")
    assert patches.shape == (1, volume.shape[2] * 16, 32)
    np.testing.assert_allclose(patches.reshape(volume.shape[2], 16, 32).mean(axis=1),
                               mean[0], atol=1e-5)


def test_a_backbone_that_miscounts_its_tokens_is_refused(volume, fresh_cache):
    module = CountingViT()
    module.num_prefix_tokens = 0  # the CLS token would be taken for a patch
    embedder = DinoSliceEmbedder(backbone=module, image_size=28, feature="patch", verbose=0)
    with pytest.raises(ValueError, match="5 tokens per slice, not its 0 prefix tokens and 4 "
                                         "patches"):
        embedder.fit_transform([volume])


def test_random_weights_and_saved_models(hf_dinov2, volume, tmp_path, fresh_cache):
    first = DinoSliceEmbedder(backbone=hf_dinov2, weights="random", image_size=28, verbose=0)
    second = DinoSliceEmbedder(backbone=hf_dinov2, weights="random", image_size=28, verbose=0)
    np.testing.assert_array_equal(first.fit_transform([volume]), second.fit_transform([volume]))
    save_model(first, tmp_path / "embedder.safetensors")
    loaded = load_model(tmp_path / "embedder.safetensors")
    np.testing.assert_array_equal(loaded.transform([volume]), first.transform([volume]))


def test_bad_transformers_sources(hf_dinov2, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="takes its weights from the model's directory"):
        build_backbone(hf_dinov2, weights=str(tmp_path / "w.pth"))
    with pytest.raises(ValueError, match="no transformers model there"):
        build_backbone(f"hf:{tmp_path}")
    with pytest.raises(ValueError, match="there is no folder .*missing', and it is not a hub"):
        build_backbone(f"hf:{tmp_path}/missing")
    from huggingface_hub import constants  # a hub id, with the hub unreachable: at once

    def unreachable(address, timeout):
        assert timeout == hub.HUB_TIMEOUT
        raise OSError(f"cannot reach {address[0]}")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    monkeypatch.setattr(hub.socket, "create_connection", unreachable)
    with pytest.raises(RuntimeError, match=r"not in the local cache and .* cannot be reached "
                                           r"\(cannot reach .*\): there is no folder 'org/vit' "
                                           r"here either; download the model's folder once"):
        build_backbone("hf:org/vit")
    hide_module(monkeypatch, "transformers")
    with pytest.raises(ImportError, match=r"pip install 'sklearn-dinoatten\[hf\]'"):
        build_backbone(hf_dinov2)
    hide_module(monkeypatch, "open_clip")
    with pytest.raises(ImportError, match=r"pip install 'sklearn-dinoatten\[open_clip\]'"):
        build_backbone("open_clip:ViT-B-16", weights="random")


def test_a_torchvision_cnn_embeds_slices(volume, tmp_path, fresh_cache):
    """The pooled features are the CLS row, the last feature map's cells the patches."""
    built = build_backbone("torchvision:resnet18", weights="random", image_size=64)
    assert (built.embed_dim, built.patch_size, built.num_prefix_tokens) == (512, 32, 1)
    assert (built.mean, built.std) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    embedder = DinoSliceEmbedder(backbone="torchvision:resnet18", weights="random",
                                 image_size=64, verbose=0)
    out = embedder.fit_transform([volume])
    assert out.shape == (1, volume.shape[2], 512) and np.isfinite(out).all()
    patches = embedder.set_params(feature="patch").fit_transform([volume])
    assert patches.shape == (1, volume.shape[2] * 4, 512)  # 2 x 2 cells of 32 px
    np.testing.assert_allclose(patches.reshape(-1, 4, 512).mean(axis=1), out[0], atol=1e-5)
    state = build_backbone("torchvision:resnet18", weights="random",
                           image_size=64).module.model.state_dict()
    torch.save(state, tmp_path / "resnet18.pth")
    from_file = DinoSliceEmbedder(backbone="torchvision:resnet18", image_size=64, verbose=0,
                                  weights=str(tmp_path / "resnet18.pth"))
    np.testing.assert_allclose(from_file.fit_transform([volume]), out, atol=1e-5)
    with pytest.raises(ValueError, match="not a torchvision classification model"):
        build_backbone("torchvision:resnet_x")
    with pytest.raises(ValueError, match="multiple of the backbone's patch size 32; try 64"):
        build_backbone("torchvision:resnet18", weights="random", image_size=56)


def test_an_open_clip_tower_embeds_slices(volume, tmp_path, fresh_cache):
    """The CLS row is the CLIP image embedding; the patches share its space."""
    open_clip = pytest.importorskip("open_clip")
    built = build_backbone("open_clip:ViT-B-16", weights="random", image_size=32)
    assert (built.embed_dim, built.patch_size, built.num_prefix_tokens) == (512, 16, 1)
    assert built.mean == tuple(open_clip.OPENAI_DATASET_MEAN)
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        tokens = built.module.forward_features(images)
        torch.testing.assert_close(tokens[:, 0], built.module.visual(images), atol=1e-5,
                                   rtol=0)
    assert tokens.shape == (2, 1 + 4, 512)
    embedder = DinoSliceEmbedder(backbone="open_clip:ViT-B-16", weights="random",
                                 image_size=32, verbose=0)
    assert embedder.fit_transform([volume]).shape == (1, volume.shape[2], 512)
    with pytest.raises(ValueError, match="names no weights: add a pretrained tag"):
        build_backbone("open_clip:ViT-B-16")
    native = build_backbone("open_clip:ViT-B-16", weights="random").module.visual  # 224 px
    torch.save({f"visual.{k}": v for k, v in native.state_dict().items()},
               tmp_path / "clip.pt")
    loaded = build_backbone("open_clip:ViT-B-16", weights=str(tmp_path / "clip.pt"),
                            image_size=32).module.visual
    torch.testing.assert_close(loaded.proj, native.proj, atol=0, rtol=0)
    assert loaded.positional_embedding.shape == (1 + 4, 768)  # resampled to 2 x 2 patches


@pytest.mark.parametrize("backbone, image_size", [("torchvision:resnet18", 64),
                                                  ("open_clip:ViT-B-16", 32)])
def test_saved_models_of_other_families_round_trip(backbone, image_size, volume, tmp_path,
                                                   fresh_cache):
    embedder = DinoSliceEmbedder(backbone=backbone, weights="random", image_size=image_size,
                                 verbose=0).fit([volume])
    save_model(embedder, tmp_path / "embedder.safetensors")
    loaded = load_model(tmp_path / "embedder.safetensors")
    np.testing.assert_array_equal(loaded.transform([volume]), embedder.transform([volume]))


def test_model_instances_are_adapted(hf_dinov2, volume, fresh_cache):
    """A module of each library gives what its name gives (same weights)."""
    import torchvision

    folder = hf_dinov2.removeprefix("hf:")
    by_name = DinoSliceEmbedder(backbone=hf_dinov2, image_size=28, verbose=0)
    instance = transformers.AutoModel.from_pretrained(folder)
    by_instance = DinoSliceEmbedder(backbone=instance, image_size=28, verbose=0)
    np.testing.assert_allclose(by_instance.fit_transform([volume]),
                               by_name.fit_transform([volume]), atol=1e-6)
    info = by_instance.backbone_info_
    assert (info.mean, info.std) == (RAD_DINO_MEAN, RAD_DINO_STD)  # its processor's

    built = build_backbone("torchvision:resnet18", weights="random", image_size=64)
    resnet = torchvision.models.resnet18()
    resnet.load_state_dict(built.module.model.state_dict())
    adapted = build_backbone(resnet, image_size=64)
    assert (adapted.embed_dim, adapted.patch_size, adapted.mean) == (512, 32, built.mean)
    assert resnet.training  # the caller's module is left as it was

    open_clip = pytest.importorskip("open_clip")
    clip = open_clip.create_model("ViT-B-16", force_image_size=32)
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        tokens = build_backbone(clip, image_size=32).module.forward_features(images)
        torch.testing.assert_close(tokens[:, 0], clip.encode_image(images), atol=1e-5, rtol=0)


def test_a_timm_based_open_clip_tower_from_a_local_directory(tmp_path, volume, fresh_cache,
                                                             caplog):
    """BiomedCLIP's layout (a timm ViT trunk, a linear projection head, a text tower on a
    transformers model), read offline from a local directory as the hub holds it: the
    config, the normalisation and the image tower's weights, resampled to the input size."""
    pytest.importorskip("open_clip")
    mean, std = (0.4, 0.4, 0.4), (0.3, 0.3, 0.3)
    text = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"  # not reachable here
    config = {"model_cfg": {
        "embed_dim": 24,
        "vision_cfg": {"timm_model_name": "vit_tiny_patch16_224", "timm_pool": "",
                       "timm_proj": "linear", "image_size": 224},
        "text_cfg": {"hf_model_name": text, "hf_tokenizer_name": text, "hf_proj_type": "mlp",
                     "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 256}},
        "preprocess_cfg": {"mean": mean, "std": std}}
    (tmp_path / "open_clip_config.json").write_text(json.dumps(config))
    spec = f"open_clip:local-dir:{tmp_path}"
    with caplog.at_level("WARNING"):
        native = build_backbone(spec, weights="random", image_size=224).module
    assert not caplog.records  # open_clip's notices of random weights
    with pytest.raises(ValueError, match="holds none of open_clip_model.safetensors"):
        build_backbone(spec, image_size=32)
    checkpoint = {f"visual.{k}": v for k, v in native.visual.state_dict().items()}
    checkpoint["text.transformer.embeddings.word_embeddings.weight"] = torch.zeros(4, 2)
    torch.save(checkpoint, tmp_path / "open_clip_pytorch_model.bin")  # a 224-px checkpoint

    built = build_backbone(spec, image_size=32)
    assert (built.embed_dim, built.patch_size, built.num_prefix_tokens) == (24, 16, 1)
    assert (built.mean, built.std) == (mean, std)
    torch.testing.assert_close(built.module.visual.head.proj.weight,
                               native.visual.head.proj.weight, atol=0, rtol=0)
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        tokens = built.module.forward_features(images)
        torch.testing.assert_close(tokens[:, 0], built.module.visual(images), atol=1e-5,
                                   rtol=0)
    embedder = DinoSliceEmbedder(backbone=spec, image_size=32, verbose=0)
    assert embedder.fit_transform([volume]).shape == (1, volume.shape[2], 24)


def test_cv_compares_encoders_on_the_same_folds(hf_dinov2, tmp_path):
    """`dinoatten cv --backbone a,b,c`: each encoder embeds once into its own cache
    entries, every (encoder, method) pair is scored on the same folds (the pair of a
    one-encoder run gives the same probabilities), and the report compares them."""
    from ...cli.test_cli import make_study, read_csv, run_cli

    data = make_study(tmp_path / "data", n=12)
    encoders = ["vit_small_patch14_dinov2", hf_dinov2, "torchvision:resnet18"]
    common = ["--weights", "random", "--image-size", "224", "--n-slices", "2", "--epochs",
              "3", "--folds", "2", "--cache-dir", str(tmp_path / "cache")]
    out = tmp_path / "cv"
    result = run_cli("cv", data, "--backbone", ",".join(encoders), "--method", "dinoatten3d,mean",
                     "--out", str(out), *common)
    assert result.returncode == 0, result.stderr
    assert len(glob.glob(str(tmp_path / "cache" / "**" / "*.npz"), recursive=True)) == 3 * 12
    metrics = read_csv(out / "metrics.csv")
    names = [f"{method} [{encoder}]" for method in ("DinoAtten3D", "Mean pooling")
             for encoder in encoders]
    assert [row["method"] for row in metrics] == names
    assert metrics[0]["delong_p"] == "nan" and all(0 <= float(r["delong_p"]) <= 1
                                                   for r in metrics[1:])
    run = json.loads((out / "run.json").read_text())
    assert list(run["embedders"]) == encoders and run["embedder"] is None
    assert run["reference"] == "dinoatten3d@vit_small_patch14_dinov2"
    assert "Slice encoders compared: " + ", ".join(encoders) in run["caption"]

    alone = tmp_path / "alone"  # in this process: the subprocess above was the CLI's test
    assert main(["cv", data, "--backbone", hf_dinov2, "--out", str(alone), *common]) == 0
    assert len(glob.glob(str(tmp_path / "cache" / "**" / "*.npz"), recursive=True)) == 3 * 12
    together = {r["path"]: r for r in read_csv(out / "predictions.csv")}
    for row in read_csv(alone / "predictions.csv"):
        assert row["fold"] == together[row["path"]]["fold"]
        assert float(row["dinoatten3d_p_1"]) == pytest.approx(
            float(together[row["path"]][f"dinoatten3d@{hf_dinov2}_p_1"]), abs=1e-6)

    report = open(write_report(out, overlays=0, verbose=0)).read()
    assert all(f"<td>{name}</td>" in report for name in names)


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_every_family_runs_on_an_exported_engine(hf_dinov2, volume, fresh_cache, engine):
    """The adapters export to ONNX (open_clip's attention without its fused inference
    path, which has no ONNX form) and give torch's embeddings on ONNX Runtime and
    OpenVINO."""
    pytest.importorskip(engine)
    for backbone, image_size in [(hf_dinov2, 28), ("torchvision:resnet18", 64),
                                 ("open_clip:ViT-B-16", 32)]:
        params = dict(backbone=backbone, weights="random", image_size=image_size, verbose=0)
        reference = DinoSliceEmbedder(**params).fit_transform([volume])
        exported = DinoSliceEmbedder(**params, engine=engine).fit_transform([volume])
        np.testing.assert_allclose(exported, reference, atol=1e-4, err_msg=backbone)
    assert torch.backends.mha.get_fastpath_enabled()  # restored after the export


def test_open_clip_tags_bring_their_activation_and_fail_fast_offline(tmp_path, monkeypatch):
    """OpenAI's CLIP weights were trained with QuickGELU: the tag says so and the tower is
    built with it; a tag whose weights are neither cached nor reachable fails at once."""
    open_clip = pytest.importorskip("open_clip")
    tower = build_backbone("open_clip:ViT-B-16", weights="random").module.visual  # 224 px
    torch.save({f"visual.{k}": v for k, v in tower.state_dict().items()},
               tmp_path / "openai.pt")
    checkpoint = str(tmp_path / "openai.pt")
    monkeypatch.setattr(open_clip, "download_pretrained", lambda *args, **kwargs: checkpoint)
    monkeypatch.setattr(open_clip_family, "check_hub", lambda *args: None)  # as if cached
    tagged = build_backbone("open_clip:ViT-B-16@openai", image_size=32).module.visual
    assert type(tagged.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    assert type(tower.transformer.resblocks[0].mlp.gelu).__name__ == "GELU"
    monkeypatch.undo()

    from huggingface_hub import constants

    def unreachable(address, timeout):
        raise OSError(f"cannot reach {address[0]}")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    monkeypatch.setattr(hub.socket, "create_connection", unreachable)
    monkeypatch.setattr(open_clip, "create_model", None)  # never reached
    for spec in ("ViT-B-16@openai", "hf-hub:org/clip"):
        with pytest.raises(RuntimeError, match="cannot be reached .*'open_clip:local-dir:"):
            build_backbone(f"open_clip:{spec}", image_size=32)
