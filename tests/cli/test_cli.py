import csv
import json
import os
import re
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from sklearn_dinoatten import clear_memory_cache
from sklearn_dinoatten.cli import main
from sklearn_dinoatten.datasets import data_dir, make_volumes, write_demo_data

from .._helpers import hide_module, make_read_only, save_nifti

FAST = ["--weights", "random", "--image-size", "28", "--epochs", "3", "--folds", "2"]
EMBED_FAST = ["--weights", "random", "--image-size", "28"]


def make_study(root, n=12, n_classes=2, subjects=False, shape=(32, 32, 6), names=None,
               split=None):
    """A folder of NIfTI scans with labels.csv; two scans per subject when ``subjects``
    (both of the subject's class), labels renamed by ``names``, a ``split`` column."""
    X, y = make_volumes(n_samples=n, shape=shape, n_classes=n_classes, random_state=0)
    if subjects:
        y = np.repeat(y[::2], 2)[:n]
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "labels.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"] + (["subject"] if subjects else [])
                        + (["split"] if split is not None else []))
        for i, (volume, label) in enumerate(zip(X, y, strict=True)):
            save_nifti(os.path.join(root, f"s{i:02d}.nii.gz"), volume)
            writer.writerow([f"s{i:02d}.nii.gz", label if names is None else names[label]]
                            + ([f"p{i // 2}"] if subjects else [])
                            + ([split[i]] if split is not None else []))
    return str(root)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "sklearn_dinoatten", *args],
                          capture_output=True, text=True, timeout=600)


def test_help_lists_every_command(capsys):
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("embed", "cv", "fit", "card", "predict", "report", "demo"):
        assert command in result.stdout
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        assert exit_.value.code == 0
        assert "usage: dinoatten " + command in capsys.readouterr().out


def test_embed_is_resumable(tmp_path, capsys):
    data = make_study(tmp_path / "data", n=6)
    cache = str(tmp_path / "cache")
    rows = read_csv(os.path.join(data, "labels.csv"))
    with open(tmp_path / "half.csv", "w") as f:  # an interrupted run: half the scans done
        f.write("path,label\n" + "".join(f"{r['path']},{r['label']}\n" for r in rows[:3]))
    assert main(["embed", data, "--labels", str(tmp_path / "half.csv"), "--cache-dir", cache,
                 *EMBED_FAST]) == 0
    assert "3 scans embedded now, 0 found in the cache" in capsys.readouterr().out
    assert main(["embed", data, "--cache-dir", cache, *EMBED_FAST]) == 0
    assert "3 scans embedded now, 3 found in the cache" in capsys.readouterr().out
    os.remove(os.path.join(data, "labels.csv"))  # without labels: every NIfTI file
    assert main(["embed", data, "--cache-dir", cache, *EMBED_FAST]) == 0
    assert "6 scans, 36 slices of 384 features: 0 scans embedded now" in capsys.readouterr().out
    assert main(["embed", data, "--cache-dir", cache, *EMBED_FAST, "--backbone",
                 "vit_small_patch14_dinov2,vit_small_patch14_reg4_dinov2"]) == 0
    lines = capsys.readouterr().out.splitlines()  # a line per backbone, each its own entries
    assert lines[0].startswith("vit_small_patch14_dinov2: 6 scans, 36 slices of 384 features: "
                               "0 scans embedded now, 6 found in the cache")
    assert lines[1].startswith("vit_small_patch14_reg4_dinov2: 6 scans, 36 slices of 384 "
                               "features: 6 scans embedded now, 0 found in the cache")


def test_embed_counts_scans_not_cache_entries(tmp_path, capsys, fresh_cache):
    """A tri-planar bag is three cache entries, and identical scans share one (before:
    "12 scans embedded now, -8 found in the cache" for 4 scans)."""
    data = make_study(tmp_path / "data", n=4, shape=(16, 16, 16))
    shutil.copy(os.path.join(data, "s00.nii.gz"), os.path.join(data, "s01.nii.gz"))
    cache = str(tmp_path / "cache")
    for found in (0, 4):
        assert main(["embed", data, "--cache-dir", cache, "--axis", "all", *EMBED_FAST]) == 0
        assert (f"4 scans, 192 slices of 387 features: {4 - found} scans embedded now, "
                f"{found} found in the cache") in capsys.readouterr().out


