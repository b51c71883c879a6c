"""The embedder's speed options give the float32 reference's embeddings, within the
tolerances the docs state, and reading ahead, file-key memory and worker processes
change nothing but the time."""

import os
import pickle
import shutil
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch

from sklearn_dinoatten import DinoSliceEmbedder, clear_memory_cache
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.embedding import _reading as reading_module

from .._helpers import FAST, CountingViT, save_nifti

SPEED = dict(FAST, image_size=56)
# Stated in DinoSliceEmbedder's docstring and docs/user_guide/speed.md.
FLOAT32_ATOL = 1e-4
LOW_PRECISION_MIN_COSINE = 0.999


@pytest.fixture(scope="module")
def volumes():
    X, _ = make_volumes(n_samples=3, shape=(40, 32, 10), random_state=0)
    return X


@pytest.fixture(scope="module")
def reference(volumes):
    clear_memory_cache()
    return DinoSliceEmbedder(prefetch=0, **SPEED).fit_transform(volumes)


def cosine(a, b):
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("options", [
    dict(prefetch=4), dict(channels_last=True), dict(batch_size=5, prefetch=1),
    dict(n_readers=2),
])
def test_float32_options_match_the_reference(volumes, reference, options):
    clear_memory_cache()
    out = DinoSliceEmbedder(**SPEED, **options).fit_transform(volumes)
    np.testing.assert_allclose(out, reference, atol=FLOAT32_ATOL, rtol=0)


@pytest.mark.slow  # compiling takes most of its time
@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_backbone_matches_the_reference(volumes, reference):
    clear_memory_cache()
    embedder = DinoSliceEmbedder(compile=True, **SPEED).fit(volumes)
    out = embedder.transform(volumes)
    np.testing.assert_allclose(out, reference, atol=FLOAT32_ATOL, rtol=0)
    loaded = pickle.loads(pickle.dumps(embedder))  # the compiled function is rebuilt
    np.testing.assert_array_equal(loaded.transform(volumes), out)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_is_close_to_the_reference(volumes, reference, dtype):
    out = DinoSliceEmbedder(dtype=dtype, **SPEED).fit_transform(volumes)
    assert out.dtype == np.float32
    assert cosine(out, reference).min() > LOW_PRECISION_MIN_COSINE
    assert not np.array_equal(out, reference)  # its own cache entries, not float32's


@pytest.mark.parametrize("native", [True, False])
def test_low_precision_on_a_cpu_without_it_warns(monkeypatch, volumes, native):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DinoSliceEmbedder(dtype="bfloat16", device="cpu", **FAST).fit(volumes)
    slow = [w for w in caught if "no native bfloat16" in str(w.message)]
    assert len(slow) == (0 if native else 1)


@pytest.mark.parametrize("name, value", [
    ("dtype", "float64"), ("prefetch", -1), ("prefetch", 1.5), ("n_jobs", 0),
    ("n_readers", -1), ("n_readers", "all"),
])
def test_bad_speed_parameters(volumes, name, value):
    with pytest.raises(ValueError, match=name):
        DinoSliceEmbedder(**FAST, **{name: value}).fit(volumes)


@pytest.mark.parametrize("reading", [dict(prefetch=2), dict(n_readers=2)])
def test_an_unreadable_file_read_ahead_is_named(tmp_path, volumes, reading):
    paths = [save_nifti(tmp_path / f"v{i}.nii.gz", v) for i, v in enumerate(volumes)]
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a NIfTI file")
    embedder = DinoSliceEmbedder(**reading, **FAST).fit(paths)
    with pytest.raises(ValueError, match="broken.nii.gz") as raised:
        embedder.transform(paths[:2] + [str(broken)] + paths[2:])
    assert "DataLoader worker" not in str(raised.value)  # the reader's error, as it is


def test_reader_processes_pass_on_warnings_and_cache_finds(tmp_path, counting_backbone,
                                                           volumes):
    module, calls = counting_backbone
    embedder = DinoSliceEmbedder(backbone=module, image_size=28, axis="coronal", n_readers=2,
                                 cache_dir=tmp_path, verbose=0).fit(volumes)
    with pytest.warns(UserWarning, match="40 x 10 voxels along axis 'coronal'"):
        first = embedder.transform(volumes)
    assert sum(calls) == 3 * 32
    clear_memory_cache()
    np.testing.assert_array_equal(embedder.transform(volumes), first)  # from cache_dir
    shutil.rmtree(tmp_path)
    embedder.set_params(n_readers=0, cache_dir=None)
    np.testing.assert_array_equal(embedder.transform(volumes), first)  # kept in memory
    assert sum(calls) == 3 * 32


def test_a_file_seen_before_is_not_read_again(tmp_path, monkeypatch, volumes, fresh_cache):
    paths = [save_nifti(tmp_path / f"v{i}.nii.gz", v) for i, v in enumerate(volumes)]
    embedder = DinoSliceEmbedder(**FAST).fit(paths)
    first = embedder.transform(paths)
    reads = []
    read = reading_module.read_scan

    def counted_read(volume, *args, **kwargs):
        reads.append(volume)
        return read(volume, *args, **kwargs)

    monkeypatch.setattr(reading_module, "read_scan", counted_read)
    np.testing.assert_array_equal(embedder.transform(paths), first)
    assert reads == []
    save_nifti(paths[1], volumes[1][::-1])  # new content: read and embedded again
    os.utime(paths[1], ns=(1, 1))
    changed = embedder.transform(paths)
    assert reads == [paths[1]]
    np.testing.assert_array_equal(changed[[0, 2]], first[[0, 2]])
    assert not np.allclose(changed[1], first[1])


