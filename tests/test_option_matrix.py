"""Where options meet: every slicing option with every other keeps slices of the volume
and names the embedding's rows; a stored scan (NIfTI file or DICOM series) embeds as its
RAS values in each; attention and saliency land on the embedded slices only; every way
of embedding runs the fitted backbone and gives the serial result."""

import os
import re
import warnings

import nibabel as nib
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from nibabel.orientations import apply_orientation, io_orientation
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder, clear_memory_cache
from sklearn_dinoatten.anomaly import MemoryBankAnomalyDetector, SpatialARAnomalyDetector
from sklearn_dinoatten.datasets import write_dicom_series
from sklearn_dinoatten.embedding import _engines as engines
from sklearn_dinoatten.embedding import _slice_encoder as slice_encoder_module
from sklearn_dinoatten.explain import (
    in_plane_attention,
    saliency_from_parts,
    slice_attention,
    volume_saliency,
)
from sklearn_dinoatten.persistence import load_model, save_model
from sklearn_dinoatten.volumes import CROPS, axes_of, place_slices

from ._helpers import FAST, round_trip

AXIS_SETTINGS = ("axial", "coronal", "sagittal", "all", (0, 2))


def blob_volume(shape, low, high, seed=0):
    """Noise below a textured block from ``low`` to ``high`` (per axis): a foreground
    that may touch the volume's edges."""
    rng = np.random.default_rng(seed)
    volume = rng.normal(0, 0.05, size=shape).astype(np.float32)
    box = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
    volume[box] += 2 + rng.random(volume[box].shape)
    return volume


@st.composite
def volumes_and_options(draw):
    shape = tuple(draw(st.integers(4, 12)) for _ in range(3))
    low = [draw(st.integers(0, n - 2)) for n in shape]
    high = [draw(st.integers(lo + 1, n)) for lo, n in zip(low, shape, strict=True)]
    options = dict(
        axis=draw(st.sampled_from(AXIS_SETTINGS)),
        crop=draw(st.sampled_from(CROPS)),
        slice_spacing=draw(st.one_of(st.none(), st.floats(0.3, 4.0))),
        min_foreground=draw(st.sampled_from([0.0, 0.1, 0.5])),
        n_slices=draw(st.one_of(st.none(), st.integers(1, 6))),
        slice_selection=draw(st.sampled_from(["uniform", "center"])),
        spacing=tuple(draw(st.floats(0.5, 3.0)) for _ in range(3)),
    )
    return blob_volume(shape, low, high), options


@pytest.mark.filterwarnings("ignore:.*with a foreground share")
@settings(max_examples=150, deadline=None)
@given(volumes_and_options())
def test_kept_slices_lie_in_the_volume(case):
    """Before: a foreground box whose margin passed the edge kept slices -4 to -1, or
    past the last, and place_slices wrapped them onto the other end."""
    volume, options = case
    embedder = DinoSliceEmbedder(**FAST, **options)
    axes, kept = embedder.kept_slices(volume)
    assert len(axes) == len(kept) > 0
    for axis in axes_of(options["axis"]):
        mine = kept[axes == axis]
        assert len(mine) and 0 <= mine.min() and mine.max() < volume.shape[axis]
        assert (np.diff(mine) > 0).all()  # in order, each slice once
        if options["n_slices"] is not None:
            assert len(mine) <= options["n_slices"]
        placed = place_slices(np.ones((len(mine), *np.delete(volume.shape, axis))), mine,
                              volume.shape, axis)
        assert set(np.flatnonzero(placed.any(axis=tuple(np.delete([0, 1, 2], axis))))) == set(
            mine.tolist())
    plain = {k: v for k, v in options.items() if k != "axis"} == dict(
        crop="none", slice_spacing=None, min_foreground=0.0, n_slices=None,
        slice_selection=options["slice_selection"], spacing=options["spacing"])
    if plain:  # the defaults keep every slice
        assert len(kept) == sum(volume.shape[a] for a in axes_of(options["axis"]))


def test_place_slices_refuses_indices_outside_the_volume():
    with pytest.raises(ValueError, match=r"must lie in \[0, 5\)"):
        place_slices(np.ones((2, 3, 3)), [-1, 2], (3, 3, 5), 2)
    with pytest.raises(ValueError, match=r"must lie in \[0, 5\)"):
        place_slices(np.ones((1, 3, 3)), [5], (3, 3, 5), 2)


