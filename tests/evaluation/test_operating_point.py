"""OperatingPointClassifier: the recalibration and the operating point as one estimator,
which an evaluation fits on each split exactly as ``fit`` then ``predict`` would, and
which a model file keeps."""

import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from sklearn_dinoatten import AttentionPoolClassifier, OperatingPointClassifier
from sklearn_dinoatten.evaluation import (
    choose_threshold,
    cross_validate_method,
    cross_validation,
    describe_operating_point,
    external_test,
    held_out,
)

from .._helpers import CLASSIFIERS, classifier_inputs, round_trip
from .test_recalibration import Flat, bags

RULES = [0.5, 0.3, "youden", "sensitivity=0.9", "specificity=0.8"]
RECALIBRATIONS = [None, "platt", "isotonic"]
PROTOCOLS = ["folds", "grouped folds", "train/val/test", "train/test"]


def splits_of(protocol, y, groups):
    return {"folds": lambda: cross_validation(y, n_folds=3),
            "grouped folds": lambda: cross_validation(y, n_folds=3, groups=groups),
            "train/val/test": lambda: held_out(np.repeat(["train", "val", "test"], 20), y),
            "train/test": lambda: held_out(np.repeat(["train", "test"], 30), y)}[protocol]()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("recalibration", RECALIBRATIONS)
@pytest.mark.parametrize("rule", RULES)
def test_an_evaluation_scores_what_fit_then_predict_give(rule, recalibration, protocol):
    """Each split's predictions and threshold are those of the estimator fitted on the
    split's training scans (its subjects, its validation scans), bit for bit."""
    X, y = bags(60)
    groups = np.arange(60) % 30  # two scans per subject, of one class
    evaluation = splits_of(protocol, y, groups)
    grouped = evaluation.groups is not None
    result = cross_validate_method(Flat(), X, y, evaluation.splits, threshold=rule,
                                   positive=1, recalibration=recalibration,
                                   groups=groups if grouped else None, random_state=3)
    for split, threshold in zip(evaluation.splits, result.thresholds, strict=True):
        model = OperatingPointClassifier(estimator=Flat(), threshold=rule,
                                         recalibration=recalibration, pos_label=1,
                                         random_state=3)
        params = {"groups": groups[split.train]} if grouped else {}
        if split.validation is not None:
            model.set_params(estimator__early_stopping=True)
            params.update(X_val=X[split.validation], y_val=y[split.validation])
        model.fit(X[split.train], y[split.train], **params)
        assert np.array_equal(result.proba[split.test], model.predict_proba(X[split.test]))
        assert threshold == model.threshold_
        called = result.proba[split.test, 1] >= result.threshold[split.test]
        assert np.array_equal(np.where(called, 1, 0), model.predict(X[split.test]))


def test_a_rule_is_chosen_on_out_of_fold_scores_of_the_training_scans():
    X, y = bags(60)
    model = OperatingPointClassifier(estimator=Flat(), threshold="youden", random_state=0)
    model.fit(X, y)
    score = np.empty(60)  # by hand: the same inner folds, each clone fitted without them
    for train, test in StratifiedKFold(3, shuffle=True, random_state=0).split(X, y):
        score[test] = Flat().fit(X[train], y[train]).predict_proba(X[test])[:, 1]
    assert model.threshold_ == choose_threshold(y, score, "youden")
    assert "out-of-fold predictions of the 60 training scans" in model.chosen_on_
    raw = Flat().fit(X, y).predict_proba(X)  # the classifier itself: fitted on them all
    np.testing.assert_array_equal(model.predict_proba(X), raw)


def test_platt_scaling_is_a_logistic_fit_on_the_logit_with_platts_targets():
    X, y = bags(60)
    model = OperatingPointClassifier(estimator=Flat(), recalibration="platt",
                                     random_state=0).fit(X, y, X_val=X[:30], y_val=y[:30])
    raw = model.estimator_.predict_proba(X[:30])[:, 1]
    logit = np.log(raw / (1 - raw))
    n_positive = y[:30].sum()
    target = np.where(y[:30] == 1, (n_positive + 1) / (n_positive + 2),
                      1 / (30 - n_positive + 2))

    def loss(ab):  # by a general optimiser
        p = 1 / (1 + np.exp(-(ab[0] * logit + ab[1])))
        return -np.sum(target * np.log(p) + (1 - target) * np.log(1 - p))

    from scipy.optimize import minimize

    (a, b), = model.calibration_maps_
    assert [a, b] == pytest.approx(minimize(loss, [1.0, 0.0], tol=1e-12).x, abs=1e-5)
    assert model.chosen_on_ == "the 30 validation scans"


