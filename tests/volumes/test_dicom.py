"""A DICOM series is read as the volume it was written from: slices ordered by their
position, the geometry from the headers, LPS turned to RAS; what is not one volume is
refused in one line."""

import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from sklearn_dinoatten import DinoSliceEmbedder
from sklearn_dinoatten.datasets import find_scans, load_nifti_folder, write_dicom_series
from sklearn_dinoatten.embedding import _reading as reading_module
from sklearn_dinoatten.volumes import check_volumes, load_scan, read_scan, voxel_size_of

from .._helpers import FAST, save_nifti

SHAPE = (20, 24, 10)
# Voxel -> RAS affines of the scans written: a scanner's usual axial LPS, RAS, sagittal
# and coronal acquisitions (slices along x, along y), and an oblique one.
ANGLE = np.deg2rad(20)
OBLIQUE = np.array([[np.cos(ANGLE), 0, np.sin(ANGLE)], [0, 1, 0],
                    [-np.sin(ANGLE), 0, np.cos(ANGLE)]])
AFFINES = {
    "axial LPS": np.array([[-0.9, 0, 0, 50], [0, -1.1, 0, 30], [0, 0, 2.5, -20], [0, 0, 0, 1]]),
    "axial RAS": np.diag([1.0, 1.2, 3.0, 1.0]),
    "sagittal": np.array([[0, 0, 1.5, -30], [1, 0, 0, -10], [0, -1, 0, 40], [0, 0, 0, 1]]),
    "coronal": np.array([[-1, 0, 0, 0], [0, 0, 2, -5], [0, -1.2, 0, 8], [0, 0, 0, 1]]),
    "oblique": np.block([[OBLIQUE @ np.diag([1.0, 1.0, 2.0]), np.array([[3], [4], [5]])],
                         [np.zeros((1, 3)), np.ones((1, 1))]]),
}


@pytest.fixture(scope="module")
def volume():
    rng = np.random.default_rng(0)
    data = rng.integers(-200, 1200, size=SHAPE).astype(np.float64)
    data[5:15, 6:18, 2:8] += 800  # a bright block, so that orientation errors show
    return data


def twins(tmp_path, volume, affine, **options):
    """A series and the NIfTI file of the same volume and affine."""
    series = tmp_path / "series"
    write_dicom_series(series, volume, affine, random_state=0, **options)
    return str(series), save_nifti(tmp_path / "twin.nii.gz", volume.astype(np.float32), affine)


@pytest.mark.parametrize("name", list(AFFINES))
@pytest.mark.parametrize("multiframe", [False, True], ids=["files", "multiframe"])
def test_a_series_reads_as_its_nifti_twin(tmp_path, volume, name, multiframe):
    series, twin = twins(tmp_path, volume, AFFINES[name], multiframe=multiframe)
    data, voxel_size = load_scan(series)
    expected, expected_size = load_scan(twin)
    np.testing.assert_array_equal(data, expected)
    np.testing.assert_allclose(voxel_size, expected_size, rtol=1e-6)
    # the same grid in space, its slices counted along their normal (maybe reversed)
    np.testing.assert_allclose(canonical_affine(read_scan(series).affine, SHAPE),
                               canonical_affine(AFFINES[name], SHAPE), atol=1e-6)
    assert voxel_size_of(series) == pytest.approx(voxel_size)


def canonical_affine(affine, shape):
    return nib.as_closest_canonical(nib.Nifti1Image(np.zeros(shape, np.int8), affine)).affine


def test_an_independent_reader_reads_the_same_ras_volume(tmp_path, volume):
    sitk = pytest.importorskip("SimpleITK")
    series, _ = twins(tmp_path, volume, AFFINES["oblique"])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(series))
    sitk.WriteImage(reader.Execute(), str(tmp_path / "itk.nii.gz"))
    itk = nib.as_closest_canonical(nib.load(tmp_path / "itk.nii.gz"))
    data, _ = load_scan(series)
    np.testing.assert_array_equal(data, itk.get_fdata())
    np.testing.assert_allclose(read_scan(series).affine, itk.affine, atol=1e-4)


