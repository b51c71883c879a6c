import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder, clear_memory_cache
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.embedding import _run as embedding_module
from sklearn_dinoatten.embedding import _slice_encoder as slice_encoder_module

from .._helpers import FAST, save_nifti


@pytest.fixture
def volumes():
    X, _ = make_volumes(n_samples=3, shape=(24, 20, 12), random_state=0)
    return X


def test_output_shape_dtype_and_padding(fast_embedder, volumes):
    short = volumes[1][:, :, :7]
    out = fast_embedder.fit_transform([volumes[0], short])
    assert out.shape == (2, 12, 384) and out.dtype == np.float32
    assert np.isfinite(out[0]).all() and np.isfinite(out[1, :7]).all()
    assert np.isnan(out[1, 7:]).all()  # padding rows


def test_n_slices_pads_a_thin_volume(volumes):
    embedder = DinoSliceEmbedder(n_slices=10, slice_selection="center", **FAST)
    out = embedder.fit_transform([volumes[0], volumes[1][:, :, :4]])
    assert out.shape == (2, 10, 384)
    assert np.isnan(out[1, 4:]).all() and np.isfinite(out[1, :4]).all()
    full = DinoSliceEmbedder(**FAST).fit_transform(volumes[:1])
    np.testing.assert_allclose(out[0], full[0, 1:11], atol=1e-5)  # the 10 central of 12


@pytest.mark.parametrize("feature, dim", [("cls", 384), ("mean", 384), ("cls+mean", 768)])
def test_features(volumes, feature, dim):
    embedder = DinoSliceEmbedder(feature=feature, **FAST).fit(volumes)
    out = embedder.transform(volumes[:1])
    assert out.shape == (1, 12, dim) and embedder.embedding_dim_ == dim


def test_cls_plus_mean_concatenates(volumes):
    cls = DinoSliceEmbedder(feature="cls", **FAST).fit_transform(volumes[:1])
    mean = DinoSliceEmbedder(feature="mean", **FAST).fit_transform(volumes[:1])
    both = DinoSliceEmbedder(feature="cls+mean", **FAST).fit_transform(volumes[:1])
    np.testing.assert_allclose(both, np.concatenate([cls, mean], axis=2), atol=1e-6)


def test_batch_size_does_not_change_embeddings(volumes, fresh_cache):
    one = DinoSliceEmbedder(batch_size=1, **FAST).fit_transform(volumes)
    clear_memory_cache()
    many = DinoSliceEmbedder(batch_size=7, **FAST).fit_transform(volumes)
    np.testing.assert_allclose(one, many, atol=1e-5)


def test_batches_span_volumes(counting_backbone, volumes):
    module, calls = counting_backbone
    embedder = DinoSliceEmbedder(backbone=module, image_size=28, batch_size=32, verbose=0)
    embedder.fit_transform(volumes)
    assert calls == [32, 4]  # 3 volumes x 12 slices, packed across volume boundaries


def test_kept_slices_name_the_rows_of_the_embedding(tmp_path, volume):
    embedder = DinoSliceEmbedder(axis="coronal", n_slices=5, slice_selection="center", **FAST)
    save_nifti(tmp_path / "v.nii.gz", volume)  # RAS: read back as it is
    axes, kept = embedder.kept_slices(volume)
    np.testing.assert_array_equal(kept, [9, 10, 11, 12, 13])  # the centre 5 of 24
    np.testing.assert_array_equal(axes, [1] * 5)
    np.testing.assert_array_equal(embedder.kept_slices(str(tmp_path / "v.nii.gz"))[1], kept)
    (slice_set,) = embedder.slice_reader().slice_sets(volume, (1.0, 1.0, 1.0))
    np.testing.assert_array_equal(slice_set.indices, kept)
    np.testing.assert_array_equal(slice_set.stack, np.moveaxis(volume, 1, 0)[kept])
    np.testing.assert_array_equal(embedder.kept_slices(volume[:, :, 0])[1], [0])  # an image
    assert len(embedder.set_params(axis="axial", n_slices=None).kept_slices(volume)[1]) == 10
    axes, kept = embedder.set_params(axis="all").kept_slices(volume)
    assert axes.tolist() == [2] * 10 + [1] * 24 + [0] * 20  # axial, coronal, sagittal
    assert kept.tolist() == [*range(10), *range(24), *range(20)]


def test_paths_and_arrays_embed_the_same(tmp_path, volumes):
    paths = [save_nifti(tmp_path / f"v{i}.nii.gz", v) for i, v in enumerate(volumes)]
    embedder = DinoSliceEmbedder(**FAST).fit(paths)
    np.testing.assert_array_equal(embedder.transform(paths), embedder.transform(volumes))


@pytest.mark.parametrize("axis, n", [("sagittal", 24), ("coronal", 20), ("axial", 12), (0, 24)])
def test_axis_sets_the_slice_count(volumes, axis, n):
    assert DinoSliceEmbedder(axis=axis, **FAST).fit_transform(volumes[:1]).shape[1] == n