def test_a_read_only_cache_is_read_and_left_as_it_is(tmp_path, capsys, monkeypatch,
                                                     fresh_cache):
    """A shared cache on a cluster is often read-only (before: refused, "cannot hold
    files", although it held every embedding)."""
    data = make_study(tmp_path / "data", n=4)
    cache = tmp_path / "cache"
    assert main(["embed", data, "--cache-dir", str(cache), *EMBED_FAST]) == 0
    kept = sorted(cache.rglob("*"))
    clear_memory_cache()
    make_read_only(monkeypatch, cache)
    assert main(["embed", data, "--cache-dir", str(cache), *EMBED_FAST]) == 0
    out, err = capsys.readouterr()
    assert "0 scans embedded now, 4 found in the cache" in out
    assert err.count("cannot be written: embeddings are read from it") == 1
    clear_memory_cache()  # a cache that lacks some: computed, kept in memory only
    assert main(["embed", data, "--cache-dir", str(cache), "--n-slices", "2", "-q",
                 *EMBED_FAST]) == 0
    assert "4 scans embedded now, 0 found in the cache" in capsys.readouterr().out
    assert sorted(cache.rglob("*")) == kept


def test_embed_in_parallel_and_on_each_engine(tmp_path, capsys):
    data = make_study(tmp_path / "data", n=4)
    cache = str(tmp_path / "cache")
    assert main(["embed", data, "--cache-dir", cache, "--n-jobs", "2", *EMBED_FAST]) == 0
    assert "4 scans embedded now, 0 found in the cache" in capsys.readouterr().out
    assert main(["embed", data, "--cache-dir", cache, "--engine", "onnxruntime", "--dtype",
                 "int8", "--n-readers", "2", *EMBED_FAST]) == 0
    assert "4 scans embedded now, 0 found in the cache" in capsys.readouterr().out  # own keys
    assert len(os.listdir(os.path.join(cache, "onnx"))) == 2  # the graph and its sha256
    assert main(["embed", data, "--cache-dir", cache, "--engine", "openvino", "-q",
                 *EMBED_FAST]) == 0
    assert "4 scans embedded now, 0 found in the cache" in capsys.readouterr().out
    assert len(os.listdir(os.path.join(cache, "onnx"))) == 4  # OpenVINO's float32 graph


@pytest.mark.parametrize("engine, extra", [("onnxruntime", "onnx"), ("openvino", "openvino")])
def test_an_engine_without_its_extra_is_one_line(tmp_path, monkeypatch, capsys, engine,
                                                  extra):
    """Before: a traceback of 25 lines ending in the ImportError."""
    data = make_study(tmp_path / "data", n=2)
    hide_module(monkeypatch, engine)
    assert main(["embed", data, "--engine", engine, "--cache-dir", str(tmp_path / "cache"),
                 "-q", *EMBED_FAST]) == 1
    assert capsys.readouterr().err == (
        f"dinoatten embed: error: engine={engine!r} needs the {extra} extra: pip install "
        f"'sklearn-dinoatten[{extra}]'\n")


