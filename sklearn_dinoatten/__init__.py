"""Classify 3D medical volumes, or predict a number of them (brain age), with a frozen 2D
foundation model applied slice by slice.

Typical use::

    from sklearn.pipeline import make_pipeline
    from sklearn_dinoatten import DinoSliceEmbedder, AttentionPoolClassifier

    pipe = make_pipeline(DinoSliceEmbedder(), AttentionPoolClassifier())

The names below are imported on first use, so that ``import sklearn_dinoatten`` (and
``dinoatten --help``) does not load torch.
"""

from .utils._lazy import lazy_exports

__version__ = "0.1.0"

_MODULES = {
    "AttentionPoolClassifier": ".classifiers",
    "AttentionPoolRegressor": ".regressors",
    "DinoSliceEmbedder": ".embedding",
    "FineTunedSliceClassifier": ".classifiers",
    "OperatingPointClassifier": ".evaluation",
    "ResNet3DClassifier": ".classifiers",
    "ResNet3DRegressor": ".regressors",
    "SCMILClassifier": ".classifiers",
    "SliceTransformerClassifier": ".classifiers",
    "SliceTransformerRegressor": ".regressors",
    "VolumeResampler": ".volumes",
    "clear_memory_cache": ".embedding",
}

__all__ = [*_MODULES, "__version__"]
__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