def test_the_rescale_slope_and_intercept_give_the_values(tmp_path, volume):
    series, _ = twins(tmp_path, volume, AFFINES["axial LPS"], slope=0.5, intercept=-1024)
    scan = read_scan(series)
    assert (scan.slope, scan.intercept) == (0.5, -1024.0)
    assert scan.voxels.dtype.is_floating_point is False  # stored as int16, scaled later
    np.testing.assert_array_equal(load_scan(series)[0], load_scan(
        save_nifti(tmp_path / "t.nii", volume.astype(np.float32), AFFINES["axial LPS"]))[0])


def test_a_slope_per_slice_is_applied_slice_by_slice(tmp_path, volume):
    series, _ = twins(tmp_path, volume, AFFINES["axial RAS"])
    files = sorted(os.listdir(series))
    for k, name in enumerate(files):
        ds = pydicom.dcmread(os.path.join(series, name))
        ds.RescaleSlope, ds.RescaleIntercept = str(k + 1), str(-k)
        ds.save_as(os.path.join(series, name))
    data, _ = load_scan(series)
    for name in files:
        ds = pydicom.dcmread(os.path.join(series, name))
        k = int(round((ds.ImagePositionPatient[2]) / 3.0))  # slice k lies at z = 3k mm
        np.testing.assert_allclose(data[:, :, k], ds.pixel_array.T * float(ds.RescaleSlope)
                                   + float(ds.RescaleIntercept), rtol=1e-6)


def test_a_series_embeds_as_its_nifti_twin_and_is_cached(tmp_path, volume, monkeypatch,
                                                          fresh_cache):
    series, twin = twins(tmp_path, volume, AFFINES["axial LPS"])
    embedder = DinoSliceEmbedder(**FAST).fit([series])
    embeddings = embedder.transform([series])
    np.testing.assert_allclose(embeddings, embedder.transform([twin]), atol=1e-5)
    reads = []
    read = reading_module.read_scan
    monkeypatch.setattr(reading_module, "read_scan",
                        lambda v, *a, **k: reads.append(v) or read(v, *a, **k))
    np.testing.assert_array_equal(embedder.transform([series]), embeddings)
    assert reads == []  # the same series read twice: found without reading it
    copy = shutil.copytree(series, tmp_path / "copy")
    np.testing.assert_array_equal(embedder.transform([str(copy)]), embeddings)
    assert reads == [str(copy)]  # a copy is read, and its content found in the cache


def test_a_labels_file_and_a_folder_list_series(tmp_path, volume):
    for name in ("a", "b"):
        write_dicom_series(tmp_path / "dicom" / name, volume, AFFINES["axial LPS"])
    save_nifti(tmp_path / "c.nii.gz", volume.astype(np.float32))
    (tmp_path / "labels.csv").write_text("path,label\ndicom/a,0\ndicom/b,1\nc.nii.gz,1\n")
    paths, y, _, _ = load_nifti_folder(tmp_path)
    assert [os.path.basename(p) for p in paths] == ["a", "b", "c.nii.gz"]
    assert find_scans(tmp_path) == [str(tmp_path / "c.nii.gz"), str(tmp_path / "dicom" / "a"),
                                    str(tmp_path / "dicom" / "b")]
    check_volumes(paths)


def write_two_series(tmp_path, volume):
    """A folder holding a volume's series and a localiser of one slice."""
    folder = tmp_path / "mixed"
    write_dicom_series(folder, volume, AFFINES["axial LPS"], series_uid="1.2.3.4",
                       description="T1 MPRAGE")
    write_dicom_series(tmp_path / "loc", volume[:, :, :3], AFFINES["coronal"],
                       series_uid="1.2.3.5", description="localiser")
    for name in os.listdir(tmp_path / "loc"):
        shutil.copy(tmp_path / "loc" / name, folder / f"loc_{name}")
    return folder