def test_more_than_two_classes_take_the_most_probable_and_recalibrate_one_against_rest():
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    X = rng.normal(size=(60, 2, 3)) + y[:, None, None]
    model = OperatingPointClassifier(estimator=Flat(), recalibration="isotonic",
                                     random_state=0).fit(X, y)
    proba = model.predict_proba(X)
    assert model.threshold_ is None and model.pos_label_ is None
    assert len(model.calibration_maps_) == 3 and np.allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(model.predict(X), proba.argmax(axis=1))
    with pytest.raises(ValueError, match="threshold='youden' is for two classes"):
        clone(model).set_params(threshold="youden").fit(X, y)


def test_the_positive_class_of_text_labels_must_be_named_for_a_rule():
    X, y = bags(40)
    labels = np.where(y == 1, "AD", "HC")
    with pytest.raises(ValueError, match="say which is the positive class"):
        OperatingPointClassifier(estimator=Flat(), threshold="youden").fit(X, labels)
    model = OperatingPointClassifier(estimator=Flat(), threshold="youden", pos_label="AD",
                                     random_state=0).fit(X, labels)
    assert model.pos_label_ == "AD"
    called = model.predict_proba(X)[:, 0] >= model.threshold_  # 'AD' is the first column
    np.testing.assert_array_equal(model.predict(X), np.where(called, "AD", "HC"))


class Contrary(ClassifierMixin, BaseEstimator):
    """Informative when fitted on all the training scans, anti-informative when fitted
    on fewer (the inner folds): what reversed whole folds under scikit-learn's sigmoid."""

    def __init__(self, n_full=40, early_stopping=False):
        self.n_full = n_full
        self.early_stopping = early_stopping

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.sign_ = 1.0 if len(y) >= self.n_full else -1.0
        return self

    def predict_proba(self, X):
        p = 1 / (1 + np.exp(-self.sign_ * X.reshape(len(X), -1).mean(axis=1)))
        return np.column_stack([1 - p, p])

    def volume_embeddings(self, X):
        return X.mean(axis=1)


@pytest.mark.parametrize("recalibration", ["platt", "isotonic"])
def test_recalibration_never_reverses_a_folds_order(recalibration):
    X, y = bags(60)
    evaluation = cross_validation(y, n_folds=3)  # 40 training scans per fold: Contrary is right
    raw = cross_validate_method(Contrary(), X, y, evaluation.splits, positive=1)
    with pytest.warns(UserWarning, match="not applied to a fit.*reverse|erase"):
        result = cross_validate_method(Contrary(), X, y, evaluation.splits, positive=1,
                                       recalibration=recalibration)
    assert result.recalibrated == [False, False, False]  # recorded, not applied
    for split in evaluation.splits:
        test = split.test
        assert roc_auc_score(y[test], result.proba[test, 1]) == pytest.approx(
            roc_auc_score(y[test], raw.proba[test, 1]))
        assert roc_auc_score(y[test], raw.proba[test, 1]) > 0.8
    assert roc_auc_score(y, result.proba[:, 1]) == roc_auc_score(y, raw.proba[:, 1])


def test_a_recalibration_not_applied_is_said_by_the_model():
    X, y = bags(60)
    with pytest.warns(UserWarning, match="recalibration='platt' not applied to a fit"):
        model = OperatingPointClassifier(estimator=Contrary(n_full=60), recalibration="platt",
                                         threshold=0.4, random_state=0).fit(X, y)
    assert model.recalibration_ is None and model.calibration_maps_ == []
    assert describe_operating_point(model) == (
        "Recalibration='platt' not applied (its fit on out-of-fold predictions of the 60 "
        "training scans (an inner stratified 3-fold cross-validation) would not have kept "
        "the order of the probabilities); 1 called where its probability is at least 0.4")


