"""Studies of a number: folds stratified by target and grouped by subject, every metric
as scikit-learn and scipy compute it from predictions.csv, the training-mean floor, the
bias correction fitted on training scans only, and what a study of regressors refuses."""

import csv

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

from sklearn_dinoatten import AttentionPoolClassifier, AttentionPoolRegressor, DinoSliceEmbedder
from sklearn_dinoatten.evaluation import _regression_out_of_fold as out_of_fold
from sklearn_dinoatten.evaluation import (
    cross_validation,
    external_test,
    held_out,
    read_run,
    run_study,
    target_strata,
    write_report,
    write_run,
)

N_SUBJECTS = 20


def aging_scans(n_subjects=N_SUBJECTS, seed=0):
    """Two scans per subject whose intensity grows with the subject's age (years)."""
    rng = np.random.default_rng(seed)
    ages = np.repeat(rng.uniform(20, 80, n_subjects), 2) + np.tile([0.0, 2.0], n_subjects)
    scans = [rng.normal(size=(16, 16, 6)).astype(np.float32) + (a - 50) / 10 for a in ages]
    return scans, ages, np.repeat([f"s{i:02d}" for i in range(n_subjects)], 2)


def embedder():
    return DinoSliceEmbedder(weights="random", image_size=28, n_slices=3, verbose=0)


def regressors(epochs=15):
    return {"dinoatten3d": AttentionPoolRegressor(max_epochs=epochs, lr=1e-2, random_state=0),
            "mean": AttentionPoolRegressor(pooling="mean", max_epochs=epochs, lr=1e-2,
                                           random_state=0)}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    scans, ages, subjects = aging_scans()
    site = np.where(np.arange(len(ages)) % 4 < 2, "A", "B")
    protocol = cross_validation(ages, n_folds=4, groups=subjects, task="regression")
    run = run_study(scans, ages, regressors(), protocol, embedder=embedder(),
                    bias_correction="linear", subgroups={"site": site},
                    target_name="age (years)", verbose=0)
    folder = tmp_path_factory.mktemp("regression") / "run"
    write_run(folder, run)
    return folder, run


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_folds_keep_subjects_whole_and_span_the_target():
    _, ages, subjects = aging_scans()
    protocol = cross_validation(ages, n_folds=4, groups=subjects, task="regression")
    tested = np.concatenate([split.test for split in protocol.splits])
    assert sorted(tested) == list(range(len(ages)))  # every scan tested once
    strata = target_strata(ages, 4)
    for split in protocol.splits:
        assert not set(subjects[split.train]) & set(subjects[split.test])
        assert len(set(strata[split.test])) >= 3  # young and old in every fold
    assert "stratified by 5 quantile bins of the target" in protocol.description
    assert "grouped by subject (20 subjects)" in protocol.description


def test_target_strata_are_quantile_bins_of_equal_size():
    strata = target_strata(np.arange(100.0)[::-1], 5)
    assert np.bincount(strata).tolist() == [10] * 10
    assert strata[0] == 9 and strata[-1] == 0  # by rank: the largest target in the top bin


def test_every_metric_equals_scikit_learn_and_scipy_on_predictions_csv(run_dir):
    folder, run = run_dir
    rows = _csv(folder / "predictions.csv")
    target = np.array([float(r["target"]) for r in rows])
    subjects = np.array([r["subject"] for r in rows])
    metrics = {r["method"]: r for r in _csv(folder / "metrics.csv")}
    reference = np.array([float(r["dinoatten3d_pred"]) for r in rows])
    for key, name in run.names.items():
        pred = np.array([float(r[f"{key}_pred"]) for r in rows])
        row = {k: float(v) if v not in ("", "nan") else np.nan
               for k, v in metrics[name].items() if k != "method"}
        assert row["mae"] == pytest.approx(mean_absolute_error(target, pred), rel=1e-12)
        assert row["rmse"] == pytest.approx(root_mean_squared_error(target, pred), rel=1e-12)
        assert row["r2"] == pytest.approx(r2_score(target, pred), rel=1e-12)
        assert row["mean_error"] == pytest.approx(np.mean(pred - target), abs=1e-9)
        if key != "training-mean":  # constant within a fold, not overall
            assert row["pearson_r"] == pytest.approx(stats.pearsonr(target, pred)[0])
            assert row["spearman_rho"] == pytest.approx(stats.spearmanr(target, pred)[0])
        assert row["error_target_r"] == pytest.approx(stats.pearsonr(target, pred - target)[0])
        assert row["mae_ci_low"] <= row["mae"] <= row["mae_ci_high"]
        if key == "dinoatten3d":
            assert np.isnan(row["mae_difference"]) and np.isnan(row["wilcoxon_p"])
            continue
        assert row["mae_difference"] == pytest.approx(
            mean_absolute_error(target, pred) - mean_absolute_error(target, reference))
        assert row["mae_difference_ci_low"] <= row["mae_difference"] <= row[
            "mae_difference_ci_high"]
        by_subject = [[np.abs(p - target)[subjects == s].mean() for s in np.unique(subjects)]
                      for p in (pred, reference)]
        assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(*by_subject).pvalue)