def test_a_folder_of_two_series_is_refused_naming_them_and_one_can_be_chosen(tmp_path,
                                                                              volume):
    folder = write_two_series(tmp_path, volume)
    with pytest.raises(ValueError, match=r"holds 2 series: 1\.2\.3\.4 \(T1 MPRAGE, 10 files\); "
                       r"1\.2\.3\.5 \(localiser, 3 files\)\. Choose one: give the path "
                       r"FOLDER/<SeriesInstanceUID> \(e\.g\. '.*mixed/1\.2\.3\.4'\)"):
        load_scan(str(folder))
    data, _ = load_scan(str(folder / "1.2.3.4"))
    np.testing.assert_array_equal(data, load_scan(twins(tmp_path, volume,
                                                        AFFINES["axial LPS"])[1])[0])
    with pytest.raises(ValueError, match=r"holds no series 1\.2\.3\.9; it holds 1\.2\.3\.4"):
        load_scan(str(folder / "1.2.3.9"))


def edit(series, change):
    """Apply ``change(k, dataset)`` to each file of a series, k in slice order."""
    files = sorted(os.listdir(series),
                   key=lambda n: pydicom.dcmread(os.path.join(series, n)).ImagePositionPatient[2])
    for k, name in enumerate(files):
        ds = pydicom.dcmread(os.path.join(series, name))
        if change(k, ds) is not False:
            ds.save_as(os.path.join(series, name))
        else:
            os.remove(os.path.join(series, name))


def shift(k, ds, dx=0.0, dz=0.0):
    x, y, z = map(float, ds.ImagePositionPatient)
    ds.ImagePositionPatient = [str(x + dx), str(y), str(z + dz)]


@pytest.mark.parametrize("change, message", [
    (lambda k, ds: False if k == 4 else None,
     r"a gap of 6 mm where slices are 3 mm apart \(about 1 missing slice\(s\)\), between "
     r"file 'IM\d+.dcm' and file 'IM\d+.dcm'"),
    (lambda k, ds: shift(k, ds, dz=1.0) if k >= 6 else None,
     r"a gap of 4 mm where slices are 3 mm apart"),
    (lambda k, ds: shift(k, ds, dx=0.5 * k),
     r"each slice is shifted 0\.5 mm in-plane .* tilted gantry"),
    (lambda k, ds: shift(k, ds, dz=-3.0) if k == 5 else None,
     r"lie at the same position \(12\.00 mm along the slice normal\): several echoes"),
    (lambda k, ds: setattr(ds, "ImageOrientationPatient", ["0", "1", "0", "0", "0", "-1"])
     if k == 0 else None, r"its slices lie in 2 different orientations \(a localiser"),
    (lambda k, ds: setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", "LOCALIZER"]),
     r"is a localiser \(ImageType"),
    (lambda k, ds: delattr(ds, "ImagePositionPatient") if k == 2 else None,
     r"has no ImagePositionPatient, so where its slices lie is unknown"),
    (lambda k, ds: False if k else None, r"has a single slice: a 2D image, not a volume"),
])
def test_what_is_not_one_volume_is_refused_in_one_line(tmp_path, volume, change, message):
    series, _ = twins(tmp_path, volume, AFFINES["axial RAS"])
    edit(series, change)
    with pytest.raises(ValueError, match=r"^DICOM series '.*series'[: ].*" + message) as info:
        load_scan(series)
    assert "\n" not in str(info.value)


def test_files_that_are_not_dicom_are_refused(tmp_path, volume):
    series, twin = twins(tmp_path, volume, AFFINES["axial RAS"])
    shutil.copy(twin, os.path.join(series, "notes.nii.gz"))
    with pytest.raises(ValueError, match=r"file 'notes.nii.gz' is not DICOM"):
        load_scan(series)
    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"is a folder holding no files: neither"):
        load_scan(str(tmp_path / "empty"))


def bundled(name):
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom's test file {name} is not installed")
    return path