def test_cv_report_fit_predict(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # restored after the test, which moves elsewhere
    data = make_study(tmp_path / "data")
    out = str(tmp_path / "cv")
    result = run_cli("cv", data, "--method", "dinoatten3d,mst,resnet3d", "--out", out,
                     "--volume-size", "32", "--resnet-depth", "10", "--resnet-width", "0.25",
                     *FAST)
    assert result.returncode == 0, result.stderr
    assert "| DinoAtten3D |" in result.stdout and "| 3D ResNet |" in result.stdout
    # Progress for every long step, and each warning once, without Python source lines.
    for line in ("Embedding 12 scans:", "Resampling 12 scans to (32, 32, 32) voxels",
                 "DinoAtten3D (1/3):", "MST aggregator (2/3):", "3D ResNet (3/3):",
                 "fold 1/2: fitted in", "fold 2/2: fitted in"):
        assert line in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    assert len([w for w in warnings if "--weights 'random'" in w]) == 1  # named as typed
    assert all(w.startswith("dinoatten cv: warning: ") for w in warnings), warnings
    assert ".py:" not in result.stderr and "warnings.warn" not in result.stderr

    predictions = read_csv(os.path.join(out, "predictions.csv"))
    assert len(predictions) == 12 and {r["fold"] for r in predictions} == {"1", "2"}
    for row in predictions:
        p = float(row["dinoatten3d_p_0"]) + float(row["dinoatten3d_p_1"])
        assert p == pytest.approx(1, abs=1e-5) and row["mst_pred"] in ("0", "1")
    metrics = read_csv(os.path.join(out, "metrics.csv"))
    assert [r["method"] for r in metrics] == ["DinoAtten3D", "MST aggregator", "3D ResNet"]
    assert all(0 <= float(r["auc_ci_low"]) <= float(r["auc"]) <= float(r["auc_ci_high"]) <= 1
               for r in metrics)
    run = json.load(open(os.path.join(out, "run.json")))
    assert run["command"][:3] == ["dinoatten", "cv", data]
    assert run["embedder"]["weights"] == "random" and run["embedder"]["image_size"] == 28
    assert run["methods"]["mst"]["params"]["max_epochs"] == 3
    assert {"torch", "timm", "scikit-learn", "skorch", "sklearn_dinoatten"} <= set(run["versions"])
    with np.load(os.path.join(out, "outputs.npz")) as outputs:
        assert outputs["attention_dinoatten3d"].shape == (12, 6)
        assert outputs["embedding_resnet3d"].shape[0] == 12
        assert "attention_resnet3d" not in outputs

    assert main(["report", out, "--overlays", "2"]) == 0
    with open(os.path.join(out, "report.html")) as f:
        assert f.read().count("data:image/png;base64,") >= 4

    model = str(tmp_path / "model.safetensors")
    assert main(["fit", data, "--out", model, "--n-slices", "3", *FAST[:-2]]) == 0
    scans = [os.path.join(data, r["path"]) for r in read_csv(os.path.join(data, "labels.csv"))]
    assert main(["predict", model, *scans[:3], "--out", str(tmp_path / "p.csv"),
                 "--top-slices", "2"]) == 0
    pickled = str(tmp_path / "model.joblib")  # the same model as a pickle, if trusted
    assert main(["fit", data, "--out", pickled, "--n-slices", "3", *FAST[:-2]]) == 0
    assert main(["predict", pickled, *scans[:3], "--out", str(tmp_path / "q.csv"),
                 "--top-slices", "2", "--allow-pickle"]) == 0
    assert read_csv(tmp_path / "q.csv") == read_csv(tmp_path / "p.csv")
    assert main(["predict", model, *scans[:3], "--out", str(tmp_path / "p.csv")]) == 1
    assert "p.csv' exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert main(["predict", model, *scans[:3], "--out", str(tmp_path / "p.csv"),
                 "--top-slices", "2", "--overwrite"]) == 0
    size = os.path.getsize(model)
    assert main(["predict", model, *scans[:3], "--out", model, "--overwrite"]) == 1
    assert "is one of the command's inputs" in capsys.readouterr().err
    assert os.path.getsize(model) == size  # the model is not overwritten by its predictions
    p1 = sorted(float(r["p_1"]) for r in read_csv(tmp_path / "p.csv"))
    cut = (p1[0] + p1[1]) / 2  # one scan below, two above
    assert main(["predict", model, *scans[:3], "--out", str(tmp_path / "t.csv"),
                 "--threshold", str(cut)]) == 0
    assert (f"1 called where its probability is at least 0.5. Here 1 called where its "
            f"probability is at least {cut:g} instead (--threshold)") in capsys.readouterr().out
    assert sorted(r["prediction"] for r in read_csv(tmp_path / "t.csv")) == ["0", "1", "1"]
    for argv, said in [(["--threshold", "youden"], "is chosen on training scans"),
                       (["--subgroups", "site"], "--subgroups needs labels")]:
        assert main(["predict", model, *scans[:3], "--out", str(tmp_path / "u.csv"),
                     *argv]) == 1
        assert said in capsys.readouterr().err
    rows = read_csv(tmp_path / "p.csv")
    assert [r["path"] for r in rows] == scans[:3]
    assert all(len(r["top_slices"].split()) == 2 and r["prediction"] in ("0", "1")
               for r in rows)
    # 3 evenly spaced of the 6 axial slices are kept: 0, 2 and 5, named as in the volume.
    assert {int(i) for r in rows for i in r["top_slices"].split()} <= {0, 2, 5}

    # predict takes a folder (every NIfTI file in it, without labels.csv) ...
    unlabelled = tmp_path / "new"
    unlabelled.mkdir()
    for scan in scans[:2]:
        shutil.copy(scan, unlabelled)
    assert main(["predict", model, str(unlabelled), "--out", str(tmp_path / "n.csv"),
                 "--batch-size", "2"]) == 0
    assert [r["path"] for r in read_csv(tmp_path / "n.csv")] == [
        str(unlabelled / os.path.basename(s)) for s in scans[:2]]
    # ... and, given labels, evaluates the model on them as cv does (a run directory); its
    # own training scans are no external test, and it says so.
    external = str(tmp_path / "external")
    result = run_cli("predict", model, os.path.join(data, "labels.csv"), "--out", external)
    assert result.returncode == 0, result.stderr
    assert "| DinoAtten3D |" in result.stdout
    assert ("NOT an external test: 12 of the 12 scans predicted by model.safetensors were "
            "used to train it") in result.stdout
    assert ("dinoatten predict: warning: 12 of the 12 scans were used to train this model: "
            "this is not an external test") in result.stderr
    run = json.load(open(os.path.join(external, "run.json")))
    assert run["protocol"] == "includes training scans" and run["training_scans_scored"] == 12
    assert run["model"] == os.path.abspath(model)
    metrics = read_csv(os.path.join(external, "metrics.csv"))
    assert [r["method"] for r in metrics] == ["DinoAtten3D"]
    assert 0 <= float(metrics[0]["auc_ci_low"]) <= float(metrics[0]["auc_ci_high"]) <= 1
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)  # the run's scan paths resolve from any directory
    assert main(["report", external, "--overlays", "1", "-q"]) == 0
    assert "data:image/png" in open(os.path.join(external, "report.html")).read()


