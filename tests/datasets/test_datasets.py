import os
import warnings

import nibabel as nib
import numpy as np
import pytest

from sklearn_dinoatten.datasets import (
    MEDMNIST3D,
    data_dir,
    find_scans,
    load_medmnist3d,
    load_nifti_folder,
    looks_continuous,
    make_brain_ages,
    make_volumes,
)


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
    paths, y, groups, split = load_nifti_folder(root)  # subject: found, as the CLI does
    assert paths == [str(root / n) for n in ("a.nii.gz", "b.nii.gz", "c.nii")]
    assert y.tolist() == ["AD", "HC", "AD"] and groups.tolist() == ["p1", "p1", "p2"]
    assert split is None  # no split column
    assert load_nifti_folder(root, group_column=None)[2] is None  # ignored when told
    moved = tmp_path / "elsewhere.csv"
    moved.write_text((root / "labels.csv").read_text().replace("label", "dx")
                     .replace("subject", "patient"))
    paths, y, groups, _ = load_nifti_folder(root, labels_csv=moved, label_column="dx")
    assert len(paths) == 3 and groups is None
    assert load_nifti_folder(root, labels_csv=moved, label_column="dx",
                             group_column="patient")[2].tolist() == ["p1", "p1", "p2"]


@pytest.mark.parametrize("rows, header, scans, group, error, message", [
    (["a.nii,0", "b.nii,1"], "path,label", ["a.nii"], None, FileNotFoundError,
     "1 scan\\(s\\) listed .* are not scans: line 3, '.*b.nii', does not exist"),
    (["a.nii,0", "b.nii,1", "./a.nii,1"], "path,label", None, None, ValueError,
     "lists one scan twice: line 2 \\('.*a.nii'\\) and line 4 \\('.*./a.nii'\\)"),
    (["a.nii,0", "b.nii,NA"], "path,label", None, None, ValueError,
     "line 3: column 'label' is missing \\('NA'\\)"),
    (["a.nii,nan", "b.nii,1"], "path,label", None, None, ValueError,
     "line 2: column 'label' is missing \\('nan'\\)"),
    (["a.nii,0,#N/A", "b.nii,1,p2"], "path,label,subject", None, "subject", ValueError,
     "line 2: column 'subject' is missing"),
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


ADRENAL = os.path.join(data_dir(), "adrenalmnist3d")


@pytest.mark.skipif(not os.path.isdir(ADRENAL), reason="AdrenalMNIST3D is not in ../shared/data")
def test_load_adrenalmnist3d_from_shared_data():
    X, y = load_medmnist3d("adrenal", ADRENAL, split="val")
    assert X.shape == (98, 28, 28, 28) and np.bincount(y).tolist() == [76, 22]
    X, y = load_medmnist3d("adrenalmnist3d", ADRENAL, size=64)
    assert X.shape == (1584, 64, 64, 64) and len(y) == 1584


def write_medmnist(folder, name, size, n_classes, counts=(6, 2, 3)):
    """A small .npz in MedMNIST's layout: uint8 volumes, labels of shape (n, 1)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in zip(("train", "val", "test"), counts, strict=True):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, size, size, size), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % n_classes)[:, None].astype(np.uint8)
    path = os.path.join(folder, f"{name}mnist3d{'' if size == 28 else '_64'}.npz")
    np.savez(path, **arrays)
    return arrays


@pytest.mark.parametrize("name", list(MEDMNIST3D))
@pytest.mark.parametrize("size", [28, 64])
def test_load_every_medmnist3d_set(tmp_path, name, size):
    arrays = write_medmnist(tmp_path, name, size, n_classes=len(MEDMNIST3D[name]))
    for split in ("train", "val", "test"):
        X, y = load_medmnist3d(name, tmp_path, split=split, size=size)
        np.testing.assert_array_equal(X, arrays[f"{split}_images"])
        np.testing.assert_array_equal(y, arrays[f"{split}_labels"].ravel())
        assert y.dtype.kind == "i"
    X, y = load_medmnist3d(name, tmp_path, size=size)  # all three, in order
    assert X.shape == (11, size, size, size)
    assert y.tolist() == [c % len(MEDMNIST3D[name]) for n in (6, 2, 3) for c in range(n)]


def test_medmnist3d_multiclass_labels_and_file_path(tmp_path):
    write_medmnist(tmp_path, "organ", 28, n_classes=11, counts=(22, 11, 11))
    X, y = load_medmnist3d("organ", tmp_path / "organmnist3d.npz", split="train")
    assert sorted(set(y.tolist())) == list(range(11)) and len(MEDMNIST3D["organ"]) == 11


def test_load_medmnist3d_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="adrenalmnist3d.npz"):
        load_medmnist3d("adrenal", tmp_path)
    with pytest.raises(ValueError, match="name must be one of"):
        load_medmnist3d("brain", tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        load_medmnist3d("adrenal", tmp_path, split="dev")
    with pytest.raises(ValueError, match="size must be 28 or 64"):
        load_medmnist3d("adrenal", tmp_path, size=32)
    np.savez(tmp_path / "nodulemnist3d.npz", train_images=np.zeros((2, 28, 28, 28)))
    with pytest.raises(ValueError, match="not a MedMNIST file: it has no 'train_labels'"):
        load_medmnist3d("nodule", tmp_path, split="train")
    write_medmnist(tmp_path, "vessel", 28, n_classes=3)  # labels 0..2 in a binary set
    with pytest.raises(ValueError, match="labels outside 0..1"):
        load_medmnist3d("vessel", tmp_path)


def test_split_column(tmp_path):
    for name in ("a.nii.gz", "b.nii.gz", "c.nii.gz"):
        (tmp_path / name).touch()
    (tmp_path / "labels.csv").write_text(
        "path,label,split\na.nii.gz,0,train\nb.nii.gz,1,train\nc.nii.gz,1,test\n")
    *_, split = load_nifti_folder(tmp_path, split_column="split")
    assert split.tolist() == ["train", "train", "test"]
    (tmp_path / "labels.csv").write_text(
        "path,label,split\na.nii.gz,0,train\nb.nii.gz,1,Train\nc.nii.gz,1,test\n")
    with pytest.raises(ValueError, match="line 3: 'split' is 'Train'; it must be one of "
                                         "train, val, test"):
        load_nifti_folder(tmp_path, split_column="split")


def test_the_same_file_under_other_names_is_one_scan(tmp_path):
    root = write_folder(tmp_path / "d", ["a.nii,0", "b.nii,1", "c.nii,1"], "path,label",
                        ["a.nii", "b.nii"])
    os.symlink(root / "a.nii", root / "c.nii")  # a link, with the opposite label
    with pytest.raises(ValueError, match="line 2 .* and line 4 .* are the same scan"):
        load_nifti_folder(root)
    os.remove(root / "c.nii")
    os.link(root / "b.nii", root / "c.nii")  # a hard link: one file, two names
    with pytest.raises(ValueError, match="line 3 .* and line 4 .* are the same scan"):
        load_nifti_folder(root)


def test_a_listed_folder_is_not_a_scan(tmp_path):
    root = write_folder(tmp_path / "d", ["a.nii,0", "b.nii.gz,1"], "path,label", ["a.nii"])
    (root / "b.nii.gz").mkdir()
    with pytest.raises(FileNotFoundError, match="'.*b.nii.gz', is a folder without DICOM files"):
        load_nifti_folder(root)


def test_numeric_labels_are_numbers(tmp_path):
    """``1`` and ``1.0`` are one class, as a spreadsheet's export may mix them."""
    root = write_folder(tmp_path / "d", ["a.nii,0", "b.nii,1.0", "c.nii,1", "d.nii,0.0"],
                        "path,label")
    _, y, _, _ = load_nifti_folder(root)
    assert y.tolist() == [0, 1, 1, 0] and y.dtype.kind == "i"
    root = write_folder(tmp_path / "e", ["a.nii,0.5", "b.nii,1.5"], "path,label")
    assert load_nifti_folder(root)[1].tolist() == [0.5, 1.5]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "cp1252"])