# A volume whose foreground touches its first and last axial slices and its left side
EDGE_VOLUME = blob_volume((24, 24, 16), (0, 4, 0), (16, 20, 16))
SLICING = [dict(), dict(crop="foreground"), dict(slice_spacing=2.0, min_foreground=0.2),
           dict(crop="foreground", slice_spacing=2.0, min_foreground=0.2)]


@pytest.fixture(scope="module")
def labelled_volumes():
    volumes = [EDGE_VOLUME, EDGE_VOLUME[::-1], blob_volume((24, 24, 16), (4, 4, 2),
                                                          (20, 20, 14), seed=1)]
    return volumes * 2, np.array([0, 1, 0, 1, 0, 1])


@pytest.mark.parametrize("axis", ["axial", "all"])
@pytest.mark.parametrize("feature", ["cls", "patch"])
@pytest.mark.parametrize("slicing", SLICING, ids=lambda s: "+".join(s) or "plain")
def test_rows_attention_and_saliency_follow_the_kept_slices(labelled_volumes, axis, feature,
                                                            slicing, fresh_cache):
    X, y = labelled_volumes
    model = make_pipeline(
        DinoSliceEmbedder(axis=axis, feature=feature, **FAST, **slicing),
        AttentionPoolClassifier(max_epochs=1, random_state=0)).fit(X, y)
    embedder = model[0]
    embeddings = embedder.transform(X[:1])
    axes, kept = embedder.kept_slices(X[0])
    real = ~np.isnan(embeddings[0]).all(axis=1)
    assert real.sum() == len(kept) * embedder.rows_per_slice_  # a row per slice (or patch)
    assert real[: real.sum()].all()  # the rows of the kept slices first, then padding
    weights = slice_attention(model, X[:1])[0]
    assert weights.shape == (embeddings.shape[1] // embedder.rows_per_slice_,)
    np.testing.assert_allclose(weights[: len(kept)].sum(), 1.0, rtol=1e-5)
    assert not weights[len(kept):].any()
    saliency = volume_saliency(model, X[:1])[0]
    maps, slice_sets = in_plane_attention(embedder, X[0])
    uniform = saliency_from_parts(np.ones(len(kept)), [np.ones_like(m) for m in maps],
                                  slice_sets, X[0].shape)
    for axis_index in set(axes.tolist()):  # saliency only on the slices embedded
        others = tuple(a for a in range(3) if a != axis_index)
        if len(axes_of(axis)) == 1:
            touched = np.flatnonzero(saliency.any(axis=others))
            assert set(touched) <= set(kept[axes == axis_index])
        covered = np.flatnonzero(uniform.any(axis=others))
        assert set(kept[axes == axis_index]) <= set(covered)


@pytest.fixture(scope="module", params=["nifti", "dicom"])
def stored_scan(request, tmp_path_factory):
    """EDGE_VOLUME stored as a scanner would: int16 with a slope and an intercept, LPS
    with anisotropic voxels, as a NIfTI file or a DICOM series (a file per slice, the
    names shuffled); and the RAS float32 values it holds."""
    folder = tmp_path_factory.mktemp("stored")
    # voxel sizes that float32 (the header's) holds exactly
    values, affine = EDGE_VOLUME * 300.0 + 40.0, np.diag([-0.875, -1.125, 1.5, 1.0])
    if request.param == "dicom":
        path, slope, intercept = str(folder / "series"), 0.125, -8.0
        write_dicom_series(path, values, affine, slope=slope, intercept=intercept,
                           random_state=0)
        stored = np.round((values - intercept) / slope) * slope + intercept
    else:
        path = str(folder / "scan.nii.gz")
        image = nib.Nifti1Image(values, affine)
        image.set_data_dtype(np.int16)  # nibabel picks the slope and intercept
        nib.save(image, path)
        stored = nib.load(path).get_fdata()
    ras = apply_orientation(stored.astype(np.float32), io_orientation(affine))
    return path, ras, (0.875, 1.125, 1.5)


@pytest.mark.parametrize("readers", [0, 2])
@pytest.mark.parametrize("axis", ["axial", "all"])
@pytest.mark.parametrize("slicing", SLICING, ids=lambda s: "+".join(s) or "plain")
def test_a_stored_scan_embeds_as_its_ras_values(stored_scan, slicing, axis, readers,
                                                 fresh_cache):
    """Readers send the voxels as stored; the device scales and reorients them: the
    embedding is that of the RAS values with the header's voxel size, in any slicing."""
    path, ras, voxel_size = stored_scan
    options = dict(FAST, axis=axis, spacing=voxel_size, **slicing)
    from_array = DinoSliceEmbedder(**options).fit([ras]).transform([ras])
    from_file = DinoSliceEmbedder(n_readers=readers, **options).fit([path]).transform([path])
    np.testing.assert_allclose(from_file, from_array, atol=1e-4, rtol=0)
    embedder = DinoSliceEmbedder(**options)
    for mine, theirs in zip(embedder.kept_slices(path), embedder.kept_slices(ras), strict=True):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("detector", [MemoryBankAnomalyDetector, SpatialARAnomalyDetector])
def test_anomaly_maps_of_a_foreground_at_the_edge_stay_on_its_slices(detector, fresh_cache):
    """Before: the slices of the crop's margin past the last slice raised IndexError."""
    model = detector(embedder=DinoSliceEmbedder(crop="foreground", **FAST))
    model.set_params(**({"max_epochs": 1} if "max_epochs" in model.get_params() else {}))
    model.fit([EDGE_VOLUME, EDGE_VOLUME[:, ::-1]])
    (anomaly_map,) = model.anomaly_map([EDGE_VOLUME[::-1]])
    _, kept = model.embedder_.kept_slices(EDGE_VOLUME[::-1])
    assert anomaly_map.shape == EDGE_VOLUME.shape
    assert set(np.flatnonzero(anomaly_map.any(axis=(0, 1)))) == set(kept.tolist())


@pytest.fixture(scope="module")
def loaded_embedder(tmp_path_factory):
    """An embedder fitted on a checkpoint file, saved and loaded where that file is
    gone: only its fitted backbone gives its embeddings."""
    folder = tmp_path_factory.mktemp("loaded")
    checkpoint = str(folder / "weights.pth")
    with torch.random.fork_rng():
        torch.manual_seed(1)
        module = DinoSliceEmbedder(**FAST).fit([EDGE_VOLUME]).backbone_
        for parameter in module.parameters():
            parameter.data.add_(0.02 * torch.randn_like(parameter))
    torch.save(module.state_dict(), checkpoint)
    embedder = DinoSliceEmbedder(weights=checkpoint, image_size=28, verbose=0)
    save_model(embedder.fit([EDGE_VOLUME]), folder / "embedder.safetensors")
    os.remove(checkpoint)
    return folder / "embedder.safetensors"


def centred_cosine(a, b):
    a, b = a - a.mean(0), b - b.mean(0)
    return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))


