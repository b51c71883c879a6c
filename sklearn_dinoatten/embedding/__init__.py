"""Volumes to per-slice embeddings from a frozen 2D backbone: the embedder, the pipeline
that reads volumes into backbone input (in reader processes), the forward passes over
batches of slices, the engines that run them, the content-addressed cache, and the
backbones of every supported library (:mod:`sklearn_dinoatten.embedding.backbones`).
"""

from ._cache import EmbeddingCache, cache_folder_is_writable, cache_key, clear_memory_cache
from ._embedder import DinoSliceEmbedder
from ._engines import ENGINES
from ._reading import SliceReader, StackReader, read_volumes
from ._several import fit_embedders
from ._slice_encoder import DTYPES, FEATURES, SliceEncoder

__all__ = [
    "DTYPES", "ENGINES", "FEATURES", "DinoSliceEmbedder", "EmbeddingCache", "SliceEncoder",
    "SliceReader", "StackReader", "cache_folder_is_writable", "cache_key",
    "clear_memory_cache", "fit_embedders", "read_volumes",
]
