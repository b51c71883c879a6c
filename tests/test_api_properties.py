"""scikit-learn's API properties on the inputs each estimator really takes.

scikit-learn's own checks of these properties feed 2D tables, which the volume
estimators cannot take (they are expected failures in test_sklearn_checks.py). Here
the same properties are checked on volumes, images or slice embeddings, for every
estimator: methods refuse to run before ``fit``; ``fit`` leaves the parameters alone,
adds only attributes ending in ``_`` and gives the same model twice; prediction leaves
the estimator unchanged; a sample's output depends neither on which other samples are
predicted with it nor on their order.
"""

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from sklearn_dinoatten import (
    AttentionPoolClassifier,
    AttentionPoolRegressor,
    DinoSliceEmbedder,
    FineTunedSliceClassifier,
    ResNet3DClassifier,
    ResNet3DRegressor,
    SCMILClassifier,
    SliceTransformerClassifier,
    SliceTransformerRegressor,
    VolumeResampler,
    clear_memory_cache,
)
from sklearn_dinoatten.anomaly import MemoryBankAnomalyDetector, SpatialARAnomalyDetector
from sklearn_dinoatten.datasets import make_anomaly_images, make_volumes

from ._helpers import FAST

METHODS = ("transform", "predict", "predict_proba", "decision_function", "score_samples",
           "attention_weights", "volume_embeddings", "anomaly_map")


def _volumes(n=8):
    X, y = make_volumes(n_samples=n, shape=(28, 28, 6), random_state=0)
    return X, y


def _embeddings(n=12):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 5, 8)).astype(np.float32)
    X[1::3, 4:] = np.nan  # some shorter volumes: padding rows
    y = np.arange(n) % 2
    X[y == 1, 0] += 1.0
    return X, y


def _images(n=8):
    X, _ = make_anomaly_images(n_normal=n, n_anomalous=0, shape=(28, 28), random_state=0)
    return X, None


def _resampled(n=8):
    X, y = _volumes(n)
    return VolumeResampler(shape=(20, 20, 20)).fit_transform(X), y


def _as_numbers(data):
    """The inputs with a continuous target instead of labels."""
    X, y = data
    return X, y * 10.0 + np.arange(len(y))


EMBEDDER = DinoSliceEmbedder(**FAST)
ESTIMATORS = {
    "DinoSliceEmbedder": (lambda: clone(EMBEDDER), _volumes),
    "VolumeResampler": (lambda: VolumeResampler(shape=(12, 12, 12)), _volumes),
    "AttentionPoolClassifier": (lambda: AttentionPoolClassifier(max_epochs=3, random_state=0),
                                _embeddings),
    "SliceTransformerClassifier": (
        lambda: SliceTransformerClassifier(max_epochs=3, random_state=0), _embeddings),
    "SCMILClassifier": (lambda: SCMILClassifier(max_epochs=3, random_state=0), _embeddings),
    "ResNet3DClassifier": (lambda: ResNet3DClassifier(depth=10, widen_factor=0.25,
                                                      max_epochs=1, batch_size=4,
                                                      random_state=0), _resampled),
    "AttentionPoolRegressor": (lambda: AttentionPoolRegressor(max_epochs=3, random_state=0),
                               lambda: _as_numbers(_embeddings())),
    "SliceTransformerRegressor": (
        lambda: SliceTransformerRegressor(max_epochs=3, random_state=0),
        lambda: _as_numbers(_embeddings())),
    "ResNet3DRegressor": (lambda: ResNet3DRegressor(depth=10, widen_factor=0.25,
                                                    max_epochs=1, batch_size=4,
                                                    random_state=0),
                          lambda: _as_numbers(_resampled())),
    "FineTunedSliceClassifier": (lambda: FineTunedSliceClassifier(
        embedder=DinoSliceEmbedder(weights="random", image_size=28, n_slices=3), max_epochs=1,
        batch_size=4, random_state=0), _volumes),
    "SpatialARAnomalyDetector": (lambda: SpatialARAnomalyDetector(
        embedder=clone(EMBEDDER), max_epochs=2, random_state=0), _images),
    "MemoryBankAnomalyDetector": (lambda: MemoryBankAnomalyDetector(
        embedder=clone(EMBEDDER), coreset_ratio=0.5, random_state=0), _images),
}


def methods_of(estimator):
    return [m for m in METHODS if hasattr(estimator, m)]


def outputs(estimator, X):
    """Every method's output on ``X``, computed afresh (no cached embeddings)."""
    results = {}
    for method in methods_of(estimator):
        clear_memory_cache()
        results[method] = getattr(estimator, method)(X)
    return results


def assert_same(a, b, rtol=1e-5, atol=1e-6):
    if isinstance(a, list):  # anomaly maps: one array per sample
        for x, z in zip(a, b, strict=True):
            np.testing.assert_allclose(x, z, rtol=rtol, atol=atol)
    else:
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def take(X, index):
    return X[index] if isinstance(X, np.ndarray) else [X[i] for i in index]


@pytest.fixture(scope="module", params=list(ESTIMATORS))
def fitted(request):
    make, data = ESTIMATORS[request.param]
    X, y = data()
    clear_memory_cache()
    return make().fit(X, y), X, y


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_methods_need_fit(name):
    make, data = ESTIMATORS[name]
    estimator = make()
    X, _ = data()
    assert methods_of(estimator)
    for method in methods_of(estimator):
        with pytest.raises(NotFittedError):
            getattr(estimator, method)(X)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_fit_keeps_parameters_adds_only_fitted_attributes_and_is_idempotent(name):
    make, data = ESTIMATORS[name]
    X, y = data()
    estimator = make()
    params = joblib.hash(estimator.get_params())
    public = {k for k in vars(estimator) if not k.startswith("_")}
    clear_memory_cache()
    first = outputs(estimator.fit(X, y), X)
    assert joblib.hash(estimator.get_params()) == params
    added = {k for k in vars(estimator) if not k.startswith("_")} - public
    assert added and all(k.endswith("_") for k in added), added
    clear_memory_cache()
    second = outputs(estimator.fit(X, y), X)
    for method in first:
        assert_same(second[method], first[method])


def test_prediction_leaves_the_estimator_unchanged(fitted):
    estimator, X, _ = fitted
    before = {k: joblib.hash(v) for k, v in vars(estimator).items()}
    outputs(estimator, X)
    assert {k: joblib.hash(v) for k, v in vars(estimator).items()} == before


def test_outputs_do_not_depend_on_the_other_samples_or_their_order(fitted):
    estimator, X, _ = fitted
    full = outputs(estimator, X)
    n = len(X)
    subset, order = np.arange(0, n, 2), np.random.default_rng(0).permutation(n)
    for index in (subset, order):
        part = outputs(estimator, take(X, index))
        for method, value in full.items():
            assert_same(part[method], take(value, index))
