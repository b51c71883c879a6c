import csv
import html
import json
import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.legend import Legend

from sklearn_dinoatten.evaluation import Run, write_report, write_run

from .._helpers import FAST, save_nifti

BINARY = {"dinoatten3d": "DinoAtten3D", "mean": "Mean pooling", "resnet3d": "3D ResNet"}
SECTIONS = ["Metrics", "ROC curves", "Calibration", "Decision curves", "Subgroups",
            "Confusion matrices", "Learned volume embeddings", "Slice attention by class",
            "Attention overlays"]


def make_run_dir(path, classes=("CN", "AD"), methods=BINARY, n=30, embedder=None,
                 volumes=False, seed=0, folds=3, **info_fields):
    """A fake ``cv`` run directory (held-out with ``folds=None``): class-dependent scores
    (every 7th scan confidently wrong), embeddings and attention (uniform for "mean")."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(classes)
    sign = np.where(np.arange(n) % 7 == 3, -2.0, 1.0)[:, None]  # confidently wrong
    n_slices = rng.integers(6, 11, size=n)
    paths = np.array([f"scan{i:02d}.nii.gz" for i in range(n)])
    outputs, metrics, probabilities = {"n_slices": n_slices}, [], {}
    for key in methods:
        logits = rng.normal(size=(n, len(classes))) + 1.5 * sign * np.eye(len(classes))[y]
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        probabilities[key] = proba
        outputs[f"embedding_{key}"] = (rng.normal(size=(n, 16)) + 2.0 * y[:, None]).astype(
            np.float32)
        if key != "resnet3d":
            attention = np.zeros((n, 10))
            for i, k in enumerate(n_slices):
                weights = np.exp(-((np.linspace(0, 1, k) - 0.3 - 0.4 * (y[i] > 0)) ** 2) / 0.05)
                weights = np.ones(k) if key == "mean" else weights
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
        "embedder": embedder, "folds": folds, "command": ["dinoatten", "cv", "data dir"],
        "versions": {"sklearn_dinoatten": "0.1.0", "torch": "2.x"}, "created": "2025-01-01",
        "data": {"root": str(path / "data"), "n_scans": n},
        "positive_label": classes[-1] if len(classes) == 2 else None, **info_fields,
    }
    write_run(path, Run(info, paths, np.array(classes)[y], probabilities,
                        groups=np.array([f"s{i}" for i in range(n)]),
                        folds=None if folds is None else np.arange(n) % folds + 1,
                        outputs=outputs, metrics=metrics))
    return path


def record_figures(monkeypatch):
    """Make the report describe each figure it embeds, in order, into the list returned:
    its axes' titles, labels and texts, its legends' titles and entries, its suptitle."""
    from sklearn_dinoatten.evaluation import (
        _clinical_report,
        _html,
        _regression_report,
        _report_overlays,
    )
    from sklearn_dinoatten.evaluation import _report as report

    figures, embed = [], _html.image

    def record(fig, caption=None):
        legends = [a for ax in fig.axes for a in ax.get_children()
                   if isinstance(a, Legend)] + fig.legends
        figures.append({
            "titles": [ax.get_title() for ax in fig.axes],
            "xlabels": [ax.get_xlabel() for ax in fig.axes],
            "ylabels": [ax.get_ylabel() for ax in fig.axes],
            "texts": [t.get_text() for ax in fig.axes for t in ax.texts],
            "legends": [(legend.get_title().get_text(),  # as written, unwrapped
                         [t.get_text().replace("\n", " ") for t in legend.get_texts()])
                        for legend in legends],
            "suptitle": fig.get_suptitle(),
        })
        return embed(fig, caption)

    for module in (report, _clinical_report, _regression_report, _report_overlays):
        monkeypatch.setattr(module, "image", record)
    return figures


@pytest.fixture(autouse=True, scope="module")
def few_bootstrap_resamples():
    """Reports in seconds: 50 resamples for the ROC bands instead of 500."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr("sklearn_dinoatten.evaluation._figures.N_BOOTSTRAP", 50)
        yield


@pytest.fixture
def drawn(monkeypatch):
    return record_figures(monkeypatch)


