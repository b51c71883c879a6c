"""The metric registry drives every table and file of a run: a metric registered here
is computed, given its interval, written and shown, and nothing else changes."""

import csv
import html

import numpy as np
import pytest
from sklearn.metrics import log_loss

from sklearn_dinoatten import DinoSliceEmbedder
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.evaluation import (
    METRICS,
    SCORERS,
    TABLES,
    Metric,
    bootstrap_ci,
    cross_validation,
    make_method,
    metric_columns,
    run_study,
    write_report,
    write_run,
)

from .._helpers import FAST


def _youden(truth, score, called):
    return called[truth == 1].mean() - called[truth == 0].mean()


def _log_loss(y, proba, classes):
    return log_loss(y, proba, labels=classes)


@pytest.fixture
def registered(monkeypatch):
    """Two metrics added to the registry for the test: Youden's J of two classes with an
    interval and in the subgroup tables; the log loss of any number of classes."""
    monkeypatch.setitem(METRICS, "youden_j", Metric(
        "Youden J", "Operating point", binary=_youden, interval=True, subgroup=True))
    monkeypatch.setitem(METRICS, "log_loss", Metric(
        "log loss", "Calibration", multiclass=_log_loss, text=".4f",
        binary=lambda truth, score, called: log_loss(truth, score, labels=[0, 1])))


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _study(tmp_path, n_classes):
    X, y = make_volumes(n_samples=24, shape=(20, 20, 4), n_classes=n_classes, random_state=0)
    site = np.array(["A", "B"] * 12)
    run = run_study(list(X), y, {"mean": make_method("mean", max_epochs=1),
                                 "dinoatten3d": make_method("dinoatten3d", max_epochs=1)},
                    cross_validation(y, n_folds=2), embedder=DinoSliceEmbedder(**FAST),
                    subgroups={"site": site}, verbose=0)
    folder = tmp_path / "run"
    write_run(folder, run)
    write_report(folder, overlays=0)
    return run, y, folder


@pytest.mark.filterwarnings("ignore:(The scored scans|Subgroup):UserWarning")
def test_a_registered_metric_is_in_every_table_and_file_with_its_interval(registered,
                                                                          tmp_path):
    run, y, folder = _study(tmp_path, n_classes=2)
    columns = metric_columns()
    assert columns[-5:] == ("ece", "youden_j", "youden_j_ci_low", "youden_j_ci_high",
                            "log_loss")
    rows = _csv(folder / "metrics.csv")
    assert tuple(rows[0]) == columns
    truth, score = y == 1, run.proba["mean"][:, 1]
    called = (score >= 0.5).astype(int)
    row = next(r for r in rows if r["method"] == "Mean pooling")
    value, low, high = bootstrap_ci(lambda t, s: _youden(t, None, (s >= 0.5).astype(int)),
                                    truth.astype(int), score, n_resamples=1000,
                                    random_state=0)
    assert float(row["youden_j"]) == pytest.approx(_youden(truth, score, called)) == value
    assert (float(row["youden_j_ci_low"]), float(row["youden_j_ci_high"])) == pytest.approx(
        (low, high))
    assert float(row["log_loss"]) == pytest.approx(log_loss(truth, score))
    text = f"{float(row['youden_j']):.3f} [{low:.3f}, {high:.3f}]"
    markdown = (folder / "metrics.md").read_text()
    assert "| Youden J |" in markdown and text in markdown
    assert f"| {float(row['log_loss']):.4f} |" in markdown  # its own format
    subgroups = _csv(folder / "subgroups.csv")
    assert {"youden_j", "youden_j_ci_low", "log_loss"} <= set(subgroups[0])
    assert "Youden J" in (folder / "subgroups.md").read_text()
    report = (folder / "report.html").read_text()
    tables = TABLES["classification"]
    operating_point = report.split(f"<h3>{tables[1]}</h3>")[1].split("</table>")[0]
    assert "<th>Youden J</th>" in operating_point
    assert html.escape(f"[{low:.3f}, {high:.3f}]") in operating_point
    assert "<th>log loss</th>" in report.split(f"<h3>{tables[3]}</h3>")[1]
    subgroup_section = report.split("<h3>site</h3>")[1]
    assert "<th>Youden J</th>" in subgroup_section.split("<h4>Calibration</h4>")[0]
    assert "<th>log loss</th>" not in subgroup_section  # not a subgroup metric


@pytest.mark.filterwarnings("ignore:(The scored scans|Subgroup):UserWarning")
def test_a_registered_metric_of_more_classes_and_of_each_class(registered, tmp_path):
    run, y, folder = _study(tmp_path, n_classes=3)
    row = next(r for r in _csv(folder / "metrics.csv") if r["method"] == "Mean pooling")
    assert float(row["log_loss"]) == pytest.approx(log_loss(y, run.proba["mean"]))
    assert row["youden_j"] == "nan"  # not defined for three classes as a whole
    per_class = [r for r in _csv(folder / "per_class.csv") if r["method"] == "Mean pooling"]
    for c, r in enumerate(per_class):
        proba = run.proba["mean"]
        called = (proba.argmax(axis=1) == c).astype(int)
        assert float(r["youden_j"]) == pytest.approx(_youden(y == c, None, called))
        assert float(r["youden_j_ci_low"]) <= float(r["youden_j"])
    assert "Youden J" in (folder / "per_class.md").read_text()
    each_class = (folder / "report.html").read_text().split("Each class against the rest")[1]
    assert "<th>Youden J</th>" in each_class


def test_the_scorers_are_the_registry_metrics_of_predicted_labels():
    scorers = {metric.scorer: name for name, metric in METRICS.items() if metric.scorer}
    assert scorers == {"sensitivity": "sensitivity", "specificity": "specificity",
                       "false_negative_rate": "fnr"}
    assert list(SCORERS) == list(scorers)
    assert SCORERS["false_negative_rate"]._sign == -1  # lower is better
