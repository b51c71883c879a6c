"""Classify 3D medical volumes with a frozen 2D foundation model applied slice by slice.

Typical use::

    from sklearn.pipeline import make_pipeline
    from sklearn_dinoatten import DinoSliceEmbedder, AttentionPoolClassifier

    pipe = make_pipeline(DinoSliceEmbedder(), AttentionPoolClassifier())
"""

from .cache import clear_memory_cache
from .classifiers import (
    AttentionPoolClassifier,
    FineTunedSliceClassifier,
    ResNet3DClassifier,
    SCMILClassifier,
    SliceTransformerClassifier,
)
from .embedding import DinoSliceEmbedder
from .resampling import VolumeResampler

__version__ = "0.1.0"

__all__ = [
    "AttentionPoolClassifier",
    "DinoSliceEmbedder",
    "FineTunedSliceClassifier",
    "ResNet3DClassifier",
    "SCMILClassifier",
    "SliceTransformerClassifier",
    "VolumeResampler",
    "clear_memory_cache",
    "__version__",
]
