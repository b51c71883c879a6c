"""The batching engine alone: no estimator, no files, no cache."""

import numpy as np
import pytest
import torch

from sklearn_dinoatten.embedding import FEATURES, SliceEncoder


class Tokens:
    """A stand-in backbone: a CLS token (the image mean) and one token per pixel row,
    the row's mean over channels, widened to 4 features; records each batch size."""

    def __init__(self):
        self.batches = []

    def __call__(self, images):
        self.batches.append(len(images))
        rows = images.mean(dim=(1, 3))[:, :, None] * torch.arange(1.0, 5.0)
        cls = images.mean(dim=(1, 2, 3))[:, None, None].expand(-1, 1, 4)
        return torch.cat([cls, rows], dim=1)


def stacks(sizes, side=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [(f"v{i}", torch.rand(n, 1, side, side, generator=generator))
            for i, n in enumerate(sizes)]


@pytest.mark.parametrize("feature", FEATURES)
def test_batching_across_volumes_gives_each_volume_its_own_embedding(feature):
    volumes = stacks([5, 1, 7, 3])
    batched = Tokens()
    encoder = SliceEncoder(batched, num_prefix_tokens=1, feature=feature, batch_size=4)
    together = dict(encoder.encode(volumes))
    assert batched.batches == [4, 4, 4, 4]  # 16 slices, batches full across volumes
    for key, images in volumes:
        alone = next(SliceEncoder(Tokens(), num_prefix_tokens=1, feature=feature,
                                  batch_size=64).encode([(key, images)]))
        assert alone[0] == key
        np.testing.assert_allclose(together[key], alone[1], rtol=1e-6)
        expected_shape = {"patch": (len(images), 3, 4), "cls+mean": (len(images), 8)}
        assert together[key].shape == expected_shape.get(feature, (len(images), 4))
        assert together[key].dtype == np.float32


def test_volumes_come_out_in_order_one_batch_behind_the_device():
    seen = []

    def source():
        for key, images in stacks([2, 2, 5, 3]):
            seen.append(key)
            yield key, images

    encoder = SliceEncoder(Tokens(), num_prefix_tokens=1, batch_size=4)
    out = encoder.encode(source())
    # v0 and v1 fill the first batch; they come out once the second (v2's) is launched,
    # before v3 is read
    assert next(out)[0] == "v0" and seen == ["v0", "v1", "v2"]
    assert next(out)[0] == "v1" and [key for key, _ in out] == ["v2", "v3"]


def test_minmax_slices_get_the_imagenet_normalisation():
    images = torch.full((1, 1, 2, 2), 0.5)
    def tokens(x):
        return x.flatten(2).transpose(1, 2)

    raw = SliceEncoder(tokens, num_prefix_tokens=0, feature="mean",
                       normalization="zscore").forward([images])
    normalised = SliceEncoder(tokens, num_prefix_tokens=0, feature="mean").forward([images])
    np.testing.assert_allclose(raw, [[0.5, 0.5, 0.5]])
    np.testing.assert_allclose(normalised, [[(0.5 - 0.485) / 0.229, (0.5 - 0.456) / 0.224,
                                             (0.5 - 0.406) / 0.225]], rtol=1e-5)
