import os

import numpy as np
import pytest

from sklearn_dinoatten.datasets import load_adrenalmnist3d, load_nifti_folder, make_volumes


def test_shapes_labels_and_reproducibility():
    X, y = make_volumes(n_samples=9, shape=(16, 20, 12), n_classes=3, random_state=0)
    assert len(X) == 9 and all(v.shape == (16, 20, 12) and v.dtype == np.float32 for v in X)
    assert np.bincount(y).tolist() == [3, 3, 3]
    X2, y2 = make_volumes(n_samples=9, shape=(16, 20, 12), n_classes=3, random_state=0)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(X[0], X2[0])


@pytest.mark.parametrize("axis, along", [("axial", 2), ("coronal", 1), (0, 0)])
def test_signal_is_bright_and_confined_to_its_slices(axis, along):
    X, y, signal = make_volumes(n_samples=6, shape=(24, 24, 24), axis=axis, noise=0.0,
                                return_signal=True, random_state=1)
    for volume, label, slices in zip(X, y, signal, strict=True):
        peak = np.moveaxis(volume, along, 0).max(axis=(1, 2))
        if label == 0:
            assert len(slices) == 0 and peak.max() < 1.3
        else:
            assert len(slices) == 3  # 24 // 8
            others = np.setdiff1d(np.arange(24), slices)
            assert peak[slices].min() > 1.5 > peak[others].max()


def test_bad_arguments():
    with pytest.raises(ValueError, match="shape"):
        make_volumes(shape=(8, 8))
    with pytest.raises(ValueError, match="n_classes"):
        make_volumes(n_samples=1, n_classes=2)
    with pytest.raises(ValueError, match="n_signal_slices"):
        make_volumes(shape=(8, 8, 8), n_signal_slices=5)


def write_folder(root, rows, header="path,label,subject", scans=None):
    root.mkdir(exist_ok=True)
    for name in scans if scans is not None else [r.split(",")[0] for r in rows]:
        (root / name).write_bytes(b"")
    (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    return root


def test_load_nifti_folder(tmp_path):
    root = write_folder(tmp_path / "d", ["a.nii.gz,AD,p1", "b.nii.gz,HC,p1", "c.nii,AD,p2"])
    paths, y, groups = load_nifti_folder(root, group_column="subject")
    assert paths == [str(root / n) for n in ("a.nii.gz", "b.nii.gz", "c.nii")]
    assert y.tolist() == ["AD", "HC", "AD"] and groups.tolist() == ["p1", "p1", "p2"]
    moved = tmp_path / "elsewhere.csv"
    moved.write_text((root / "labels.csv").read_text().replace("label", "dx"))
    paths, y, groups = load_nifti_folder(root, moved, label_column="dx")
    assert len(paths) == 3 and groups is None


@pytest.mark.parametrize("rows, header, scans, group, error, message", [
    (["a.nii,0", "b.nii,1"], "path,label", ["a.nii"], None, FileNotFoundError,
     "1 scan\\(s\\) listed .* do not exist, e.g. '.*b.nii'"),
    (["a.nii,0", "b.nii,1"], "path,label", None, "subject", ValueError, "no column 'subject'"),
    (["a.nii,0", "b.nii,1"], "file,label", ["a.nii", "b.nii"], None, ValueError,
     "no column 'path'"),
    (["a.nii,0", "b.nii,0"], "path,label", None, None, ValueError, "one class only"),
    (["a.nii,0", "b.nii,"], "path,label", None, None, ValueError, "line 3: column 'label'"),
    ([], "path,label", [], None, ValueError, "lists no scans"),
])
def test_load_nifti_folder_errors(tmp_path, rows, header, scans, group, error, message):
    root = write_folder(tmp_path / "d", rows, header, scans)
    with pytest.raises(error, match=message):
        load_nifti_folder(root, group_column=group)


def test_load_nifti_folder_missing_folder_or_csv(tmp_path):
    with pytest.raises(FileNotFoundError, match="Data folder"):
        load_nifti_folder(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="Labels file"):
        load_nifti_folder(tmp_path)


ADRENAL = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                       "adrenalmnist3d")


@pytest.mark.skipif(not os.path.isdir(ADRENAL), reason="AdrenalMNIST3D is not in ../shared/data")
def test_load_adrenalmnist3d():
    X, y = load_adrenalmnist3d(ADRENAL, split="val")
    assert X.shape == (98, 28, 28, 28) and np.bincount(y).tolist() == [76, 22]
    X, y = load_adrenalmnist3d(ADRENAL)
    assert len(X) == len(y) == 1584


def test_load_adrenalmnist3d_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="adrenalmnist3d.npz"):
        load_adrenalmnist3d(tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        load_adrenalmnist3d(tmp_path, split="dev")
    with pytest.raises(ValueError, match="size must be 28 or 64"):
        load_adrenalmnist3d(tmp_path, size=32)
