"""Bad input, table-driven: each case of docs/user_guide/reliability.md, fed to every
public entry point that reads volumes, ends in the documented outcome (an error naming
the input, or a handled case with a warning)."""

import gzip
import re
import warnings

import nibabel as nib
import numpy as np
import pytest
import torch
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import (
    AttentionPoolClassifier,
    DinoSliceEmbedder,
    FineTunedSliceClassifier,
    VolumeResampler,
)
from sklearn_dinoatten.anomaly import MemoryBankAnomalyDetector, SpatialARAnomalyDetector
from sklearn_dinoatten.embedding import _cache as cache

from ._helpers import CLASSIFIERS, FAST, GOOD_SHAPE, classifier_inputs, save_nifti

ENTRY_POINTS = {
    "DinoSliceEmbedder": lambda X, y: DinoSliceEmbedder(**FAST).fit_transform(X),
    "embedder + AttentionPoolClassifier": lambda X, y: make_pipeline(
        DinoSliceEmbedder(**FAST), AttentionPoolClassifier(max_epochs=1)).fit(X, y),
    "VolumeResampler": lambda X, y: VolumeResampler(shape=(8, 8, 8)).fit_transform(X),
    "FineTunedSliceClassifier": lambda X, y: FineTunedSliceClassifier(
        embedder=DinoSliceEmbedder(n_slices=2, **FAST), max_epochs=1).fit(X, y),
    "SpatialARAnomalyDetector": lambda X, y: SpatialARAnomalyDetector(
        embedder=DinoSliceEmbedder(**FAST), max_epochs=1).fit(X),
    "MemoryBankAnomalyDetector": lambda X, y: MemoryBankAnomalyDetector(
        embedder=DinoSliceEmbedder(**FAST)).fit(X),
}
EMBEDS = {"DinoSliceEmbedder", "embedder + AttentionPoolClassifier",
          "SpatialARAnomalyDetector", "MemoryBankAnomalyDetector"}


def _good(seed):
    return np.random.default_rng(seed).normal(size=GOOD_SHAPE).astype(np.float32)


def _truncated(folder):
    path = save_nifti(folder / "truncated.nii.gz", _good(9))
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    return path


def _folder(folder):
    (folder / "scan.nii.gz").mkdir()
    return str(folder / "scan.nii.gz")


def _not_nifti(folder):
    path = folder / "notes.nii"
    path.write_text("patient notes, not an image\n")
    return str(path)


def _gzip_of_text(folder):
    path = folder / "text.nii.gz"
    path.write_bytes(gzip.compress(b"not an image"))
    return str(path)


def _four_d(folder):
    return save_nifti(folder / "series.nii.gz", np.random.default_rng(0).normal(
        size=(*GOOD_SHAPE, 3)).astype(np.float32))


def _voxels(value, where=None):
    volume = _good(9)
    if where is None:
        volume[:] = value
    else:
        volume[where] = value
    return volume


def _affine(folder, value):
    """A scan whose sform (the affine nibabel uses) is broken; its qform is unset."""
    affine = np.eye(4)
    affine[:3, :3] = value
    image = nib.Nifti1Image(_good(9), None)
    image.header.set_sform(affine, code="scanner")
    path = str(folder / "affine.nii.gz")
    image.to_filename(path)
    return path


def _huge_header(folder):
    """A .nii whose header claims 30000^3 voxels (dim[1:4] are int16 at byte 42)."""
    path = save_nifti(folder / "huge.nii", _good(9))
    data = bytearray(open(path, "rb").read())
    data[42:48] = np.array([30000] * 3, dtype="<i2").tobytes()
    open(path, "wb").write(bytes(data))
    return path


def _beyond_float32():
    volume = _good(9).astype(np.float64)
    volume[0, 0] = 1e300
    return volume


ERROR = "error"
WARNING = "warning"
HANDLED = "handled"

