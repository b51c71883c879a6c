import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from sklearn_dinoatten import AttentionPoolClassifier
from sklearn_dinoatten.evaluation import (
    OutOfFold,
    binary_auc,
    bootstrap_ci,
    caption,
    cross_validate_method,
    cross_validation,
    delong_test,
    false_negative_rate,
    held_out,
    metrics_table,
    positive_class,
    run_study,
)


@pytest.mark.parametrize("labels, positive", [
    ([0, 1], 1), ([1, 0, 0], 1), ([True, False], True), (["0", "1"], "1"),
    ([-1, 1], 1), (["false", "True"], "True"),
])
def test_positive_class_of_binary_indicator_labels(labels, positive):
    assert positive_class(labels) == positive


def test_positive_class_must_be_named_for_other_labels():
    with pytest.raises(ValueError, match=r"\['abnormal', 'normal'\]: say which is the positive"):
        positive_class(["normal", "abnormal", "normal"])
    assert positive_class(["normal", "abnormal"], pos_label="abnormal") == "abnormal"
    assert positive_class([0, 1], pos_label="0") == 0  # as text, from the command line
    with pytest.raises(ValueError, match="'ill' is not one of the classes"):
        positive_class(["normal", "abnormal"], pos_label="ill")
    with pytest.raises(ValueError, match="pos_label is for two classes"):
        positive_class([0, 1, 2], pos_label=1)
    assert positive_class([0, 1, 2]) is None


