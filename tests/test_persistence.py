"""Models saved as safetensors load back predicting the same, and loading never runs
code: pickles, foreign classes and other files are refused."""

import json
import os
import pickle
import resource
import warnings

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import (
    AttentionPoolClassifier,
    DinoSliceEmbedder,
    OperatingPointClassifier,
    ResNet3DClassifier,
    VolumeResampler,
    persistence,
)
from sklearn_dinoatten.anomaly import MemoryBankAnomalyDetector, SpatialARAnomalyDetector
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.persistence import FORMAT, load_model, save_model

from ._helpers import CLASSIFIERS, FAST, classifier_inputs, round_trip


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
    assert plain_params(loaded) == plain_params(model)


def plain_params(estimator):
    """Every parameter, nested ones too (``embedder__image_size``), but the estimator
    objects themselves, which compare by identity."""
    return {k: v for k, v in estimator.get_params().items() if not isinstance(v, BaseEstimator)}


def test_a_pipeline_from_volumes_predicts_the_same(volumes, tmp_path, fresh_cache):
    X, y = volumes
    pipe = make_pipeline(DinoSliceEmbedder(n_slices=4, **FAST),
                         AttentionPoolClassifier(max_epochs=2, random_state=0)).fit(X, y)
    loaded = round_trip(pipe, tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))
    # The same weights give the same fingerprint, so the cache keys are the original ones.
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
    ({"class": "Popen", "params": {}, "fitted": {}, "modules": {}}, "'Popen' is not an estimator"),
    ({"class": "AttentionPoolClassifier", "fitted": {}, "modules": {},
      "params": {"optimizer": {"optimizer": "load"}}}, "not a torch optimizer"),
    ({"class": "AttentionPoolClassifier", "fitted": {}, "modules": {},
      "params": {"lr": {"callable": "os.system"}}}, "unknown entry 'callable'"),
])
def test_a_forged_header_builds_nothing_else(tmp_path, spec, message):
    path = tmp_path / "model.safetensors"
    forge(path, spec, {"x": torch.zeros(1)})
    with pytest.raises(ValueError, match=message):
        load_model(path)


def forge(path, spec, tensors):
    """Write a model file as a forger would: any description, a matching digest."""
    spec = json.dumps(spec)
    save_file(tensors, path, metadata={"format": FORMAT, "model": spec,
                                       "sha256": persistence._digest(spec, tensors)})


def read(path):
    """The description and tensors of a model file."""
    with safe_open(path, framework="pt") as f:
        return json.loads(f.metadata()["model"]), {k: f.get_tensor(k) for k in f.keys()}


def test_a_loaded_pipeline_cannot_be_pointed_at_files_to_unpickle(tmp_path):
    """Pipeline(memory=DIR) would unpickle what DIR holds at the next fit."""
    X, y = np.random.default_rng(0).normal(size=(8, 3, 4)), [0, 1] * 4
    path = tmp_path / "model.safetensors"
    save_model(make_pipeline(AttentionPoolClassifier(max_epochs=1)).fit(X, y), path)
    spec, tensors = read(path)
    spec["params"]["memory"] = str(tmp_path / "planted")
    forge(path, spec, tensors)
    with pytest.raises(ValueError, match="Pipeline: memory must be None; got '.*planted'"):
        load_model(path)


def test_the_cache_fingerprint_comes_from_the_loaded_weights(tmp_path, fresh_cache):
    """Altered backbone weights under the original header: other embeddings, other keys."""
    X = make_volumes(n_samples=2, shape=(20, 20, 4), random_state=0)[0]
    embedder = DinoSliceEmbedder(**FAST).fit(X)
    clean = embedder.transform(X)
    path = tmp_path / "embedder.safetensors"
    save_model(embedder, path)
    assert load_model(path)._config_string() == embedder._config_string()
    spec, tensors = read(path)
    name = next(k for k in tensors if k.endswith("blocks.0.attn.qkv.weight"))
    tensors[name] = tensors[name] * 3
    forge(path, spec, tensors)
    altered = load_model(path)
    assert altered._config_string() != embedder._config_string()
    assert not np.allclose(altered.transform(X), clean)


