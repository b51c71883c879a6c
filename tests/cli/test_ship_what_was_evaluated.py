"""cv -> fit -> card -> predict with one recipe: the operating point and the recalibration
a cross-validation measured are the ones `fit` saves, `card` describes and `predict`
applies; and a model knows the scans it was trained on."""

import contextlib
import csv
import io
import json
import os
import shutil

import numpy as np
import pytest

from sklearn_dinoatten.cli import main
from sklearn_dinoatten.persistence import load_model, read_card

from .test_cli import make_study, read_csv

FAST = ["--weights", "random", "--image-size", "28", "--epochs", "3", "--pos-label", "AD"]
RECIPE = ["--threshold", "youden", "--recalibrate", "platt", *FAST]


def run(argv):
    """``(status, stdout, stderr)`` of the command line."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def write_labels(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A cross-validation, and the model of the same recipe fitted with it as its
    evaluation."""
    root = tmp_path_factory.mktemp("ship")
    data = make_study(root / "data", n=24, subjects=True, names=["HC", "AD"])
    cache = str(root / "cache")
    status, _, err = run(["cv", data, "--out", str(root / "cv"), "--folds", "3",
                          "--cache-dir", cache, *RECIPE])
    assert status == 0, err
    model = str(root / "model.safetensors")
    status, out, err = run(["fit", data, "--out", model, "--evaluation", str(root / "cv"),
                            "--cache-dir", cache, *RECIPE])
    assert status == 0, err
    return root, data, model, out


def test_fit_saves_the_operating_point_and_recalibration_and_says_them(shipped):
    _, _, model, printed = shipped
    fitted = load_model(model)[-1]
    assert fitted.threshold == "youden" and 0 < fitted.threshold_ < 1
    assert fitted.pos_label_ == "AD" and fitted.recalibration == "platt"
    assert (f"'AD' called where its probability is at least {fitted.threshold_:.4g} (the rule "
            "'youden'), both chosen on out-of-fold predictions of the 24 training scans") in printed
    assert "grouped by subject" in fitted.chosen_on_


def test_the_card_says_what_the_model_is(shipped):
    root, data, model, _ = shipped
    status, card, _ = run(["card", model])
    assert status == 0
    fitted = load_model(model)[-1]
    labels_sha = read_card(model)["training"]["labels_sha256"]
    for text in ("# Model card: DinoAtten3D", "Classes: 'AD', 'HC'; positive class: 'AD'",
                 f"at least {fitted.threshold_:.4g} (the rule 'youden')",
                 "24 scans of 12 subjects: all 24 labelled scans", "| AD | 12 | 6 |",
                 f"`labels.csv` (SHA-256 `{labels_sha}`)", "Slice encoder: "
                 "`vit_small_patch14_dinov2`, weights random (seeded)", "Platt map: calibrated",
                 f"From `{root / 'cv'}`", "| DinoAtten3D | ", "## Intended use and limits",
                 "Not a medical device", "(50% 'AD')", "random weights"):
        assert text in card, text
    row = next(r for r in read_csv(root / "cv" / "metrics.csv") if r["method"] == "DinoAtten3D")
    assert f"{float(row['auc']):.3f} [{float(row['auc_ci_low']):.3f}" in card
    status, _, _ = run(["card", model, "--out", str(root / "card.md")])
    assert status == 0 and open(root / "card.md").read() == card


@pytest.mark.parametrize("changed, said", [
    (["--method", "mean"], "the run evaluated dinoatten3d, not mean"),
    (["--threshold", "0.5"], "--threshold: evaluated 'youden', here 0.5"),
    (["--recalibrate", "isotonic"], "--recalibrate: evaluated 'platt', here 'isotonic'"),
    (["--epochs", "4"], "--max-epochs: evaluated 3, here 4"),
    (["--image-size", "42"], "--image-size: evaluated 28, here 42"),
    (["--class-weight", "balanced"], "--class-weight: evaluated not given, here 'balanced'"),
])
def test_an_evaluation_of_another_recipe_is_refused_before_any_work(shipped, changed, said):
    root, data, _, _ = shipped
    out = root / "other.safetensors"
    status, printed, err = run(["fit", data, "--out", str(out), "--evaluation",
                                str(root / "cv"), *RECIPE, *changed])
    assert status == 1 and said in err and len(err.strip().splitlines()) == 1
    assert "Training" not in printed and not out.exists()


