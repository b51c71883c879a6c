"""Recalibration inside an evaluation: scikit-learn's CalibratedClassifierCV around every
classifier of the package, fitted on the training (or validation) scans of each split,
never on the scans it scores."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from sklearn_dinoatten import DinoSliceEmbedder, FineTunedSliceClassifier
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.evaluation import (
    METHODS,
    Split,
    choose_threshold,
    cross_validate_method,
    cross_validation,
    external_test,
    held_out,
    make_method,
)


class Flat(ClassifierMixin, BaseEstimator):
    """A logistic regression of the bag's flattened rows: fast, deterministic, with the
    package classifiers' ``volume_embeddings`` and ``early_stopping``."""

    def __init__(self, early_stopping=False):
        self.early_stopping = early_stopping

    def fit(self, X, y, X_val=None, y_val=None):
        self.model_ = LogisticRegression(C=0.05).fit(X.reshape(len(X), -1), y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X.reshape(len(X), -1))

    def predict(self, X):
        return self.model_.predict(X.reshape(len(X), -1))

    def volume_embeddings(self, X):
        return X.mean(axis=1).astype(np.float32)


def bags(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 3, 4)) + 0.8 * y[:, None, None]
    return X, y


@pytest.mark.parametrize("key", list(METHODS))
def test_every_classifier_of_the_package_fits_inside_calibrated_classifier_cv(key):
    rng = np.random.default_rng(0)
    y = np.arange(12) % 2
    if METHODS[key].takes_volumes:  # the smallest volume the 3D ResNet takes
        X = rng.normal(size=(12, 17, 17, 17)).astype(np.float32) + y[:, None, None, None]
    else:
        X = rng.normal(size=(12, 4, 8)).astype(np.float32) + y[:, None, None]
    estimator = make_method(key, max_epochs=2, resnet_depth=10, resnet_width=0.25)
    estimator.set_params(verbose=0)
    for method in ("sigmoid", "isotonic"):
        calibrated = CalibratedClassifierCV(estimator, method=method, cv=2, ensemble=False)
        proba = calibrated.fit(X, y).predict_proba(X)
        assert proba.shape == (12, 2) and np.allclose(proba.sum(axis=1), 1)
        assert ((proba >= 0) & (proba <= 1)).all()


def test_the_fine_tuned_classifier_fits_inside_calibrated_classifier_cv():
    X, y = make_volumes(n_samples=12, shape=(28, 28, 4), random_state=0)
    estimator = FineTunedSliceClassifier(
        embedder=DinoSliceEmbedder(weights="random", image_size=28, n_slices=4),
        max_epochs=1, batch_size=8, random_state=0)
    proba = CalibratedClassifierCV(estimator, cv=2, ensemble=False).fit(X, y).predict_proba(X)
    assert proba.shape == (12, 2) and np.allclose(proba.sum(axis=1), 1)


def test_recalibration_never_sees_the_scans_it_scores():
    X, y = bags()
    protocol = cross_validation(y, n_folds=2)
    first = protocol.splits[0]
    result = cross_validate_method(Flat(), X, y, protocol.splits, recalibration="platt")
    relabelled = y.copy()
    relabelled[first.test] = 1 - relabelled[first.test]  # the first fold's training scans
    again = cross_validate_method(Flat(), X, relabelled, protocol.splits,  # are unchanged
                                  recalibration="platt")
    assert np.array_equal(result.proba[first.test], again.proba[first.test])
    raw = cross_validate_method(Flat(), X, y, protocol.splits)
    assert not np.allclose(result.proba, raw.proba)  # recalibrated, not the raw scores
    for split in protocol.splits:  # Platt scaling keeps the order of a fold's scans
        test = split.test
        assert np.array_equal(np.argsort(result.proba[test, 1], kind="stable"),
                              np.argsort(raw.proba[test, 1], kind="stable"))


