import numpy as np
import pytest

from sklearn_dinoatten.datasets import make_volumes


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
