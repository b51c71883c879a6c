"""Parameters: every one declared and checked before any work, and a fitted estimator
that stays consistent with them (copied, pickled, or changed after fit)."""

import copy
import io

import joblib
import numpy as np
import pytest
from sklearn.pipeline import Pipeline, make_pipeline

from sklearn_dinoatten import (
    AttentionPoolClassifier,
    DinoSliceEmbedder,
    FineTunedSliceClassifier,
    ResNet3DClassifier,
    SCMILClassifier,
    SliceTransformerClassifier,
    VolumeResampler,
)
from sklearn_dinoatten.anomaly import MemoryBankAnomalyDetector, SpatialARAnomalyDetector
from sklearn_dinoatten.persistence import _estimator_classes

from ._helpers import FAST, GOOD_SHAPE

# Every estimator of the package: those the model loader can build.
ESTIMATORS = [cls for cls in _estimator_classes().values() if cls is not Pipeline]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_every_parameter_is_declared_and_its_default_allowed(cls):
    assert set(cls._constraints) == set(cls._get_param_names())
    for name, value in cls().get_params(deep=False).items():
        assert any(c.accepts(value) for c in cls._constraints[name]), name


# Settings that once trained a nonsense model without a word, or failed deep in torch.
NONSENSE = [
    (AttentionPoolClassifier, dict(temperature=0), "temperature must be a number > 0"),
    (SCMILClassifier, dict(temperature=0.0), "temperature must be a number > 0"),
    (AttentionPoolClassifier, dict(max_epochs=0), "max_epochs must be an integer >= 1"),
    (SliceTransformerClassifier, dict(n_layers=0), "n_layers must be an integer >= 1"),
    (ResNet3DClassifier, dict(widen_factor=0), "widen_factor must be a number >= 0.015625"),
    (ResNet3DClassifier, dict(depth=20), "depth must be one of 10, 18, 34, 50"),
    (AttentionPoolClassifier, dict(lr=-1e-3), "lr must be a number > 0"),
    (AttentionPoolClassifier, dict(lr=float("nan")), "lr must be a number > 0"),
    (AttentionPoolClassifier, dict(dropout=1.0), "dropout must be a number in \\[0, 1\\)"),
    (AttentionPoolClassifier, dict(hidden_dims=(64, 0)), "hidden_dims must be a tuple"),
    (AttentionPoolClassifier, dict(batch_size=0), "batch_size must be an integer >= 1"),
    (AttentionPoolClassifier, dict(early_stopping="yes"), "early_stopping must be True or"),
    (SCMILClassifier, dict(validation_fraction=1.0), "validation_fraction must be a number"),
    (SCMILClassifier, dict(projection_dims=()), "projection_dims must be a tuple of 1 or"),
    (FineTunedSliceClassifier, dict(embedder=DinoSliceEmbedder(slice_selection="centre")),
     "slice_selection must be one"),
    (FineTunedSliceClassifier, dict(aggregator="mean"), "aggregator must be one of"),
    (DinoSliceEmbedder, dict(image_size=True), "image_size must be an integer >= 1"),
    (DinoSliceEmbedder, dict(n_jobs=0), "n_jobs must be None or an integer >= 1 or an "
                                         "integer <= -1"),
    (DinoSliceEmbedder, dict(device="gpu"), "device must be 'auto' or a torch device name"),
    (DinoSliceEmbedder, dict(spacing=(1.0, 0.0, 1.0)), "spacing must be None or a tuple of "
                                                      "3 numbers > 0"),
    (DinoSliceEmbedder, dict(axis=("axial", 2)), "axis must be one of .* or a tuple of "
                                                 "distinct axes"),
    (DinoSliceEmbedder, dict(min_foreground=1.0), "min_foreground must be a number in"),
    (DinoSliceEmbedder, dict(crop="brain"), "crop must be one of 'none', 'foreground'"),
    (SpatialARAnomalyDetector, dict(max_epochs=0), "max_epochs must be an integer >= 1"),
    (MemoryBankAnomalyDetector, dict(random_state=-1), "random_state must be None, an integ"),
    (VolumeResampler, dict(shape=(64, 64)), "shape must be a tuple of 3 integers >= 1"),
]


@pytest.mark.parametrize("cls, params, message", NONSENSE,
                         ids=[f"{c.__name__}-{next(iter(p))}" for c, p, _ in NONSENSE])
def test_nonsense_settings_are_refused_before_any_work(cls, params, message):
    """X=None: the parameters are checked before the input is looked at; an embedder's
    too, in the estimator that holds it."""
    owner = "DinoSliceEmbedder" if "embedder" in params else cls.__name__
    with pytest.raises(ValueError, match=f"{owner}: {message}"):
        cls(**params).fit(None, None)


@pytest.fixture(scope="module")
def volumes():
    rng = np.random.default_rng(0)
    return [rng.normal(size=GOOD_SHAPE).astype(np.float32) for _ in range(6)], [0, 1] * 3


@pytest.mark.parametrize("params", [dict(image_size=56), dict(feature="mean"),
                                    dict(normalization="zscore"), dict(weights=None)])
def test_changing_what_fit_built_needs_a_new_fit(volumes, fresh_cache, params):
    X, _ = volumes
    embedder = DinoSliceEmbedder(**FAST).fit(X)
    before = embedder.transform(X)
    (name, value), = params.items()
    embedder.set_params(**params)
    with pytest.raises(ValueError, match=f"DinoSliceEmbedder: {name} was changed from "
                                         f".* to {value!r} after fit; call fit again"):
        embedder.transform(X)
    embedder.set_params(**{name: FAST.get(name, DinoSliceEmbedder().get_params()[name])})
    np.testing.assert_array_equal(embedder.transform(X), before)
    embedder.set_params(batch_size=1, verbose=1)  # how it runs, not what it gives
    np.testing.assert_array_equal(embedder.transform(X), before)


def test_the_fine_tuned_classifier_refuses_a_changed_input_size(volumes):
    X, y = volumes
    model = FineTunedSliceClassifier(embedder=DinoSliceEmbedder(n_slices=2, **FAST),
                                     max_epochs=1, random_state=0).fit(X, y)
    model.set_params(embedder__image_size=42)
    with pytest.raises(ValueError, match="image_size was changed from 28 to 42 after fit"):
        model.predict(X)
    assert model.set_params(embedder__image_size=28).predict(X).shape == (6,)


def test_copying_or_pickling_leaves_the_fitted_pipeline_working(volumes, fresh_cache):
    X, y = volumes
    pipe = make_pipeline(DinoSliceEmbedder(**FAST),
                         AttentionPoolClassifier(max_epochs=1, random_state=0)).fit(X, y)
    expected = pipe.predict_proba(X)
    shallow = copy.copy(pipe)
    joblib.dump(pipe, io.BytesIO())
    copy.deepcopy(pipe)
    np.testing.assert_array_equal(pipe.predict_proba(X), expected)
    np.testing.assert_array_equal(shallow.predict_proba(X), expected)
