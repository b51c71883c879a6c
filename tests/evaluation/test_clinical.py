"""Calibration, operating points and net benefit, each against an independent
computation; and a threshold chosen on training scans only."""

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, confusion_matrix, roc_auc_score, roc_curve

from sklearn_dinoatten.evaluation import (
    Protocol,
    Split,
    brier_score,
    calibration_intercept_slope,
    choose_threshold,
    cross_validate_method,
    expected_calibration_error,
    held_out,
    net_benefit,
    operating_point,
    treat_all_net_benefit,
)


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 300)
    score = 1 / (1 + np.exp(-(1.7 * (truth - 0.5) * 2 + rng.normal(0, 1.2, 300) - 0.4)))
    return truth, score


def test_brier_score_is_sklearns(scored):
    truth, score = scored
    assert brier_score(truth, score) == pytest.approx(brier_score_loss(truth, score))


def test_calibration_slope_and_intercept_are_logistic_fits(scored):
    truth, score = scored
    intercept, slope = calibration_intercept_slope(truth, score)
    x = np.log(score / (1 - score))
    fitted = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(x[:, None], truth)
    assert slope == pytest.approx(fitted.coef_[0, 0], rel=1e-5)

    def loss(a):  # the intercept with logit(score) as an offset, by a general optimiser
        p = 1 / (1 + np.exp(-(a[0] + x)))
        return -np.sum(truth * np.log(p) + (1 - truth) * np.log(1 - p))

    assert intercept == pytest.approx(minimize(loss, [0.0], tol=1e-12).x[0], abs=1e-5)
    assert calibration_intercept_slope(truth, 1 / (1 + np.exp(-x)))[1] == pytest.approx(slope)


def test_calibrated_scores_give_intercept_zero_and_slope_one():
    rng = np.random.default_rng(1)
    score = rng.uniform(0.02, 0.98, 20000)
    truth = (rng.uniform(size=score.size) < score).astype(int)
    intercept, slope = calibration_intercept_slope(truth, score)
    assert abs(intercept) < 0.05 and abs(slope - 1) < 0.05
    assert expected_calibration_error(truth, score) < 0.02


def test_ece_is_the_weighted_gap_of_sklearns_calibration_curve(scored):
    truth, score = scored
    observed, predicted = calibration_curve(truth, score, n_bins=10, strategy="uniform")
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], score), minlength=10)
    weights = counts[counts > 0] / len(score)
    assert expected_calibration_error(truth, score) == pytest.approx(
        np.sum(weights * np.abs(observed - predicted)))


def test_operating_point_is_the_confusion_matrix(scored):
    truth, score = scored
    decided = score >= 0.4
    (tn, fp), (fn, tp) = confusion_matrix(truth, decided)
    point = operating_point(truth, decided)
    assert point == pytest.approx(dict(sensitivity=tp / (tp + fn), specificity=tn / (tn + fp),
                                       ppv=tp / (tp + fp), npv=tn / (tn + fn),
                                       accuracy=(tp + tn) / len(truth)))


def test_net_benefit_by_hand(scored):
    truth, score = scored
    thresholds = np.array([0.1, 0.25, 0.5, 0.8])
    expected = []
    for t in thresholds:
        tp = sum(1 for y, s in zip(truth, score, strict=True) if s >= t and y == 1)
        fp = sum(1 for y, s in zip(truth, score, strict=True) if s >= t and y == 0)
        expected.append(tp / len(truth) - fp / len(truth) * t / (1 - t))
    np.testing.assert_allclose(net_benefit(truth, score, thresholds), expected)
    prevalence = truth.mean()
    np.testing.assert_allclose(treat_all_net_benefit(truth, thresholds),
                               prevalence - (1 - prevalence) * thresholds / (1 - thresholds))
    # treating all is the net benefit of a score that calls every scan positive
    np.testing.assert_allclose(treat_all_net_benefit(truth, thresholds),
                               net_benefit(truth, np.ones_like(score), thresholds))