def fake_results(y, seed=0, n_methods=2):
    """Out-of-fold probabilities that favour the true class, columns in sorted order."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    results = {}
    for key in ["dinoatten3d", "mean"][:n_methods]:
        logits = rng.normal(size=(len(y), len(classes))) + 1.2 * (y[:, None] == classes)
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        results[key] = OutOfFold(proba, np.zeros((len(y), 2)), None, [1.0])
    return results


def test_metrics_describe_the_named_positive_class():
    y = np.array(["abnormal", "normal"] * 30)
    results = fake_results(y)
    row = metrics_table(y, results, pos_label="abnormal", n_resamples=50)[0]
    proba = results["dinoatten3d"].proba  # columns: abnormal, normal
    predicted = np.where(proba[:, 0] > proba[:, 1], "abnormal", "normal")
    assert row["fnr"] == false_negative_rate(y, predicted, pos_label="abnormal")
    positive = y == "abnormal"
    assert row["sensitivity"] == np.mean(predicted[positive] == "abnormal")
    assert row["specificity"] == np.mean(predicted[~positive] == "normal")
    assert row["f1"] == f1_score(y, predicted, pos_label="abnormal")
    assert row["auc"] == pytest.approx(roc_auc_score(y == "abnormal", proba[:, 0]), abs=1e-12)
    with pytest.raises(ValueError, match="say which is the positive class"):
        metrics_table(y, results, n_resamples=10)


def test_grouped_metrics_resample_subjects_and_cluster_delong():
    y = np.repeat([0, 1], 40)
    groups = np.arange(80) // 4  # four scans per subject
    results = fake_results(y)
    row = metrics_table(y, results, groups=groups, n_resamples=100, random_state=3)[1]
    score, reference = results["mean"].proba[:, 1], results["dinoatten3d"].proba[:, 1]
    assert (row["auc"], row["auc_ci_low"], row["auc_ci_high"]) == bootstrap_ci(
        binary_auc, y, score, n_resamples=100, groups=groups, random_state=3)
    assert row["delong_p"] == delong_test(y, score, reference, groups=groups)[3]
    assert row["delong_p"] != delong_test(y, score, reference)[3]


def test_held_out_split_validates_and_describes():
    y = np.array([0, 1] * 6)
    split = np.array(["train"] * 6 + ["val"] * 2 + ["test"] * 4)
    protocol = held_out(split, y)
    (fit,) = protocol.splits
    assert fit.train.tolist() == list(range(6)) and fit.validation.tolist() == [6, 7]
    assert fit.test.tolist() == [8, 9, 10, 11]
    assert protocol.description == ("held-out test set: trained on 6 scans, early stopping "
                                     "on 2 validation scans, scored once on 4 test scans")
    assert held_out(np.where(split == "val", "train", split), y).splits[0].validation is None
    with pytest.raises(ValueError, match="must be train, val, test; got 'dev'"):
        held_out(np.where(split == "val", "dev", split), y)
    with pytest.raises(ValueError, match="needs 'train' and 'test'"):
        held_out(np.where(split == "test", "val", split), y)
    with pytest.raises(ValueError, match="Class 1 has no 'test' scan"):
        held_out(split, np.where(split == "test", 0, y))
    subjects = np.arange(12) // 2  # two scans each, never across sets
    assert "(2 test subjects)" in held_out(split, y, groups=subjects).description
    subjects[8] = 0  # subject 0 now has a training and a test scan
    with pytest.raises(ValueError, match="Subject 0 has scans in \\['test', 'train'\\]"):
        held_out(split, y, groups=subjects)


def test_held_out_fits_on_train_stops_on_val_and_scores_test_only():
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 20)
    X = rng.normal(size=(40, 4, 8)).astype(np.float32)
    X[y == 1, 0] += 1.5
    split = np.array(["train"] * 24 + ["val"] * 6 + ["test"] * 10)
    protocol = held_out(split, y)
    estimator = AttentionPoolClassifier(max_epochs=30, n_iter_no_change=3, random_state=0)
    result = cross_validate_method(estimator, X, y, protocol.splits)
    assert np.isnan(result.proba[:30]).all() and np.isfinite(result.proba[30:]).all()
    expected = AttentionPoolClassifier(  # trained on train, stopped early on val
        max_epochs=30, n_iter_no_change=3, early_stopping=True, random_state=0).fit(
        X[:24], y[:24], X_val=X[24:30], y_val=y[24:30])
    np.testing.assert_array_equal(result.proba[30:], expected.predict_proba(X[30:]))
    row = metrics_table(y, {"dinoatten3d": result}, n_resamples=20)[0]
    assert row["auc"] == roc_auc_score(y[30:], result.proba[30:, 1])


def test_caption_says_protocol_positive_class_and_tests():
    y = np.repeat([0, 1], 20)
    groups = np.arange(40) // 2
    text = caption(cross_validation(y, n_folds=5, groups=groups), positive=1, random_weights=True)
    assert text.startswith("Protocol: 5-fold stratified cross-validation of 40 scans, "
                           "grouped by subject (20 subjects).")
    assert "Positive class: 1." in text
    assert "resamples of subjects (a cluster bootstrap)" in text
    assert "clustered by subject (Obuchowski 1997)" in text
    assert "RANDOM backbone weights" in text
    plain = caption(cross_validation(y, n_folds=5), positive="AD")
    assert "Positive class: 'AD'." in plain and "clustered" not in plain


def test_grouped_folds_need_subjects_of_each_class():
    """All scans of class 1 from one subject: no grouped fold could test it."""
    y = np.array([0] * 10 + [1] * 4)
    groups = np.array([f"p{i}" for i in range(10)] + ["q"] * 4)
    with pytest.raises(ValueError, match="Class 1 has scans of 1 subject\\(s\\) \\(q\\), "
                                         "fewer than the 3 folds"):
        cross_validation(y, n_folds=3, groups=groups)
    groups[-2:] = ["r", "s"]
    assert len(cross_validation(y, n_folds=3, groups=groups).splits) == 3
    y = np.array([0] * 10 + [1] * 10)
    groups = np.array([f"p{i % 6}" for i in range(10)] + [f"q{i}" for i in range(10)])
    with pytest.raises(ValueError, match=r"Class 0 has scans of 6 subject\(s\) \(p0, p1, p2, "
                                         r"p3, p4 and 1 more\), fewer than the 7 folds"):
        cross_validation(y, n_folds=7, groups=groups)  # the list says how many it leaves out


def test_a_study_of_several_encoders_runs_each_method_on_each():
    """run_study with a dict of embedders: a row per (method, encoder), on the same
    folds as a study of that encoder alone; encoders must keep the same slices."""
    from sklearn_dinoatten import DinoSliceEmbedder
    from sklearn_dinoatten.datasets import make_volumes
    from sklearn_dinoatten.evaluation import make_method

    X, y = make_volumes(n_samples=12, shape=(28, 28, 4), random_state=0)
    methods = {key: make_method(key, max_epochs=2) for key in ("dinoatten3d", "mean")}
    protocol = cross_validation(y, n_folds=2)

    def embedder(**params):
        return DinoSliceEmbedder(weights="random", image_size=28, verbose=0, **params)

    run = run_study(X, y, methods, protocol, verbose=0,
                    embedder={"cls": embedder(), "patch mean": embedder(feature="mean")})
    assert list(run.proba) == ["dinoatten3d@cls", "dinoatten3d@patch mean", "mean@cls",
                               "mean@patch mean"]
    assert [row["method"] for row in run.metrics] == [
        "DinoAtten3D [cls]", "DinoAtten3D [patch mean]", "Mean pooling [cls]",
        "Mean pooling [patch mean]"]
    assert run.reference == "dinoatten3d@cls" and np.isnan(run.metrics[0]["delong_p"])
    assert list(run.info["embedders"]) == ["cls", "patch mean"] and run.info["embedder"] is None
    assert run.info["methods"]["mean@patch mean"]["encoder"] == "patch mean"
    assert "Slice encoders compared: cls, patch mean" in run.info["caption"]
    alone = run_study(X, y, methods, protocol, embedder=embedder(feature="mean"), verbose=0)
    np.testing.assert_array_equal(alone.proba["dinoatten3d"],
                                  run.proba["dinoatten3d@patch mean"])
    with pytest.raises(ValueError, match="keep different slices .n_slices=None and 2"):
        run_study(X, y, methods, protocol, embedder={"a": embedder(), "b": embedder(n_slices=2)})
    with pytest.raises(ValueError, match="without '@'; got 'a@b'"):
        run_study(X, y, methods, protocol, embedder={"a@b": embedder()})


def test_slice_outputs_of_patch_features_are_per_slice():
    """With feature="patch" the instances are patches, but what is shown is per slice:
    n_slices counts slices and a slice's attention is the sum over its patches (before:
    n_slices 4 times too many, and the first 5 patch weights taken as slice weights)."""
    from sklearn_dinoatten import DinoSliceEmbedder
    from sklearn_dinoatten.datasets import make_volumes
    from sklearn_dinoatten.evaluation import make_method

    X, y = make_volumes(n_samples=8, shape=(28, 28, 5), random_state=0)
    embedders = {name: DinoSliceEmbedder(weights="random", image_size=28, verbose=0,
                                         feature=name) for name in ("cls", "patch")}
    run = run_study(X, y, {"dinoatten3d": make_method("dinoatten3d", max_epochs=2)},
                    held_out(["train"] * 6 + ["test"] * 2, y), embedder=embedders,
                    verbose=0)
    assert run.outputs["n_slices"].tolist() == [5, 5]
    for name in embedders:
        attention = run.outputs[f"attention_dinoatten3d@{name}"]
        assert attention.shape == (2, 5)
        np.testing.assert_allclose(attention.sum(axis=1), 1.0, rtol=1e-5)
    # The per-slice sums of the patch attention of the model fitted on the same split
    model = make_method("dinoatten3d", max_epochs=2).fit(embedders["patch"].transform(X[:6]),
                                                         y[:6])
    patches = model.attention_weights(embedders["patch"].transform(X[6:]))
    assert patches.shape == (2, 20)
    np.testing.assert_allclose(run.outputs["attention_dinoatten3d@patch"],
                               patches.reshape(2, 5, 4).sum(axis=2), rtol=1e-5)


def test_delong_is_left_out_where_a_class_has_one_subject():
    """A test set (or a subgroup level) whose positive scans are one subject's: the
    clustered DeLong test is undefined there, so its p is NaN, not an error."""
    y = np.array([0] * 10 + [1] * 4)
    groups = np.array([f"a{i}" for i in range(10)] + ["z"] * 4)
    rows = metrics_table(y, fake_results(y), pos_label=1, groups=groups, n_resamples=20)
    assert [np.isnan(r["delong_p"]) for r in rows] == [True, True]
    assert all(0 <= r["auc"] <= 1 for r in rows)
    groups[-2:] = "y"  # two positive subjects: the test applies
    rows = metrics_table(y, fake_results(y), pos_label=1, groups=groups, n_resamples=20)
    assert 0 <= rows[1]["delong_p"] <= 1


def test_the_caption_says_where_a_rule_and_a_recalibration_were_fitted():
    """On the val scans of a split that has them; by an inner cross-validation of the
    training scans of a fold, or of a split without val scans."""
    y = np.array([0, 1] * 10)
    with_val = held_out(np.repeat(["train", "val", "test"], [10, 4, 6]), y)
    without_val = held_out(np.repeat(["train", "test"], [12, 8]), y)
    for protocol, where in [
            (with_val, "on the validation scans"),
            (without_val, "on out-of-fold predictions of each split's training scans"),
            (cross_validation(y, n_folds=2), "on out-of-fold predictions of each fold's training")]:
        text = caption(protocol, positive=1, threshold="youden", recalibration="platt")
        assert f"chosen by the rule 'youden' {where}" in text
        assert f"Recalibrated probabilities: Platt scaling on the logit, fitted {where}" \
            in text
