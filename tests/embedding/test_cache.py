import os

import nibabel as nib
import numpy as np

from sklearn_dinoatten.embedding import EmbeddingCache, cache_key, clear_memory_cache
from sklearn_dinoatten.volumes import choose_slices, read_scan


def _entry_path(cache, key):
    return os.path.join(cache.cache_dir, key[:2], key + ".npz")


def _key(volume, config="config-a", **choice):
    scan = read_scan(volume)
    (kept,) = choose_slices(scan.shape, scan.voxel_size, axes=(2,), **choice)
    return cache_key(scan.digest(), kept, config)


def test_key_depends_on_content_shape_slices_and_config():
    volume = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    key = _key(volume)
    assert key == _key(volume.copy())
    assert key == _key(np.asfortranarray(volume))  # the same content, however it is held
    assert key != _key(volume, "config-b")
    assert key != _key(volume.reshape(3, 5, 4))
    assert key != _key(volume.astype(np.float32))  # the stored dtype is part of a scan
    assert key != _key(volume, n_slices=2)
    changed = volume.copy()
    changed[0, 0, 0] += 1
    assert key != _key(changed)


def test_a_scan_digest_covers_its_header(tmp_path):
    volume = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    digests = set()
    for name, affine, slope in [("a", np.eye(4), 1.0), ("b", np.diag([2, 1, 1, 1]), 1.0),
                                ("c", np.diag([-1, 1, 1, 1]), 1.0), ("d", np.eye(4), 2.0)]:
        image = nib.Nifti1Image(volume, affine)
        image.header.set_slope_inter(slope, 0.0)
        nib.save(image, tmp_path / f"{name}.nii")
        digests.add(read_scan(tmp_path / f"{name}.nii").digest())
    assert len(digests) == 4  # voxel size, orientation and scaling each change it


def test_memory_cache_is_shared_between_instances(fresh_cache):
    value = np.ones((3, 4), dtype=np.float32)
    EmbeddingCache().put("k1", value)
    np.testing.assert_array_equal(EmbeddingCache().get("k1", (3, 4)), value)
    clear_memory_cache()
    assert EmbeddingCache().get("k1", (3, 4)) is None


def test_disk_round_trip_is_atomic(tmp_path, fresh_cache):
    cache = EmbeddingCache(tmp_path)
    value = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    cache.put("ab12", value)
    clear_memory_cache()
    np.testing.assert_array_equal(cache.get("ab12", (5, 8)), value)
    leftovers = [f for _, _, files in os.walk(tmp_path) for f in files if f.endswith(".tmp")]
    assert leftovers == []


def test_truncated_entry_is_dropped_not_returned(tmp_path, fresh_cache):
    cache = EmbeddingCache(tmp_path)
    cache.put("cd34", np.ones((5, 8), dtype=np.float32))
    path = _entry_path(cache, "cd34")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    clear_memory_cache()
    assert cache.get("cd34", (5, 8)) is None
    assert not os.path.exists(path)


def test_entry_with_wrong_checksum_is_dropped(tmp_path, fresh_cache):
    cache = EmbeddingCache(tmp_path)
    cache.put("ef56", np.ones((5, 8), dtype=np.float32))
    path = _entry_path(cache, "ef56")
    np.savez(path, embedding=np.zeros((5, 8), dtype=np.float32), sha256=np.array("0" * 64))
    clear_memory_cache()
    assert cache.get("ef56", (5, 8)) is None
    assert not os.path.exists(path)


def test_cached_values_are_read_only(fresh_cache):
    cache = EmbeddingCache()
    cache.put("k2", np.zeros((2, 2), dtype=np.float32))
    assert not cache.get("k2", (2, 2)).flags.writeable


def test_swapped_entries_are_not_served(tmp_path, fresh_cache):
    """The checksum covers the key: an entry moved to another key's place is refused."""
    cache = EmbeddingCache(tmp_path)
    cache.put("aa01", np.ones((5, 8), dtype=np.float32))
    cache.put("aa02", np.zeros((5, 8), dtype=np.float32))
    first, second = _entry_path(cache, "aa01"), _entry_path(cache, "aa02")
    os.rename(first, first + ".swap")
    os.rename(second, first)
    os.rename(first + ".swap", second)
    clear_memory_cache()
    assert cache.get("aa01", (5, 8)) is None
    assert cache.get("aa02", (5, 8)) is None
    assert not os.path.exists(first) and not os.path.exists(second)


def test_a_consistent_entry_of_another_shape_is_not_served(tmp_path, fresh_cache):
    """A whole, well-summed entry, but not of the shape the volume's slices make."""
    cache = EmbeddingCache(tmp_path)
    cache.put("bb01", np.ones((4, 8), dtype=np.float32))
    assert cache.get("bb01", (5, 8)) is None  # the in-memory copy
    clear_memory_cache()
    assert cache.get("bb01", (5, 8)) is None  # the disk entry, now deleted
    assert not os.path.exists(_entry_path(cache, "bb01"))
