"""The command line on a number: cv infers the task (or takes --task), fit saves a
regressor with its card, predict writes numbers, or, with targets, a run; the demo."""

import csv
import json
import os
import re

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error

from sklearn_dinoatten.cli import main
from sklearn_dinoatten.datasets import write_demo_data

FAST = ["--weights", "random", "--image-size", "28", "--n-slices", "4", "--epochs", "5",
        "--folds", "3"]


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def brain_ages(tmp_path_factory):
    root = tmp_path_factory.mktemp("ages") / "data"
    write_demo_data(root, dataset="brain-age", n_scans=24)
    return str(root)


def test_cv_infers_a_regression_and_report_fit_card_predict(brain_ages, tmp_path, capsys):
    out = str(tmp_path / "cv")
    assert main(["cv", brain_ages, "--label-column", "age", "--units", "years",
                 "--method", "dinoatten3d,mean", "--bias-correction", "linear",
                 "--subgroups", "sex", "--out", out, *FAST]) == 0
    printed = capsys.readouterr().out
    assert ("Regression: the column 'age' holds 24 distinct numbers among 24 scans (give "
            "--task classification to take them as classes).") in printed
    assert "| DinoAtten3D (bias-corrected) |" in printed and "| Training mean |" in printed
    assert "grouped by subject (12 subjects)" in printed and "Target: age (years)." in printed
    rows = _rows(os.path.join(out, "predictions.csv"))
    assert {r["subject"] for r in rows if r["fold"] == "1"}.isdisjoint(
        {r["subject"] for r in rows if r["fold"] != "1"})
    target = np.array([float(r["target"]) for r in rows])
    labels = {r["path"]: float(r["age"]) for r in _rows(os.path.join(brain_ages, "labels.csv"))}
    assert target.tolist() == [labels[os.path.basename(r["path"])] for r in rows]
    metrics = {r["method"]: r for r in _rows(os.path.join(out, "metrics.csv"))}
    pred = np.array([float(r["mean_pred"]) for r in rows])
    assert float(metrics["Mean pooling"]["mae"]) == pytest.approx(
        mean_absolute_error(target, pred))
    run = json.load(open(os.path.join(out, "run.json")))
    assert run["task"] == "regression" and run["target"]["name"] == "age (years)"
    assert run["bias_correction"] == "linear" and len(run["corrections"]["mean"]) == 3
    assert main(["report", out, "-q", "--overlays", "3"]) == 0
    report = open(os.path.join(out, "report.html")).read()
    assert "Bland-Altman" in report
    assert "<h3>The highest predictions</h3>" in report
    assert "<h3>The lowest predictions</h3>" in report
    shown = {os.path.basename(p) for p in
             re.findall(r"<figcaption>(sub-\d+_scan-\d)\.nii\.gz: true", report)}
    assert len(shown) == 3 and len({name[:7] for name in shown}) == 3  # one per subject

    model = str(tmp_path / "age.safetensors")
    assert main(["fit", brain_ages, "--label-column", "age", "--units", "years",
                 "--evaluation", out, "--out", model, *FAST[:-2]]) == 0
    printed = capsys.readouterr().out
    assert "It predicts a number (trained on targets from" in printed
    assert main(["card", model]) == 0
    card = capsys.readouterr().out
    assert "## What it predicts" in card and "Target: age (years), a number" in card
    assert "| method | MAE | RMSE |" in card and "| R² | Pearson r |" in card
    assert "Operating point" not in card and "extrapolation" in card

    predicted = str(tmp_path / "ages.csv")
    scans = sorted(os.path.join(brain_ages, f) for f in os.listdir(brain_ages)
                   if f.endswith(".nii.gz"))[:3]
    assert main(["predict", model, *scans, "--out", predicted]) == 0
    values = [float(r["prediction"]) for r in _rows(predicted)]
    assert len(values) == 3 and all(np.isfinite(values))
    assert main(["predict", model, *scans, "--out", str(tmp_path / "x.csv"),
                 "--threshold", "0.3"]) == 1
    assert "--threshold and --pos-label are for classifiers" in capsys.readouterr().err

    external = str(tmp_path / "external")
    assert main(["predict", model, os.path.join(brain_ages, "labels.csv"),  # its card: "age"
                 "--out", external]) == 0
    run = json.load(open(os.path.join(external, "run.json")))
    assert run["task"] == "regression" and run["protocol"] == "includes training scans"
    assert run["target"]["name"] == "age (years)"


def test_task_classification_takes_numbers_as_classes(tmp_path):
    root = tmp_path / "data"
    write_demo_data(root, dataset="brain-age", n_scans=12)
    assert main(["cv", str(root), "--label-column", "age", "--task", "classification",
                 "--out", str(tmp_path / "o"), *FAST]) == 1


@pytest.mark.slow  # 2 min: every regressor on 40 phantom heads
def test_the_regression_demo(tmp_path, capsys):
    assert main(["demo", "--task", "regression", "--n-scans", "40", "--out",
                 str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "Demo data: synthetic phantom heads" in printed and "| 3D ResNet |" in printed
    assert os.path.isfile(tmp_path / "cv" / "report.html")