def test_it_is_a_scikit_learn_meta_estimator():
    X, y = bags(60)
    X2 = X.reshape(60, -1)
    model = OperatingPointClassifier(estimator=LogisticRegression(), threshold="youden",
                                     random_state=0)
    assert clone(model).get_params()["estimator__C"] == 1.0
    search = GridSearchCV(model, {"recalibration": [None, "platt"], "estimator__C": [0.1, 1]},
                          cv=StratifiedKFold(3), scoring="roc_auc").fit(X2, y)
    assert 0 < search.best_estimator_.threshold_ < 1
    fitted = clone(model).fit(X2, y)
    with pytest.raises(ValueError, match="threshold was changed from 'youden' to 0.3"):
        fitted.set_params(threshold=0.3).predict(X2)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_every_wrapped_classifier_predicts_the_same_after_loading(name, tmp_path):
    X, y = classifier_inputs(name, 12), np.array(["no", "yes"] * 6)
    model = OperatingPointClassifier(estimator=CLASSIFIERS[name](), threshold="youden",
                                     recalibration="isotonic", pos_label="yes",
                                     random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a 2-epoch fit may not be worth recalibrating
        model.fit(X, y)
    loaded = round_trip(model, tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    for attribute in ("threshold_", "pos_label_", "recalibration_", "chosen_on_"):
        assert getattr(loaded, attribute) == getattr(model, attribute)
    for saved, original in zip(loaded.calibration_maps_, model.calibration_maps_,
                               strict=True):
        np.testing.assert_array_equal(saved, original)


def test_an_external_test_takes_the_models_own_threshold_or_a_number():
    X, y = bags(60)
    model = OperatingPointClassifier(estimator=Flat(), threshold="youden",
                                     random_state=0).fit(X[:40], y[:40])
    splits = external_test(y[40:]).splits
    own = cross_validate_method(model, X[40:], y[40:], splits, positive=1)
    assert own.thresholds == [model.threshold_]
    given = cross_validate_method(model, X[40:], y[40:], splits, positive=1, threshold=0.3)
    assert given.thresholds == [0.3]
    with pytest.raises(ValueError, match="is chosen on training scans"):
        cross_validate_method(model, X[40:], y[40:], splits, positive=1, threshold="youden")
    with pytest.raises(ValueError, match="The model calls 1 positive"):
        cross_validate_method(model, X[40:], y[40:], splits, positive=0)


def test_attention_and_embeddings_are_the_wrapped_classifiers():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(12, 4, 8)).astype(np.float32), np.arange(12) % 2
    model = OperatingPointClassifier(
        estimator=AttentionPoolClassifier(max_epochs=2, random_state=0)).fit(X, y)
    np.testing.assert_array_equal(model.attention_weights(X),
                                  model.estimator_.attention_weights(X))
    np.testing.assert_array_equal(model.volume_embeddings(X),
                                  model.estimator_.volume_embeddings(X))
    assert not hasattr(OperatingPointClassifier(estimator=LogisticRegression()),
                       "attention_weights")


def test_bad_validation_scans_are_one_clear_error():
    X, y = bags(40)
    model = OperatingPointClassifier(estimator=Flat(), threshold="youden")
    for params, message in [(dict(X_val=X[:4]), "X_val and y_val go together; got only X_val"),
                            (dict(X_val=X[:4], y_val=[0, 1, 2, 0]), "y_val has class 2"),
                            (dict(X_val=X[:4], y_val=[0, 1]), "inconsistent numbers"),
                            (dict(X_val=X[:4], y_val=[0, 0, 0, 0]), "hold one class")]:
        with pytest.raises(ValueError, match=message):
            clone(model).fit(X, y, **params)


def test_the_caption_counts_the_splits_whose_recalibration_was_not_applied():
    from sklearn_dinoatten.evaluation import caption
    from sklearn_dinoatten.evaluation._study import _not_recalibrated

    X, y = bags(60)
    evaluation = cross_validation(y, n_folds=3)
    with pytest.warns(UserWarning, match="not applied to a fit"):
        results = {"contrary": cross_validate_method(Contrary(), X, y, evaluation.splits,
                                                     positive=1, recalibration="platt"),
                   "flat": cross_validate_method(Flat(), X, y, evaluation.splits,
                                                 positive=1, recalibration="platt")}
    assert results["flat"].recalibrated == [True, True, True]
    counts = _not_recalibrated(results)
    assert counts == {"contrary": (3, 3)}
    text = caption(evaluation, 1, recalibration="platt", not_recalibrated=counts)
    assert ("Not applied where its fit would have reversed or erased the order of the "
            "probabilities (those splits keep the classifier's own): contrary in 3 of 3 "
            "splits.") in text
