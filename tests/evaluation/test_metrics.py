import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import make_scorer, recall_score, roc_auc_score
from sklearn.model_selection import cross_validate

from sklearn_dinoatten.evaluation import (
    SCORERS,
    binary_auc,
    bootstrap_ci,
    bootstrap_resamples,
    delong_test,
    false_negative_rate,
    ovr_macro_auc,
    sensitivity_score,
    specificity_score,
)


def test_clinical_scores():
    y_true = [0, 0, 0, 1, 1, 1, 1]
    y_pred = [0, 1, 0, 1, 1, 0, 1]
    assert sensitivity_score(y_true, y_pred) == pytest.approx(3 / 4)
    assert specificity_score(y_true, y_pred) == pytest.approx(2 / 3)
    assert false_negative_rate(y_true, y_pred) == pytest.approx(1 / 4)
    labels = np.array(["ad", "hc"])
    assert specificity_score(labels[y_true], labels[y_pred], pos_label="ad") == pytest.approx(3 / 4)


def test_scorers_in_cross_validate():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] + 0.2 * rng.normal(size=120) > 0).astype(int)
    result = cross_validate(LogisticRegression(), X, y, cv=4,
                            scoring={"auc": "roc_auc", **SCORERS})
    assert (result["test_sensitivity"] > 0.6).all()
    assert (result["test_specificity"] > 0.6).all()
    np.testing.assert_allclose(result["test_false_negative_rate"],
                               result["test_sensitivity"] - 1)  # negated: lower is better


def _psi(x, y):
    return (x > y) + 0.5 * (x == y)


def delong_by_definition(y, a, b):
    """DeLong et al. (1988) written out with the kernel psi over all pairs."""
    pos, neg = y == 1, y == 0
    m, n = pos.sum(), neg.sum()
    v10, v01 = [], []
    for s in (a, b):
        kernel = _psi(s[pos][:, None], s[neg][None, :])  # (m, n)
        v10.append(kernel.mean(axis=1))
        v01.append(kernel.mean(axis=0))
    aucs = [v.mean() for v in v10]
    s10 = np.array([[np.sum((v10[i] - aucs[i]) * (v10[j] - aucs[j])) / (m - 1)
                     for j in range(2)] for i in range(2)])
    s01 = np.array([[np.sum((v01[i] - aucs[i]) * (v01[j] - aucs[j])) / (n - 1)
                     for j in range(2)] for i in range(2)])
    cov = s10 / m + s01 / n
    z = (aucs[0] - aucs[1]) / np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    return aucs[0], aucs[1], z


def test_delong_matches_the_definition_with_ties():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], [23, 17])
    a = np.round(y + rng.normal(size=40), 1)  # rounding makes ties
    b = np.round(0.5 * y + rng.normal(size=40), 1)
    auc_a, auc_b, z, p = delong_test(y, a, b)
    expected_a, expected_b, expected_z = delong_by_definition(y, a, b)
    assert auc_a == pytest.approx(roc_auc_score(y, a)) == pytest.approx(expected_a)
    assert auc_b == pytest.approx(roc_auc_score(y, b)) == pytest.approx(expected_b)
    assert z == pytest.approx(expected_z)
    assert 0 < p < 1


def test_delong_size_under_the_null():
    # Two equally good, correlated scores: about 5 % of p-values fall below 0.05.
    rng = np.random.default_rng(1)
    p_values = []
    for _ in range(400):
        y = np.repeat([0, 1], 30)
        shared = y + rng.normal(size=60)
        p_values.append(delong_test(y, shared + rng.normal(size=60),
                                    shared + rng.normal(size=60))[3])
    assert 0.02 < np.mean(np.array(p_values) < 0.05) < 0.09


def test_delong_detects_a_better_score():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 100)
    _, _, z, p = delong_test(y, 2 * y + rng.normal(size=200), 0.3 * y + rng.normal(size=200))
    assert z > 0 and p < 1e-4


def test_delong_rejects_non_binary():
    with pytest.raises(ValueError, match="binary"):
        delong_test([0, 1, 2], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])


def test_bootstrap_ci_covers_and_narrows():
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], 50)
    score = y + rng.normal(size=100)
    auc, low, high = bootstrap_ci(roc_auc_score, y, score, n_resamples=300, random_state=0)
    assert auc == roc_auc_score(y, score) and low < auc < high
    big_y = np.repeat([0, 1], 500)
    _, big_low, big_high = bootstrap_ci(roc_auc_score, big_y, big_y + rng.normal(size=1000),
                                        n_resamples=200, random_state=0)
    assert big_high - big_low < high - low  # ten times the data, a narrower interval
    assert bootstrap_ci(roc_auc_score, y, score, n_resamples=300,
                        random_state=0) == (auc, low, high)