def test_thresholds_agree_with_the_roc_curve(scored):
    truth, score = scored
    fpr, tpr, cuts = roc_curve(truth, score, drop_intermediate=False)
    youden = choose_threshold(truth, score, "youden")
    assert (tpr - fpr).max() == pytest.approx(
        operating_point(truth, score >= youden)["sensitivity"]
        + operating_point(truth, score >= youden)["specificity"] - 1)
    at_sensitivity = choose_threshold(truth, score, "sensitivity=0.9")
    assert at_sensitivity == cuts[np.flatnonzero(tpr >= 0.9)[0]]  # the highest such cut
    at_specificity = choose_threshold(truth, score, "specificity=0.9")
    assert at_specificity == cuts[np.flatnonzero(1 - fpr >= 0.9)[-1]]  # the lowest
    assert choose_threshold(truth, score, 0.3) == 0.3


@pytest.mark.parametrize("rule", ["0", "1.5", "youdens", "recall=0.9", True])
def test_a_bad_threshold_names_the_forms(rule):
    with pytest.raises(ValueError, match=f"youden.*sensitivity=<share>.*got {rule!r}"):
        choose_threshold([0, 1], [0.2, 0.8], rule)
    with pytest.raises(ValueError, match=r"threshold 'sensitivity=0': the sensitivity must be "
                                         r"a share in \(0, 1\]"):
        choose_threshold([0, 1], [0.2, 0.8], "sensitivity=0")


class Memorizer:
    """A 'classifier' whose scores on the scans it was fitted on are perfect, and
    which scores new scans by a fixed column: choosing a threshold on its training
    scores, or on the test scans, would each give another threshold than a choice on
    scans it has not seen."""

    classes_ = np.array([0, 1])

    def get_params(self, deep=True):
        return {}

    def set_params(self, **params):
        return self

    def fit(self, X, y, X_val=None, y_val=None):  # early stopping: nothing to stop
        self.seen_ = {float(x[0]): label for x, label in zip(X, y, strict=True)}
        return self

    def predict_proba(self, X):
        score = np.array([self.seen_.get(float(x[0]), x[1]) for x in X], dtype=float)
        return np.column_stack([1 - score, score])

    def volume_embeddings(self, X):
        return np.asarray(X, dtype=np.float32)


def test_a_threshold_is_chosen_on_validation_scans_not_the_test_scans():
    # validation scans: positives score 0.6+, negatives up to 0.4 -> Youden cut 0.6;
    # test scans: positives from 0.3 -> a choice on them would take 0.3
    X = np.array([[i, s] for i, s in enumerate(
        [0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.1, 0.4, 0.6, 0.9, 0.2, 0.35, 0.3, 0.45])])
    y = np.array([0, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0, 1])
    split = np.array(["train"] * 6 + ["val"] * 4 + ["test"] * 4)
    protocol = held_out(split, y)
    result = cross_validate_method(Memorizer(), X, y, protocol.splits, threshold="youden",
                                   positive=1)
    assert result.thresholds == [0.6]
    test = split == "test"
    assert (result.threshold[test] == 0.6).all() and np.isnan(result.threshold[~test]).all()
    on_test = choose_threshold(y[test], X[test, 1], "youden")
    assert on_test != 0.6  # the planted case: choosing on test would change the result


def test_a_fold_threshold_comes_from_an_inner_cross_validation():
    rng = np.random.default_rng(0)
    X = np.column_stack([np.arange(40), rng.uniform(size=40)])
    y = (X[:, 1] > 0.5).astype(int)
    folds = [Split(np.arange(40)[np.arange(40) % 2 == k], np.arange(40)[np.arange(40) % 2 != k])
             for k in (0, 1)]
    protocol = Protocol(folds, "2 folds")
    result = cross_validate_method(Memorizer(), X, y, protocol.splits, threshold="youden",
                                   positive=1)
    # On its training scans the memoriser is perfect (any cut in (0, 1] would do); out
    # of fold it scores by column 1, whose Youden cut lies at 0.5
    for split, threshold in zip(protocol.splits, result.thresholds, strict=True):
        train = split.train
        assert threshold == choose_threshold(y[train], X[train, 1], "youden")
        assert threshold < 1.0  # not the memorised training scores' cut (1.0)