def test_grouped_cv_with_a_named_positive_class(tmp_path, capsys):
    data = make_study(tmp_path / "data", n=16, subjects=True, names=["normal", "abnormal"])
    out = str(tmp_path / "cv")
    assert main(["cv", data, "--out", out, *FAST]) == 1  # which class is positive?
    assert ("The classes are ['abnormal', 'normal']: say which is the positive class"
            in capsys.readouterr().err)
    assert main(["cv", data, "--out", out, "--pos-label", "abnormal", *FAST]) == 0
    printed = capsys.readouterr().out
    assert "positive class: 'abnormal'" in printed
    assert "grouped by subject (8 subjects)" in printed
    predictions = read_csv(os.path.join(out, "predictions.csv"))
    folds = {}
    for row in predictions:
        folds.setdefault(row["subject"], set()).add(row["fold"])
    assert len(folds) == 8 and all(len(f) == 1 for f in folds.values())
    # Readable alone: random weights and paths that resolve from any working directory.
    assert {r["backbone_weights"] for r in predictions} == {"random"}
    assert all(os.path.isabs(r["path"]) and os.path.isfile(r["path"]) for r in predictions)
    run = json.load(open(os.path.join(out, "run.json")))
    assert run["grouped"] is True and run["n_subjects"] == 8
    assert run["positive_label"] == "abnormal" and run["random_weights"] is True
    markdown = open(os.path.join(out, "metrics.md")).read()
    for text in ("Positive class: 'abnormal'.", "resamples of subjects (a cluster bootstrap)",
                 "clustered by subject (Obuchowski 1997)", "RANDOM backbone weights"):
        assert text in markdown and text in run["caption"]
    # One source at full precision: the metrics recomputed from predictions.csv agree.
    truth = np.array([r["label"] == "abnormal" for r in predictions])
    score = np.array([float(r["dinoatten3d_p_abnormal"]) for r in predictions])
    metrics = read_csv(os.path.join(out, "metrics.csv"))
    assert float(metrics[0]["auc"]) == pytest.approx(roc_auc_score(truth, score), abs=1e-12)
    predicted = np.array([r["dinoatten3d_pred"] == "abnormal" for r in predictions])
    assert float(metrics[0]["fnr"]) == np.mean(~predicted[truth])
    assert max(len(r["dinoatten3d_p_normal"]) for r in predictions) > 10  # not rounded


def test_held_out_split_from_the_labels(tmp_path, capsys):
    split = ["train"] * 10 + ["val"] * 2 + ["test"] * 6
    data = make_study(tmp_path / "data", n=18, split=split)
    out = str(tmp_path / "run")
    assert main(["cv", data, "--out", out, "--folds", "3", *FAST[:-2]]) == 1
    assert "leave out --folds" in capsys.readouterr().err
    assert main(["cv", data, "--out", out, "--method", "dinoatten3d,mean", *FAST[:-2]]) == 0
    assert ("held-out test set: trained on 10 scans, early stopping on 2 validation scans, "
            "scored once on 6 test scans" in capsys.readouterr().out)
    predictions = read_csv(os.path.join(out, "predictions.csv"))
    assert [os.path.basename(r["path"]) for r in predictions] == [
        f"s{i:02d}.nii.gz" for i in range(12, 18)]
    assert "fold" not in predictions[0]
    run = json.load(open(os.path.join(out, "run.json")))
    assert run["protocol"] == "held-out" and run["n_scored"] == 6 and run["folds"] is None
    assert run["methods"]["dinoatten3d"]["params"]["early_stopping"] is False  # set per fit
    with np.load(os.path.join(out, "outputs.npz")) as outputs:
        assert outputs["embedding_mean"].shape[0] == outputs["n_slices"].shape[0] == 6
    assert main(["report", out, "--overlays", "0"]) == 0
    text = open(os.path.join(out, "report.html")).read()
    assert "held-out test set" in text and "Positive class</th><td>1<" in text
    model = str(tmp_path / "model.safetensors")
    assert main(["fit", data, "--out", model, *FAST[:-2]]) == 0
    assert ("trained on 10 'train' scans, early stopping on 2 'val' scans (6 'test' scans "
            "left out)" in capsys.readouterr().out)


