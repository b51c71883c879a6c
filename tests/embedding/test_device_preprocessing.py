"""Readers only decode; the embedding device scales, reorients, slices, normalises and
resizes. Its backbone input and embeddings equal those of the earlier path, written out
here as the oracle: nibabel's float32 voxels reoriented to RAS, then numpy
normalisation and padding on the CPU, and torch's antialiased bilinear resize."""

import itertools

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from nibabel.orientations import apply_orientation, io_orientation

from sklearn_dinoatten import DinoSliceEmbedder, clear_memory_cache
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.volumes import read_scan

from .._helpers import FAST

# storage and orientation vary on purpose here
pytestmark = [pytest.mark.filterwarnings("ignore:The volumes have voxel sizes"),
              pytest.mark.filterwarnings("ignore:.*thinner than one")]

FLOAT32_ATOL = 1e-4  # the embedder's stated float32 tolerance (docs/user_guide/speed.md)
INPUT_ATOL = 1e-5  # backbone input: minmax in [0, 1], z-scores of a few units

STORAGE = {  # name: (dtype on disk, byte order, affine); "scaled": nibabel's slope/inter
    "int16, RAS": (np.int16, "<", np.diag([1.0, 1.0, 2.0, 1.0])),
    "int16 scaled, LPS": ("scaled", "<", np.diag([-0.8, -1.0, 2.5, 1.0])),
    "float64, permuted": (np.float64, "<", np.array([[0, 0, 1.5, 0], [-1.0, 0, 0, 0],
                                                     [0, 1.2, 0, 0], [0, 0, 0, 1]])),
    "uint16, big-endian": (np.uint16, ">", np.diag([1.1, -0.9, 1.0, 1.0])),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    X, _ = make_volumes(n_samples=2, shape=(30, 22, 12), random_state=0)
    folder = tmp_path_factory.mktemp("storage")
    padded = np.zeros((34, 22, 12))
    padded[2:32] = X[0] * 900 + 1200  # positive for uint16; an empty margin to crop
    paths = {}
    for name, (dtype, order, affine) in STORAGE.items():
        header = nib.Nifti1Header(endianness=order)
        if dtype == "scaled":  # floats stored as int16 with a slope and an intercept
            image = nib.Nifti1Image(padded / 7.3 - 50, affine, header)
            image.set_data_dtype(np.int16)
        else:
            image = nib.Nifti1Image(padded.astype(dtype), affine, header)
        paths[name] = str(folder / f"{name.replace(', ', '_').replace(' ', '_')}.nii.gz")
        nib.save(image, paths[name])
    scan = read_scan(paths["int16 scaled, LPS"])
    assert scan.voxels.dtype == torch.int16 and scan.slope != 1.0  # what it claims
    assert nib.load(paths["uint16, big-endian"]).get_data_dtype().byteorder == ">"
    return paths


def oracle_inputs(path, embedder):
    """The earlier path's backbone input, per slicing axis."""
    image = nib.load(path)
    data = apply_orientation(image.get_fdata(dtype=np.float32), io_orientation(image.affine))
    reader = embedder.slice_reader()
    inputs = []
    for kept in reader.slice_sets(data, read_scan(path).voxel_size):
        stack = kept.stack.astype(np.float32)
        if embedder.normalization == "minmax":
            low = stack.min(axis=(1, 2), keepdims=True)
            span = stack.max(axis=(1, 2), keepdims=True) - low
            stack = np.divide(stack - low, span, out=np.zeros_like(stack), where=span > 0)
        else:
            low, high = np.percentile(stack, (0.5, 99.5))
            stack = np.clip(stack, low, high)
            stack = (stack - stack.mean(dtype=np.float64)) / stack.std(dtype=np.float64)
        stack = torch.from_numpy(stack.astype(np.float32))[:, None]
        size = embedder.image_size
        if embedder.pixel_spacing is None:
            n, _, h, w = stack.shape
            side = max(h, w)
            square = torch.full((n, 1, side, side), float(stack.min()))
            top, left = (side - h) // 2, (side - w) // 2
            square[:, :, top:top + h, left:left + w] = stack
            inputs.append(F.interpolate(square, size=(size, size), mode="bilinear",
                                        antialias=True, align_corners=False))
            continue
        rows, cols = (max(1, round(n * mm / embedder.pixel_spacing))
                      for n, mm in zip(stack.shape[2:], kept.pixel_size, strict=True))
        resized = F.interpolate(stack, size=(rows, cols), mode="bilinear", antialias=True,
                                align_corners=False)
        canvas = torch.full((len(stack), 1, size, size), float(stack.min()))
        top, left = (size - rows) // 2, (size - cols) // 2
        canvas[:, :, max(top, 0):top + rows, max(left, 0):left + cols] = resized[
            :, :, max(-top, 0):size - top, max(-left, 0):size - left]
        inputs.append(canvas)
    return inputs


OPTIONS = [dict(zip(("normalization", "crop", "pixel_spacing", "axis"), values, strict=True))
           for values in itertools.product(("minmax", "zscore"), ("none", "foreground"),
                                           (None, 1.4), ("axial", "all"))]


@pytest.mark.parametrize("storage", list(STORAGE))
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(map(str, o.values())))
def test_device_input_equals_the_earlier_path(files, storage, options):
    embedder = DinoSliceEmbedder(**dict(FAST, image_size=28, **options))
    reader = embedder.slice_reader()
    scan = read_scan(files[storage])
    new = list(reader.backbone_inputs(scan, reader.choose(scan)))
    old = oracle_inputs(files[storage], embedder)
    assert [tuple(images.shape) for images in new] == [tuple(images.shape) for images in old]
    for images, expected in zip(new, old, strict=True):
        np.testing.assert_allclose(images.numpy(), expected.numpy(), atol=INPUT_ATOL)