def test_a_file_rewritten_with_its_size_and_time_is_read_again(tmp_path, volumes,
                                                               fresh_cache):
    """As ``cp -p`` or ``rsync -a`` leave a new scan: same path, size and modification
    time (before: served the old embedding)."""
    path = save_nifti(tmp_path / "scan.nii", volumes[0])  # uncompressed: the same size
    embedder = DinoSliceEmbedder(**FAST).fit([path])
    first = embedder.transform([path])
    stat = os.stat(path)
    time.sleep(0.05)  # past the file system's timestamp granularity
    save_nifti(path, volumes[0][::-1])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (stat.st_size,
                                                                  stat.st_mtime_ns)
    assert not np.allclose(embedder.transform([path]), first)


def test_worker_processes_give_the_same_embeddings(volumes, reference, tmp_path):
    clear_memory_cache()
    out = DinoSliceEmbedder(n_jobs=2, cache_dir=tmp_path, **SPEED).fit_transform(volumes)
    np.testing.assert_allclose(out, reference, atol=FLOAT32_ATOL, rtol=0)
    assert len(list(tmp_path.glob("*/*.npz"))) == len(volumes)  # the workers' cache


def test_workers_embed_with_the_fitted_backbone(volumes, tmp_path, fresh_cache):
    """Not with one built again from the parameters, whose weights may have changed since
    fit: a module changed, a checkpoint file overwritten, a saved model whose checkpoint
    is elsewhere (before: max difference 1.55, and cached under the new weights' key)."""
    from sklearn_dinoatten.persistence import load_model, save_model

    module = CountingViT().vit
    checkpoint = str(tmp_path / "weights.pth")
    torch.save(module.state_dict(), checkpoint)
    fitted = {
        "module": DinoSliceEmbedder(backbone=module, image_size=28, verbose=0).fit(volumes),
        "file": DinoSliceEmbedder(weights=checkpoint, image_size=28, verbose=0).fit(volumes),
    }
    expected = fitted["module"].transform(volumes)
    save_model(fitted["file"], tmp_path / "embedder.safetensors")
    with torch.no_grad():  # both change after fit
        for parameter in module.parameters():
            parameter.add_(0.5)
    torch.save(module.state_dict(), checkpoint)
    fitted["loaded"] = load_model(tmp_path / "embedder.safetensors")
    os.remove(checkpoint)  # where the model was saved, not here
    for how, embedder in fitted.items():
        clear_memory_cache()
        out = embedder.set_params(n_jobs=2).transform(volumes)
        np.testing.assert_allclose(out, expected, atol=FLOAT32_ATOL, rtol=0, err_msg=how)
    with torch.no_grad():  # the fitted weights themselves changed: refused, not cached
        next(embedder.backbone_.parameters()).add_(1.0)
    clear_memory_cache()
    with pytest.raises(ValueError, match="weights of backbone_ changed after fit"):
        embedder.transform(volumes)


PEAK_RSS = """
import sys
import numpy as np
from sklearn_dinoatten import DinoSliceEmbedder, clear_memory_cache

def rss(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))

def peak_extra(run):
    clear_memory_cache()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # restart the peak (VmHWM) from the current RSS
    base = rss("VmRSS:")
    run()
    return rss("VmHWM:") - base

embedder = DinoSliceEmbedder(weights="random", image_size=28, verbose=0).fit([np.ones((2, 2, 2))])
embedder.transform([np.random.default_rng(0).normal(size=(20, 20, 40))])  # warm-up
"""
BRAIN_SCRIPT = PEAK_RSS + "print(peak_extra(lambda: embedder.transform([sys.argv[1]])))"
LOAD_SCRIPT = PEAK_RSS + """
volumes = [np.random.default_rng(i).normal(size=(16, 16, 4)) for i in range(500)]
print(peak_extra(lambda: embedder.transform(volumes[:100])),
      peak_extra(lambda: embedder.transform(volumes)))
"""
NEEDS_PROC = pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"),
                                reason="needs Linux /proc")


def peak_rss(script, *args):
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                            text=True, check=True)
    return [int(value) for value in result.stdout.split()]


@pytest.mark.slow  # a load test, with `pytest -m slow` / make test-all
@NEEDS_PROC
def test_a_brain_sized_volume_is_held_a_few_times_at_most(tmp_path):
    shape = (182, 218, 182)  # MNI152 at 1 mm
    volume = np.random.default_rng(0).integers(0, 1000, size=shape, dtype=np.int16)
    path = save_nifti(tmp_path / "brain.nii.gz", volume)
    copies = peak_rss(BRAIN_SCRIPT, path)[0] / (np.prod(shape) * 4)  # float32 volumes
    assert copies < 5, f"embedding held {copies:.1f} float32 copies of the volume"


@pytest.mark.slow  # a load test, with `pytest -m slow` / make test-all
@NEEDS_PROC
def test_memory_stays_flat_over_500_volumes():
    hundred, five_hundred = peak_rss(LOAD_SCRIPT)
    # What 400 more volumes may add: their embeddings, returned and cached (4 slices x 384
    # float32 each, twice), and 8 MB of allocator slack; nothing that grows per volume.
    allowed = 400 * 4 * 384 * 4 * 2 + 8 * 2**20
    assert five_hundred - hundred < allowed, (hundred, five_hundred)