def test_multiclass_cv(tmp_path, capsys):
    data = make_study(tmp_path / "data", n=12, n_classes=3)
    assert main(["cv", data, "--out", str(tmp_path / "cv"), "--method", "mean", *FAST]) == 0
    metrics = read_csv(tmp_path / "cv" / "metrics.csv")
    assert metrics[0]["fnr"] == "nan" and 0 <= float(metrics[0]["auc"]) <= 1
    per_class = read_csv(tmp_path / "cv" / "per_class.csv")  # each class against the rest
    assert [(r["class"], r["method"]) for r in per_class] == [
        (c, "Mean pooling") for c in ("0", "1", "2")]
    assert all(0 <= float(r["sensitivity"]) <= 1 for r in per_class)
    assert "| class | method | AUC |" in (tmp_path / "cv" / "per_class.md").read_text()
    assert "Not defined for more than two classes as a whole" in (
        tmp_path / "cv" / "metrics.md").read_text()
    assert main(["report", str(tmp_path / "cv"), "--overlays", "0"]) == 0
    assert "<h3>Each class against the rest</h3>" in (tmp_path / "cv" / "report.html").read_text()


def corrupt_scan(data):
    with open(os.path.join(data, "s03.nii.gz"), "wb") as f:
        f.write(b"\x1f\x8b truncated")


def four_d_scan(data):
    save_nifti(os.path.join(data, "s03.nii.gz"), np.ones((8, 8, 8, 2)))


def nan_scan(data):
    volume = np.random.default_rng(0).normal(size=(32, 32, 6))
    volume[0, 0, 0] = np.nan
    save_nifti(os.path.join(data, "s03.nii.gz"), volume)


def constant_scan(data):
    save_nifti(os.path.join(data, "s03.nii.gz"), np.zeros((32, 32, 6)))


def remove_scan(data):
    os.remove(os.path.join(data, "s03.nii.gz"))


def model_as_folder(data):
    os.mkdir(os.path.join(os.path.dirname(data), "m.safetensors"))


def fake_pickle(data):
    with open(os.path.join(data, "labels.csv.joblib"), "wb") as f:
        f.write(b"never unpickled")


def drop_column(data):
    rows = read_csv(os.path.join(data, "labels.csv"))
    with open(os.path.join(data, "labels.csv"), "w") as f:
        f.write("path\n" + "".join(r["path"] + "\n" for r in rows))


def one_class(data):
    rows = read_csv(os.path.join(data, "labels.csv"))
    with open(os.path.join(data, "labels.csv"), "w") as f:
        f.write("path,label\n" + "".join(r["path"] + ",1\n" for r in rows))


def ages_and_one_mci(data):
    """An age column (continuous) and a label column with a class of one scan."""
    rows = read_csv(os.path.join(data, "labels.csv"))
    with open(os.path.join(data, "labels.csv"), "w") as f:
        f.write("path,label,age\n" + "".join(
            f"{r['path']},{'MCI' if i == 0 else r['label']},{55.1 + 2.3 * i:.1f}\n"
            for i, r in enumerate(rows)))


