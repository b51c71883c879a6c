"""``dinoatten predict`` on every kind of saved model: on files, on a folder and with
labels, it gives the probabilities of ``load_model(...).predict_proba`` on the same
files (a regressor's: the numbers of ``predict``), and its metrics are scikit-learn's on
them."""

import csv
import json
import os
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import (
    AttentionPoolClassifier,
    AttentionPoolRegressor,
    DinoSliceEmbedder,
    OperatingPointClassifier,
    ResNet3DClassifier,
    ResNet3DRegressor,
    SliceTransformerRegressor,
    VolumeResampler,
)
from sklearn_dinoatten.cli import main
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.explain import slice_attention
from sklearn_dinoatten.persistence import load_model, save_model
from sklearn_dinoatten.volumes import AXIS_NAMES

from ._helpers import FAST, save_nifti

NAMES = {2: ["CN", "AD"], 3: ["CN", "MCI", "AD"]}


def scans_with_labels(root, n_classes, names=None, n=9):
    """``(paths, labels)`` of ``n`` NIfTI scans written to ``root`` with its labels.csv."""
    names = NAMES[n_classes] if names is None else names
    X, y = make_volumes(n_samples=n, shape=(16, 18, 14), n_classes=n_classes, random_state=1)
    os.makedirs(root, exist_ok=True)
    paths = [save_nifti(os.path.join(root, f"s{i}.nii.gz"), volume)
             for i, volume in enumerate(X)]
    labels = np.array([names[c] for c in y])
    with open(os.path.join(root, "labels.csv"), "w", newline="") as f:
        csv.writer(f).writerows([("path", "label"), *((os.path.basename(p), label)
                                                      for p, label in zip(paths, labels,
                                                                          strict=True))])
    return paths, labels


def slice_pipeline(point=None, **embedder):
    """A slice pipeline; ``point``: its classifier wrapped in an OperatingPointClassifier
    with those parameters."""
    classifier = AttentionPoolClassifier(max_epochs=2, random_state=0)
    if point is not None:
        classifier = OperatingPointClassifier(estimator=classifier, random_state=0, **point)
    return make_pipeline(DinoSliceEmbedder(**{**FAST, "n_slices": 4, **embedder}), classifier)