def test_fit_replaces_a_model_file_only_with_overwrite(shipped):
    root, data, model, _ = shipped
    size = os.path.getsize(model)
    status, _, err = run(["fit", data, "--out", model, *RECIPE])
    assert status == 1 and "exists; pass --overwrite to replace it" in err
    assert os.path.getsize(model) == size


def test_predict_applies_what_the_card_describes_on_an_external_set(shipped, tmp_path):
    _, _, model, _ = shipped
    external = make_study(tmp_path / "external", n=8, names=["HC", "AD"], shape=(32, 32, 7))
    fitted = load_model(model)
    paths = [os.path.join(external, r["path"]) for r in read_csv(os.path.join(external,
                                                                              "labels.csv"))]
    expected = fitted.predict_proba(paths)
    status, printed, err = run(["predict", model, os.path.join(external, "labels.csv"),
                                "--out", str(tmp_path / "run")])
    assert status == 0, err
    assert "none of which was used to train it (by content)" in printed
    info = json.load(open(tmp_path / "run" / "run.json"))
    assert info["protocol"] == "external" and info["training_scans_scored"] == 0
    assert info["thresholds"] == {"dinoatten3d": [fitted[-1].threshold_]}
    assert info["threshold_rule"] == "youden"
    assert "each model's own, as it was fitted" in info["caption"]
    assert info["recalibration"] == "platt" and info["recalibration_applied"] == {
        "dinoatten3d": [fitted[-1].recalibration_ is not None]}  # the model's, recorded
    assert set(info["operating_points"]) == {"dinoatten3d"}
    status, _, _ = run(["predict", model, os.path.join(external, "labels.csv"), "--out",
                        str(tmp_path / "at"), "--threshold", "0.3"])
    overridden = json.load(open(tmp_path / "at" / "run.json"))
    assert status == 0 and overridden["thresholds"] == {"dinoatten3d": [0.3]}
    assert overridden["recalibration"] == "platt" and overridden["threshold_rule"] == 0.3
    assert "(the rule 'youden'), both chosen on" in overridden["caption"]
    assert "; called here at 0.3 instead." in overridden["caption"]
    rows = read_csv(tmp_path / "run" / "predictions.csv")
    score = np.array([float(r["dinoatten3d_p_AD"]) for r in rows])
    np.testing.assert_allclose(score, expected[:, 0], atol=1e-6)
    called = np.array([r["dinoatten3d_pred"] for r in rows])
    np.testing.assert_array_equal(called, np.where(score >= fitted[-1].threshold_, "AD", "HC"))
    # Without labels: the same calls, said in one line; --threshold overrides it.
    status, printed, _ = run(["predict", model, *paths, "--out", str(tmp_path / "p.csv")])
    assert status == 0 and "(the rule 'youden')" in printed
    assert [r["prediction"] for r in read_csv(tmp_path / "p.csv")] == called.tolist()
    status, printed, _ = run(["predict", model, *paths, "--out", str(tmp_path / "q.csv"),
                              "--threshold", "0.01"])
    assert status == 0 and (f"at least {fitted[-1].threshold_:.4g} (the rule 'youden'), both "
                            "chosen on") in printed
    assert "Here 'AD' called where its probability is at least 0.01 instead" in printed
    assert {r["prediction"] for r in read_csv(tmp_path / "q.csv")} == {"AD"}
    status, _, err = run(["predict", model, *paths, "--out", str(tmp_path / "r.csv"),
                          "--pos-label", "HC"])
    assert status == 1 and "The model calls 'AD' positive" in err


