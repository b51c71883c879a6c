"""Scans in millimetres: spacing-aware slices, foreground cropping, tri-planar bags and
nibabel images."""

import re
import warnings

import nibabel as nib
import numpy as np
import pytest
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.explain import volume_saliency
from sklearn_dinoatten.volumes import foreground_box, foreground_mask, resize_stack, spaced_slices

from .._helpers import FAST, save_nifti

FOV_MM = 64.0


def head(voxel_mm):
    """The same object, a 64 mm cube holding an ellipsoid with smooth texture and a blob,
    sampled at ``voxel_mm`` (voxel centres)."""
    n = int(round(FOV_MM / voxel_mm))
    x, y, z = np.meshgrid(*[(np.arange(n) + 0.5) * voxel_mm - FOV_MM / 2] * 3, indexing="ij")
    inside = (x / 24) ** 2 + (y / 20) ** 2 + (z / 16) ** 2 < 1
    texture = 1 + 0.5 * np.sin(x / 5) * np.cos(y / 7) + 0.3 * np.sin(z / 4)
    blob = 2 * np.exp(-((x - 8) ** 2 + (y + 5) ** 2 + (z - 3) ** 2) / 40)
    return (inside * (texture + blob)).astype(np.float32)


def backbone_inputs(embedder, volume, voxel_mm):
    reader = embedder.slice_reader()
    (slice_set,) = reader.slice_sets(volume, (voxel_mm,) * 3)
    return reader.backbone_input(slice_set)[:, 0].numpy()


@pytest.mark.parametrize("crop", ["none", "foreground"])
def test_the_same_object_at_three_resolutions_gives_the_same_bag(crop):
    embedder = DinoSliceEmbedder(slice_spacing=2.0, pixel_spacing=1.0, crop=crop, **FAST)
    embedder.set_params(image_size=56)
    inputs = {mm: backbone_inputs(embedder, head(mm), mm) for mm in (0.5, 1.0, 2.0)}
    lengths = [len(images) for images in inputs.values()]
    assert max(lengths) - min(lengths) <= 1
    n = min(lengths)
    for mm in (0.5, 2.0):  # against 1 mm, slice by slice, over the slices with anatomy
        a, b = inputs[mm][:n].ravel(), inputs[1.0][:n].ravel()
        assert np.corrcoef(a, b)[0, 1] >= 0.95, mm
    # Taken by index and resized to fit, the bags differ: 128, 64 and 32 slices.
    plain = DinoSliceEmbedder(**FAST)
    assert [len(backbone_inputs(plain, head(mm), mm)) for mm in (0.5, 1.0, 2.0)] == [
        128, 64, 32]


def test_spaced_slices_are_centred_and_millimetres_apart():
    np.testing.assert_array_equal(spaced_slices(10, 1.0, 3.0), [0, 3, 6, 9])
    np.testing.assert_array_equal(spaced_slices(11, 1.0, 3.0), [1, 4, 7, 10])
    np.testing.assert_array_equal(spaced_slices(5, 2.0, 1.0), [0, 1, 2, 3, 4])  # all


def test_a_padded_volume_embeds_as_the_volume():
    volume = head(2.0)
    padded = np.pad(volume, ((3, 9), (0, 5), (7, 2)))  # empty margins and empty slices
    embedder = DinoSliceEmbedder(crop="foreground", min_foreground=0.05, **FAST)
    out = embedder.fit_transform([volume, padded])
    np.testing.assert_array_equal(out[0], out[1])
    (axes, kept), (_, kept_padded) = map(embedder.kept_slices, (volume, padded))
    np.testing.assert_array_equal(kept_padded, kept + 7)  # the same slices, shifted
    assert len(kept) < volume.shape[2]  # slices without enough foreground dropped
    box = foreground_box(foreground_mask(volume), (1.0, 1.0, 1.0))
    assert box[2][0] < kept[0] and kept[-1] < box[2][1]


def test_defaults_embed_as_before(volume):
    """Slices by index, resized to fit: the preprocessing of earlier versions."""
    embedder = DinoSliceEmbedder(**FAST).fit([volume])
    images = resize_stack(np.moveaxis(volume, 2, 0), 28, method="minmax")  # every axial slice
    reader = embedder.slice_reader()
    (slice_set,) = reader.slice_sets(volume, (1.0, 1.0, 1.0))
    np.testing.assert_array_equal(reader.backbone_input(slice_set), images)
    encoder = embedder.slice_encoder()
    expected = next(encoder.encode([("v", images)]))[1]
    np.testing.assert_array_equal(embedder.transform([volume])[0], expected)
    assert "pixel_spacing" not in embedder._config_string()  # and so are the cache keys


def test_a_volume_without_enough_foreground_keeps_its_central_slice():
    volume = head(2.0)
    embedder = DinoSliceEmbedder(min_foreground=0.99, **FAST)
    with pytest.warns(UserWarning, match="no axial slice with a foreground share of 0.99"):
        axes, kept = embedder.kept_slices(volume)
    assert kept.tolist() == [16]


