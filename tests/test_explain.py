import matplotlib
import numpy as np
import pytest
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import (
    AttentionPoolClassifier,
    DinoSliceEmbedder,
    SliceTransformerClassifier,
)
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.explain import (
    in_plane_attention,
    plot_saliency,
    saliency_from_parts,
    slice_attention,
    volume_saliency,
)
from sklearn_dinoatten.volumes import SliceSet

from ._helpers import FAST, CountingViT, save_nifti

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def planted():
    """A fitted DinoAtten3D pipeline and the signal's voxels of each volume."""
    kwargs = dict(n_samples=24, shape=(32, 32, 12), return_signal=True, random_state=0)
    X, y, signal = make_volumes(**kwargs)
    clean, _, _ = make_volumes(noise=0.0, **kwargs)  # same draws, no noise: blob mask
    model = make_pipeline(
        DinoSliceEmbedder(weights="random", image_size=112, verbose=0),
        AttentionPoolClassifier(max_epochs=20, random_state=0),
    ).fit(X, y)
    blobs = [volume > 1.5 for volume in clean]
    return model, X, y, signal, blobs


def test_saliency_peaks_inside_the_planted_signal(planted):
    model, X, y, signal, blobs = planted
    positives = np.flatnonzero(y == 1)
    saliency = volume_saliency(model, [X[i] for i in positives])
    for i, volume_saliency_ in zip(positives, saliency, strict=True):
        assert volume_saliency_.shape == X[i].shape
        peak = np.unravel_index(np.argmax(volume_saliency_), X[i].shape)
        assert peak[2] in signal[i]  # the slice the classifier attends to most
        assert blobs[i][peak]  # and, within it, a voxel of the planted blob


def test_slice_attention_is_the_classifiers(planted):
    model, X, *_ = planted
    weights = slice_attention(model, X[:3])
    expected = model[-1].attention_weights(model[0].transform(X[:3]))
    np.testing.assert_array_equal(weights, expected)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("axis", ["axial", "coronal"])
def test_in_plane_attention_follows_slice_geometry(axis):
    volume = make_volumes(n_samples=2, shape=(20, 30, 12), random_state=0)[0][0]
    embedder = DinoSliceEmbedder(axis=axis, n_slices=5, **FAST).fit([volume])
    (maps,), (slices,) = in_plane_attention(embedder, volume)
    depth = {"axial": 12, "coronal": 30}[axis]
    in_plane = {"axial": (20, 30), "coronal": (20, 12)}[axis]
    assert maps.shape == (5, *in_plane)
    np.testing.assert_array_equal(slices.indices, np.round(np.linspace(0, depth - 1, 5)))
    assert np.isfinite(maps).all() and maps.min() >= 0
    np.testing.assert_allclose(maps.max(axis=(1, 2)), 1.0)


def test_saliency_from_parts_places_weighted_maps():
    maps = np.ones((2, 4, 5))
    coronal = SliceSet(axis=1, indices=np.array([1, 3]), stack=maps, region=((0, 4), (0, 5)),
                       pixel_size=(1.0, 1.0))
    coronal_only = saliency_from_parts([0.25, 0.75, 0.0], [maps], [coronal], (4, 6, 5))
    assert coronal_only.shape == (4, 6, 5)
    np.testing.assert_array_equal(coronal_only.sum(axis=(0, 2)), [0, 5, 0, 15, 0, 0])
    # A cropped region of a tri-planar bag: maps land where their slices came from.
    axial = SliceSet(axis=2, indices=np.array([4]), stack=np.ones((1, 2, 3)),
                     region=((-1, 1), (2, 5)), pixel_size=(1.0, 1.0))
    saliency = saliency_from_parts([0.25, 0.75, 0.5], [maps, np.ones((1, 2, 3))],
                                   [coronal, axial], (4, 6, 5))
    added = saliency - coronal_only
    assert added.sum() == 0.5 * 3  # x = 0 only: x = -1 lies outside the volume
    assert added[0, 2:5, 4].tolist() == [0.5, 0.5, 0.5]


