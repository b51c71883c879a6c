"""The backbone's forward pass on ONNX Runtime, on OpenVINO and in int8: equal (float32)
or close (int8, bfloat16) to plain torch, the exported graph kept, reused and rebuilt
when damaged."""

import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder, clear_memory_cache
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.embedding import _engines as engines
from sklearn_dinoatten.embedding.backbones import build_backbone, weights_fingerprint
from sklearn_dinoatten.persistence import load_model, save_model

from .._helpers import hide_module

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
SIZE = 56
EXPORTED = ("onnxruntime", "openvino")  # the engines that run an exported ONNX graph


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


@pytest.mark.parametrize("engine", EXPORTED)
def test_an_exported_engine_in_float32_equals_torch(backbone, images, engine):
    with torch.inference_mode():
        reference = backbone.forward_features(images).numpy()
    tokens = engines.forward_features(backbone, engine=engine, image_size=SIZE)(images)
    np.testing.assert_allclose(tokens.numpy(), reference, atol=1e-4)


@pytest.mark.skipif(not engines.openvino_runs_bfloat16(),
                    reason="this CPU has no native bfloat16 (AVX-512 BF16 or AMX)")
def test_openvino_bfloat16_is_as_close_as_torchs(backbone, images):
    """OpenVINO's bfloat16 CLS tokens are as close to float32's as torch's bfloat16
    autocast's (0.9989 and 0.9987 here; all tokens 0.9999)."""
    with torch.inference_mode():
        reference = backbone.forward_features(images)[:, 0].numpy()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = backbone.forward_features(images)[:, 0].float().numpy()
    tokens = engines.forward_features(backbone, engine="openvino", dtype="bfloat16",
                                      image_size=SIZE)(images)
    assert tokens.dtype == torch.float32
    cosine = centred_cosine(tokens[:, 0].numpy(), reference)
    assert cosine >= 0.998 and cosine >= centred_cosine(autocast, reference) - 0.001


