"""`dinoatten cv --threshold youden --subgroups site`: the operating point chosen on
training scans, calibration and decision curves, the metrics per site, in the run
directory and the report."""

import contextlib
import csv
import io
import json
import os

import numpy as np
import pytest

from sklearn_dinoatten.cli import main
from sklearn_dinoatten.evaluation import read_run

from .test_cli import FAST, make_study, read_csv


@pytest.fixture(scope="module")
def clinical_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("clinical")
    data = make_study(root / "data", n=24)
    with open(os.path.join(data, "labels.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    for i, row in enumerate(rows):  # site A: 16 scans, site B: 8 (too small)
        row["site"] = "A" if i % 3 else "B"
    with open(os.path.join(data, "labels.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = str(root / "cv")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert main(["cv", data, "--method", "dinoatten3d,mean", "--threshold", "youden",
                     "--subgroups", "site", "--out", out, *FAST]) == 0
    assert "warning: Subgroup site='B':" in stderr.getvalue()  # too small, said once
    return data, out


def test_the_run_records_each_folds_threshold_and_the_new_columns(clinical_run):
    _, out = clinical_run
    run = json.load(open(os.path.join(out, "run.json")))
    assert run["threshold_rule"] == "youden" and run["subgroups"] == ["site"]
    assert set(run["thresholds"]) == {"dinoatten3d", "mean"}
    assert all(len(t) == 2 and all(0 < v <= 1 for v in t) for t in run["thresholds"].values())
    metrics = read_csv(os.path.join(out, "metrics.csv"))
    for row in metrics:
        assert float(row["threshold"]) == pytest.approx(
            np.mean(run["thresholds"][{"DinoAtten3D": "dinoatten3d",
                                       "Mean pooling": "mean"}[row["method"]]]))
        for name in ("sensitivity", "specificity", "ppv", "npv", "accuracy", "brier"):
            assert float(row[f"{name}_ci_low"]) <= float(row[name]) <= float(
                row[f"{name}_ci_high"])
        assert row["calibration_slope"] and row["ece"]
    caption = open(os.path.join(out, "metrics.md")).read()
    assert "chosen by the rule 'youden' on out-of-fold predictions" in caption
    assert "| cal. slope |" in caption


def test_predictions_use_each_folds_threshold(clinical_run):
    _, out = clinical_run
    run = read_run(out)
    thresholds = np.asarray(run.info["thresholds"]["mean"])[run.folds - 1]  # folds 1..k
    score = run.proba["mean"][:, run.classes.index(run.positive)]
    predicted = np.array([row["mean_pred"] for row in read_csv(os.path.join(
        out, "predictions.csv"))])
    assert ((predicted == run.positive) == (score >= thresholds)).all()


def test_subgroup_metrics_come_from_the_predictions_and_their_levels(clinical_run):
    from sklearn.metrics import roc_auc_score

    data, out = clinical_run
    predictions = read_csv(os.path.join(out, "predictions.csv"))
    labels = {os.path.join(os.path.abspath(data), r["path"]): r["site"]
              for r in read_csv(os.path.join(data, "labels.csv"))}
    assert [r["subgroup_site"] for r in predictions] == [labels[r["path"]] for r in predictions]
    row = next(r for r in read_csv(os.path.join(out, "subgroups.csv"))
               if r["level"] == "A" and r["method"] == "DinoAtten3D")
    level = [r for r in predictions if r["subgroup_site"] == "A"]
    assert float(row["auc"]) == pytest.approx(roc_auc_score(
        [r["label"] == "1" for r in level], [float(r["dinoatten3d_p_1"]) for r in level]))
    assert read_run(out).subgroup_values["site"].tolist() == [r["subgroup_site"]
                                                              for r in predictions]


def test_subgroups_are_tabled_with_their_sizes(clinical_run):
    _, out = clinical_run
    rows = read_csv(os.path.join(out, "subgroups.csv"))
    assert {(r["level"], r["n_scans"]) for r in rows} == {("A", "16"), ("B", "8")}
    small = [r for r in rows if r["level"] == "B"]
    assert all("too small" in r["note"] or "no scan of class" in r["note"] for r in small)
    assert "| site | A | 16 |" in open(os.path.join(out, "subgroups.md")).read()


def test_the_report_shows_calibration_decision_curves_and_subgroups(clinical_run):
    data, out = clinical_run
    assert main(["report", out, "--overlays", "0"]) == 0
    text = open(os.path.join(out, "report.html")).read()
    for title in ("<h2>Calibration</h2>", "<h2>Decision curves</h2>", "<h2>Subgroups</h2>"):
        assert title in text
    assert f"(24 scans; labels {os.path.join(os.path.abspath(data), 'labels.csv')})" in text
    section = text.split("<h2>Subgroups</h2>")[1].split("<h2>")[0]
    assert "<h3>site</h3>" in section and "<td>B (8 scans)</td>" in section


def test_an_unknown_subgroup_column_is_one_line(clinical_run, capsys):
    data, out = clinical_run
    assert main(["cv", data, "--subgroups", "scanner", "--out", out + "2", *FAST]) != 0
    assert "has no column 'scanner'" in capsys.readouterr().err
    assert main(["cv", data, "--subgroups", "site,label", "--out", out + "2", *FAST]) != 0
    assert "'label' is the column of the labels, not a subgroup" in capsys.readouterr().err


@pytest.mark.parametrize("typed, said", [
    ("youdn", "must be a probability in (0, 1), 'youden', 'sensitivity=<share>' or "
              "'specificity=<share>' (a share in (0, 1]); got 'youdn'."),
    ("sensitivity=90", "'sensitivity=90': the sensitivity must be a share in (0, 1], e.g. "
                       "'sensitivity=0.9' (90 % is 0.9)."),
    ("sensitivity=0.9.1", "'sensitivity=0.9.1': the sensitivity must be a share in (0, 1]"),
    ("specificity=", "'specificity=': the specificity must be a share in (0, 1]"),
    ("1.5", "got '1.5'."),
])
def test_a_bad_threshold_is_one_line_echoing_what_was_typed(clinical_run, capsys, typed,
                                                            said):
    """Before: "... got None." for the first two, a raw "could not convert string to
    float" for the third."""
    data, out = clinical_run
    for command in (["cv", data, "--out", out + "3", *FAST], ["fit", data, "--out", "m"],
                    ["predict", "m.safetensors", "s.nii.gz", "--out", "p.csv"]):
        with pytest.raises(SystemExit):
            main([*command, "--threshold", typed])
        error = capsys.readouterr().err.strip().splitlines()[-1]  # after argparse's usage
        assert error.startswith(f"dinoatten {command[0]}: error: argument --threshold: ")
        assert said in error, error


def test_recalibrate_records_the_method_and_scores_the_recalibrated_probabilities(
        clinical_run):
    from sklearn.metrics import brier_score_loss

    data, out = clinical_run
    out = out + "-platt"
    assert main(["cv", data, "--method", "mean", "--recalibrate", "platt", "--out", out,
                 *FAST]) == 0
    run = read_run(out)
    assert run.info["recalibration"] == "platt"
    assert "Recalibrated probabilities: Platt scaling" in open(
        os.path.join(out, "metrics.md")).read()
    score = run.proba["mean"][:, run.classes.index(run.positive)]
    brier = float(read_csv(os.path.join(out, "metrics.csv"))[0]["brier"])
    assert brier == pytest.approx(brier_score_loss(run.labels == run.positive, score))
    plain = read_run(clinical_run[1]).proba["mean"]  # the same folds and fits, not recalibrated
    assert not np.allclose(run.proba["mean"], plain)
