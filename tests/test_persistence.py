"""Models saved as safetensors load back predicting the same, and loading never runs
code: pickles, foreign classes and other files are refused."""

import json
import os
import pickle
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import (
    AttentionPoolClassifier,
    DinoSliceEmbedder,
    ResNet3DClassifier,
    VolumeResampler,
)
from sklearn_dinoatten.anomaly import MemoryBankAnomalyDetector, SpatialARAnomalyDetector
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.persistence import FORMAT, load_model, save_model

from ._helpers import CLASSIFIERS, FAST, classifier_inputs


def round_trip(model, tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(model, path)
    return load_model(path)


@pytest.fixture(scope="module")
def volumes():
    return make_volumes(n_samples=6, shape=(20, 24, 6), random_state=0)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_every_classifier_predicts_the_same_after_loading(name, tmp_path):
    X, y = classifier_inputs(name, 6), np.array(["no", "yes"] * 3)
    model = CLASSIFIERS[name]().fit(X, y)
    loaded = round_trip(model, tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.classes_.tolist() == ["no", "yes"]
    assert loaded.get_params() == model.get_params()


def test_a_pipeline_from_volumes_predicts_the_same(volumes, tmp_path, fresh_cache):
    X, y = volumes
    pipe = make_pipeline(DinoSliceEmbedder(n_slices=4, **FAST),
                         AttentionPoolClassifier(max_epochs=2, random_state=0)).fit(X, y)
    loaded = round_trip(pipe, tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))
    # The saved weights' fingerprint is kept, so the cache keys are the original ones.
    assert loaded[0]._config_string() == pipe[0]._config_string()
    resnet = make_pipeline(VolumeResampler(shape=(32, 32, 32)), ResNet3DClassifier(
        depth=10, widen_factor=0.25, max_epochs=1, random_state=0)).fit(X, y)
    np.testing.assert_array_equal(round_trip(resnet, tmp_path).predict_proba(X),
                                  resnet.predict_proba(X))


@pytest.mark.parametrize("detector", [
    SpatialARAnomalyDetector(embedder=DinoSliceEmbedder(**FAST), max_epochs=2, random_state=0),
    MemoryBankAnomalyDetector(embedder=DinoSliceEmbedder(**FAST), coreset_ratio=0.5,
                              random_state=0),
])
def test_detectors_score_the_same_after_loading(detector, volumes, tmp_path):
    X, _ = volumes
    detector.fit(X)
    loaded = round_trip(detector, tmp_path)
    np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))
    np.testing.assert_array_equal(loaded.predict(X), detector.predict(X))


def test_an_unfitted_estimator_keeps_its_parameters(tmp_path):
    model = AttentionPoolClassifier(hidden_dims=(32, 16), optimizer=torch.optim.SGD,
                                    optimizer__momentum=0.9)
    loaded = round_trip(model, tmp_path)
    assert loaded.get_params() == model.get_params()
    assert not hasattr(loaded, "net_")


def test_what_cannot_be_saved_safely_is_named(tmp_path):
    with pytest.raises(ValueError, match="model: LogisticRegression cannot be saved"):
        save_model(LogisticRegression(), tmp_path / "m.safetensors")
    module = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="model.backbone: a Linear cannot be saved"):
        save_model(DinoSliceEmbedder(backbone=module, weights=None), tmp_path / "m.safetensors")
    assert not os.path.exists(tmp_path / "m.safetensors")


class RunsCode:
    """A pickle payload that would create a file if it were ever unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_is_refused_without_being_run(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps(RunsCode(str(marker))))
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("spec, message", [
    ({"class": "Popen", "params": {}, "fitted": {}, "modules": {}}, "damaged"),
    ({"class": "AttentionPoolClassifier", "fitted": {}, "modules": {},
      "params": {"optimizer": {"optimizer": "load"}}}, "not a torch optimizer"),
    ({"class": "AttentionPoolClassifier", "fitted": {}, "modules": {},
      "params": {"lr": {"callable": "os.system"}}}, "unknown entry 'callable'"),
])
def test_a_forged_header_builds_nothing_else(tmp_path, spec, message):
    path = tmp_path / "model.safetensors"
    save_file({"x": torch.zeros(1)}, path,
              metadata={"format": FORMAT, "model": json.dumps(spec)})
    with pytest.raises(ValueError, match=message):
        load_model(path)


def test_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        load_model(tmp_path / "missing.safetensors")
    weights = tmp_path / "weights.safetensors"
    save_file({"x": torch.zeros(1)}, weights)
    with pytest.raises(ValueError, match="no model saved by"):
        load_model(weights)


def test_loading_neither_warns_of_random_weights_nor_uses_up_the_warning(
        monkeypatch, volumes, tmp_path):
    from sklearn_dinoatten import backbones

    X, _ = volumes
    path = tmp_path / "embedder.safetensors"
    save_model(DinoSliceEmbedder(**FAST).fit(X), path)
    monkeypatch.setattr(backbones, "_WARNED_RANDOM", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_model(path)
    assert not [w for w in caught if "randomly initialised" in str(w.message)]
    with pytest.warns(UserWarning, match="randomly initialised"):
        DinoSliceEmbedder(**FAST).fit(X)