@pytest.mark.parametrize("argv, damage, message", [
    (["cv", "{data}", "--out", "{tmp}/o", "--label-column", "age", "--task",
      "classification"], ages_and_one_mci,
     r"The labels look like continuous values \(8 distinct numbers among 8 scans, from "
     r"55.1 to 71.2\), not classes: that is a regression target"),
    (["fit", "{data}", "--out", "{tmp}/m.safetensors", "--label-column", "age", "--task",
      "classification"], ages_and_one_mci, "The labels look like continuous values"),
    (["cv", "{data}", "--out", "{tmp}/o", "--label-column", "age", "--threshold", "youden"],
     ages_and_one_mci, "--threshold is for classification; the task here is regression"),
    (["cv", "{data}", "--out", "{tmp}/o", "--bias-correction", "linear"], None,
     "--bias-correction is for regression; the task here is classification"),
    (["cv", "{data}", "--out", "{tmp}/o", "--label-column", "age", "--method", "scmil"],
     ages_and_one_mci, "unknown method 'scmil' for regression; choose from dinoatten3d, "
     "mean, gated, mst, resnet3d"),

    (["cv", "{data}", "--out", "{tmp}/o", "--folds", "2"], ages_and_one_mci,
     "Class 'MCI' has 1 scan, fewer than the 2 folds; no number of folds can both train on "
     "it and test it: gather more scans of it, or merge it into another class, or drop "
     "its scans from the labels. Scans per class: "),
    (["cv", "{tmp}/nowhere", "--out", "{tmp}/o"], None, "Data folder '.*nowhere' does not exist"),
    (["cv", "{data}", "--out", "{tmp}/o", "--labels", "{tmp}/x.csv"], None,
     "Labels file '.*x.csv' does not exist"),
    (["cv", "{data}", "--out", "{tmp}/o", "--label-column", "dx"], None, "has no column 'dx'"),
    (["cv", "{data}", "--out", "{tmp}/o"], drop_column, "has no column 'label'"),
    (["cv", "{data}", "--out", "{tmp}/o"], one_class, "has one class only"),
    (["cv", "{data}", "--out", "{tmp}/o", "--method", "svm"], None, "unknown method 'svm'"),
    (["cv", "{data}", "--out", "{tmp}/o", "--folds", "9"], None, "fewer than the 9 folds"),
    (["cv", "{data}", "--out", "{tmp}/o", "--weights", "{tmp}/w.pth"], None,
     "Weights file '.*w.pth' does not exist"),
    (["cv", "{data}", "--out", "{tmp}/o", "--image-size", "30"], None, "multiple of"),
    (["embed", "{data}", "--cache-dir", "{tmp}/c"], corrupt_scan, "Cannot read volume file"),
    (["embed", "{data}", "--cache-dir", "{tmp}/c", "--n-readers", "2"], corrupt_scan,
     "Cannot read volume file"),
    (["embed", "{data}", "--cache-dir", "{tmp}/c"], four_d_scan, "s03.nii.gz' is 4D, 2 volumes"),
    (["embed", "{data}", "--cache-dir", "{tmp}/c"], nan_scan, "s03.nii.gz' contains 1 NaN"),
    (["embed", "{data}", "--cache-dir", "{tmp}/c"], constant_scan, "s03.nii.gz' is constant"),
    (["cv", "{data}", "--out", "{tmp}/o"], remove_scan,
     "1 scan.* are not scans: line 5, .*s03.nii.gz', does not exist"),
    (["predict", "{data}/labels.csv", "{data}/s00.nii.gz", "--out", "{tmp}/p.csv"], None,
     "Cannot read model file '.*labels.csv': not a safetensors file"),
    (["predict", "{data}/labels.csv.joblib", "{data}/s00.nii.gz", "--out", "{tmp}/p.csv"],
     fake_pickle, "is a pickle, and loading a pickle can run any code: pass --allow-pickle"),
    (["predict", "{tmp}/m.joblib", "{data}/s00.nii.gz", "--out", "{tmp}/p.csv"], None,
     "Model file '.*m.joblib' does not exist"),
    (["report", "{tmp}"], None, "run.json"),
    (["fit", "{data}", "--out", "{tmp}/m.joblib"], one_class, "has one class only"),
    (["cv", "{data}", "--out", "{data}/labels.csv"], None, "--out .*labels.csv' is a file"),
    (["cv", "{data}", "--out", "{data}"], None, "holds files that are not a dinoatten run"),
    (["cv", "{data}", "--out", "{tmp}/o", "--cache-dir", "{data}/labels.csv/c"], None,
     "--cache-dir .*labels.csv/c' cannot hold files"),
    (["fit", "{data}", "--out", "{tmp}"], None, "--out .* is a folder; give a file name"),
    (["predict", "{data}/labels.csv", "{data}/s00.nii.gz", "--out", "{data}"], None,
     "--out .* is a folder"),
    (["cv", "{data}", "--out", "{tmp}/o", "--method", "resnet3d", "--resnet-width", "0"], None,
     "error: --resnet-width must be a number >= 0.015625; got 0.0"),  # not widen_factor
    (["cv", "{data}", "--out", "{tmp}/o", "--min-foreground", "1"], None,
     "error: --min-foreground must be a number in .0, 1.; got 1.0"),
    (["embed", "{data}", "--cache-dir", "{tmp}/c", "--n-jobs", "0"], None,
     "error: --n-jobs must be an integer >= 1 or an integer <= -1; got 0"),
    (["predict", "{tmp}/m.safetensors", "{data}/s00.nii.gz", "--out", "{tmp}/p.csv"],
     model_as_folder, "Model file '.*m.safetensors' is a folder, not a file"),
    (["cv", "{data}", "--out", "{tmp}/o", "--image-size", "7"], None, "try 14"),
    *[([command, "{data}", *where, "--backbone",  # every patch size named, one size for all
        "vit_small_patch14_dinov2,vit_tiny_patch16_224", "--image-size", "56"], None,
       r"image_size=56 is not a multiple of every encoder's patch size "
       r"\(vit_small_patch14_dinov2 14, vit_tiny_patch16_224 16\); try 112, the smallest "
       r"size they all divide\.$")
      for command, where in [("cv", ["--out", "{tmp}/o"]), ("embed", ["--cache-dir", "{tmp}/c"])]],
    (["cv", "{data}", "--out", "{tmp}/o", "--backbone", "vit_small_patch14_dinov2,"], None,
     "name each backbone once, separated by commas"),
    (["cv", "{data}", "--out", "{tmp}/o", "--backbone", "a,b", "--weights", "{data}/s00.nii.gz"],
     None, "is one checkpoint, for one backbone"),
    (["fit", "{data}", "--out", "{tmp}/m.safetensors", "--backbone", "a,b"], None,
     "one backbone here; several .* are for `dinoatten cv` and `dinoatten embed`"),
    (["cv", "{data}", "--out", "{tmp}/o", "--backbone", "hf:{tmp}/nothing"], None,
     "there is no folder '.*nothing', and it is not a hub id"),
    (["cv", "{data}", "--out", "{tmp}/o", "--backbone", "torchvision:vit_x"], None,
     "not a torchvision classification model"),
    (["cv", "{data}", "--out", "{tmp}/o", "--method", "resnet3d", "--volume-size", "16"],
     None, "--volume-size 16 is too small for the 3D ResNet, which needs 17 voxels"),
])
def test_bad_input_ends_in_one_line(tmp_path, capsys, argv, damage, message):
    data = make_study(tmp_path / "data", n=8)
    if damage:
        damage(data)
    argv = [a.format(tmp=tmp_path, data=data) for a in argv]
    if argv[0] in ("cv", "embed", "fit"):
        extra = EMBED_FAST + (["--folds", "2"] if argv[0] == "cv" else [])
        for option, value in zip(extra[::2], extra[1::2], strict=True):
            argv += [] if option in argv else [option, value]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dinoatten {argv[0]}: error: ") and "\n" not in err
    assert re.search(message, err)
    assert not os.path.exists(tmp_path / "o" / "run.json")
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]


