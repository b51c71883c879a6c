"""The protocols' errors about the labels say what would help: every class with its
count, a class no number of folds can hold, names that differ only in case, and labels
that are continuous values rather than classes."""

import numpy as np
import pytest

from sklearn_dinoatten import DinoSliceEmbedder
from sklearn_dinoatten.evaluation import cross_validation, held_out, make_method, run_study

from .._helpers import FAST


def test_a_class_of_one_scan_is_not_helped_by_fewer_folds():
    """Before: "Class 'MCI' has 1 scans, fewer than the 4 folds ... lower the number of
    folds", which cannot help a class of one scan."""
    y = np.array(["AD"] * 20 + ["CN"] * 19 + ["MCI"])
    with pytest.raises(ValueError) as error:
        cross_validation(y, n_folds=4)
    assert str(error.value) == (
        "Class 'MCI' has 1 scan, fewer than the 4 folds; no number of folds can both train "
        "on it and test it: gather more scans of it, or merge it into another class, or "
        "drop its scans from the labels. Scans per class: 'AD': 20, 'CN': 19, 'MCI': 1.")
    with pytest.raises(ValueError, match="has 2 scans, fewer than the 4 folds; lower the "
                                         "number of folds to 2 or fewer"):
        cross_validation(np.array(["AD"] * 20 + ["CN"] * 2), n_folds=4)


def test_class_names_that_differ_only_in_case_are_pointed_out():
    y = np.array(["AD"] * 20 + ["Control"] * 19 + ["control "])
    with pytest.raises(ValueError, match=r"'Control' and 'control ' differ only in case or "
                                         r"spaces: a typo in the labels\?"):
        cross_validation(y, n_folds=5)


def test_a_subject_alone_in_its_class_is_not_helped_by_fewer_folds():
    y = np.array([0] * 10 + [1] * 4)
    groups = np.array([f"s{i}" for i in range(10)] + ["p"] * 4)
    with pytest.raises(ValueError, match=r"scans of 1 subject\(s\) \(p\), fewer than the 3 "
                                         "folds: .*no number of folds can both train on it"):
        cross_validation(y, n_folds=3, groups=groups)


@pytest.mark.parametrize("ages", [np.round(np.linspace(55.1, 79.9, 30), 1),
                                  np.round(np.linspace(55.1, 79.9, 30), 1).astype(str)],
                         ids=["numbers", "text of a CSV"])
def test_continuous_labels_are_said_to_be_a_regression_target(ages):
    """Before: "Class 55.1 has 1 scans ..."."""
    message = (r"The labels look like continuous values \(30 distinct numbers among 30 "
               r"scans, from 55.1 to 79.9\), not classes: that is a regression target")
    with pytest.raises(ValueError, match=message):
        cross_validation(ages, n_folds=5)
    with pytest.raises(ValueError, match=message):
        held_out(np.repeat(["train", "test"], 15), ages)
    cross_validation(np.repeat(np.arange(3), 10), n_folds=5)  # a few numeric classes are classes


def test_a_subject_whose_scans_change_label_is_named(tmp_path):
    """Before: accepted without a word, in load_nifti_folder, run_study and dinoatten."""
    import contextlib
    import io

    from sklearn_dinoatten.cli import main
    from sklearn_dinoatten.datasets import load_nifti_folder

    from ..cli.test_cli import make_study

    data = make_study(tmp_path / "data", n=12, subjects=True)
    labels = tmp_path / "data" / "labels.csv"
    rows = labels.read_text().splitlines()
    path, label, subject = rows[1].split(",")  # p0's first scan takes the other class
    rows[1] = ",".join([path, str(1 - int(label)), subject])
    labels.write_text("\n".join(rows) + "\n")
    said = (r"1 subject\(s\) have scans of different labels \(p0; p0: 0, 1\)\. A subject's "
            "scans stay in one fold")
    with pytest.warns(UserWarning, match=said):
        paths, y, groups, _ = load_nifti_folder(data)
    with pytest.warns(UserWarning, match=said):  # run_study's own check
        run_study(paths, y, {"mean": make_method("mean", max_epochs=1)},
                  cross_validation(y, n_folds=2, groups=groups),
                  embedder=DinoSliceEmbedder(**FAST, n_slices=2), verbose=0)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["cv", data, "--out", str(tmp_path / "cv"), "--weights", "random",
                     "--image-size", "28", "--epochs", "1", "--folds", "2", "-q"]) == 0
    lines = [line for line in err.getvalue().splitlines() if "different labels" in line]
    assert len(lines) == 1 and lines[0].startswith("dinoatten cv: warning: 1 subject(s)")


def test_a_study_of_few_scans_warns_and_marks_intervals_the_bootstrap_cannot_spread():
    """Before: "AUC 1.000 [1.000, 1.000]" from 10 scans, without a word."""
    from sklearn_dinoatten.datasets import make_volumes
    from sklearn_dinoatten.evaluation._markdown import NO_SPREAD_NOTE, metric_text, to_markdown

    X, y = make_volumes(n_samples=10, shape=(20, 20, 4), random_state=0)
    with pytest.warns(UserWarning, match=r"The scored scans are too few for the metrics to "
                                         r"say much \(10 scans, 5 of 0, 5 of 1; fewer than "
                                         r"20, or than 5 of a class\)"):
        run = run_study(list(X), y, {"mean": make_method("mean", max_epochs=1)},
                        cross_validation(y, n_folds=2), embedder=DinoSliceEmbedder(**FAST),
                        verbose=0)
    row = {"method": "m", "auc": 1.0, "auc_ci_low": 1.0, "auc_ci_high": 1.0,
           "sensitivity": 0.8, "sensitivity_ci_low": 0.5, "sensitivity_ci_high": 1.0}
    assert metric_text(row, "auc") == "1.000 [1.000, 1.000] \u2020"
    assert metric_text(row, "sensitivity") == "0.800 [0.500, 1.000]"
    assert to_markdown([row], "m").endswith(NO_SPREAD_NOTE)
    flat = [(r["method"], c[:-7]) for r in run.metrics for c in r if c.endswith("_ci_low")
            and float(r[c]) == float(r[c[:-7] + "_ci_high"])]  # NaN == NaN is False
    text = to_markdown(run.metrics, "Mean pooling")
    assert (NO_SPREAD_NOTE in text) == bool(flat)
    assert all(metric_text(row, column).endswith(" \u2020") for row in run.metrics
               for name, column in flat if row["method"] == name)


def test_kept_slices_takes_one_volume_and_says_so():
    """Before: kept_slices([path]) failed with "has dtype <U53"."""
    embedder = DinoSliceEmbedder(**FAST).fit([np.ones((8, 8, 4))])
    with pytest.raises(ValueError, match="kept_slices takes one volume .*; got a list of 1: "
                                         "call it for each volume"):
        embedder.kept_slices(["scan.nii.gz"])


def test_missing_subgroup_values_are_one_missing_level():
    """Before: NaN and None became the levels 'nan' and 'None'."""
    from sklearn_dinoatten.evaluation._subgroups import subgroup_levels

    levels = subgroup_levels(["A", None, float("nan"), "", " NA ", "n/a", "B"])
    assert levels.tolist() == ["A"] + ["(missing)"] * 5 + ["B"]