@pytest.fixture(scope="module")
def binary_report(tmp_path_factory):
    """The HTML text of the report of a binary 3-method run and its figures (ROC,
    calibration, decision curves, confusion matrices, embeddings, profiles)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        figures = record_figures(monkeypatch)
        run_dir = make_run_dir(tmp_path_factory.mktemp("binary") / "run",
                               embedder={"axis": "coronal"})
        text = open(write_report(run_dir, overlays=0)).read()
    return text, dict(zip(["roc", "calibration", "decision", "confusion", "embedding",
                           "profile"], figures, strict=True))


def test_binary_report_is_self_contained(tmp_path, capsys):
    run_dir = make_run_dir(tmp_path / "run")
    out = write_report(run_dir, overlays=0)
    assert out == str(run_dir / "report.html")
    text = (run_dir / "report.html").read_text(encoding="utf-8")
    assert 'src="http' not in text and "<script" not in text and "<link" not in text
    # ROC, calibration, decision curves, confusion matrices, embeddings, attention profile
    assert text.count('src="data:image/png;base64,') == 6
    for name in [*BINARY.values(), *SECTIONS, "dinoatten cv &#x27;data dir&#x27;", "2025-01-01"]:
        assert name in text
    # AUC with its CI from metrics.csv, the interval on a line of its own
    assert '0.800<br><span class="ci">[0.700, 0.900]</span>' in text
    assert "overlays=0" in text
    assert plt.get_fignums() == []
    assert capsys.readouterr().out == ""  # silent by default


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
    assert text.count("data:image/png;base64,") == 4  # and calibration, decision curves


def test_a_missing_run_directory_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="Run directory '.*nowhere' does not exist"):
        write_report(tmp_path / "nowhere")


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


def test_tri_planar_profiles_name_each_panels_axis(tmp_path, drawn):
    run_dir = make_run_dir(tmp_path / "run", methods={"dinoatten3d": "DinoAtten3D"},
                           embedder={"axis": "all"})
    with np.load(run_dir / "outputs.npz") as npz:
        outputs = dict(npz)
    rows = np.arange(10)[None] < outputs["n_slices"][:, None]
    axial = np.arange(10)[None] < outputs["n_slices"][:, None] // 2  # then coronal
    outputs["slice_axis"] = np.where(rows, np.where(axial, 2, 1), -1)
    np.savez(run_dir / "outputs.npz", **outputs)
    write_report(run_dir, overlays=0)
    profile = drawn[-1]
    assert profile["titles"] == ["DinoAtten3D, axial", "DinoAtten3D, coronal"]
    assert profile["xlabels"] == ["axial slice position\n0 = inferior, 1 = superior",
                                  "coronal slice position\n0 = posterior, 1 = anterior"]


def test_overlays_show_confident_scans_with_orientation(tmp_path, drawn, capsys,
                                                        monkeypatch):
    embedder = {**FAST, "backbone": "vit_small_patch14_dinov2", "axis": "axial"}
    run_dir = make_run_dir(tmp_path / "run", embedder=embedder, volumes=True)
    monkeypatch.chdir(tmp_path)  # scan paths relative to the data root, as in older runs
    text = open(write_report(run_dir, overlays=2, verbose=1)).read()
    captions = re.findall(r"<figcaption>scan\d\d\.nii\.gz: true (\w+), predicted (\w+), "
                          r"p\((\w+)\) = (0\.\d\d|1\.00)</figcaption>", text)
    assert [true == predicted for true, predicted, _, _ in captions] == [True, False]
    assert all(p_of == predicted and float(p) >= 0.8 for _, predicted, p_of, p in captions)
    assert re.search(r"<h3>Confidently right</h3><p>1 of the \d+ scans predicted rightly with "
                     r"p ≥ 0\.8\.</p><figure>", text)
    assert re.search(r"<h3>Confidently wrong</h3><p>1 of the \d+ scans", text)
    assert text.count("data:image/png;base64,") == 8
    overlays = drawn[:2]
    for figure in overlays:
        assert re.fullmatch(r"axial slice \d+ of \d+ \(inferior → superior\)",
                            figure["titles"][0])  # the raw slice, then the overlay
        assert figure["titles"][1] == "saliency"
        assert figure["ylabels"][-1] == "relative saliency, 0 to max of this scan"
        assert figure["texts"][:4] == ["L", "R", "P", "A"]
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "report: Attention overlays" and "report: Metrics" in printed
    assert re.fullmatch(rf"overlay 2/2: {run_dir / 'data'}/scan\d\d\.nii\.gz", printed[2])
    assert plt.get_fignums() == []


def test_overlays_say_when_no_scan_is_confident(tmp_path, monkeypatch):
    from sklearn_dinoatten.evaluation import _report_overlays

    monkeypatch.setattr(_report_overlays, "CONFIDENT", 1.0)  # no scan is that sure
    embedder = {**FAST, "backbone": "vit_small_patch14_dinov2", "axis": "axial"}
    run_dir = make_run_dir(tmp_path / "run", embedder=embedder)
    text = open(write_report(run_dir, overlays=2)).read()
    assert "No scan was predicted rightly with p ≥ 1.0." in text
    assert "No scan was predicted wrongly with p ≥ 1.0." in text


def test_overlays_raise_for_a_missing_scan_or_weights_file(tmp_path):
    embedder = {**FAST, "backbone": "vit_small_patch14_dinov2", "axis": "axial"}
    run_dir = make_run_dir(tmp_path / "run", embedder=embedder)  # no scan files
    with pytest.raises(FileNotFoundError, match=r"file '\S+scan\d\d\.nii\.gz' .*--overlays 0"):
        write_report(run_dir, overlays=2)
    run_dir = make_run_dir(tmp_path / "weights", volumes=True,
                           embedder={**FAST, "weights": str(tmp_path / "missing.pth")})
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        write_report(run_dir, overlays=2)


def test_a_run_on_arrays_has_no_overlays(tmp_path):
    run_dir = make_run_dir(tmp_path / "run", embedder=FAST)
    csv = run_dir / "predictions.csv"
    csv.write_text(re.sub(r"scan(\d\d)\.nii\.gz", r"#\1", csv.read_text()))
    text = open(write_report(run_dir, overlays=2)).read()
    assert "overlays need scan files; this run was made from arrays." in text


def test_header_states_positive_class_protocol_grouping_and_random_weights(tmp_path):
    run_dir = make_run_dir(
        tmp_path / "run", random_weights=True, grouped=True, n_subjects=15,
        protocol_description="5-fold stratified cross-validation of 30 scans, grouped by "
        "subject (15 subjects)", caption="Protocol: 5-fold ... clustered by subject.")
    text = open(write_report(run_dir, overlays=0)).read()
    assert '<h1>Evaluation report</h1><p class="warning">Random backbone weights' in text
    assert "<th>Positive class</th><td>AD</td>" in text
    assert "grouped by subject (15 subjects)" in text
    assert "<th>Grouping</th><td>by subject (15 subjects)" in text
    assert "Protocol: 5-fold ... clustered by subject." in text  # the metrics caption
    assert "resamples of the subjects" in text
    plain = open(write_report(make_run_dir(tmp_path / "plain"), overlays=0)).read()
    assert 'class="warning"' not in plain and "every scan counted as independent" in plain


@pytest.mark.parametrize("protocol, classes, methods, said", [
    ("cross-validation", ("CN", "AD"), BINARY,
     "the folds, the bootstrap intervals and DeLong's test respect subjects"),
    ("cross-validation", ("CN", "MCI", "AD"), BINARY,  # no DeLong test of three classes
     "the folds and the bootstrap intervals respect subjects"),
    ("held-out", ("CN", "AD"), {"mean": "Mean pooling"},  # one method: nothing to test
     "the split and the bootstrap intervals respect subjects"),
    ("external", ("CN", "AD"), BINARY,  # no folds
     "the bootstrap intervals and DeLong's test respect subjects"),
])
def test_the_header_says_what_the_grouping_did_for_the_protocol(tmp_path, protocol, classes,
                                                                 methods, said):
    run_dir = make_run_dir(tmp_path / "run", classes=classes, methods=methods, grouped=True,
                           n_subjects=30, protocol=protocol,
                           reference=next(iter(methods)),
                           folds=3 if protocol == "cross-validation" else None)
    text = html.unescape(open(write_report(run_dir, overlays=0)).read())
    assert f"<th>Grouping</th><td>by subject (30 subjects): {said}</td>" in text


def test_a_binary_run_without_its_positive_class_is_refused(tmp_path):
    run_dir = make_run_dir(tmp_path / "run", positive_label=None)
    with pytest.raises(ValueError, match="needs its positive_label"):
        write_report(run_dir)


def test_metrics_table_has_sensitivity_and_specificity(binary_report):
    text, _ = binary_report
    assert "<th>sens.</th><th>spec.</th>" in text
    assert '<td class="n">0.800</td><td class="n">0.700</td>' in text  # metrics.csv's values


def test_roc_draws_a_panel_per_method_against_the_reference(binary_report):
    text, figures = binary_report
    roc = figures["roc"]
    assert roc["titles"] == ["DinoAtten3D (reference)", "Mean pooling", "3D ResNet"]
    assert roc["suptitle"] == "Positive class: AD" and "positive class AD" in text
    auc = "AUC 0.800 [0.700, 0.900]"  # from metrics.csv
    reference = [f"DinoAtten3D (reference): {auc}"]
    assert [entries for _, entries in roc["legends"]] == [
        [auc, "95 % bootstrap band", "chance"],
        *[reference + [auc, "95 % bootstrap band", "chance"]] * 2]


def test_confusion_cells_give_count_and_row_percentage(binary_report, tmp_path):
    text, figures = binary_report
    assert "percentage of the true class's row" in html.unescape(text)
    assert ("predicted class (AD where its probability is at least the split's threshold"
            in html.unescape(text))  # as the metrics table calls a scan, not the most probable
    cells = figures["confusion"]["texts"]
    assert len(cells) == 3 * 4
    for row in np.reshape([c.split("\n") for c in cells], (3, 2, 2, 2)).tolist()[0]:
        counts = [int(count) for count, _ in row]
        shares = [share for _, share in row]
        assert shares == [f"({100 * c / sum(counts):.0f} %)" for c in counts]


def test_embedding_marks_the_folds(binary_report, tmp_path, drawn):
    text, figures = binary_report
    assert "may group by fold, which marker shapes show" in text
    assert figures["embedding"]["legends"] == [("true class", ["CN", "AD"]),
                                               ("fold", ["fold 1", "fold 2", "fold 3"])]
    held_out = make_run_dir(tmp_path / "held_out", methods={"mean": "Mean pooling"},
                            folds=None)
    text = open(write_report(held_out, overlays=0)).read()
    assert "One fitted model embedded every scored scan (no cross-validation folds)." in text
    # after the ROC, calibration, decision and confusion figures
    assert drawn[4]["legends"] == [("true class", ["CN", "AD"])]


def test_profiles_leave_out_uniform_attention_and_name_the_axis(binary_report):
    text, figures = binary_report
    profile = figures["profile"]
    assert profile["titles"] == ["DinoAtten3D"]  # not Mean pooling: uniform
    assert "Left out: Mean pooling, whose attention is the same on every slice" in text
    assert profile["xlabels"] == ["coronal slice position\n0 = posterior, 1 = anterior"]


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


def test_overlays_show_distinct_subjects_and_say_what_random_weights_show(tmp_path):
    """Before: both overlays could be one subject's two sessions, and a flat tint of
    random weights looked like a finding."""
    embedder = {**FAST, "backbone": "vit_small_patch14_dinov2", "axis": "axial"}
    run_dir = make_run_dir(tmp_path / "run", embedder=embedder, volumes=True, grouped=True,
                           random_weights=True)
    path = run_dir / "predictions.csv"
    rows = list(csv.DictReader(open(path)))
    for i, row in enumerate(rows):
        row["subject"] = f"p{i // 2}"  # two sessions a subject
        if i < 2:  # subject p0's two sessions: the most confident right predictions
            for c in ("CN", "AD"):
                row[f"dinoatten3d_p_{c}"] = "0.999" if c == row["label"] else "0.001"
            row["dinoatten3d_pred"] = row["label"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = open(write_report(run_dir, overlays=4)).read()
    right = text.split("<h3>Confidently right</h3>")[1].split("<h3>")[0]
    shown = re.findall(r"<figcaption>(scan\d\d)\.nii\.gz", right)
    assert len(shown) == 2 and not {"scan00", "scan01"} <= set(shown)
    subjects = {row["path"]: row["subject"] for row in rows}
    assert len({subjects[f"{s}.nii.gz"] for s in shown}) == 2
    assert "(the most confident of each subject)" in right
    assert text.count("Random backbone weights: the in-plane attention, a flat tint here, "
                      "carries no information") == len(re.findall("<figcaption>scan", text))