SIGNAL_STACK_BEFORE_AND_AFTER = """
import ctypes, torch
from sklearn_dinoatten.embedding import _engines as engines
from sklearn_dinoatten.embedding.backbones import build_backbone

def signal_stack():
    stack = engines._SignalStack()
    ctypes.CDLL(None).sigaltstack(None, ctypes.byref(stack))
    return stack.sp, stack.flags, stack.size

backbone = build_backbone("vit_small_patch14_dinov2", weights="random", image_size=28).module
before = signal_stack()
run = engines.forward_features(backbone, engine="openvino", image_size=28)  # kept alive
run(torch.zeros(1, 3, 28, 28))
print(before == signal_stack())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's sigaltstack")
def test_openvino_leaves_the_signal_stack_as_it_was():
    """OpenVINO's first compiled model in a process sets a 20 kB signal stack on its
    thread for as long as it lives; on a CPU with AMX the next SIGCHLD there (a reader
    process ending) overflowed it, and the suite died of a segmentation fault. Run in a
    new process, where that first compilation happens."""
    result = subprocess.run([sys.executable, "-c", SIGNAL_STACK_BEFORE_AND_AFTER],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


@pytest.mark.parametrize("dtype, says", [
    ("int8", "got dtype='int8' (for int8, engine='onnxruntime' measured faster)"),
    ("float16", "got dtype='float16'.")])
def test_openvino_refuses_what_it_does_not_run(backbone, dtype, says):
    with pytest.raises(ValueError, match=re.escape(
            f"engine='openvino' runs dtype='float32' or 'bfloat16'; {says}")):
        engines.forward_features(backbone, engine="openvino", dtype=dtype, image_size=SIZE)


def test_openvino_bfloat16_needs_a_cpu_that_computes_in_it(backbone, monkeypatch):
    """Where OpenVINO would quietly run float32 instead, the embedder says so at fit."""
    monkeypatch.setattr(engines, "openvino_runs_bfloat16", lambda core=None: False)
    embedder = DinoSliceEmbedder(weights="random", image_size=SIZE, verbose=0,
                                 engine="openvino", dtype="bfloat16")
    with pytest.raises(ValueError, match=r"needs a CPU with native bfloat16 \(AVX-512 BF16 "
                                         r"or AMX\), which this one lacks; use dtype='float32'"):
        embedder.fit([np.ones((8, 8, 2))])


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


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])  # the engines with int8
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


@pytest.mark.parametrize("engine", EXPORTED)
def test_an_exported_engine_embeds_as_torch_pickles_and_saves(engine, tmp_path):
    X, _ = make_volumes(n_samples=3, shape=(32, 32, 6), random_state=1)
    clear_memory_cache()
    reference = DinoSliceEmbedder(weights="random", image_size=SIZE, verbose=0).fit_transform(X)
    clear_memory_cache()
    embedder = DinoSliceEmbedder(weights="random", image_size=SIZE, verbose=0,
                                 engine=engine).fit(X)
    np.testing.assert_allclose(embedder.transform(X), reference, atol=1e-4)
    clear_memory_cache()
    np.testing.assert_allclose(pickle.loads(pickle.dumps(embedder)).transform(X), reference,
                               atol=1e-4)
    save_model(embedder, tmp_path / "embedder.safetensors")
    loaded = load_model(tmp_path / "embedder.safetensors")
    assert loaded.engine == engine
    clear_memory_cache()
    np.testing.assert_allclose(loaded.transform(X), reference, atol=1e-4)


@pytest.mark.parametrize("params", [dict(engine="onnxruntime"), dict(engine="openvino"),
                                    dict(dtype="int8")])
def test_a_cpu_only_engine_runs_on_the_cpu_beside_a_gpu(monkeypatch, params):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    embedder = DinoSliceEmbedder(weights="random", image_size=SIZE, verbose=0, **params)
    assert embedder.fit([np.ones((8, 8, 2))]).device_.type == "cpu"  # device="auto"


@pytest.mark.parametrize("engine", EXPORTED)
def test_the_graph_is_kept_reused_and_rebuilt_when_damaged(backbone, images, tmp_path,
                                                             monkeypatch, engine):
    exports, export = [], engines._export
    monkeypatch.setattr(engines, "_export", lambda *a: exports.append(1) or export(*a))
    fingerprint = weights_fingerprint(backbone, "vit_small_patch14_dinov2")

    def run():
        return engines.forward_features(backbone, engine=engine, image_size=SIZE,
                                        cache_dir=tmp_path, fingerprint=fingerprint)

    first = run()(images).numpy()
    (kept,) = [p for p in (tmp_path / "onnx").iterdir() if p.suffix == ".onnx"]
    run()
    assert len(exports) == 1  # the second session reads the kept graph
    with open(kept, "r+b") as f:  # a flipped byte in the middle
        f.seek(os.path.getsize(kept) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    again = run()(images).numpy()
    assert len(exports) == 2
    np.testing.assert_array_equal(again, first)


def test_the_engines_keep_graphs_of_their_own(backbone, tmp_path):
    fingerprint = weights_fingerprint(backbone, "vit_small_patch14_dinov2")
    for engine in EXPORTED:
        engines.forward_features(backbone, engine=engine, image_size=SIZE, cache_dir=tmp_path,
                                 fingerprint=fingerprint)
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 2  # each names its version


@pytest.mark.parametrize("engine, extra", [("onnxruntime", "onnx"), ("openvino", "openvino")])
@pytest.mark.parametrize("hidden", ["engine", "onnx"])
def test_without_the_extra_the_engine_names_it(backbone, monkeypatch, engine, extra, hidden):
    """The engine's own package or ONNX, which torch's exporter needs, missing: one line."""
    hide_module(monkeypatch, engine if hidden == "engine" else "onnx")
    with pytest.raises(ImportError, match=re.escape(
            f"engine={engine!r} needs the {extra} extra: pip install "
            f"'sklearn-dinoatten[{extra}]'")):
        engines.forward_features(backbone, engine=engine, image_size=SIZE)
    assert engines.forward_features(backbone, dtype="int8", image_size=SIZE) is not None
