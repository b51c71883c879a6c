import numpy as np
import pytest

from sklearn_dinoatten.volumes import load_volume
from sklearn_dinoatten.volumes._scans import check_axis, check_volumes, select_slices

from .._helpers import save_nifti


def test_nifti_is_reoriented_to_ras(tmp_path, volume):
    # Stored left-right flipped (x axis pointing left): loading must flip it back.
    lps_affine = np.diag([-1.0, 1.0, 1.0, 1.0])
    path = save_nifti(tmp_path / "flipped.nii.gz", volume[::-1], lps_affine)
    np.testing.assert_array_equal(load_volume(path), volume)


def test_reorientation_matches_nibabel_canonical(tmp_path, volume):
    import nibabel as nib

    # Axes stored as (z, x, y) with a flip and a shift: permuted and mirrored.
    affine = np.array([[0, 2.0, 0, 5], [0, 0, -1.5, 3], [1.2, 0, 0, -7], [0, 0, 0, 1]])
    path = save_nifti(tmp_path / "oblique.nii.gz", volume, affine)
    expected = nib.as_closest_canonical(nib.load(path)).get_fdata()
    np.testing.assert_array_equal(load_volume(path), expected)


def test_an_array_of_paths_is_a_list_of_volumes(tmp_path, volume):
    paths = np.array([save_nifti(tmp_path / f"v{i}.nii", volume) for i in range(2)])
    assert check_volumes(paths) == list(paths)


def test_nifti_and_array_load_the_same(tmp_path, volume):
    path = save_nifti(tmp_path / "v.nii", volume)
    loaded = load_volume(path)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, volume)


def test_trailing_singleton_dimension_is_dropped(volume):
    assert load_volume(volume[..., None]).shape == volume.shape


@pytest.mark.parametrize(
    "name, axis", [("sagittal", 0), ("coronal", 1), ("axial", 2), (1, 1), (-1, 2)]
)
def test_axis_names(name, axis):
    assert check_axis(name) == axis


@pytest.mark.parametrize("bad", ["top", 3, 1.5, None])
def test_bad_axis(bad):
    with pytest.raises(ValueError, match="axis must be one of"):
        check_axis(bad)


def test_select_slices():
    np.testing.assert_array_equal(select_slices(10), np.arange(10))
    np.testing.assert_array_equal(select_slices(10, 4, "center"), [3, 4, 5, 6])
    np.testing.assert_array_equal(select_slices(10, 4, "uniform"), [0, 3, 6, 9])
    np.testing.assert_array_equal(select_slices(3, 5, "uniform"), [0, 1, 2])  # caller pads


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        check_volumes(["missing.nii.gz"])
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        load_volume("missing.nii.gz")


def test_unreadable_file_names_it(tmp_path):
    path = tmp_path / "not_nifti.nii.gz"
    path.write_bytes(b"this is not a NIfTI file")
    with pytest.raises(ValueError, match="not_nifti.nii.gz"):
        load_volume(str(path))


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((4, 5)), "not 3D"),
        (np.zeros((4, 5, 6, 2)), "is 4D, 2 volumes of shape \\(4, 5, 6\\)"),
        (np.full((4, 5, 6), np.nan), "NaN or infinite"),
        (np.where(np.eye(4)[:, :, None] > 0, np.inf, 1.0) * np.ones((4, 4, 3)), "NaN or infinite"),
        (np.ones((4, 5, 6)), "constant"),
        (np.array([[["a"]]]), "dtype"),
    ],
)
def test_bad_volumes_raise(bad, message):
    with pytest.raises(ValueError, match=message):
        load_volume(bad, index=3)


def test_check_volumes_rejects_bad_containers(volume):
    with pytest.raises(ValueError, match="empty"):
        check_volumes([])
    with pytest.raises(ValueError, match="single path"):
        check_volumes("scan.nii.gz")
    with pytest.raises(ValueError, match="index 1 .* not 3D"):
        check_volumes([volume, np.zeros((3, 3))])
    assert len(check_volumes(np.stack([volume, volume]))) == 2  # a 4D batch is fine