def test_tri_planar_bags_train_and_explain():
    X, y = make_volumes(n_samples=16, shape=(28, 28, 16), random_state=0)
    embedder = DinoSliceEmbedder(axis="all", n_slices=4, **FAST)
    model = make_pipeline(embedder, AttentionPoolClassifier(max_epochs=3, random_state=0))
    model.fit(X, y)
    bags = embedder.transform(X[:2])
    assert bags.shape == (2, 12, 384 + 3) and embedder.embedding_dim_ == 387
    np.testing.assert_array_equal(bags[0, :, -3:].argmax(axis=1), [2] * 4 + [1] * 4 + [0] * 4)
    weights = model[-1].attention_weights(bags)
    assert weights.shape == (2, 12)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    saliency = volume_saliency(model, X[:2])
    assert [s.shape for s in saliency] == [(28, 28, 16)] * 2
    assert all(s.max() > 0 for s in saliency)


def test_nibabel_images_carry_their_orientation_and_spacing(tmp_path):
    volume = head(2.0)
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])  # LAS, 2 mm
    image = nib.Nifti1Image(volume, affine)
    save_nifti(tmp_path / "v.nii.gz", volume, affine)
    embedder = DinoSliceEmbedder(slice_spacing=4.0, **FAST)
    from_image, from_file = embedder.fit_transform([image, str(tmp_path / "v.nii.gz")])
    np.testing.assert_array_equal(from_image, from_file)
    assert len(embedder.kept_slices(image)[1]) == 16  # every 4 mm of 32 slices 2 mm apart
    as_array = DinoSliceEmbedder(slice_spacing=4.0, spacing=(2.0, 2.0, 2.0), **FAST)
    np.testing.assert_array_equal(as_array.fit_transform([volume[::-1]])[0], from_image)


def test_mixed_spacings_warn_once_unless_the_options_are_set(tmp_path):
    save_nifti(tmp_path / "a.nii.gz", head(1.0), np.diag([1.0, 1, 1, 1]))
    save_nifti(tmp_path / "b.nii.gz", head(2.0), np.diag([2.0, 2, 2, 1]))
    paths = [str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz")]
    with pytest.warns(UserWarning, match=r"voxel sizes \[\(1.0, 1.0, 1.0\), \(2.0, 2.0, "
                                         r"2.0\)\] mm.*slice_spacing= and pixel_spacing="):
        DinoSliceEmbedder(**FAST).fit(paths)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DinoSliceEmbedder(slice_spacing=2.0, **FAST).fit(paths)


def test_a_field_of_view_narrower_than_the_foreground_warns_once(tmp_path):
    path = save_nifti(tmp_path / "a.nii.gz", head(2.0), np.diag([2.0, 2, 2, 1]))  # 48 mm wide
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DinoSliceEmbedder(pixel_spacing=1.0, **FAST).fit([path, path])
    said = [str(w.message) for w in caught if "backbone sees" in str(w.message)]
    assert len(said) == 1
    assert re.fullmatch(
        r"The backbone sees 28 x 28 mm of each slice \(image_size=28 x pixel_spacing=1 mm\), "
        r"and the foreground of volume .*a.nii.gz' spans 4[2-9] mm in its axial slices: "
        r"(1[4-9]|2[01]) mm of it is cut off at the edges. image_size=56 would hold it, "
        r"or pixel_spacing=1\.[5-8]\.", said[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the view holds it, or slices are resized to fit
        DinoSliceEmbedder(pixel_spacing=1.0, **{**FAST, "image_size": 56}).fit([path])
        DinoSliceEmbedder(pixel_spacing=2.0, **FAST).fit([path])
        DinoSliceEmbedder(**FAST).fit([path])


def test_pixel_spacing_has_its_own_cache_entries(volume):
    one = DinoSliceEmbedder(pixel_spacing=1.0, **FAST).fit_transform([volume])
    half = DinoSliceEmbedder(pixel_spacing=0.5, **FAST).fit_transform([volume])
    assert not np.array_equal(one, half)


def test_one_axis_estimators_refuse_a_tri_planar_embedder():
    from sklearn_dinoatten import FineTunedSliceClassifier
    from sklearn_dinoatten.anomaly import SpatialARAnomalyDetector

    tri_planar = DinoSliceEmbedder(axis="all", **FAST)
    with pytest.raises(ValueError, match="a DinoSliceEmbedder with one slicing axis"):
        SpatialARAnomalyDetector(embedder=tri_planar).fit(None)
    with pytest.raises(ValueError, match="and one slicing axis"):
        FineTunedSliceClassifier(embedder=tri_planar).fit(None, None)


def test_a_search_warns_of_the_field_of_view_once(tmp_path):
    """Before: once per fit, 22 times in a GridSearchCV."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    from sklearn_dinoatten import AttentionPoolClassifier

    paths = [save_nifti(tmp_path / f"s{i}.nii.gz", head(2.0), np.diag([2.0, 2, 2, 1]))
             for i in range(6)]
    search = GridSearchCV(make_pipeline(DinoSliceEmbedder(pixel_spacing=1.0, **FAST),
                                        AttentionPoolClassifier(max_epochs=1)),
                          {"attentionpoolclassifier__lr": [1e-3, 1e-2]}, cv=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search.fit(paths, [0, 1] * 3)
    assert len([w for w in caught if "backbone sees" in str(w.message)]) == 1