def test_isotonic_recalibration_of_a_held_out_split_is_fitted_on_its_val_scans():
    X, y = bags(80)
    split = np.array(["train"] * 40 + ["val"] * 20 + ["test"] * 20)
    protocol = held_out(split, y)
    result = cross_validate_method(Flat(), X, y, protocol.splits, recalibration="isotonic",
                                   threshold="youden", positive=1)
    model = Flat().fit(X[split == "train"], y[split == "train"])  # by hand
    raw_val, raw_test = (model.predict_proba(X[split == s])[:, 1] for s in ("val", "test"))
    isotonic = IsotonicRegression(out_of_bounds="clip").fit(raw_val, y[split == "val"])
    test = split == "test"
    assert result.proba[test, 1] == pytest.approx(isotonic.predict(raw_test))
    assert result.proba[test, 0] == pytest.approx(1 - isotonic.predict(raw_test))
    assert np.isnan(result.proba[~test]).all()
    # the threshold is chosen on the recalibrated val scores
    assert result.thresholds == [choose_threshold(y[split == "val"], isotonic.predict(raw_val),
                                                  "youden")]


def test_the_embeddings_are_the_recalibrated_models():
    X, y = bags()
    protocol = cross_validation(y, n_folds=2)
    result = cross_validate_method(Flat(), X, y, protocol.splits, recalibration="isotonic")
    assert np.allclose(result.embedding, X.mean(axis=1))


def test_recalibration_needs_training_scans_and_a_known_method():
    X, y = bags()
    fitted = Flat().fit(X, y)
    with pytest.raises(ValueError, match="external test has none"):
        cross_validate_method(fitted, X, y, external_test(y).splits, recalibration="platt")
    with pytest.raises(ValueError, match="'platt' or 'isotonic'; got 'sigmoid'"):
        cross_validate_method(Flat(), X, y, cross_validation(y, n_folds=2).splits,
                              recalibration="sigmoid")


@pytest.mark.parametrize("recalibration", ["platt", "isotonic"])
@pytest.mark.parametrize("threshold", [0.5, "youden", "sensitivity=0.9"])
@pytest.mark.parametrize("protocol", ["folds", "grouped folds", "train/val/test",
                                      "train/test", "three classes"])
def test_recalibration_meets_every_threshold_rule_and_protocol(recalibration, threshold,
                                                              protocol):
    X, y = bags(60)
    groups = np.arange(60) % 30  # two scans per subject, of one class (y alternates)
    if protocol == "three classes":
        y = np.arange(60) % 3
        X = X + y[:, None, None]
    splits = {"folds": lambda: cross_validation(y, n_folds=3).splits,
              "grouped folds": lambda: cross_validation(y, n_folds=3, groups=groups).splits,
              "train/val/test": lambda: held_out(np.repeat(["train", "val", "test"], 20),
                                                 y).splits,
              "train/test": lambda: held_out(np.repeat(["train", "test"], 30), y).splits,
              "three classes": lambda: cross_validation(y, n_folds=3).splits}[protocol]()
    positive = None if protocol == "three classes" else 1
    if positive is None and threshold != 0.5:
        pytest.skip("thresholds are for two classes (run_study refuses them)")
    result = cross_validate_method(Flat(), X, y, splits, threshold=threshold,
                                   positive=positive, recalibration=recalibration,
                                   groups=groups if protocol == "grouped folds" else None)
    scored = np.zeros(len(y), bool)
    for split in splits:
        scored[split.test] = True
    assert np.allclose(result.proba[scored].sum(axis=1), 1)
    assert np.isnan(result.proba[~scored]).all()
    if positive is not None:
        assert len(result.thresholds) == len(splits)
        assert all(0 <= t <= 1 for t in result.thresholds)  # isotonic scores reach 0


def test_too_few_scans_to_recalibrate_on_are_one_clear_error():
    X, y = bags(40)
    split = np.array(["train"] * 20 + ["val"] * 10 + ["test"] * 10)
    one_class = y.copy()
    one_class[20:30] = 0  # val holds class 0 only
    with pytest.raises(ValueError, match="fitted on the 10 validation scans, which have "
                                         "none of class 1"):
        cross_validate_method(Flat(), X, one_class, held_out(split, one_class).splits,
                              recalibration="platt")
    groups = np.where(y == 0, "a", np.array([f"s{i}" for i in range(40)]))  # class 0: one
    with pytest.raises(ValueError, match="needs an inner cross-validation of the training "
                                         r"scans \(each fold's, in an evaluation\), and so "
                                         "two subjects of each class"):
        cross_validate_method(Flat(), X, y, [Split(np.arange(30), np.arange(30, 40))],
                              recalibration="isotonic", groups=groups)
