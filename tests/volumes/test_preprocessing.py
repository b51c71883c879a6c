import numpy as np
import pytest
import torch

from sklearn_dinoatten.volumes import IMAGENET_MEAN, IMAGENET_STD, normalize_intensity, to_channels
from sklearn_dinoatten.volumes._preprocessing import to_backbone_input


def test_minmax_scales_each_slice_to_unit_range():
    rng = np.random.default_rng(0)
    stack = rng.normal(size=(3, 8, 8)) * np.array([1, 10, 100])[:, None, None]
    out = normalize_intensity(stack, method="minmax")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.min(axis=(1, 2)), 0, atol=1e-6)
    np.testing.assert_allclose(out.max(axis=(1, 2)), 1, atol=1e-6)


def test_minmax_constant_slice_is_zero():
    stack = np.stack([np.full((4, 4), 7.0), np.arange(16.0).reshape(4, 4)])
    out = normalize_intensity(stack, method="minmax")
    assert np.all(out[0] == 0) and np.isfinite(out).all()


def test_zscore_clips_outliers_then_standardises():
    rng = np.random.default_rng(0)
    stack = rng.normal(size=(4, 16, 16))
    stack[0, 0, 0] = 1e6
    out = normalize_intensity(stack, method="zscore")
    assert out.dtype == np.float32
    assert abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-4
    assert out.max() < 5  # the outlier was clipped to the 99.5th percentile


def test_unknown_normalization():
    with pytest.raises(ValueError, match="normalization must be one of"):
        normalize_intensity(np.zeros((1, 2, 2)), method="histeq")


def test_backbone_input_shape_channels_and_imagenet_stats():
    stack = np.zeros((2, 10, 30), dtype=np.float32)
    stack[:, :, 15:] = 1.0
    images = to_backbone_input(stack, 28, "minmax")
    assert images.shape == (2, 3, 28, 28) and images.dtype == torch.float32
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    # Recover [0, 1] intensities: all three channels carry the same gray image.
    gray = images * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)
    torch.testing.assert_close(gray[:, 0], gray[:, 2], atol=1e-5, rtol=0)
    # A 10 x 30 slice padded to 30 x 30: the top and bottom thirds are background (0).
    assert gray[:, :, :8].abs().max() < 1e-5 and gray[:, :, -8:].abs().max() < 1e-5
    assert gray[:, :, 14, -5:].min() > 0.99  # the bright right half is kept in place


def test_zscore_input_skips_imagenet_stats():
    rng = np.random.default_rng(1)
    images = to_backbone_input(rng.normal(size=(3, 28, 28)), 28, "zscore")
    assert abs(images.mean().item()) < 1e-4  # no ImageNet shift was added


def test_channels_take_the_backbones_mean_and_std():
    gray = torch.full((1, 1, 2, 2), 0.75)
    channels = to_channels(gray, method="minmax", mean=(0.5, 0.25, 0.0), std=(0.25, 0.5, 1.0))
    torch.testing.assert_close(channels[0, :, 0, 0], torch.tensor([1.0, 1.0, 0.75]))
    assert torch.equal(to_channels(gray, method="zscore", mean=(0.5,) * 3, std=(0.25,) * 3)[0, :,
                                                                                            0, 0],
                       torch.full((3,), 0.75))  # z-scored slices are left as they are