def series_of(tmp_path, name, n_slices=4):
    """A series made of one of pydicom's bundled slices, repeated at 2 mm steps."""
    folder = tmp_path / name.replace(".dcm", "")
    folder.mkdir()
    for k in range(n_slices):
        ds = pydicom.dcmread(bundled(name))
        x, y, z = map(float, ds.ImagePositionPatient)
        ds.ImagePositionPatient = [str(x), str(y), str(z + 2 * k)]
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{k}"
        ds.save_as(folder / f"{k}.dcm")
    return str(folder)


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm",
                                  "MR_small_jpeg_ls_lossless.dcm", "MR_small_bigendian.dcm",
                                  "MR_small_implicit.dcm"])
def test_pydicoms_own_files_in_every_transfer_syntax_read_alike(tmp_path, name):
    pytest.importorskip("pylibjpeg")
    reference, voxel_size = load_scan(series_of(tmp_path, "MR_small.dcm"))
    data, _ = load_scan(series_of(tmp_path, name))
    assert reference.shape == (64, 64, 4)
    np.testing.assert_allclose(voxel_size[2], 2.0)
    np.testing.assert_array_equal(data, reference)


def test_pydicoms_single_slice_and_colour_files_are_refused(tmp_path):
    folder = tmp_path / "ct"
    folder.mkdir()
    shutil.copy(bundled("CT_small.dcm"), folder)
    with pytest.raises(ValueError, match="has a single slice: a 2D image"):
        load_scan(str(folder))
    folder = tmp_path / "rgb"
    folder.mkdir()
    shutil.copy(bundled("SC_rgb_rle_2frame.dcm"), folder)
    with pytest.raises(ValueError, match="holds colour images"):
        load_scan(str(folder))


def test_a_compressed_series_without_the_plugins_names_the_extra(tmp_path):
    series = series_of(tmp_path, "MR_small_jp2klossless.dcm")
    hide = ("import sys\nfor name in ('pylibjpeg', 'openjpeg', 'libjpeg', 'rle', 'gdcm', "
            "'PIL'):\n    sys.modules[name] = None\n")
    read = f"from sklearn_dinoatten.volumes import load_scan\nload_scan({series!r})\n"
    result = subprocess.run([sys.executable, "-c", hide + read], capture_output=True,
                            text=True, timeout=120)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0
    assert last.startswith("ValueError: DICOM series") and (
        "is compressed (JPEG 2000 Image Compression (Lossless Only)), which needs pylibjpeg's "
        "plugins: pip install 'sklearn-dinoatten[dicom]'.") in last


def test_one_enhanced_file_is_a_scan_and_a_file_named_by_a_uid_is_not_a_selection(
        tmp_path, volume):
    series, twin = twins(tmp_path, volume, AFFINES["sagittal"], multiframe=True)
    (file,) = os.listdir(series)
    named = os.path.join(series, "1.2.826.0.1.3680043.2.1125")  # named as SOPInstanceUIDs are
    os.rename(os.path.join(series, file), named)
    for path in (series, named):
        np.testing.assert_array_equal(load_scan(path)[0], load_scan(twin)[0])
    assert voxel_size_of(named) == pytest.approx(load_scan(twin)[1])
    check_volumes([named])


def test_a_series_whose_headers_show_it_is_no_volume_is_refused_before_any_reading(
        tmp_path, volume, monkeypatch, fresh_cache):
    good, _ = twins(tmp_path, volume, AFFINES["axial RAS"])
    bad = write_two_series(tmp_path, volume)
    reads = []
    read = reading_module.read_scan
    monkeypatch.setattr(reading_module, "read_scan",
                        lambda v, *a, **k: reads.append(v) or read(v, *a, **k))
    with pytest.raises(ValueError, match=r"mixed' holds 2 series"):
        DinoSliceEmbedder(**FAST).fit_transform([good, str(bad)])
    assert reads == []


def test_a_stray_file_before_the_slices_is_named_not_skipped(tmp_path, volume):
    series, _ = twins(tmp_path, volume, AFFINES["axial RAS"])
    with open(os.path.join(series, "00README.TXT"), "w") as f:
        f.write("exported by a CD burner\n")
    assert find_scans(tmp_path) == [str(tmp_path / "twin.nii.gz"), series]
    with pytest.raises(ValueError, match=r"file '00README.TXT' is not DICOM"):
        check_volumes([series])