def test_each_volume_is_embedded_once_across_cv_and_grid_search(counting_backbone):
    module, calls = counting_backbone
    X, y = make_volumes(n_samples=20, shape=(16, 16, 6), random_state=0)
    pipe = make_pipeline(
        DinoSliceEmbedder(backbone=module, image_size=28, verbose=0),
        AttentionPoolClassifier(max_epochs=2, random_state=0),
    )
    cross_val_score(pipe, X, y, cv=StratifiedKFold(5), scoring="roc_auc")
    assert sum(calls) == 20 * 6
    GridSearchCV(pipe, {"attentionpoolclassifier__lr": [1e-3, 1e-2, 1e-1]}, cv=3).fit(X, y)
    assert sum(calls) == 20 * 6  # every grid point and fold reused the embeddings


def test_disk_cache_survives_the_process_memory(tmp_path, counting_backbone, volumes):
    module, calls = counting_backbone
    embedder = DinoSliceEmbedder(backbone=module, image_size=28, cache_dir=tmp_path, verbose=0)
    first = embedder.fit_transform(volumes)
    clear_memory_cache()
    again = clone(embedder).fit_transform(volumes)
    assert sum(calls) == 3 * 12
    np.testing.assert_array_equal(first, again)


def test_a_tri_planar_bag_is_embedded_once(tmp_path, counting_backbone, volumes):
    module, calls = counting_backbone
    embedder = DinoSliceEmbedder(backbone=module, image_size=28, axis="all", cache_dir=tmp_path,
                                 verbose=0)
    first = embedder.fit_transform(volumes)
    np.testing.assert_array_equal(embedder.transform(volumes), first)  # from memory
    clear_memory_cache()
    np.testing.assert_array_equal(embedder.transform(volumes), first)  # from cache_dir
    assert sum(calls) == 3 * (24 + 20 + 12)
    assert len(list(tmp_path.glob("*/*.npz"))) == 3 * 3  # an entry per orientation


def test_other_preprocessing_is_not_served_from_cache(counting_backbone, volumes):
    module, calls = counting_backbone
    DinoSliceEmbedder(backbone=module, image_size=28, verbose=0).fit_transform(volumes)
    DinoSliceEmbedder(backbone=module, image_size=28, normalization="zscore",
                      verbose=0).fit_transform(volumes)
    assert sum(calls) == 2 * 3 * 12


def test_damaged_disk_entry_is_recomputed(tmp_path, counting_backbone, volumes):
    module, calls = counting_backbone
    embedder = DinoSliceEmbedder(backbone=module, image_size=28, cache_dir=tmp_path, verbose=0)
    first = embedder.fit_transform(volumes[:1])
    (entry,) = tmp_path.glob("*/*.npz")
    entry.write_bytes(entry.read_bytes()[:100])
    clear_memory_cache()
    np.testing.assert_array_equal(embedder.transform(volumes[:1]), first)
    assert sum(calls) == 2 * 12


def test_pipeline_with_memory_and_clone(tmp_path):
    X, y = make_volumes(n_samples=8, shape=(16, 16, 4), random_state=0)
    pipe = make_pipeline(DinoSliceEmbedder(**FAST), AttentionPoolClassifier(max_epochs=2),
                         memory=str(tmp_path))
    assert clone(pipe).fit(X, y).predict(X).shape == (8,)
    assert pipe.get_params()["dinosliceembedder__image_size"] == 28
    pipe.set_params(dinosliceembedder__n_slices=3)
    assert pipe.steps[0][1].n_slices == 3


def test_progress_bar(monkeypatch, capsys):
    monkeypatch.setattr(embedding_module, "PROGRESS_DELAY_S", 0)
    X, _ = make_volumes(n_samples=5, shape=(16, 16, 4), random_state=0)
    DinoSliceEmbedder(weights="random", image_size=28, verbose=1).fit_transform(X)
    assert "Embedding volumes" in capsys.readouterr().err
    DinoSliceEmbedder(**FAST).fit_transform(X)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(image_size=30), "image_size=30 is not a multiple"),
        (dict(image_size=0), "image_size must be an integer >= 1"),
        (dict(normalization="histeq"), "normalization must be one of"),
        (dict(feature="pooled"), "feature must be one of"),
        (dict(slice_selection="random"), "slice_selection must be one of"),
        (dict(n_slices=0), "n_slices must be None or an integer >= 1"),
        (dict(axis="up"), "axis must be one of"),
        (dict(batch_size=2.5), "batch_size must be an integer >= 1"),
        (dict(device="tpu"), "device must be"),
    ],
)
def test_bad_parameters_raise_in_fit(volumes, params, message):
    embedder = DinoSliceEmbedder(**{**FAST, **params})  # __init__ accepts anything
    with pytest.raises(ValueError, match=message):
        embedder.fit(volumes)