def test_labels_files_in_the_encodings_spreadsheets_save(tmp_path, encoding):
    root = write_folder(tmp_path / "d", ["é.nii,Alzheimer’s", "b.nii,contrôle"], "path,label")
    text = (root / "labels.csv").read_text(encoding="utf-8")
    (root / "labels.csv").write_bytes(text.encode(encoding))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths, y, _, _ = load_nifti_folder(root)
    assert y.tolist() == ["Alzheimer’s", "contrôle"] and paths[0].endswith("é.nii")
    assert [str(w.message) for w in caught if "Windows-1252" in str(w.message)] \
        == ([f"{str(root / 'labels.csv')!r} is not UTF-8: read as Windows-1252 (what "
             "spreadsheet programs save as CSV on Windows); save it as UTF-8 CSV to be sure "
             "of its accents."] if encoding == "cp1252" else [])


def test_a_labels_file_in_no_known_encoding(tmp_path):
    root = write_folder(tmp_path / "d", ["a.nii,0", "b.nii,1"], "path,label")
    (root / "labels.csv").write_bytes(b"path,label\na.nii,0\nb.nii,\x81\n")
    with pytest.raises(ValueError, match="not text in UTF-8.*byte 0x81 on line 3"):
        load_nifti_folder(root)


def test_scan_discovery_survives_link_loops_and_odd_names(tmp_path):
    """No labels file: every NIfTI file once, whatever the links and letter case."""
    root = tmp_path / "scans"
    (root / "sub").mkdir(parents=True)
    for name in ("a.nii", "sub/B.NII.GZ", "sub/c.Nii.Gz", "notes.txt"):
        (root / name).write_bytes(b"")
    (root / "folder.nii.gz").mkdir()  # a folder with a scan's name
    os.symlink(root, root / "sub" / "loop")  # a loop
    os.symlink(root / "sub", root / "again")  # a second way into sub
    os.symlink(root / "sub" / "loop", root / "sub" / "loop2")  # a loop through a loop
    found = find_scans(root)
    assert sorted(os.path.basename(p) for p in found) == ["B.NII.GZ", "a.nii", "c.Nii.Gz"]


