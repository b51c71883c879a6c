"""dinoatten explain: a saved model's maps of scans, to open over them in a viewer."""

import os

import nibabel as nib
import numpy as np
import pytest

from sklearn_dinoatten.cli import main

from .test_cli import make_study, read_csv


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A labelled folder of 8 scans and a model `dinoatten fit` saved from it."""
    root = tmp_path_factory.mktemp("explain")
    data = make_study(root / "data", n=8, shape=(20, 24, 6))
    model = str(root / "model.safetensors")
    assert main(["fit", data, "--out", model, "--weights", "random", "--image-size", "28",
                 "--epochs", "2", "-q"]) == 0
    return data, model


def test_explain_writes_maps_and_says_how_to_open_them(saved, tmp_path, capsys, monkeypatch):
    data, model = saved
    scans = [os.path.join(data, "s00.nii.gz"), os.path.join(data, "s01.nii.gz")]
    out = tmp_path / "maps"
    capsys.readouterr()
    assert main(["explain", model, *scans, "--out", str(out), "--overlay-slices", "2"]) == 0
    printed = capsys.readouterr().out
    assert "explain 2/2: " + scans[1] in printed  # a line per scan
    assert f"fsleyes {scans[0]} {out}/s00_saliency.nii.gz -cm hot" in printed
    assert f"itksnap -g {scans[0]} -o {out}/s00_saliency.nii.gz" in printed
    rows = read_csv(out / "explanations.csv")
    assert [r["scan"] for r in rows] == scans
    assert all(r["predicted_class"] in ("0", "1") and 0 <= float(r["p_1"]) <= 1 for r in rows)
    assert sorted(os.listdir(out)) == sorted(["explanations.csv", *(
        f"s0{i}{suffix}" for i in (0, 1) for suffix in ("_slice_attention.nii.gz",
                                                        "_saliency.nii.gz", "_saliency.png"))])
    scan, saliency = nib.load(scans[0]), nib.load(out / "s00_saliency.nii.gz")
    assert saliency.shape == scan.shape and np.allclose(saliency.affine, scan.affine)

    def not_loaded(args):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("sklearn_dinoatten.cli._explain.load_fitted", not_loaded)
    assert main(["explain", model, *scans, "--out", str(out)]) == 1  # before any work
    assert ("holds 's00_slice_attention.nii.gz' of an earlier explanation already; pass "
            "--overwrite to replace it, or choose another --out." in capsys.readouterr().err)
    assert main(["explain", str(tmp_path / "none.safetensors"), scans[0], "--out",
                 str(tmp_path / "other")]) == 1
    assert "none.safetensors' does not exist" in capsys.readouterr().err
    monkeypatch.undo()
    # A labels CSV, as predict takes it: every scan it lists
    assert main(["explain", model, os.path.join(data, "labels.csv"), "--out", str(out),
                 "--overwrite", "-q"]) == 0
    assert len(read_csv(out / "explanations.csv")) == 8


def test_help_lists_explain(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "explain" in capsys.readouterr().out


def test_explain_takes_a_dicom_series_and_leaves_labels_unread(saved, tmp_path, capsys):
    from sklearn_dinoatten.datasets import write_dicom_series
    from sklearn_dinoatten.volumes import read_scan

    data, model = saved
    volume = np.round(1000 * nib.load(os.path.join(data, "s00.nii.gz")).get_fdata())
    lps = np.array([[-1.0, 0, 0, 10], [0, -1.0, 0, 12], [0, 0, 2.0, 0], [0, 0, 0, 1]])
    series = str(tmp_path / "series")
    write_dicom_series(series, volume, lps, random_state=0)
    with open(tmp_path / "one_class.csv", "w") as f:  # no labels a study could use
        f.write("path\nseries\n")
    out = tmp_path / "maps"
    assert main(["explain", model, str(tmp_path / "one_class.csv"), "--out", str(out)]) == 0
    assert (f"{series} is a DICOM series: load it with the viewer's DICOM import"
            in capsys.readouterr().out)
    scan, saliency = read_scan(series), nib.load(out / "series_saliency.nii.gz")
    assert saliency.shape == tuple(scan.voxels.shape)  # the series' own grid, file order
    np.testing.assert_allclose(saliency.affine, scan.affine, atol=1e-6)
    np.testing.assert_allclose(saliency.affine[:3, 3], lps[:3, 3], atol=1e-6)  # RAS origin