def test_each_class_against_the_rest_is_sklearns_one_vs_rest():
    from sklearn.metrics import precision_score, recall_score

    from sklearn_dinoatten.evaluation import per_class_table

    from .test_study import fake_results

    y = np.array(["glioma", "meningioma", "normal"] * 30)
    results = fake_results(y)
    rows = per_class_table(y, results, n_resamples=50)
    assert [(r["class"], r["method"]) for r in rows] == [
        (c, m) for c in ("glioma", "meningioma", "normal") for m in ("DinoAtten3D",
                                                                       "Mean pooling")]
    for row in rows:
        key = {"DinoAtten3D": "dinoatten3d", "Mean pooling": "mean"}[row["method"]]
        c = ["glioma", "meningioma", "normal"].index(row["class"])
        proba = results[key].proba
        predicted = np.array(["glioma", "meningioma", "normal"])[proba.argmax(axis=1)]
        truth, score = y == row["class"], proba[:, c]
        assert row["auc"] == pytest.approx(roc_auc_score(truth, score))
        assert row["sensitivity"] == pytest.approx(recall_score(
            y, predicted, labels=[row["class"]], average=None)[0])
        assert row["ppv"] == pytest.approx(precision_score(
            y, predicted, labels=[row["class"]], average=None)[0])
        assert row["specificity"] == pytest.approx(np.mean(predicted[~truth] != row["class"]))
        assert row["brier"] == pytest.approx(brier_score_loss(truth, score))
        assert row["auc_ci_low"] <= row["auc"] <= row["auc_ci_high"]
        assert np.isnan(row["threshold"])
        assert np.isnan(row["delong_p"]) == (key == "dinoatten3d")  # the reference


def overconfident_cohorts(n_cohorts=100, seed=0):
    """Cohorts scored by an overconfident model: probabilities pushed to 0 and 1 (many
    exactly, in float64), the classes overlapping."""
    rng = np.random.default_rng(seed)
    for _ in range(n_cohorts):
        n = int(rng.integers(20, 80))
        truth = (rng.uniform(size=n) < 0.4).astype(int)
        truth[:2] = [0, 1]
        z = rng.normal(0, 1, n) + 1.5 * (2 * truth - 1)
        yield truth, 1 / (1 + np.exp(-40 * z))


def test_the_intercept_is_the_root_of_its_score_equation_on_overconfident_cohorts():
    """Before: NaN for 120 of such 298 cohorts, where the maximum-likelihood intercept is
    finite (Newton's method from 0 diverged)."""
    from scipy.special import expit

    for truth, score in overconfident_cohorts():
        intercept, slope = calibration_intercept_slope(truth, score)
        x = np.log(np.clip(score, 1e-12, 1 - 1e-12) / (1 - np.clip(score, 1e-12, 1 - 1e-12)))
        assert np.isfinite(intercept)
        assert abs(np.sum(truth - expit(intercept + x))) < 1e-6 * len(truth)
        separated = x[truth == 1].min() >= x[truth == 0].max()
        assert np.isnan(slope) == separated  # NaN only where no finite maximum exists
        if not separated:  # the slope's score equations hold too
            p = expit(x * slope + _intercept_of_slope_fit(truth, x, slope))
            assert abs(np.sum((truth - p) * x)) < 1e-6 * len(truth)


def _intercept_of_slope_fit(truth, x, slope):
    """The intercept that goes with ``slope`` in the two-parameter fit (its own root)."""
    from scipy.optimize import brentq
    from scipy.special import expit

    return brentq(lambda b: np.sum(truth - expit(b + slope * x)), -1e3, 1e3, xtol=1e-14)


def test_the_slope_is_nan_only_where_the_scores_separate_the_classes():
    truth = np.array([0, 0, 1, 1])
    assert np.isnan(calibration_intercept_slope(truth, [0.1, 0.2, 0.8, 0.9])[1])
    assert np.isnan(calibration_intercept_slope(truth, [0.1, 0.5, 0.5, 0.9])[1])  # touching
    intercept, slope = calibration_intercept_slope(truth, [0.1, 0.6, 0.5, 0.9])
    assert np.isfinite(intercept) and np.isfinite(slope)
    assert np.isnan(calibration_intercept_slope([1, 1], [0.2, 0.9])[0])  # one class only