@pytest.mark.parametrize("options", [dict(), dict(normalization="zscore", crop="foreground",
                                                  axis="all", min_foreground=0.1)])
def test_embeddings_equal_the_earlier_path(files, options, fresh_cache):
    paths = [files["int16 scaled, LPS"], files["float64, permuted"]]
    embedder = DinoSliceEmbedder(**dict(FAST, image_size=28, **options)).fit(paths)
    encoder = embedder.slice_encoder()
    for path, embedding in zip(paths, embedder.transform(paths), strict=True):
        parts = [encoder.forward([images]) for images in oracle_inputs(path, embedder)]
        expected = parts[0] if len(parts) == 1 else np.concatenate(
            [np.concatenate([part, np.eye(3, dtype=np.float32)[[axis] * len(part)]], 1)
             for axis, part in zip((2, 1, 0), parts, strict=True)])
        np.testing.assert_allclose(embedding[:len(expected)], expected, atol=FLOAT32_ATOL)
    clear_memory_cache()


def test_readers_give_the_same_embeddings_as_this_process(files, fresh_cache):
    paths = list(files.values())
    embedder = DinoSliceEmbedder(**dict(FAST, image_size=28)).fit(paths)
    here = embedder.transform(paths)
    clear_memory_cache()
    np.testing.assert_array_equal(embedder.set_params(n_readers=2).transform(paths), here)


def test_a_cached_volume_is_not_sent_to_the_device(files, fresh_cache):
    embedder = DinoSliceEmbedder(**dict(FAST, image_size=28)).fit([files["int16, RAS"]])
    reader = embedder.stack_reader()
    first = reader(files["int16, RAS"], 0)
    assert first.scan is not None and all(s.embedding is None for s in first.stacks)
    embedder.transform([files["int16, RAS"]])
    again = reader(files["int16, RAS"], 0)
    assert again.scan is None  # every slice set's embedding known: no voxels travel
    assert [s.key for s in again.stacks] == [s.key for s in first.stacks]
