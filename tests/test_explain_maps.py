"""explain_scans: NIfTI maps on each scan's own voxel grid, the overlay PNG and the
summary CSV, for classifiers and regressors; what it refuses."""

import csv
import os

import matplotlib
import nibabel as nib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import (
    AttentionPoolClassifier,
    AttentionPoolRegressor,
    DinoSliceEmbedder,
    OperatingPointClassifier,
    ResNet3DClassifier,
    ResNet3DRegressor,
    VolumeResampler,
)
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.explain import (
    explain_scans,
    explanation_paths,
    scan_saliency,
    slice_attention,
    slice_attention_map,
)

from ._helpers import FAST, save_nifti

matplotlib.use("Agg")

SHAPE = (20, 24, 8)  # RAS (x, y, z): every axis its own length
# Voxel (i, j, k) of the file -> RAS mm: LPS (x and y flipped), and axes permuted (the
# file's axes hold z, x, y) with voxel sizes 3, 1.5 and 2 mm.
LPS = np.diag([-1.0, -1.0, 1.0, 1.0]) + np.array([[0, 0, 0, 19], [0, 0, 0, 23], [0] * 4,
                                                    [0] * 4])
PERMUTED = np.array([[0, 1.5, 0, 0], [0, 0, 2, 0], [3, 0, 0, 0], [0, 0, 0, 1.0]])


@pytest.fixture(scope="module")
def classifier():
    X, y = make_volumes(n_samples=8, shape=SHAPE, random_state=0)
    model = make_pipeline(DinoSliceEmbedder(**FAST),
                          AttentionPoolClassifier(max_epochs=2, random_state=0)).fit(X, y)
    return model, X


def as_file(tmp_path, name, ras, affine):
    """``ras`` (a RAS array) saved with ``affine``, its voxels in that affine's order."""
    to_file = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt("RAS"),
                                              nib.orientations.io_orientation(affine))
    path = save_nifti(tmp_path / name, nib.orientations.apply_orientation(ras, to_file),
                      affine=affine)
    assert np.array_equal(nib.as_closest_canonical(nib.load(path)).get_fdata(), ras)
    return path


def peak_places(data, affine):
    """The RAS mm of the voxels where ``data`` is highest."""
    data = np.asarray(data, dtype=np.float32)
    places = nib.affines.apply_affine(affine, np.argwhere(data == data.max()))
    return sorted(map(tuple, np.round(places, 6)))


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_maps_lie_on_the_scans_own_grid(classifier, tmp_path):
    """A map of an LPS file and of a file with permuted axes has the file's shape and
    affine, and, reoriented to RAS, is the map computed in RAS: its most attended slice
    is the same physical slice."""
    model, X = classifier
    scans = [as_file(tmp_path, "lps.nii.gz", X[0], LPS),
             as_file(tmp_path, "permuted.nii", X[1], PERMUTED)]
    out = tmp_path / "out"
    rows = explain_scans(model, scans, out)
    assert sorted(os.listdir(out)) == sorted(
        ["explanations.csv", *(f"{name}{suffix}" for name in ("lps", "permuted") for suffix in
                               ("_slice_attention.nii.gz", "_saliency.nii.gz", "_saliency.png"))])
    weights = slice_attention(model, scans)
    for scan, row, w in zip(scans, rows, weights, strict=True):
        scan_image = nib.load(scan)
        ras = {"slice_attention": slice_attention_map(model[0], scan, w),
               "saliency": scan_saliency(model[0], scan, w)}
        for key, expected in ras.items():
            image = nib.load(out / row[key])
            assert image.shape == scan_image.shape
            np.testing.assert_allclose(image.affine, scan_image.affine)
            canonical = nib.as_closest_canonical(image)
            np.testing.assert_allclose(canonical.get_fdata(), expected, rtol=1e-6)
            # The peak's physical place: the same in the file's order as in RAS
            assert peak_places(image.get_fdata(), image.affine) == peak_places(
                expected, nib.as_closest_canonical(scan_image).affine)
        assert np.argmax(ras["slice_attention"][0, 0]) == np.argmax(w[:SHAPE[2]])
    assert read_rows(out / "explanations.csv") == [
        {key: str(value) for key, value in row.items()} for row in rows]
    assert [set(row) for row in rows] == [{"scan", "predicted_class", "p_1", "slice_attention",
                                           "saliency", "overlay", "note"}] * 2
    assert rows[0]["scan"] == scans[0] and rows[0]["predicted_class"] in (0, 1)
    np.testing.assert_allclose(float(rows[0]["p_1"]), model.predict_proba(scans[:1])[0, 1])