def test_mst_saliency_has_the_volume_shape():
    X, y = make_volumes(n_samples=8, shape=(28, 28, 6), random_state=0)
    model = make_pipeline(DinoSliceEmbedder(**FAST),
                          SliceTransformerClassifier(max_epochs=2, random_state=0)).fit(X, y)
    saliency = volume_saliency(model, X[:2])
    assert [s.shape for s in saliency] == [(28, 28, 6)] * 2
    assert all(np.isfinite(s).all() and s.max() > 0 for s in saliency)


def test_in_plane_attention_needs_a_vision_transformer():
    volume = make_volumes(n_samples=2, shape=(28, 28, 4), random_state=0)[0][0]
    embedder = DinoSliceEmbedder(backbone=CountingViT(), image_size=28, verbose=0).fit([volume])
    with pytest.raises(ValueError, match="needs a timm vision transformer"):
        in_plane_attention(embedder, volume)


def test_plot_saliency_shows_the_most_salient_slices():
    volume = make_volumes(n_samples=2, shape=(16, 16, 10), random_state=0)[0][0]
    saliency = np.zeros(volume.shape)
    saliency[:, :, [2, 7]] = 1.0
    figure = plot_saliency(volume, saliency, n_slices=2, foreground=False)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[:4] == ["axial slice 2 of 10 (inferior → superior)", "saliency",
                          "axial slice 7 of 10 (inferior → superior)", "saliency"]
    assert figure.axes[-1].get_ylabel() == "relative saliency, 0 to max of this scan"
    overlays_only = plot_saliency(volume, saliency, n_slices=2, raw=False)
    assert [ax.get_title() for ax in overlays_only.axes][:2] == titles[:4:2]
    with pytest.raises(ValueError, match="saliency has shape"):
        plot_saliency(volume, saliency[:, :, :5])
    with pytest.raises(ValueError, match="axes must hold 2 per slice"):
        plot_saliency(volume, saliency, n_slices=2, axes=overlays_only.axes[:2])
    matplotlib.pyplot.close("all")


@pytest.mark.parametrize("axis, index, sides, corner", [
    ("axial", 0, "LRPA", (0, 11)),  # bottom right: P and R
    ("coronal", 0, "LRIS", (0, 11)),  # bottom right: I and R
    ("sagittal", 11, "PAIS", (0, 0)),  # bottom left: I and P
])
def test_plot_saliency_names_the_patient_sides(tmp_path, axis, index, sides, corner):
    """A file in LPS orientation, bright in the patient's right, posterior, inferior
    corner: drawn at the edges whose letters name those sides."""
    data = np.zeros((12, 14, 10), dtype=np.float32)
    data[0, -1, 0] = 1.0  # LPS: x = 0 is the right side, y = -1 the posterior one
    path = save_nifti(tmp_path / "lps.nii.gz", data, affine=np.diag([-1.0, -1.0, 1.0, 1.0]))
    figure = plot_saliency(path, np.ones(data.shape), axis=axis, slices=[index], raw=False,
                           foreground=False)
    ax = figure.axes[0]
    assert "".join(t.get_text() for t in ax.texts) == sides  # left, right, bottom, top
    image = ax.images[0]
    assert image.origin == "lower"  # row 0 at the bottom, column 0 at the left
    assert tuple(np.argwhere(image.get_array() == 1.0)[0]) == corner  # (row, column)
    matplotlib.pyplot.close("all")


def test_plot_saliency_leaves_the_background_untinted():
    volume = np.zeros((20, 20, 6), dtype=np.float32)
    volume[5:15, 5:15] = 1.0
    volume += np.random.default_rng(0).normal(scale=0.05, size=volume.shape)
    volume[2, 2, 3], volume[10, 10, 3] = 1.0, 0.0  # a bright speck outside, a hole inside
    figure = plot_saliency(volume, np.ones(volume.shape), slices=[3], raw=False)
    opacity = figure.axes[0].images[1].get_array()[..., 3]  # the overlay's alpha
    assert (opacity[6:14, 6:14] > 0).all()  # inside the square (its corners may go)
    opacity[5:15, 5:15] = 0
    assert (opacity == 0).all()  # the noisy background
    matplotlib.pyplot.close("all")