def test_bad_inputs_name_the_input(fast_embedder, volumes, tmp_path):
    fast_embedder.fit(volumes)
    with pytest.raises(FileNotFoundError, match="nope.nii.gz"):
        fast_embedder.transform([str(tmp_path / "nope.nii.gz")])
    with pytest.raises(ValueError, match="index 1 .* not 3D"):
        fast_embedder.transform([volumes[0], np.zeros((4, 4, 4, 2))])
    with pytest.raises(ValueError, match="mixes images"):
        fast_embedder.transform([volumes[0], np.ones((4, 4))])
    bad = volumes[0].copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="index 0 .* NaN"):
        fast_embedder.transform([bad])
    with pytest.raises(ValueError, match="constant"):
        fast_embedder.transform([np.zeros((8, 8, 3))])


def test_fitted_pipeline_pickles(tmp_path, fresh_cache):
    import joblib

    X, y = make_volumes(n_samples=8, shape=(16, 16, 4), random_state=0)
    pipe = make_pipeline(DinoSliceEmbedder(**FAST), AttentionPoolClassifier(max_epochs=2))
    pipe.fit(X, y)
    joblib.dump(pipe, tmp_path / "pipe.joblib")
    clear_memory_cache()  # the loaded pipeline must embed again, with the same backbone
    loaded = joblib.load(tmp_path / "pipe.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))


def test_patch_tokens_of_volumes_and_images(volumes):
    embedder = DinoSliceEmbedder(feature="patch", weights="random", image_size=56, verbose=0)
    out = embedder.fit(volumes).transform([volumes[0], volumes[1][:, :, :5]])
    assert embedder.grid_shape_ == (4, 4) and out.shape == (2, 12 * 16, 384)
    assert np.isfinite(out[1, : 5 * 16]).all() and np.isnan(out[1, 5 * 16:]).all()
    image = embedder.transform([volumes[0][:, :, 3]])  # a 2D image is a one-slice volume
    assert image.shape == (1, 16, 384)
    np.testing.assert_allclose(image[0], out[0, 3 * 16: 4 * 16], atol=1e-5)
    cls = DinoSliceEmbedder(**FAST).fit(volumes).transform([volumes[0][:, :, 3]])
    assert cls.shape == (1, 1, 384)


def test_pickling_leaves_the_fitted_embedder_working(tmp_path, fresh_cache):
    embedder = DinoSliceEmbedder(**FAST).fit([np.zeros((20, 24, 3), np.float32)])
    joblib.dump(embedder, tmp_path / "embedder.joblib")  # once took its forward function
    volume = np.random.default_rng(1).normal(size=(20, 24, 3)).astype(np.float32)
    assert embedder.transform([volume]).shape == (1, 3, 384)
    np.testing.assert_array_equal(joblib.load(tmp_path / "embedder.joblib").transform([volume]),
                                  embedder.transform([volume]))


@pytest.fixture
def head_in_air():
    """A volume whose axial slices 0-3 and 12-15 are empty (air around a head) and whose
    slice 7 repeats slice 6."""
    volume = np.random.default_rng(0).normal(size=(24, 24, 16)).astype(np.float32)
    volume[:, :, :4] = volume[:, :, 12:] = 0
    volume[:, :, 7] = volume[:, :, 6]
    return volume


def embed_every_slice(monkeypatch, **params):
    """Embeddings as they were before repeated slices were embedded once."""
    monkeypatch.setattr(slice_encoder_module, "_distinct",
                        lambda images, repeats: repeats.append(None) or images)
    clear_memory_cache()
    return DinoSliceEmbedder(**params).fit_transform


def test_repeated_slices_are_embedded_once_to_the_same_bits(counting_backbone, head_in_air,
                                                           monkeypatch):
    module, calls = counting_backbone
    params = dict(backbone=module, image_size=28, batch_size=1, verbose=0)
    once = DinoSliceEmbedder(**params).fit_transform([head_in_air])
    assert sum(calls) == 1 + 7  # one empty slice, slices 4 to 11 less the repeat
    calls.clear()
    every = embed_every_slice(monkeypatch, **params)([head_in_air])
    assert sum(calls) == 16
    np.testing.assert_array_equal(once, every)  # one slice a forward: the same bits
    np.testing.assert_array_equal(once[0, 0], once[0, 15])


@pytest.mark.parametrize("feature", ["cls", "patch"])
def test_repeated_slices_in_batches_change_nothing_but_rounding(head_in_air, monkeypatch,
                                                                feature, fresh_cache):
    X = [head_in_air, head_in_air[::-1]]
    once = DinoSliceEmbedder(feature=feature, **FAST).fit_transform(X)
    every = embed_every_slice(monkeypatch, feature=feature, **FAST)(X)
    np.testing.assert_allclose(once, every, atol=1e-5)  # as another batch size would