def test_a_regressor_is_explained_and_names_are_unique(tmp_path):
    X, _ = make_volumes(n_samples=8, shape=SHAPE, random_state=0)
    y = np.linspace(20.0, 80.0, len(X))
    model = make_pipeline(DinoSliceEmbedder(**FAST),
                          AttentionPoolRegressor(max_epochs=2, random_state=0)).fit(X, y)
    (tmp_path / "b").mkdir()
    scans = [save_nifti(tmp_path / "a.nii.gz", X[0]), save_nifti(tmp_path / "b" / "a.nii", X[1]),
             X[2]]
    rows = explain_scans(model, scans, tmp_path / "out")
    assert [row["saliency"] for row in rows] == ["a_saliency.nii.gz", "a_2_saliency.nii.gz",
                                                 "scan2_saliency.nii.gz"]
    assert {"predicted_value"} <= set(rows[0]) and "predicted_class" not in rows[0]
    np.testing.assert_allclose([float(r["predicted_value"]) for r in rows], model.predict(scans))
    array_map = nib.load(tmp_path / "out" / rows[2]["saliency"])  # an array: taken as RAS
    assert array_map.shape == SHAPE and np.allclose(array_map.affine, np.eye(4))


def test_an_earlier_explanation_is_kept_unless_overwritten(classifier, tmp_path, monkeypatch):
    model, X = classifier
    scan = save_nifti(tmp_path / "s.nii.gz", X[0])
    out = tmp_path / "out"
    explain_scans(model, [scan], out)
    before = {name: os.path.getmtime(out / name) for name in os.listdir(out)}
    with pytest.raises(FileExistsError, match="s_slice_attention.nii.gz' exists: pass "
                                              "overwrite=True"):
        explanation_paths([scan], out)

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("sklearn_dinoatten.explain._maps.plot_saliency", fail)
    with pytest.raises(RuntimeError, match="disk full"):  # after the maps were written
        explain_scans(model, [scan], out, overwrite=True)
    assert {name: os.path.getmtime(out / name) for name in os.listdir(out)} == before
    monkeypatch.undo()
    explain_scans(model, [scan], out, overwrite=True)
    assert sorted(os.listdir(out)) == sorted(before)
    with pytest.raises(ValueError, match="Output folder .* cannot hold files: it is a file"):
        explain_scans(model, [scan], scan)


@pytest.mark.parametrize("model, name", [
    (make_pipeline(VolumeResampler(shape=(16,) * 3), ResNet3DClassifier()),
     "ResNet3DClassifier"),
    (make_pipeline(VolumeResampler(shape=(16,) * 3), OperatingPointClassifier(
        estimator=ResNet3DClassifier())), "ResNet3DClassifier"),
    (make_pipeline(VolumeResampler(shape=(16,) * 3), ResNet3DRegressor()), "ResNet3DRegressor"),
    (LogisticRegression(), "LogisticRegression"),
])
def test_a_model_without_slice_attention_is_refused(model, name, tmp_path):
    with pytest.raises(ValueError, match=f"^{name} has no slice attention to explain") as error:
        explain_scans(model, [np.zeros(SHAPE)], tmp_path / "out")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_a_cnn_backbone_gives_slice_attention_only(tmp_path):
    """torchvision's ResNet has no in-plane attention: the slice-attention map only, as a
    warning and the CSV say."""
    X, y = make_volumes(n_samples=6, shape=(36, 40, 6), random_state=0)
    model = make_pipeline(
        DinoSliceEmbedder(backbone="torchvision:resnet18", weights="random", image_size=64,
                          verbose=0),
        AttentionPoolClassifier(max_epochs=2, random_state=0)).fit(X, y)
    with pytest.warns(UserWarning, match="Slice attention only: the backbone "
                                         "'torchvision:resnet18' is not a timm vision"):
        rows = explain_scans(model, [save_nifti(tmp_path / "s.nii.gz", X[0])], tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == ["explanations.csv",
                                                    "s_slice_attention.nii.gz"]
    assert rows[0]["saliency"] == rows[0]["overlay"] == ""
    assert rows[0]["note"].startswith("slice attention only")
    assert nib.load(tmp_path / "out" / "s_slice_attention.nii.gz").get_fdata().max() > 0


def test_mean_pooling_is_said_to_weigh_every_slice_alike(tmp_path):
    X, y = make_volumes(n_samples=8, shape=SHAPE, random_state=0)
    model = make_pipeline(DinoSliceEmbedder(**FAST), AttentionPoolClassifier(
        pooling="mean", max_epochs=2, random_state=0)).fit(X, y)
    with pytest.warns(UserWarning, match=r"2 of 2 scan\(s\): the head weighs every kept slice "
                      r"alike \(mean pooling\)"):
        rows = explain_scans(model, X[:2], tmp_path / "out")
    assert all("weighs every kept slice alike" in row["note"] for row in rows)
    attention = nib.load(tmp_path / "out" / rows[0]["slice_attention"]).get_fdata()
    np.testing.assert_allclose(attention[attention > 0], 1 / SHAPE[2], rtol=1e-5)