def test_the_training_mean_is_each_folds_training_targets_mean(run_dir):
    folder, run = run_dir
    _, ages, _ = aging_scans()
    rows = _csv(folder / "predictions.csv")
    assert list(run.names)[-2:] == ["training-mean", "training-mean+bias-corrected"]
    assert run.names["training-mean"] == "Training mean"
    # A model of nothing, corrected with each scan's true age, looks accurate: the
    # corrected rows are no accuracy
    floor = {r["method"]: float(r["mae"]) for r in _csv(folder / "metrics.csv")}
    assert floor["Training mean (bias-corrected)"] < 0.2 * floor["Training mean"]
    protocol = cross_validation(ages, n_folds=4, groups=aging_scans()[2], task="regression")
    for fold, split in enumerate(protocol.splits, 1):
        predicted = [float(r["training-mean_pred"]) for r in rows if int(r["fold"]) == fold]
        assert predicted == [ages[split.train].mean()] * len(split.test)


def test_the_run_reads_back_bit_for_bit(run_dir):
    folder, run = run_dir
    back = read_run(folder)
    assert back.task == "regression" and back.info["target"]["name"] == "age (years)"
    np.testing.assert_array_equal(back.labels, run.labels)
    for key, values in run.predictions.items():
        np.testing.assert_array_equal(back.predictions[key], values)
    assert [r["method"] for r in back.metrics] == list(run.names.values())
    assert {r["level"] for r in back.subgroups} == {"A", "B"}
    text = (folder / "metrics.md").read_text()
    assert "| method | fit s/fold | MAE | RMSE |" in text and "Target: age (years)." in text
    assert "AUC" not in text


def test_the_bias_correction_is_fitted_on_training_scans_only(monkeypatch):
    scans, ages, subjects = aging_scans(n_subjects=12)
    protocol = cross_validation(ages, n_folds=3, groups=subjects, task="regression")
    seen = []
    line = out_of_fold.line_of_errors
    monkeypatch.setattr(out_of_fold, "line_of_errors",
                        lambda y, pred: seen.append(np.asarray(y).copy()) or line(y, pred))
    run = run_study(scans, ages, {"dinoatten3d": regressors(epochs=3)["dinoatten3d"]},
                    protocol, embedder=embedder(), bias_correction="linear", verbose=0)
    assert len(seen) == 2 * len(protocol.splits)  # the method's, then the training mean's
    for targets, split in zip(seen, 2 * protocol.splits, strict=True):
        assert sorted(targets) == sorted(ages[split.train])  # all of them, and no test scan
    slopes = run.info["corrections"]["dinoatten3d"]
    expected = run.predictions["dinoatten3d"].copy()
    for (slope, intercept), split in zip(slopes, protocol.splits, strict=True):
        expected[split.test] -= slope * ages[split.test] + intercept
    np.testing.assert_allclose(run.predictions["dinoatten3d+bias-corrected"], expected)