MODELS = {  # kind -> (pipeline, classes)
    "slices": lambda: (slice_pipeline(), 2),
    "3D ResNet, min-max on 20^3": lambda: (make_pipeline(
        VolumeResampler(shape=(20, 20, 20), normalization="minmax"),
        ResNet3DClassifier(depth=10, widen_factor=0.25, max_epochs=1, random_state=0)), 2),
    "tri-planar": lambda: (slice_pipeline(axis="all", n_slices=2), 2),
    "3 classes": lambda: (slice_pipeline(), 3),
    "patches, cropped": lambda: (slice_pipeline(feature="patch", crop="foreground"), 2),
    "youden, Platt": lambda: (slice_pipeline(dict(threshold="youden", recalibration="platt",
                                                  pos_label="AD")), 2),
    "3D ResNet, 0.3, isotonic": lambda: (make_pipeline(
        VolumeResampler(shape=(20, 20, 20)), OperatingPointClassifier(
            estimator=ResNet3DClassifier(depth=10, widen_factor=0.25, max_epochs=1,
                                         random_state=0),
            threshold=0.3, recalibration="isotonic", pos_label="AD", random_state=0)), 2),
    "3 classes, isotonic": lambda: (slice_pipeline(dict(recalibration="isotonic"),
                                                   axis="all", n_slices=2), 3),
}


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("kind", MODELS)
def test_predict_scores_what_the_loaded_model_does(kind, tmp_path):
    model, n_classes = MODELS[kind]()
    train, y_train = scans_with_labels(tmp_path / "train", n_classes)
    with warnings.catch_warnings():  # a recalibration not worth applying to 9 scans
        warnings.simplefilter("ignore")
        model.fit(train, y_train)
    path = str(tmp_path / "model.safetensors")
    save_model(model, path)
    paths, labels = scans_with_labels(tmp_path / "test", n_classes)
    loaded = load_model(path)
    expected = loaded.predict_proba(paths)
    classes = loaded.classes_.tolist()

    def columns(rows, prefix=""):
        return np.array([[float(r[f"{prefix}p_{c}"]) for c in classes] for r in rows])

    assert main(["predict", path, *paths, "--out", str(tmp_path / "files.csv"), "-q"]) == 0
    rows = read_csv(tmp_path / "files.csv")
    np.testing.assert_array_equal(columns(rows), expected)  # at full precision
    assert [r["prediction"] for r in rows] == loaded.predict(paths).tolist()  # its own calls
    if hasattr(loaded[-1], "attention_weights"):  # the top slice: the most attended one
        attention = slice_attention(loaded, paths)
        for row, scan, weights in zip(rows, paths, attention, strict=True):
            axes, kept = loaded[0].kept_slices(scan)
            best = weights.argmax()
            name = (f"{AXIS_NAMES[axes[best]]}:{kept[best]}" if len(set(axes)) > 1
                    else str(kept[best]))
            assert row["top_slices"].split()[0] == name
    os.remove(tmp_path / "test" / "labels.csv")  # a folder of scans without labels
    assert main(["predict", path, str(tmp_path / "test"), "--out",
                 str(tmp_path / "folder.csv"), "-q"]) == 0
    rows = {os.path.basename(r["path"]): r for r in read_csv(tmp_path / "folder.csv")}
    np.testing.assert_allclose(columns([rows[os.path.basename(p)] for p in paths]),
                               expected, atol=1e-6)

    scans_with_labels(tmp_path / "test", n_classes)  # the labels again
    out = str(tmp_path / "external")
    argv = ["predict", path, str(tmp_path / "test" / "labels.csv"), "--out", out, "-q"]
    assert main(argv + (["--pos-label", "AD"] if n_classes == 2 else [])) == 0
    predictions = read_csv(os.path.join(out, "predictions.csv"))
    assert [r["path"] for r in predictions] == [os.path.abspath(p) for p in paths]
    (key,) = json.load(open(os.path.join(out, "run.json")))["methods"]
    proba = columns(predictions, f"{key}_")
    np.testing.assert_allclose(proba, expected, atol=1e-6)
    assert [r[f"{key}_pred"] for r in predictions] == loaded.predict(paths).tolist()
    (row,) = read_csv(os.path.join(out, "metrics.csv"))
    assert float(row["accuracy"]) == pytest.approx(accuracy_score(labels, loaded.predict(paths)))
    auc = (roc_auc_score(labels == "AD", expected[:, classes.index("AD")]) if n_classes == 2
           else roc_auc_score(labels, expected, multi_class="ovr", labels=classes))
    assert float(row["auc"]) == pytest.approx(auc, abs=1e-6)


@pytest.fixture(scope="module")
def cn_mci_model(tmp_path_factory):
    """A binary slice model of classes CN and MCI, saved."""
    root = tmp_path_factory.mktemp("cn_mci")
    paths, labels = scans_with_labels(root / "train", 2, names=["CN", "MCI"])
    path = str(root / "model.safetensors")
    save_model(slice_pipeline().fit(paths, labels), path)
    return path


@pytest.mark.parametrize("names", [["CN", "AD"], ["CN", "MCI", "AD"]],
                         ids=["another class", "one class more"])