def test_a_forged_size_is_refused_before_anything_is_allocated(tmp_path):
    """image_size=21000 would make a 3.4 GB position embedding."""
    X = make_volumes(n_samples=2, shape=(20, 20, 4), random_state=0)[0]
    path = tmp_path / "embedder.safetensors"
    save_model(DinoSliceEmbedder(**FAST).fit(X), path)
    spec, tensors = read(path)
    spec["params"]["image_size"] = 21000
    forge(path, spec, tensors)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(ValueError, match="pos_embed' is .* in the file, .* for the parameters"):
        load_model(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 1024**2  # < 1 GiB


@pytest.mark.parametrize("attribute", ["predict", "__class__", "not an identifier"])
def test_a_forged_fitted_attribute_is_refused(tmp_path, attribute):
    X, y = np.random.default_rng(0).normal(size=(8, 3, 4)), [0, 1] * 4
    path = tmp_path / "model.safetensors"
    save_model(AttentionPoolClassifier(max_epochs=1).fit(X, y), path)
    spec, tensors = read(path)
    spec["fitted"][attribute] = "x"
    forge(path, spec, tensors)
    with pytest.raises(ValueError, match="no fitted attribute"):
        load_model(path)


def test_one_flipped_bit_is_found(tmp_path):
    X, y = np.random.default_rng(0).normal(size=(8, 3, 4)), [0, 1] * 4
    path = tmp_path / "model.safetensors"
    save_model(AttentionPoolClassifier(max_epochs=1).fit(X, y), path)
    data = bytearray(path.read_bytes())
    # In the last tensor; in the header's model description. (A fixed offset into the
    # header was flaky: safetensors writes the metadata keys in a random order, so it
    # fell now in the digest, now in the format tag, each refused with another message.)
    for offset in (len(data) - 5, data.index(b"AttentionPoolClassifier")):
        flipped = data.copy()
        flipped[offset] ^= 0x10
        path.write_bytes(bytes(flipped))
        with pytest.raises(ValueError, match="damaged|Cannot read|cannot be loaded"):
            load_model(path)


def test_a_model_from_a_cuda_machine_loads_on_the_device_available(tmp_path):
    X, y = np.random.default_rng(0).normal(size=(8, 3, 4)), [0, 1] * 4
    model = AttentionPoolClassifier(max_epochs=1, random_state=0).fit(X, y)
    path = tmp_path / "model.safetensors"
    save_model(model.set_params(device="cuda:7"), path)
    with pytest.warns(UserWarning, match="device='cuda:7', which is not available here"):
        loaded = load_model(path)
    assert loaded.device == "auto"
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_model(path, device="cpu").device_ == torch.device("cpu")


def test_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        load_model(tmp_path / "missing.safetensors")
    weights = tmp_path / "weights.safetensors"
    save_file({"x": torch.zeros(1)}, weights)
    with pytest.raises(ValueError, match="no model saved by"):
        load_model(weights)


def test_loading_neither_warns_of_random_weights_nor_uses_up_the_warning(
        monkeypatch, volumes, tmp_path):
    from sklearn_dinoatten.utils import _warnings

    X, _ = volumes
    path = tmp_path / "embedder.safetensors"
    save_model(DinoSliceEmbedder(**FAST).fit(X), path)
    monkeypatch.setattr(_warnings, "_GIVEN", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_model(path)
    assert not [w for w in caught if "randomly initialised" in str(w.message)]
    with pytest.warns(UserWarning, match="randomly initialised"):
        DinoSliceEmbedder(**FAST).fit(X)


def test_the_cache_folder_belongs_to_the_machine_not_the_model(tmp_path):
    X = make_volumes(n_samples=2, shape=(20, 20, 4), random_state=0)[0]
    path = tmp_path / "embedder.safetensors"
    save_model(DinoSliceEmbedder(**FAST, cache_dir=tmp_path / "theirs").fit(X), path)
    assert load_model(path).cache_dir is None
    assert load_model(path, cache_dir=tmp_path / "mine").cache_dir == tmp_path / "mine"


def test_a_description_nested_too_deep_is_one_error(tmp_path):
    path, tensors = tmp_path / "model.safetensors", {"x": torch.zeros(1)}
    spec = '{"class": "VolumeResampler", "params": {"shape": ' + "[" * 100_000 \
        + "]" * 100_000 + "}}"
    save_file(tensors, path, metadata={"format": FORMAT, "model": spec,
                                       "sha256": persistence._digest(spec, tensors)})
    with pytest.raises(ValueError, match="no readable model description"):
        load_model(path)


@pytest.fixture(scope="module")
def operating_point_file(tmp_path_factory):
    """A saved OperatingPointClassifier with a rule and a Platt recalibration."""
    rng = np.random.default_rng(0)
    y = np.arange(20) % 2
    X = rng.normal(size=(20, 3, 4)).astype(np.float32) + y[:, None, None]
    model = OperatingPointClassifier(
        estimator=AttentionPoolClassifier(max_epochs=3, random_state=0),
        threshold="youden", recalibration="platt", random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("point") / "model.safetensors"
    save_model(model, path)
    return path


# Each field a model file's description gives, forged to a wrong type or shape, and what
# loading says of it in one line (the checks of each field, then of the fields together).
FORGED_FIELDS = [
    ("threshold_", "0.4", r"threshold_ must be None or a number in \[0, 1\]; the file has "
                          "str '0.4'"),
    ("threshold_", 1.5, "threshold_ must be None or a number in"),
    ("pos_label_", [1], "pos_label_ must be None or a class label"),
    ("pos_label_", 7, "pos_label_ 7 is not one of classes_"),
    ("classes_", "ab", "classes_ must be a sorted array of two or more distinct"),
    ("classes_", {"strings": ["b", "a"]}, "classes_ must be a sorted array"),
    ("recalibration_", "sigmoid", "recalibration_ must be None or one of 'platt', 'isotonic'"),
    ("recalibration_", "isotonic", "each isotonic map must be finite floats of shape"),
    ("recalibration_", None, "calibration maps without a recalibration_"),
    ("calibration_maps_", {"dict": {}}, "calibration_maps_ must be a list of arrays"),
    ("calibration_maps_", [], "needs 1 map"),
    ("chosen_on_", 3, "chosen_on_ must be None or a string"),
    ("n_features_in_", -1, "n_features_in_ must be an integer >= 1"),
    ("estimator_", "x", "estimator_ must be a fitted classifier"),
]


@pytest.mark.parametrize("field, value, message", FORGED_FIELDS,
                         ids=[f"{f}={v!r}" for f, v, _ in FORGED_FIELDS])
def test_a_forged_field_is_one_line(operating_point_file, field, value, message, tmp_path,
                                    capsys):
    from sklearn_dinoatten.cli import main

    spec, tensors = read(operating_point_file)
    spec["fitted"][field] = value
    path = tmp_path / "forged.safetensors"
    forge(path, spec, tensors)
    with pytest.raises(ValueError, match=message) as error:
        load_model(path)
    assert "Model file" in str(error.value) and "\n" not in str(error.value)
    assert main(["predict", str(path), "x.nii.gz", "--out", str(tmp_path / "p.csv")]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_forged_map_of_the_wrong_shape_or_direction_is_refused(operating_point_file,
                                                                tmp_path):
    spec, tensors = read(operating_point_file)
    (name,) = [k for k in tensors if "calibration_maps_" in k]
    for forged, message in [(torch.zeros(3, dtype=torch.float64), "of shape \\(2,\\)"),
                            (torch.tensor([-1.0, 0.0], dtype=torch.float64), "a platt map "
                                                                             "of slope -1: its "
                                                                             "slope on the")]:
        path = tmp_path / "forged.safetensors"
        forge(path, spec, {**tensors, name: forged})
        with pytest.raises(ValueError, match=message):
            load_model(path)


@pytest.mark.parametrize("cls, field, value, message", [
    ("AttentionPoolClassifier", "n_features_in_", "3", "n_features_in_ must be an integer"),
    ("AttentionPoolClassifier", "classes_", {"strings": ["b", "a"]}, "classes_ must be a"),
    ("DinoSliceEmbedder", "grid_shape_", {"tuple": [2]}, "grid_shape_ must be a tuple of 2"),
    ("DinoSliceEmbedder", "_forward_for", {"tuple": ["tensorrt", "float32"]},
     "_forward_for must be a tuple \\(engine, dtype\\)"),
])
def test_every_estimators_saved_fields_are_checked(cls, field, value, message, tmp_path):
    X = make_volumes(n_samples=4, shape=(20, 20, 4), random_state=0)[0]
    path = tmp_path / "model.safetensors"
    save_model(make_pipeline(DinoSliceEmbedder(**FAST),
                             AttentionPoolClassifier(max_epochs=1)).fit(X, [0, 1] * 2), path)
    spec, tensors = read(path)
    steps = {step["tuple"][1]["estimator"]["class"]: step["tuple"][1]["estimator"]
             for step in spec["params"]["steps"]}
    steps[cls]["fitted"][field] = value
    forge(path, spec, tensors)
    with pytest.raises(ValueError, match=message):
        load_model(path)


def test_a_model_file_of_the_previous_format_still_loads(tmp_path):
    """Files written before the model card (format /2, no card) load and predict the same."""
    X, y = np.random.default_rng(0).normal(size=(8, 3, 4)), [0, 1] * 4
    model = AttentionPoolClassifier(max_epochs=1, random_state=0).fit(X, y)
    path = tmp_path / "model.safetensors"
    save_model(model, path)
    spec, tensors = read(path)
    spec["fitted"]["_params_at_fit"] = {"dict": {}}  # as /2 files held it
    spec = json.dumps(spec)
    save_file(tensors, path, metadata={"format": "sklearn_dinoatten.model/2", "model": spec,
                                       "sha256": persistence._digest(spec, tensors)})
    np.testing.assert_array_equal(load_model(path).predict_proba(X), model.predict_proba(X))
    assert persistence.read_card(path) is None


def test_a_model_file_of_the_previous_version_predicts_as_it_did():
    """tests/data/model_format3.safetensors was written by the version before the
    training loop was set apart from the task (an OperatingPointClassifier over an
    AttentionPoolClassifier, youden and Platt); its probabilities, then, are below."""
    rng = np.random.default_rng(0)
    y = np.array(["HC", "AD"] * 10)
    X = rng.normal(size=(20, 3, 4)).astype(np.float32) + (y == "AD")[:, None, None]
    model = load_model(os.path.join(os.path.dirname(__file__), "data",
                                    "model_format3.safetensors"))
    expected = [[0.4152887289312103, 0.5847112710687897],
                [0.42770971573264255, 0.5722902842673575],
                [0.5339664061675546, 0.4660335938324453],
                [0.34474911360437355, 0.6552508863956265]]
    assert model.predict_proba(X[:4]).tolist() == expected
    assert model.threshold_ == 0.656588077545166 and model.classes_.tolist() == ["AD", "HC"]
