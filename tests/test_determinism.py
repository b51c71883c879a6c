"""With ``random_state`` fixed, two fits on the CPU give identical predictions."""

import numpy as np
import pytest

from sklearn_dinoatten import DinoSliceEmbedder, clear_memory_cache
from sklearn_dinoatten.anomaly import SpatialARAnomalyDetector
from sklearn_dinoatten.datasets import make_volumes

from ._helpers import CLASSIFIERS, FAST, classifier_inputs


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_two_fits_predict_identically(name):
    X, y = classifier_inputs(name, 8), np.array([0, 1] * 4)
    first, second = (CLASSIFIERS[name]().fit(X, y).predict_proba(X) for _ in range(2))
    np.testing.assert_array_equal(first, second)


def test_two_embedder_and_detector_fits_are_identical():
    volumes, _ = make_volumes(n_samples=4, shape=(20, 24, 6), random_state=0)
    results = []
    for _ in range(2):
        clear_memory_cache()  # embed again, do not read the first run's cache
        embedder = DinoSliceEmbedder(**FAST)
        detector = SpatialARAnomalyDetector(embedder=embedder, max_epochs=2, random_state=0)
        results.append((embedder.fit_transform(volumes),
                        detector.fit(volumes).score_samples(volumes)))
    for first, second in zip(*results, strict=True):
        np.testing.assert_array_equal(first, second)