def test_bootstrap_ci_checks_confidence():
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(roc_auc_score, [0, 1], [0.1, 0.9], confidence=95)


def clustered_scores(rng, n_subjects=40, scans=4, delta=1.0, subject_sd=1.0, scan_sd=0.3):
    """Subject-level labels, ``scans`` scans per subject; each method's score has its own
    subject effect, so that scans of one subject are strongly correlated."""
    subject = np.repeat(np.arange(n_subjects), scans)
    y = np.repeat(np.arange(n_subjects) % 2, scans)

    def score():
        return (delta * y + rng.normal(0, subject_sd, n_subjects)[subject]
                + rng.normal(0, scan_sd, len(y)))

    return y, subject, score


def test_bootstrap_with_one_sample_per_group_is_the_plain_bootstrap():
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1], [30, 20])
    score = y + rng.normal(size=50)
    plain = bootstrap_ci(roc_auc_score, y, score, n_resamples=200, random_state=1)
    grouped = bootstrap_ci(roc_auc_score, y, score, n_resamples=200, random_state=1,
                           groups=np.arange(50))
    assert plain == grouped


def test_cluster_bootstrap_keeps_subjects_whole_and_classes_present():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    groups = np.array(["a", "a", "b", "c", "c", "d", "d", "e"])
    for index in bootstrap_resamples(y, n_resamples=50, groups=groups, random_state=0):
        drawn = groups[index]
        for g in np.unique(drawn):  # a drawn subject brings all its scans, each time drawn
            assert np.sum(drawn == g) % np.sum(groups == g) == 0
        assert set(y[index]) == {0, 1}
        assert len(np.unique(index)) <= len(index)


def test_cluster_bootstrap_covers_the_true_auc():
    # 40 subjects x 4 strongly correlated scans: the scan-level bootstrap treats 160
    # scans as independent and its intervals are far too narrow; resampling subjects
    # brings the coverage of the 95 % interval back to about 95 %.
    rng = np.random.default_rng(6)
    true_auc = stats.norm.cdf(1.0 / np.sqrt(2 * (1.0 + 0.3**2)))
    covered = {"scans": 0, "subjects": 0}
    n_datasets = 100
    for seed in range(n_datasets):
        y, subject, score = clustered_scores(rng)
        s = score()
        for name, groups in (("scans", None), ("subjects", subject)):
            _, low, high = bootstrap_ci(binary_auc, y, s, n_resamples=150, groups=groups,
                                        random_state=seed)
            covered[name] += low <= true_auc <= high
    assert 0.86 <= covered["subjects"] / n_datasets <= 0.99
    assert covered["scans"] / n_datasets < 0.8


def test_clustered_delong_with_one_sample_per_group_is_delong():
    rng = np.random.default_rng(7)
    y = np.repeat([0, 1], [25, 15])
    a, b = y + rng.normal(size=40), 0.5 * y + rng.normal(size=40)
    plain = delong_test(y, a, b)
    clustered = delong_test(y, a, b, groups=np.arange(40))
    np.testing.assert_allclose(clustered, plain, rtol=1e-12)


def test_clustered_delong_size_under_the_null():
    # Two equally good methods on 40 subjects x 4 correlated scans: DeLong's test on
    # scans rejects far more often than 5 %; clustered by subject, about 5 %.
    rng = np.random.default_rng(8)
    rejected = {"scans": [], "subjects": []}
    for _ in range(400):
        y, subject, score = clustered_scores(rng)
        a, b = score(), score()
        rejected["scans"].append(delong_test(y, a, b)[3] < 0.05)
        rejected["subjects"].append(delong_test(y, a, b, groups=subject)[3] < 0.05)
    assert 0.02 < np.mean(rejected["subjects"]) < 0.09
    assert np.mean(rejected["scans"]) > 0.2


def test_clustered_delong_needs_two_subjects_per_class():
    y = [0, 0, 1, 1]
    with pytest.raises(ValueError, match="two subjects or more"):
        delong_test(y, [0.1, 0.2, 0.8, 0.9], [0.2, 0.1, 0.9, 0.7], groups=["a", "a", "b", "c"])