WAYS = {  # way of embedding -> its tolerance: float32 rounding, or a centred cosine
    "n_jobs=2": (dict(n_jobs=2), 1e-4),
    "n_readers=2": (dict(n_readers=2), 1e-4),
    "onnxruntime": (dict(engine="onnxruntime"), 1e-4),
    "onnxruntime, n_jobs=2": (dict(engine="onnxruntime", n_jobs=2), 1e-4),
    "int8": (dict(dtype="int8"), 0.99),
    "onnxruntime int8": (dict(engine="onnxruntime", dtype="int8"), 0.99),
    "bfloat16": (dict(dtype="bfloat16"), 0.999),
    "openvino": (dict(engine="openvino"), 1e-4),
    "openvino, n_jobs=2": (dict(engine="openvino", n_jobs=2), 1e-4),
    "openvino bfloat16": (dict(engine="openvino", dtype="bfloat16"), 0.999),
}
EACH_WAY = [pytest.param(way, marks=pytest.mark.skipif(
    way == "openvino bfloat16" and not engines.openvino_runs_bfloat16(),
    reason="OpenVINO runs bfloat16 only on CPUs with AVX-512 BF16 or AMX")) for way in WAYS]


@pytest.mark.parametrize("way", EACH_WAY)
def test_every_way_of_embedding_runs_the_fitted_backbone(loaded_embedder, way, tmp_path):
    X = [EDGE_VOLUME, EDGE_VOLUME[:, ::-1], EDGE_VOLUME[::-1]]
    clear_memory_cache()
    reference = load_model(loaded_embedder).transform(X)
    params, tolerance = WAYS[way]
    clear_memory_cache()
    embedder = load_model(loaded_embedder, cache_dir=tmp_path)  # how it runs, not refitted
    out = embedder.set_params(**params).transform(X)
    rows = reference.reshape(-1, reference.shape[-1])
    if tolerance < 0.5:
        np.testing.assert_allclose(out, reference, atol=tolerance, rtol=0)
    else:
        assert centred_cosine(out.reshape(rows.shape), rows) >= tolerance


