import json
import re

import matplotlib.pyplot as plt
import numpy as np
import pytest

from sklearn_dinoatten.report import write_report
from sklearn_dinoatten.runs import Run, write_run

from ._helpers import FAST, save_nifti

BINARY = {"dinoatten3d": "DinoAtten3D", "mean": "Mean pooling", "resnet3d": "3D ResNet"}
SECTIONS = ["Metrics", "ROC curves", "Confusion matrices", "Learned volume embeddings",
            "Slice attention by class", "Attention overlays"]


def make_run_dir(path, classes=("CN", "AD"), methods=BINARY, n=30, embedder=None,
                 volumes=False, seed=0, **info_fields):
    """A fake ``cv`` run directory: class-dependent scores, embeddings and attention."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(classes)
    n_slices = rng.integers(6, 11, size=n)
    paths = np.array([f"scan{i:02d}.nii.gz" for i in range(n)])
    outputs, metrics, probabilities = {"n_slices": n_slices}, [], {}
    for key in methods:
        logits = rng.normal(size=(n, len(classes))) + 1.5 * np.eye(len(classes))[y]
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        probabilities[key] = proba
        outputs[f"embedding_{key}"] = (rng.normal(size=(n, 16)) + 2.0 * y[:, None]).astype(
            np.float32)
        if key != "resnet3d":
            attention = np.zeros((n, 10))
            for i, k in enumerate(n_slices):
                weights = np.exp(-((np.linspace(0, 1, k) - 0.3 - 0.4 * (y[i] > 0)) ** 2) / 0.05)
                attention[i, :k] = weights / weights.sum()
            outputs[f"attention_{key}"] = attention
        accuracy = np.mean(proba.argmax(axis=1) == y)
        metrics.append({"method": key, "accuracy": accuracy, "balanced_accuracy": accuracy,
                        "auc": 0.8, "auc_ci_low": 0.7, "auc_ci_high": 0.9, "sensitivity": 0.8,
                        "specificity": 0.7, "f1": 0.75,
                        "fnr": 0.2, "fit_seconds_per_fold": 1.25,
                        "delong_p": "" if key == "dinoatten3d" else 0.04})
    if volumes:
        (path / "data").mkdir(parents=True)
        for i, k in enumerate(n_slices):
            save_nifti(path / "data" / paths[i], rng.normal(size=(20, 24, k)).astype(np.float32))
    info = {
        "classes": list(classes), "reference": "dinoatten3d",
        "methods": {k: {"name": name, "params": {"max_epochs": 2}} for k, name in methods.items()},
        "embedder": embedder, "folds": 3, "command": ["dinoatten", "cv", "data dir"],
        "versions": {"sklearn_dinoatten": "0.1.0", "torch": "2.x"}, "created": "2025-01-01",
        "data": {"root": str(path / "data"), "n_scans": n},
        "positive_label": classes[-1] if len(classes) == 2 else None, **info_fields,
    }
    write_run(path, Run(info, paths, np.array(classes)[y], probabilities,
                        groups=np.array([f"s{i}" for i in range(n)]), folds=np.arange(n) % 3,
                        outputs=outputs, metrics=metrics))
    return path


def test_binary_report_is_self_contained(tmp_path):
    run_dir = make_run_dir(tmp_path / "run")
    out = write_report(run_dir, overlays=0)
    assert out == str(run_dir / "report.html")
    text = (run_dir / "report.html").read_text(encoding="utf-8")
    assert 'src="http' not in text and "<script" not in text and "<link" not in text
    # ROC, confusion matrices, embeddings, attention profile
    assert text.count('src="data:image/png;base64,') == 4
    for name in [*BINARY.values(), *SECTIONS, "dinoatten cv &#x27;data dir&#x27;", "2025-01-01"]:
        assert name in text
    assert "0.800 [0.700, 0.900]" in text  # AUC with its CI from metrics.csv
    assert "overlays=0" in text
    assert plt.get_fignums() == []


def test_report_is_deterministic(tmp_path):
    run_dir = make_run_dir(tmp_path / "run", methods={"dinoatten3d": "DinoAtten3D"})
    first = write_report(run_dir, out=tmp_path / "a.html", overlays=0)
    second = write_report(run_dir, out=tmp_path / "b.html", overlays=0)
    assert open(first).read() == open(second).read()


def test_multiclass_report_skips_roc(tmp_path):
    run_dir = make_run_dir(tmp_path / "run", classes=(0, 1, 2))
    text = open(write_report(run_dir, out=tmp_path / "r.html", overlays=0)).read()
    assert "Skipped: ROC curves are drawn for two classes; this run has 3." in text
    assert text.count("data:image/png;base64,") == 3


def test_missing_data_is_skipped_with_a_note(tmp_path):
    run_dir = make_run_dir(tmp_path / "run", methods={"resnet3d": "3D ResNet"})
    (run_dir / "outputs.npz").unlink()
    (run_dir / "metrics.csv").unlink()
    text = open(write_report(run_dir)).read()
    assert "Skipped: the run directory has no metrics.csv." in text
    assert "Skipped: outputs.npz has no volume embeddings." in text
    assert text.count("Skipped: no method of this run has slice attention.") == 2
    assert text.count("data:image/png;base64,") == 2


@pytest.mark.parametrize("name", ["run.json", "predictions.csv"])
def test_missing_file_raises(tmp_path, name):
    run_dir = make_run_dir(tmp_path / "run")
    (run_dir / name).unlink()
    with pytest.raises(FileNotFoundError, match=name):
        write_report(run_dir)


@pytest.mark.parametrize("name, content", [
    ("run.json", "{not json"),
    ("run.json", json.dumps({"classes": ["a", "b"]})),
    ("predictions.csv", "path,label\nscan.nii.gz,CN\n"),
    ("predictions.csv", ""),
])
def test_malformed_file_raises(tmp_path, name, content):
    run_dir = make_run_dir(tmp_path / "run")
    (run_dir / name).write_text(content)
    with pytest.raises(ValueError, match=name):
        write_report(run_dir)


def test_overlays_with_a_random_backbone(tmp_path):
    embedder = {**FAST, "backbone": "vit_small_patch14_dinov2", "axis": "axial"}
    run_dir = make_run_dir(tmp_path / "run", embedder=embedder, volumes=True)
    text = open(write_report(run_dir, overlays=4)).read()
    captions = re.findall(r"<figcaption>scan\d\d\.nii\.gz: true (\w+), predicted (\w+), "
                          r"p\(AD\) = [01]\.\d\d</figcaption>", text)
    assert "<p>Attention of DinoAtten3D.</p>" in text
    assert len(captions) == 4
    assert sum(true != predicted for true, predicted in captions) == 2
    assert text.count("data:image/png;base64,") == 8
    assert plt.get_fignums() == []


def test_overlays_explain_why_they_are_missing(tmp_path):
    embedder = {**FAST, "weights": str(tmp_path / "missing.pth")}
    run_dir = make_run_dir(tmp_path / "run", embedder=embedder, volumes=True)
    text = open(write_report(run_dir, overlays=2)).read()
    assert "Attention overlays are missing: FileNotFoundError" in text
    assert "missing.pth" in text


def test_header_states_positive_class_protocol_grouping_and_random_weights(tmp_path):
    run_dir = make_run_dir(
        tmp_path / "run", random_weights=True, grouped=True, n_subjects=15,
        protocol_description="5-fold stratified cross-validation of 30 scans, grouped by "
        "subject (15 subjects)", caption="Protocol: 5-fold ... clustered by subject.")
    text = open(write_report(run_dir, overlays=0)).read()
    assert '<p class="warning">Random backbone weights' in text
    assert "<th>Positive class</th><td>AD</td>" in text
    assert "grouped by subject (15 subjects)" in text
    assert "<th>Grouping</th><td>by subject (15 subjects)" in text
    assert "Protocol: 5-fold ... clustered by subject." in text  # the metrics caption
    assert "resamples of the subjects" in text
    plain = open(write_report(make_run_dir(tmp_path / "plain"), overlays=0)).read()
    assert 'class="warning"' not in plain and "every scan counted as independent" in plain


def test_a_binary_run_without_its_positive_class_is_refused(tmp_path):
    run_dir = make_run_dir(tmp_path / "run", positive_label=None)
    with pytest.raises(ValueError, match="needs its positive_label"):
        write_report(run_dir)


def test_roc_legend_reads_the_metrics_table(tmp_path, monkeypatch):
    from sklearn_dinoatten import report

    legends = []

    def keep_legend(fig, caption=None):
        for ax in fig.axes:
            if ax.get_legend() is not None:
                legends.extend(t.get_text() for t in ax.get_legend().get_texts())
        return ""

    monkeypatch.setattr(report, "_img", keep_legend)
    write_report(make_run_dir(tmp_path / "run"), overlays=0)
    assert legends[:3] == [f"{name}: AUC 0.800 [0.700, 0.900]" for name in BINARY.values()]


def test_class_names_with_dollar_signs_are_drawn_as_written(tmp_path, monkeypatch):
    """``$...$`` would be parsed as TeX: an error for an odd number of ``$``, or a class
    shown under another name."""
    import matplotlib.text

    drawn, set_text = [], matplotlib.text.Text.set_text

    def record(self, text):
        drawn.append((str(text), self))
        return set_text(self, text)

    monkeypatch.setattr(matplotlib.text.Text, "set_text", record)
    run_dir = make_run_dir(tmp_path / "run", classes=("$x_1$", "cost $5"),
                           methods={"dinoatten3d": "DinoAtten3D"})
    text = open(write_report(run_dir, overlays=0)).read()
    assert "$x_1$" in text and "cost $5" in text
    dollars = {t: artist.get_parse_math() for t, artist in drawn if "$" in t}
    assert "cost $5" in dollars and "$x_1$" in dollars
    assert not any(dollars.values())
