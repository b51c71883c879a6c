"""``.nii.gz`` files are inflated by ISA-L where it is installed, by the standard library
otherwise, with the same voxels; writing stays nibabel's."""

import sys

import nibabel as nib
import numpy as np
import pytest
from nibabel.openers import ImageOpener, Opener

from sklearn_dinoatten.volumes import read_scan, use_fast_gzip

NIBABEL_GZIP = Opener.compress_ext_map[".gz"]  # ImageOpener's copy is the one replaced


@pytest.fixture
def scan_file(tmp_path):
    volume = np.random.default_rng(0).integers(-500, 3000, size=(40, 30, 20), dtype=np.int16)
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.diag([0.9, 1.0, 1.2, 1.0])), path)
    return path, volume


def test_isal_and_the_standard_library_read_the_same_voxels(scan_file, monkeypatch):
    path, volume = scan_file
    assert use_fast_gzip()  # the test set-up installs isal
    assert getattr(ImageOpener.compress_ext_map[".gz"][0], "reads_with_isal", False)
    fast = read_scan(path)
    monkeypatch.setitem(ImageOpener.compress_ext_map, ".gz", NIBABEL_GZIP)
    monkeypatch.setitem(sys.modules, "isal", None)  # as if not installed
    assert not use_fast_gzip()
    assert ImageOpener.compress_ext_map[".gz"] == NIBABEL_GZIP
    plain = read_scan(path)
    np.testing.assert_array_equal(fast.voxels.numpy(), volume)
    np.testing.assert_array_equal(plain.voxels.numpy(), fast.voxels.numpy())
    assert plain.digest() == fast.digest()


def test_writing_stays_nibabels_deterministic_gzip(tmp_path, monkeypatch):
    image = nib.Nifti1Image(np.arange(60, dtype=np.int16).reshape(3, 4, 5), np.eye(4))
    use_fast_gzip()
    nib.save(image, tmp_path / "after.nii.gz")
    monkeypatch.setitem(ImageOpener.compress_ext_map, ".gz", NIBABEL_GZIP)
    nib.save(image, tmp_path / "before.nii.gz")
    assert (tmp_path / "after.nii.gz").read_bytes() == (tmp_path / "before.nii.gz").read_bytes()


def test_a_damaged_gzip_file_is_named(tmp_path):
    path = tmp_path / "damaged.nii.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    with pytest.raises(ValueError, match="damaged.nii.gz"):
        read_scan(path)