def test_windows_separators_in_a_labels_file(tmp_path):
    root = write_folder(tmp_path / "d", ["sub\\a.nii,0", "b.nii,1"], "path,label", ["b.nii"])
    (root / "sub").mkdir()
    (root / "sub" / "a.nii").write_bytes(b"")
    paths, _, _, _ = load_nifti_folder(root)
    assert paths[0] == str(root / "sub" / "a.nii")


def test_a_target_column_is_read_as_numbers(tmp_path):
    root = write_folder(tmp_path / "d", ["a.nii,55.5,s1", "b.nii,57.5,s1", "c.nii,70,s2"],
                        "path,age,subject")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a subject's ages differ: no label-change warning
        _, y, groups, _ = load_nifti_folder(root, label_column="age", task="regression")
    assert y.tolist() == [55.5, 57.5, 70.0] and y.dtype == np.float64
    assert groups.tolist() == ["s1", "s1", "s2"]
    root = write_folder(tmp_path / "e", ["a.nii,55.5", "b.nii,old"], "path,age")
    with pytest.raises(ValueError, match=r"line 3: column 'age' is 'old', not a number"):
        load_nifti_folder(root, label_column="age", task="regression")
    assert looks_continuous([55.5, 57.5, 70.0]) and not looks_continuous([0, 1, 1, 0])


def test_brain_ages_follow_their_headers_and_age():
    from sklearn_dinoatten.volumes import load_scan

    X, ages, subjects, affines = make_brain_ages(n_subjects=8, random_state=0)
    shapes = {x.shape for x in X}
    assert len(shapes) > 1  # varied voxel sizes and orientations
    ventricles = []
    for volume, affine in zip(X, affines, strict=True):
        ras, spacing = load_scan(nib.Nifti1Image(volume, affine))  # RAS, from the header
        spacing = np.asarray(spacing)
        # the head spans the same millimetres whatever the voxel size
        brain = ras > 0.4  # cortex and white matter (the ventricles lie inside)
        extent = np.array([np.ptp(np.flatnonzero(brain.any(axis=tuple(a for a in range(3)
                                                                         if a != ax))))
                           for ax in range(3)]) * spacing
        assert np.all(np.abs(extent - 2 * np.array([62, 75, 58])) < 20)  # each axis its own
        centre = tuple(n // 2 for n in ras.shape)
        dark = ras[centre[0], :, centre[2]] < 0.3  # CSF along the front-back line
        ventricles.append(dark[dark.size // 4: 3 * dark.size // 4].sum() * spacing[1])
    assert np.corrcoef(ages, ventricles)[0, 1] > 0.8  # the ventricles widen with age