@pytest.mark.parametrize("engine, slicing", [("onnxruntime", SLICING[3]),
                                             ("openvino", SLICING[1])],
                         ids=["onnxruntime-cropped-spaced", "openvino-cropped"])
def test_a_saved_model_on_an_exported_engine_predicts_and_explains(
        labelled_volumes, engine, slicing, tmp_path, fresh_cache):
    """Fitted, saved and loaded on each exported engine: the same probabilities and
    slice attention on the kept slices, and a saliency map of the volume's shape."""
    X, y = labelled_volumes
    model = make_pipeline(DinoSliceEmbedder(engine=engine, **FAST, **slicing),
                          AttentionPoolClassifier(max_epochs=1, random_state=0)).fit(X, y)
    loaded = round_trip(model, tmp_path)
    assert loaded[0].engine == engine
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    weights = slice_attention(loaded, X[:1])[0]
    np.testing.assert_array_equal(weights, slice_attention(model, X[:1])[0])
    assert not weights[len(loaded[0].kept_slices(X[0])[1]):].any()
    assert volume_saliency(loaded, X[:1])[0].shape == X[0].shape


@pytest.mark.parametrize("crop", CROPS)
@pytest.mark.parametrize("axis, cut", [("axial", True), ("coronal", False), ("sagittal", True),
                                       ("all", True), ((0, 2), True)])
def test_the_field_of_view_warning_looks_at_the_planes_the_axis_slices(axis, cut, crop):
    """A foreground 72 mm long in y only (8 mm across in x and z), in a 28 mm view: cut off
    in the planes that hold y (axial, sagittal), not in the coronal one; with any crop."""
    volume = blob_volume((20, 40, 20), low=(8, 1, 8), high=(12, 37, 12))
    embedder = DinoSliceEmbedder(axis=axis, crop=crop, spacing=(2.0, 2.0, 2.0),
                                 pixel_spacing=1.0, **FAST)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embedder.fit([volume])
    said = [str(w.message) for w in caught if "backbone sees" in str(w.message)]
    assert len(said) == cut
    if cut:
        assert re.search(r"spans 7\d mm in its (axial|sagittal) slices", said[0])