def test_labels_that_are_not_the_models_classes_are_refused(cn_mci_model, names, tmp_path,
                                                             capsys):
    scans_with_labels(tmp_path / "data", len(names), names=names)
    out = tmp_path / "run"
    assert main(["predict", cn_mci_model, str(tmp_path / "data" / "labels.csv"), "--out",
                 str(out), "--pos-label", "CN"]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert f"classes are {sorted(names)}" in error and "fitted on ['CN', 'MCI']" in error
    assert not out.exists()  # before: AUC 0.000 and p(CN) written under ..._p_AD


def test_labels_are_matched_to_the_classes_by_name(tmp_path):
    """A model fitted on text labels "0"/"1", scored on a labels file of integers."""
    paths, labels = scans_with_labels(tmp_path / "data", 2, names=["0", "1"])
    model = slice_pipeline().fit(paths, labels)  # classes_ "0", "1" (text)
    path = str(tmp_path / "model.safetensors")
    save_model(model, path)
    out = str(tmp_path / "run")
    assert main(["predict", path, str(tmp_path / "data" / "labels.csv"), "--out", out,
                 "-q"]) == 0  # read as the integers 0 and 1
    predictions = read_csv(os.path.join(out, "predictions.csv"))
    key = next(iter(json.load(open(os.path.join(out, "run.json")))["methods"]))
    np.testing.assert_allclose([float(r[f"{key}_p_1"]) for r in predictions],
                               model.predict_proba(paths)[:, 1], atol=1e-6)


REGRESSORS = {  # kind -> pipeline of a number
    "slices": lambda: make_pipeline(DinoSliceEmbedder(**{**FAST, "n_slices": 4}),
                                    AttentionPoolRegressor(max_epochs=2, random_state=0)),
    "tri-planar patches, cropped, MST": lambda: make_pipeline(
        DinoSliceEmbedder(**{**FAST, "n_slices": 2, "axis": "all", "feature": "patch",
                             "crop": "foreground"}),
        SliceTransformerRegressor(max_epochs=2, random_state=0)),
    "3D ResNet on 20^3": lambda: make_pipeline(
        VolumeResampler(shape=(20, 20, 20)),
        ResNet3DRegressor(depth=10, widen_factor=0.25, max_epochs=1, random_state=0)),
}


def scans_with_targets(root, n=9, seed=1):
    """``(paths, ages)`` of ``n`` NIfTI scans written to ``root`` with its labels.csv."""
    X, _ = make_volumes(n_samples=n, shape=(16, 18, 14), random_state=seed)
    ages = np.random.default_rng(seed).uniform(20, 90, n)
    os.makedirs(root, exist_ok=True)
    paths = [save_nifti(os.path.join(root, f"s{i}.nii.gz"), v) for i, v in enumerate(X)]
    with open(os.path.join(root, "labels.csv"), "w", newline="") as f:
        csv.writer(f).writerows([("path", "age"), *((os.path.basename(p), repr(float(a)))
                                                    for p, a in zip(paths, ages, strict=True))])
    return paths, ages


@pytest.mark.parametrize("kind", REGRESSORS)
def test_predict_gives_what_the_loaded_regressor_does(kind, tmp_path):
    from sklearn.metrics import mean_absolute_error

    train, ages = scans_with_targets(tmp_path / "train", seed=0)
    path = str(tmp_path / "model.safetensors")
    save_model(REGRESSORS[kind]().fit(train, ages), path)
    paths, targets = scans_with_targets(tmp_path / "test")
    loaded = load_model(path)
    expected = loaded.predict(paths)
    assert main(["predict", path, *paths, "--out", str(tmp_path / "files.csv"), "-q"]) == 0
    rows = read_csv(tmp_path / "files.csv")
    np.testing.assert_array_equal([float(r["prediction"]) for r in rows], expected)
    assert all(r["top_slices"] for r in rows) == hasattr(loaded[-1], "attention_weights")
    out = str(tmp_path / "external")
    assert main(["predict", path, str(tmp_path / "test" / "labels.csv"), "--label-column",
                 "age", "--out", out, "-q"]) == 0
    predictions = read_csv(os.path.join(out, "predictions.csv"))
    (key,) = json.load(open(os.path.join(out, "run.json")))["methods"]
    np.testing.assert_allclose([float(r[f"{key}_pred"]) for r in predictions], expected,
                               rtol=1e-6)
    assert [float(r["target"]) for r in predictions] == targets.tolist()
    (row,) = read_csv(os.path.join(out, "metrics.csv"))
    assert float(row["mae"]) == pytest.approx(mean_absolute_error(targets, expected), rel=1e-6)
