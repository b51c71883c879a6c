"""The backbone's forward pass on ONNX Runtime and in int8: equal (float32) or close
(int8) to plain torch, the exported graph kept, reused and rebuilt when damaged."""

import os
import pickle

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder, clear_memory_cache
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.embedding import _engines as engines
from sklearn_dinoatten.embedding.backbones import build_backbone, weights_fingerprint

from .._helpers import hide_module

pytest.importorskip("onnxruntime")
SIZE = 56


@pytest.fixture(scope="module")
def backbone():
    return build_backbone("vit_small_patch14_dinov2", weights="random",
                          image_size=SIZE).module.eval()


@pytest.fixture(scope="module")
def images():
    # Smooth images (blurred noise), closer to slices than white noise.
    noise = torch.rand(8, 3, SIZE // 4, SIZE // 4, generator=torch.Generator().manual_seed(0))
    return torch.nn.functional.interpolate(noise, size=SIZE, mode="bilinear")


def centred_cosine(a, b):
    """Cosine of two sets of embedding rows after subtracting each set's mean
    (random-weight CLS tokens are nearly constant, so a plain cosine says little)."""
    a, b = a - np.nanmean(a, 0), b - np.nanmean(b, 0)
    return float(np.nansum(a * b) / np.sqrt(np.nansum(a * a) * np.nansum(b * b)))


def test_onnxruntime_float32_equals_torch(backbone, images):
    with torch.inference_mode():
        reference = backbone.forward_features(images).numpy()
    tokens = engines.forward_features(backbone, engine="onnxruntime", image_size=SIZE)(images)
    np.testing.assert_allclose(tokens.numpy(), reference, atol=1e-4)


@pytest.fixture(scope="module")
def study():
    """The synthetic study, small: 40 volumes of 16 slices, their float32 embeddings,
    the attention heads of a 5-fold CV trained on them and their out-of-fold AUC. At
    42 px with random weights that AUC is mid-range (0.86 here), where a drop can show;
    it is computed from the pooled out-of-fold probabilities, in steps of 1/400."""
    X, y = make_volumes(n_samples=40, shape=(32, 32, 16), random_state=0)
    embeddings = embed(X)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    heads = [(test, AttentionPoolClassifier(max_epochs=30, random_state=0).fit(
        embeddings[train], y[train])) for train, test in cv.split(embeddings, y)]
    return X, y, embeddings, heads, out_of_fold_auc(heads, embeddings, y)


def embed(X, **params):
    clear_memory_cache()  # the cache would serve float32's embeddings to int8
    return DinoSliceEmbedder(weights="random", image_size=42, verbose=0,
                             **params).fit_transform(X)


def out_of_fold_auc(heads, embeddings, y):
    proba = np.zeros(len(y))
    for test, head in heads:
        proba[test] = head.predict_proba(embeddings[test])[:, 1]
    return roc_auc_score(y, proba)


@pytest.mark.parametrize("engine", engines.ENGINES)
def test_int8_keeps_the_embeddings_and_the_study(study, engine):
    """On slices of volumes (not noise), int8 keeps the embeddings' directions, and the
    study's heads, given int8 embeddings, keep their out-of-fold AUC within 0.01.

    The heads are those trained on float32 embeddings: trained again on int8 ones, the
    CV AUC moves by chance as much as it does on float32 embeddings with noise of the
    same size (measured on an AVX-512 machine: 0.805 and 0.8825 for ONNX Runtime's and
    torch's int8, 0.875 and 0.8425 for the two noises, against 0.8625), which says how
    training varies, not what int8 does."""
    X, y, reference, heads, reference_auc = study
    int8 = embed(X, engine=engine, dtype="int8")
    assert int8.shape == reference.shape
    assert centred_cosine(int8.reshape(-1, int8.shape[-1]),
                          reference.reshape(-1, reference.shape[-1])) >= 0.99
    assert abs(out_of_fold_auc(heads, int8, y) - reference_auc) <= 0.01


def test_onnxruntime_embedder_equals_torch_and_pickles():
    X, _ = make_volumes(n_samples=3, shape=(32, 32, 6), random_state=1)
    clear_memory_cache()
    reference = DinoSliceEmbedder(weights="random", image_size=SIZE, verbose=0).fit_transform(X)
    clear_memory_cache()
    embedder = DinoSliceEmbedder(weights="random", image_size=SIZE, verbose=0,
                                 engine="onnxruntime").fit(X)
    np.testing.assert_allclose(embedder.transform(X), reference, atol=1e-4)
    clear_memory_cache()
    np.testing.assert_allclose(pickle.loads(pickle.dumps(embedder)).transform(X), reference,
                               atol=1e-4)


@pytest.mark.parametrize("params", [dict(engine="onnxruntime"), dict(dtype="int8")])
def test_a_cpu_only_engine_runs_on_the_cpu_beside_a_gpu(monkeypatch, params):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    embedder = DinoSliceEmbedder(weights="random", image_size=SIZE, verbose=0, **params)
    assert embedder.fit([np.ones((8, 8, 2))]).device_.type == "cpu"  # device="auto"


def test_the_graph_is_kept_reused_and_rebuilt_when_damaged(backbone, images, tmp_path,
                                                             monkeypatch):
    exports, export = [], engines._export
    monkeypatch.setattr(engines, "_export", lambda *a: exports.append(1) or export(*a))
    fingerprint = weights_fingerprint(backbone, "vit_small_patch14_dinov2")
    run = engines.forward_features(backbone, engine="onnxruntime", image_size=SIZE,
                                   cache_dir=tmp_path, fingerprint=fingerprint)
    first = run(images).numpy()
    (kept,) = [p for p in (tmp_path / "onnx").iterdir() if p.suffix == ".onnx"]
    engines.forward_features(backbone, engine="onnxruntime", image_size=SIZE, cache_dir=tmp_path,
                             fingerprint=fingerprint)
    assert len(exports) == 1  # the second session reads the kept graph
    with open(kept, "r+b") as f:  # a flipped byte in the middle
        f.seek(os.path.getsize(kept) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    again = engines.forward_features(backbone, engine="onnxruntime", image_size=SIZE,
                                     cache_dir=tmp_path, fingerprint=fingerprint)(images).numpy()
    assert len(exports) == 2
    np.testing.assert_array_equal(again, first)


def test_without_the_extra_the_engine_names_it(backbone, monkeypatch):
    hide_module(monkeypatch, "onnxruntime")
    with pytest.raises(ImportError, match=r"pip install 'sklearn-dinoatten\[onnx\]'"):
        engines.forward_features(backbone, engine="onnxruntime", image_size=SIZE)
    assert engines.forward_features(backbone, dtype="int8", image_size=SIZE) is not None
