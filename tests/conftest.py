import numpy as np
import pytest

from sklearn_dinoatten import DinoSliceEmbedder, clear_memory_cache

from ._helpers import FAST, FORWARD_SLICES, CountingViT


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