@pytest.mark.parametrize("axis, slicing, point", [
    ("axial", SLICING[3], dict(threshold="youden", recalibration="platt")),
    ("all", SLICING[1], dict(threshold=0.3, recalibration="isotonic")),
    ((0, 2), SLICING[2], dict(threshold="sensitivity=0.9")),
], ids=["axial-cropped-spaced-youden-platt", "all-cropped-isotonic", "two-axes-sensitivity"])
def test_a_saved_operating_point_meets_every_slicing(labelled_volumes, axis, slicing, point,
                                                      tmp_path, fresh_cache):
    """The operating point and recalibration over any slicing: saved and loaded, the same
    probabilities, calls and slice attention on the kept slices."""
    from sklearn_dinoatten import OperatingPointClassifier

    X, y = labelled_volumes
    model = make_pipeline(
        DinoSliceEmbedder(axis=axis, **FAST, **slicing), OperatingPointClassifier(
            estimator=AttentionPoolClassifier(max_epochs=1, random_state=0), pos_label=1,
            random_state=0, cv=2, **point))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch on 6 scans: maybe not recalibrated
        model.fit(X, y)
    loaded = round_trip(model, tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    called = model.predict_proba(X)[:, 1] >= model[-1].threshold_
    np.testing.assert_array_equal(model.predict(X), called.astype(int))
    weights = slice_attention(loaded, X[:1])[0]
    np.testing.assert_array_equal(weights, slice_attention(model, X[:1])[0])
    assert not weights[len(loaded[0].kept_slices(X[0])[1]):].any()


@pytest.mark.parametrize("axis, slicing, feature", [
    ("axial", SLICING[3], "cls"), ("all", SLICING[1], "patch"), ((0, 2), SLICING[2], "cls"),
], ids=["axial-cropped-spaced", "all-cropped-patches", "two-axes-spaced"])
def test_a_saved_regressor_meets_every_slicing(labelled_volumes, axis, slicing, feature,
                                               tmp_path, fresh_cache):
    """A regressor over any slicing and feature: saved and loaded, the same numbers and
    slice attention, on the kept slices only."""
    from sklearn_dinoatten import AttentionPoolRegressor

    X, _ = labelled_volumes
    ages = np.linspace(30.0, 80.0, len(X))
    model = make_pipeline(DinoSliceEmbedder(axis=axis, feature=feature, **FAST, **slicing),
                          AttentionPoolRegressor(max_epochs=2, random_state=0)).fit(X, ages)
    loaded = round_trip(model, tmp_path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    weights = slice_attention(loaded, X[:1])[0]
    np.testing.assert_array_equal(weights, slice_attention(model, X[:1])[0])
    kept = len(loaded[0].kept_slices(X[0])[1])
    np.testing.assert_allclose(weights[:kept].sum(), 1.0, rtol=1e-5)
    assert not weights[kept:].any()


# EDGE_VOLUME with empty slices around it along every axis, and one slice repeated
AIRY_VOLUME = np.pad(EDGE_VOLUME, 3)
AIRY_VOLUME[:, :, 10] = AIRY_VOLUME[:, :, 9]


def repeated_rows(embedder, embedding):
    """The rows of kept slices of the same axis and content (the empty ones, slices 9
    and 10), grouped (a slice's rows: its CLS token, or its patches)."""
    axes, kept = embedder.kept_slices(AIRY_VOLUME)
    per_slice = embedder.rows_per_slice_
    groups = {}
    for j, (axis, index) in enumerate(zip(axes, kept, strict=True)):
        content = np.moveaxis(AIRY_VOLUME, axis, 0)[index].tobytes()
        groups.setdefault((axis, content), []).append(
            embedding[0, j * per_slice:(j + 1) * per_slice])
    return [rows for rows in groups.values() if len(rows) > 1]


def every_slice_embedded(monkeypatch):
    """Embed as before repeated slices were embedded once."""
    monkeypatch.setattr(slice_encoder_module, "_distinct",
                        lambda images, repeats: repeats.append(None) or images)
    clear_memory_cache()


@pytest.mark.parametrize("axis", ["axial", "all"])
@pytest.mark.parametrize("feature", ["cls", "patch"])
@pytest.mark.parametrize("slicing", SLICING, ids=lambda s: "+".join(s) or "plain")
def test_repeated_slices_embedded_once_in_every_slicing(axis, feature, slicing, monkeypatch,
                                                         fresh_cache):
    """Empty slices share one forward; the embedding is every slice's, to rounding."""
    embedder = DinoSliceEmbedder(**FAST, axis=axis, feature=feature, **slicing)
    once = embedder.fit_transform([AIRY_VOLUME])
    groups = repeated_rows(embedder, once)
    assert groups or slicing.get("min_foreground")  # which drops the empty slices
    assert all(np.array_equal(rows[0], row) for rows in groups for row in rows[1:])
    every_slice_embedded(monkeypatch)
    np.testing.assert_allclose(once, embedder.transform([AIRY_VOLUME]), atol=1e-5)


@pytest.mark.parametrize("way", EACH_WAY)
def test_repeated_slices_share_one_row_in_every_way(loaded_embedder, way, tmp_path,
                                                     monkeypatch):
    """In every way of embedding, empty slices share a row, and the embedding is that
    way's of every slice (int8 quantises each batch's activations with its own scale,
    so there the batches' other slices count too)."""
    params, tolerance = WAYS[way]
    clear_memory_cache()
    embedder = load_model(loaded_embedder, cache_dir=tmp_path).set_params(**params)
    out = embedder.transform([AIRY_VOLUME])
    groups = repeated_rows(embedder, out)
    assert groups and all(np.array_equal(rows[0], row) for rows in groups for row in rows[1:])
    every_slice_embedded(monkeypatch)
    every = load_model(loaded_embedder, cache_dir=tmp_path / "every").set_params(
        **params).transform([AIRY_VOLUME])
    if tolerance < 0.5:
        np.testing.assert_allclose(out, every, atol=tolerance, rtol=0)
    else:
        assert centred_cosine(out[0], every[0]) >= tolerance
