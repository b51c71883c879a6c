"""Fixtures shared by the tests, and one thread pool per core under pytest-xdist."""

import os

# Under pytest-xdist each worker is a process of its own, and torch, OpenMP and the BLAS
# would each start a thread per core in every worker: 2 workers on 2 cores ran 4 busy
# threads and took twice the single-process time. Each worker gets its share of the
# cores instead, set before torch and numpy are imported (and so in every subprocess a
# test starts); a plain run (`-n 0`) keeps the libraries' defaults.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
if _WORKERS > 1:
    _CORES = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
              else os.cpu_count() or 1)
    _THREADS = str(max(1, _CORES // _WORKERS))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_name, _THREADS)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from sklearn_dinoatten import DinoSliceEmbedder, clear_memory_cache  # noqa: E402

from ._helpers import FAST, FORWARD_SLICES, CountingViT  # noqa: E402

if _WORKERS > 1:  # in case torch or a BLAS was loaded before this file
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    threadpool_limits(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture
def fast_embedder():
    return DinoSliceEmbedder(**FAST)


@pytest.fixture
def fresh_cache():
    """An empty in-memory embedding cache, so tests can count backbone calls."""
    clear_memory_cache()
    yield
    clear_memory_cache()


@pytest.fixture
def volume():
    rng = np.random.default_rng(0)
    return rng.normal(size=(20, 24, 10)).astype(np.float32)


@pytest.fixture
def counting_backbone(fresh_cache):
    """A CountingViT and the list of its forward batch sizes, emptied for the test."""
    FORWARD_SLICES.clear()
    yield CountingViT(), FORWARD_SLICES
    FORWARD_SLICES.clear()


@pytest.fixture(autouse=True)
def warnings_given_afresh(monkeypatch):
    """Each test starts with no warning given yet: warnings given once per process
    (utils._warnings.warn_once) would otherwise depend on the tests run before."""
    from sklearn_dinoatten.utils import _warnings

    monkeypatch.setattr(_warnings, "_GIVEN", set())