def test_a_held_out_split_fits_the_correction_on_its_validation_scans(monkeypatch):
    scans, ages, subjects = aging_scans(n_subjects=12)
    split = np.where(np.isin(subjects, ["s00", "s01", "s02"]), "val",
                     np.where(np.isin(subjects, ["s03", "s04", "s05"]), "test", "train"))
    seen = []
    line = out_of_fold.line_of_errors
    monkeypatch.setattr(out_of_fold, "line_of_errors",
                        lambda y, pred: seen.append(np.asarray(y).copy()) or line(y, pred))
    with pytest.warns(UserWarning, match="too few"):
        run = run_study(scans, ages, {"dinoatten3d": regressors(epochs=3)["dinoatten3d"]},
                        held_out(split, ages, groups=subjects, task="regression"),
                        embedder=embedder(), bias_correction="linear", verbose=0)
    assert sorted(seen[0]) == sorted(ages[split == "val"])
    assert "fitted on the validation scans" in run.info["caption"]
    assert run.folds is None and len(run.labels) == (split == "test").sum()


def test_an_external_test_of_a_fitted_regressor():
    scans, ages, _ = aging_scans(n_subjects=6)
    model = AttentionPoolRegressor(max_epochs=3, random_state=0)
    fitted_embedder = embedder().fit(scans)
    model.fit(fitted_embedder.transform(scans), ages)
    run = run_study(scans, ages, {"dinoatten3d": model}, external_test(ages),
                    embedder=fitted_embedder, verbose=0)
    np.testing.assert_allclose(run.predictions["dinoatten3d"],
                               model.predict(fitted_embedder.transform(scans)))
    assert "training-mean" not in run.predictions  # no training scans to take a mean of


@pytest.mark.parametrize("methods, params, message", [
    ({"a": AttentionPoolRegressor(), "b": AttentionPoolClassifier()}, {},
     "'a' is a regressor and 'b' is not"),
    ({"a": AttentionPoolRegressor()}, dict(threshold="youden"),
     "threshold is for classifiers"),
    ({"a": AttentionPoolRegressor()}, dict(recalibration="platt"),
     "recalibration is for classifiers"),
    ({"a": AttentionPoolClassifier()}, dict(bias_correction="linear"),
     "bias_correction is for regressors"),
    ({"a": AttentionPoolRegressor()}, dict(bias_correction="quadratic"),
     "bias_correction must be None or one of"),
])
def test_what_a_study_refuses_before_any_work(methods, params, message):
    scans, ages, _ = aging_scans(n_subjects=6)
    y = ages if "a" in methods and isinstance(methods["a"], AttentionPoolRegressor) \
        else (ages > 50).astype(int)
    protocol = cross_validation(y, n_folds=3, task="regression" if y is ages
                                else "classification")
    with pytest.raises(ValueError, match=message):
        run_study(scans, y, methods, protocol, embedder=embedder(), verbose=0, **params)


@pytest.mark.parametrize("y, message", [
    (["young"] * 10, "y must be numbers for a regression; got 'young'"),
    ([1.0] * 9 + [np.nan], "scan 9 has nan"),
])
def test_bad_targets_are_named(y, message):
    with pytest.raises(ValueError, match=message):
        cross_validation(y, n_folds=2, task="regression")


def test_the_report_shows_predictions_errors_and_agreement(run_dir, monkeypatch):
    from .test_report import record_figures

    folder, run = run_dir
    figures = record_figures(monkeypatch)
    text = open(write_report(folder, out=folder / "report.html")).read()
    for heading in ("Predicted against true", "Errors against the target",
                    "Agreement (Bland-Altman)", "Subgroups", "Learned volume embeddings",
                    "Slice attention by third of the target"):
        assert f"<h2>{heading}</h2>" in text
    assert "<h2>ROC curves</h2>" not in text and "Positive class" not in text
    assert "<th>Target</th><td>age (years) (regression): from" in text
    agreement, errors, bland_altman = figures[:3]
    names = list(run.names.values())
    for figure in (agreement, errors, bland_altman):
        assert [t for t in figure["titles"] if t] == names  # hidden spare panels untitled
    assert set(agreement["xlabels"]) - {""} == {"true age (years)"}
    assert set(errors["ylabels"]) - {""} == {"error (predicted - true age (years))"}
    difference = run.predictions["mean"] - run.labels
    low = difference.mean() - 1.96 * difference.std(ddof=1)
    high = difference.mean() + 1.96 * difference.std(ddof=1)
    entries = bland_altman["legends"][names.index("Mean pooling")][1]
    assert entries == [f"mean difference {difference.mean():.2f}",
                       f"limits of agreement {low:.2f}, {high:.2f}"]
    assert "overlays need scan files; this run was made from arrays" in text