# case -> (make the bad volume, outcome, exception, message pattern). The bad volume is
# the last of five (index 4); files are named in the message, arrays by their index.
CASES = {
    "missing file": (lambda d: str(d / "missing.nii.gz"), ERROR, FileNotFoundError,
                     r"missing\.nii\.gz.*does not exist"),
    "folder named .nii.gz": (_folder, ERROR, FileNotFoundError,
                             r"scan\.nii\.gz' is a folder holding no files: neither a "
                             r"NIfTI file nor a DICOM series"),
    "truncated .nii.gz": (_truncated, ERROR, ValueError, r"truncated\.nii\.gz.*NIfTI"),
    "text file named .nii": (_not_nifti, ERROR, ValueError, r"notes\.nii.*NIfTI"),
    "gzipped text named .nii.gz": (_gzip_of_text, ERROR, ValueError, r"text\.nii\.gz.*NIfTI"),
    "4D file": (_four_d, ERROR, ValueError, r"series\.nii\.gz.* is 4D, 3 volumes"),
    "4D array": (lambda d: np.zeros((*GOOD_SHAPE, 3)), ERROR, ValueError,
                 r"index 4 .* not 3D"),
    "2D array among volumes": (lambda d: np.ones((20, 24)), ERROR, ValueError,
                               r"mixes images|index 4 .* not 3D"),
    "all-zero volume": (lambda d: _voxels(0.0), ERROR, ValueError, r"index 4 .*constant"),
    "constant volume": (lambda d: _voxels(7.5), ERROR, ValueError, r"index 4 .*constant"),
    "all-NaN volume": (lambda d: _voxels(np.nan), ERROR, ValueError,
                       r"index 4 .*contains 2880 NaN or infinite"),
    "NaN voxels": (lambda d: _voxels(np.nan, (0, 0)), ERROR, ValueError,
                   r"index 4 .*contains 6 NaN or infinite"),
    "infinite voxels": (lambda d: _voxels(np.inf, (1, 2, 3)), ERROR, ValueError,
                        r"index 4 .*contains 1 NaN or infinite"),
    "zero affine": (lambda d: _affine(d, 0.0), ERROR, ValueError,
                    r"affine\.nii\.gz.*affine \(sform/qform\) has a zero or degenerate"),
    "NaN affine": (lambda d: _affine(d, np.nan), ERROR, ValueError,
                   r"affine\.nii\.gz.*affine \(sform/qform\) has NaN or infinite entries"),
    "header claiming 30000^3 voxels": (_huge_header, ERROR, ValueError,
                                       r"huge\.nii.*claims 30000 x 30000 x 30000 voxels, "
                                       r"1.01e\+05 GiB as float32, more than this machine"),
    "float64 beyond float32's range": (lambda d: _beyond_float32(),
                                       ERROR, ValueError, r"index 4 .*values up to 1e\+300, "
                                       r"beyond float32's range"),
    "a float64 file beyond float32's range": (
        lambda d: save_nifti(d / "big.nii.gz", _beyond_float32()), ERROR, ValueError,
                                              r"big\.nii\.gz.*values up to 1e\+300"),
    "slices thinner than a patch": (lambda d: _good(9)[:, :5], WARNING, UserWarning,
                                    r"index 4 .*20 x 5 voxels.*thinner than one 14-pixel"),
    "one-slice volume": (lambda d: _good(9)[..., :1], HANDLED, None, None),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_bad_volume(tmp_path, fresh_cache, entry, case):
    make, outcome, exception, pattern = CASES[case]
    X = [_good(i) for i in range(4)] + [make(tmp_path)]
    y = np.array([0, 1, 0, 1, 1])
    run = ENTRY_POINTS[entry]
    if outcome == ERROR:
        with pytest.raises(exception, match=pattern):
            run(X, y)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(X, y)
    warned = [w for w in caught if re.search(pattern or "$^", str(w.message))]
    # The thin-slice warning comes from the embedder; the others resample the volume.
    assert len(warned) == (1 if outcome == WARNING and entry in EMBEDS else 0)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_empty_list(entry):
    with pytest.raises(ValueError, match="X is empty"):
        ENTRY_POINTS[entry]([], np.array([]))


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_generator_is_not_taken_for_an_empty_list(entry):
    """fit would use it up, and transform would see nothing."""
    with pytest.raises(ValueError, match="X is a generator, which can be read only once"):
        ENTRY_POINTS[entry]((_good(i) for i in range(4)), np.array([0, 1, 0, 1]))


def test_a_bad_array_is_named_by_its_index_after_earlier_calls(fresh_cache):
    """The volumes found in the cache are skipped, not renumbered."""
    embedder = DinoSliceEmbedder(**FAST).fit([_good(0)])
    embedder.transform([_good(0), _good(1)])
    with pytest.raises(ValueError, match="array at index 2 .* contains 6 NaN"):
        embedder.transform([_good(0), _good(1), _voxels(np.nan, (0, 0))])


def test_nan_embeddings_from_damaged_weights_name_the_volume(fresh_cache):
    embedder = DinoSliceEmbedder(**FAST).fit([_good(0)])
    with torch.no_grad():
        embedder.backbone_.norm.weight[0] = np.nan  # the final norm
    with pytest.raises(ValueError, match="NaN or infinite embeddings for volume array at "
                                         "index 0 .*weights are damaged.*Nothing was cached"):
        embedder.transform([_good(0)])
    assert len(cache._MEMORY) == 0


def test_a_single_path_is_not_a_list(tmp_path):
    path = save_nifti(tmp_path / "one.nii.gz", _good(0))
    with pytest.raises(ValueError, match="single path.*wrap it in a list"):
        DinoSliceEmbedder(**FAST).fit_transform(path)


def test_a_one_slice_volume_gives_one_embedding_row_and_padding(fresh_cache):
    out = DinoSliceEmbedder(**FAST).fit_transform([_good(0), _good(1)[..., :1]])
    assert (~np.isnan(out[1]).all(axis=1)).sum() == 1


def test_a_size_one_fourth_axis_is_a_3d_volume(tmp_path, fresh_cache):
    path = save_nifti(tmp_path / "v.nii.gz", _good(0)[..., None])
    assert nib.load(path).ndim == 4
    embedder = DinoSliceEmbedder(**FAST)
    np.testing.assert_array_equal(embedder.fit_transform([path]),
                                  embedder.transform([_good(0)]))


# Labels, for every classifier ---------------------------------------------------------

@pytest.mark.parametrize("name", CLASSIFIERS)
def test_one_class_in_y(name):
    with pytest.raises(ValueError, match=r"y has only one class \('a'\)"):
        CLASSIFIERS[name]().fit(classifier_inputs(name, 4), np.array(["a"] * 4))


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_string_labels_come_back_as_strings(name):
    X, y = classifier_inputs(name, 6), np.array(["healthy", "tumour"] * 3)
    model = CLASSIFIERS[name]().fit(X, y)
    assert model.classes_.tolist() == ["healthy", "tumour"]
    assert set(model.predict(X)) <= {"healthy", "tumour"}


@pytest.mark.parametrize("name", ["AttentionPoolClassifier", "SliceTransformerClassifier",
                                  "SCMILClassifier"])
def test_nan_inside_an_embedding_row(name):
    X = classifier_inputs(name, 4)
    X[2, 1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN inside a slice embedding"):
        CLASSIFIERS[name]().fit(X, [0, 1, 0, 1])


@pytest.mark.parametrize("name", ["AttentionPoolClassifier", "SCMILClassifier"])
def test_early_stopping_with_a_one_sample_class(name):
    model = CLASSIFIERS[name]().set_params(early_stopping=True)
    with pytest.raises(ValueError, match=r"early_stopping.*class 2 has 1 sample"):
        model.fit(classifier_inputs(name, 7), [0, 1, 0, 1, 0, 1, 2])


def test_a_one_sample_class_in_cross_validation(fresh_cache):
    """scikit-learn warns about the split; the fold missing the class trains on the
    classes it has and the fold's score is NaN with scikit-learn's warning."""
    X, y = classifier_inputs("AttentionPoolClassifier", 11), np.array([0, 1] * 5 + [2])
    with pytest.warns(UserWarning, match="least populated class in y has only 1 member"):
        scores = cross_val_score(AttentionPoolClassifier(max_epochs=2, random_state=0), X, y,
                                 cv=StratifiedKFold(3), scoring="accuracy")
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("shape, said", [((32, 32), r"is not 3D: it has shape \(32, 32\)"),
                                         ((20, 24, 6, 2), "is 4D, 2 volumes")],
                         ids=["2D file", "4D file"])
def test_a_file_that_is_not_a_volume_is_refused_before_any_embedding(tmp_path, fresh_cache,
                                                                      shape, said):
    """From its header, by fit and before transform embeds any scan (before: after every
    scan before it was embedded, 1 min 40 s into a study)."""
    rng = np.random.default_rng(0)
    scans = [save_nifti(tmp_path / f"s{i}.nii.gz", rng.normal(size=GOOD_SHAPE))
             for i in range(3)]
    odd = save_nifti(tmp_path / "odd.nii.gz", rng.normal(size=shape))
    with pytest.raises(ValueError, match=f"odd.nii.gz' {said}"):
        DinoSliceEmbedder(**FAST).fit([*scans, odd])
    embedder = DinoSliceEmbedder(**FAST, cache_dir=tmp_path / "cache").fit(scans)
    with pytest.raises(ValueError, match=f"odd.nii.gz' {said}"):
        embedder.transform([*scans, odd])
    assert not list((tmp_path / "cache").rglob("*.npz"))  # nothing embedded (entries: .npz)
    with pytest.raises(ValueError, match=f"odd.nii.gz' {said}"):
        VolumeResampler().fit([*scans, odd])