# Labels as users have them: 0/1, text, booleans and {1, 2} (whose greater label is the
# positive class for roc_auc_score and DeLong, while pos_label=1 names 1).
LABELINGS = {
    "0/1": (np.array([0, 1]), 1),
    "text": (np.array(["CN", "AD"]), "AD"),
    "boolean": (np.array([False, True]), True),
    "1/2, positive 2": (np.array([1, 2]), 2),
    "1/2, positive 1": (np.array([2, 1]), 1),
}


@pytest.mark.parametrize("labeling", LABELINGS)
def test_scores_agree_with_scikit_learn_for_every_labeling(labeling):
    names, positive = LABELINGS[labeling]
    truth = np.array([0, 0, 0, 1, 1, 1, 1, 0])  # 1: the positive class
    guess = np.array([0, 1, 0, 1, 1, 0, 1, 0])
    y_true, y_pred = names[truth], names[guess]
    negative = names[0]
    assert sensitivity_score(y_true, y_pred, pos_label=positive) == pytest.approx(3 / 4)
    assert specificity_score(y_true, y_pred, pos_label=positive) == pytest.approx(
        recall_score(y_true, y_pred, pos_label=negative))
    assert false_negative_rate(y_true, y_pred, pos_label=positive) == pytest.approx(1 / 4)
    score = np.array([0.1, 0.6, 0.3, 0.8, 0.7, 0.4, 0.9, 0.2])
    # The score of the positive class, with scikit-learn's AUC of the same labels
    expected = roc_auc_score(y_true == positive, score)
    assert binary_auc(y_true == positive, score) == pytest.approx(expected)
    assert bootstrap_ci(roc_auc_score, y_true == positive, score, n_resamples=20,
                        random_state=0)[0] == pytest.approx(expected)
    auc, _, _, _ = delong_test(y_true == positive, score, score[::-1])
    assert auc == pytest.approx(expected)


@pytest.mark.parametrize("labeling", ["text", "1/2, positive 2"])
def test_a_pos_label_not_among_the_labels_raises_for_every_score(labeling):
    names, _ = LABELINGS[labeling]
    y = names[[0, 1, 0, 1]]
    if labeling == "1/2, positive 2":
        y = np.array([3, 2, 3, 2])  # 1, the default pos_label, is not a label
    for score in (sensitivity_score, specificity_score, false_negative_rate):
        with pytest.raises(ValueError, match="pos_label"):
            score(y, y)  # pos_label=1, the default
    # before: specificity_score returned 1.0 where recall raised


def test_specificity_refuses_more_than_two_labels_as_recall_does():
    with pytest.raises(ValueError, match="binary"):
        specificity_score([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError):
        recall_score([0, 1, 2], [0, 1, 2])


def test_scorers_with_text_labels_take_their_pos_label():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    y = np.where(X[:, 0] > 0, "AD", "CN")
    scorers = {"sensitivity": make_scorer(sensitivity_score, pos_label="AD"),
               "specificity": make_scorer(specificity_score, pos_label="AD")}
    result = cross_validate(LogisticRegression(), X, y, cv=4, scoring=scorers)
    assert (result["test_sensitivity"] > 0.8).all()
    assert (result["test_specificity"] > 0.8).all()
    with pytest.warns(UserWarning, match="pos_label"):  # the default pos_label=1 refused
        cross_validate(LogisticRegression(), X, y, cv=2, scoring=SCORERS["specificity"])


def test_binary_auc_refuses_labels_other_than_0_and_1():
    with pytest.raises(ValueError, match=r"\{0, 1\}"):
        binary_auc([1, 2, 1, 2], [0.1, 0.2, 0.3, 0.4])  # was 0.25; roc_auc_score: 0.75
    with pytest.raises(ValueError, match=r"\{0, 1\}"):
        binary_auc(["a", "b"], [0.1, 0.2])


def test_ovr_macro_auc_is_scikit_learns():
    rng = np.random.default_rng(0)
    y = rng.choice(["AD", "CN", "MCI"], size=60)
    found = np.where((y == "MCI")[:, None], [0.2, 0.2, 0.6], [0.4, 0.3, 0.3])
    proba = np.array([rng.multinomial(10, p) for p in found]) / 10  # in tenths: ties
    assert ovr_macro_auc(y, proba, ["AD", "CN", "MCI"]) == pytest.approx(
        roc_auc_score(y, proba, multi_class="ovr", labels=["AD", "CN", "MCI"]))