@pytest.mark.parametrize("share", ["all", "some"])
def test_predict_says_which_scans_trained_the_model(shipped, share, tmp_path):
    _, data, model, _ = shipped
    rows = read_csv(os.path.join(data, "labels.csv"))
    if share == "some":  # 5 training scans, one of them renamed, and 4 new ones
        new = make_study(tmp_path / "new", n=4, names=["HC", "AD"], shape=(32, 32, 7))
        shutil.copy(os.path.join(data, rows[0]["path"]), tmp_path / "renamed.nii.gz")
        rows = ([{"path": os.path.join(data, r["path"]), "label": r["label"]} for r in rows[1:5]]
                + [{"path": "renamed.nii.gz", "label": rows[0]["label"]}]
                + [{"path": os.path.join(new, r["path"]), "label": r["label"]}
                   for r in read_csv(os.path.join(new, "labels.csv"))])
        labels, used, n = write_labels(tmp_path / "labels.csv", rows), 5, 9
    else:
        labels, used, n = os.path.join(data, "labels.csv"), 24, 24
    status, printed, err = run(["predict", model, labels, "--out", str(tmp_path / "run")])
    assert status == 0
    assert (f"NOT an external test: {used} of the {n} scans predicted by model.safetensors"
            f"{' (12 subjects)' if share == 'all' else ''} were used to train it") in printed
    assert f"warning: {used} of the {n} scans were used to train this model" in err
    info = json.load(open(tmp_path / "run" / "run.json"))
    assert info["protocol"] == "includes training scans"
    assert info["training_scans_scored"] == used
    assert run(["report", str(tmp_path / "run"), "--overlays", "0", "-q"])[0] == 0
    page = open(tmp_path / "run" / "report.html").read()
    assert f"Not an external test: {used} of the {n} scans scored were used" in page


def test_a_held_out_split_scores_what_fit_then_predict_give(tmp_path):
    """The same split column: cv's test predictions and threshold are those of `fit` on
    the 'train' and 'val' scans followed by `predict` on the 'test' scans, bit for bit."""
    split = ["train"] * 12 + ["val"] * 6 + ["test"] * 6
    data = make_study(tmp_path / "data", n=24, split=split, names=["HC", "AD"])
    cache = ["--cache-dir", str(tmp_path / "cache")]
    recipe = ["--threshold", "sensitivity=0.8", "--recalibrate", "isotonic", *FAST, *cache]
    assert run(["cv", data, "--out", str(tmp_path / "cv"), *recipe])[0] == 0
    model = str(tmp_path / "model.safetensors")
    status, printed, err = run(["fit", data, "--out", model, *recipe])
    assert status == 0, err
    assert ("12 'train' scans, early stopping, the recalibration, the threshold on 6 'val' "
            "scans (6 'test' scans left out)") in printed
    tests = [r for r in read_csv(os.path.join(data, "labels.csv")) if r["split"] == "test"]
    labels = write_labels(tmp_path / "test.csv", [
        {"path": os.path.join(data, r["path"]), "label": r["label"]} for r in tests])
    assert run(["predict", model, labels, "--out", str(tmp_path / "run"), *cache])[0] == 0
    evaluated = read_csv(tmp_path / "cv" / "predictions.csv")
    predicted = read_csv(tmp_path / "run" / "predictions.csv")
    assert [r["path"] for r in evaluated] == [r["path"] for r in predicted]
    for column in ("dinoatten3d_p_AD", "dinoatten3d_p_HC", "dinoatten3d_pred"):
        assert [r[column] for r in evaluated] == [r[column] for r in predicted], column
    thresholds = [json.load(open(tmp_path / name / "run.json"))["thresholds"]["dinoatten3d"]
                  for name in ("cv", "run")]
    assert thresholds[0] == thresholds[1] == [load_model(model)[-1].threshold_]
    assert json.load(open(tmp_path / "run" / "run.json"))["training_scans_scored"] == 0
    validation = write_labels(tmp_path / "val.csv", [  # they chose its threshold: not external
        {"path": os.path.join(data, r["path"]), "label": r["label"]}
        for r in read_csv(os.path.join(data, "labels.csv")) if r["split"] == "val"])
    status, printed, _ = run(["predict", model, validation, "--out", str(tmp_path / "val")])
    assert status == 0 and "NOT an external test: 6 of the 6 scans" in printed