@pytest.mark.parametrize("argv", [
    ["predict", "m.safetensors", "s.nii.gz", "--out", "p.csv", "--top-slices", "-1"],
    ["cv", "data", "--out", "o", "--epochs", "0"],
    ["cv", "data", "--out", "o", "--folds", "1"],
    ["fit", "data", "--out", "m.safetensors", "--image-size", "x"],
    ["demo", "--n-scans", "4"],
    ["embed", "data", "--n-readers", "-1", "--cache-dir", "c"],
])
def test_nonsense_options_are_usage_errors(capsys, argv):
    option = next(a for a in argv if a.startswith("--") and a != "--out")
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    # An option with an alias is named by both: "argument --max-epochs/--epochs".
    assert re.search(rf"error: argument (--[\w-]+/)?{option}(/--[\w-]+)?: must be "
                     r"('auto' or )?an integer",
                     capsys.readouterr().err)


def test_error_in_a_subprocess_has_no_traceback(tmp_path):
    result = run_cli("cv", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.skipif(not os.path.isdir(os.path.join(data_dir(), "adrenalmnist3d")),
                    reason="AdrenalMNIST3D is not in ../shared/data")
def test_adrenal_demo_data_keeps_the_official_split(tmp_path):
    _, n = write_demo_data(str(tmp_path), dataset="adrenal", n_scans=40)
    rows = read_csv(tmp_path / "labels.csv")
    assert n == len(rows) == 40
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}
    assert counts == {"train": 24, "val": 6, "test": 10}
    assert all({r["label"] for r in rows if r["split"] == s} == {"0", "1"} for s in counts)
    image = nib.load(tmp_path / rows[0]["path"])
    np.testing.assert_allclose(image.header.get_zooms(), [64 / 28] * 3, rtol=1e-6)


def test_a_rerun_demo_replaces_its_data_whole_and_nothing_else(tmp_path, monkeypatch,
                                                                capsys):
    from sklearn_dinoatten import evaluation

    def stop(*args, **kwargs):  # the data is what is tested, not the study
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluation, "run_study", stop)  # the command line's door to it
    data = tmp_path / "demo" / "data"
    for n in (12, 10):  # the second run's scans only: none of the first's left behind
        assert main(["demo", "--out", str(tmp_path / "demo"), "--n-scans", str(n)]) != 0
        scans = sorted(p.name for p in data.iterdir() if p.name.endswith(".nii.gz"))
        assert scans == [f"scan_{i:03d}.nii.gz" for i in range(n)]
        assert len(read_csv(data / "labels.csv")) == n
    foreign = tmp_path / "mine" / "data"
    foreign.mkdir(parents=True)
    (foreign / "labels.csv").write_text("path,label\n")
    assert main(["demo", "--out", str(tmp_path / "mine")]) == 1
    assert "holds files that are not the demo's data" in capsys.readouterr().err
    assert (foreign / "labels.csv").read_text() == "path,label\n"


def test_cv_in_millimetres_with_tri_planar_bags(tmp_path, monkeypatch, capsys):
    from sklearn_dinoatten.evaluation import _report as report

    data = make_study(tmp_path / "data", shape=(28, 28, 16))
    out = str(tmp_path / "cv")
    assert main(["cv", data, "--method", "dinoatten3d", "--out", out, "--axis", "all",
                 "--slice-spacing", "2", "--pixel-spacing", "1", "--crop", "foreground",
                 "--min-foreground", "0.01", "--n-slices", "4", *FAST]) == 0
    run = json.load(open(os.path.join(out, "run.json")))
    assert run["embedder"]["axis"] == "all" and run["embedder"]["crop"] == "foreground"
    assert run["embedder"]["slice_spacing"] == 2.0 and run["embedder"]["pixel_spacing"] == 1.0
    with np.load(os.path.join(out, "outputs.npz")) as outputs:
        assert outputs["attention_dinoatten3d"].shape == (12, 12)  # 4 slices x 3 axes
        assert (outputs["slice_axis"] == [2] * 4 + [1] * 4 + [0] * 4).all()
    titles = []

    def keep_titles(fig, caption=None):
        titles.extend(ax.get_title() for ax in fig.axes)
        return ""

    monkeypatch.setattr(report, "image", keep_titles)
    assert main(["report", out, "--overlays", "1"]) == 0
    assert {"DinoAtten3D, axial", "DinoAtten3D, coronal", "DinoAtten3D, sagittal"} <= set(
        titles)  # the attention profile says which orientation each weight belongs to
    with pytest.raises(SystemExit) as usage_error:
        main(["cv", data, "--out", out, "--pixel-spacing", "0", *FAST])
    assert usage_error.value.code == 2 and "must be a number > 0" in capsys.readouterr().err


def test_scans_of_one_bids_subject_without_groups_warn(tmp_path, capsys):
    data = make_study(tmp_path / "data", n=12, subjects=True)  # a subject column
    rows = read_csv(os.path.join(data, "labels.csv"))
    for i, row in enumerate(rows):  # BIDS names: sub-p0_ses-0, sub-p0_ses-1, ...
        name = f"sub-{row['subject']}_ses-{i % 2}_T1w.nii.gz"
        os.rename(os.path.join(data, row["path"]), os.path.join(data, name))
        row["path"] = name
    with open(os.path.join(data, "labels.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["cv", data, "--out", str(tmp_path / "grouped"), "--method", "mean",
                 *FAST]) == 0
    assert "BIDS" not in capsys.readouterr().err  # grouped by the subject column
    assert main(["cv", data, "--out", str(tmp_path / "ungrouped"), "--method", "mean",
                 "--group-column", "none", *FAST]) == 0
    said = capsys.readouterr()
    assert ("warning: The scans of 6 subject(s) appear several times by their BIDS file "
            "names (sub-p0: 2 scans), and the protocol has no groups" in said.err)
    assert "Embedding 12 scans:\n  all 12 found in the cache" in said.out  # the second run
