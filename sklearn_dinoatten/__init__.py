"""Classify 3D medical volumes with a frozen 2D foundation model applied slice by slice.

Typical use::

    from sklearn.pipeline import make_pipeline
    from sklearn_dinoatten import DinoSliceEmbedder, AttentionPoolClassifier

    pipe = make_pipeline(DinoSliceEmbedder(), AttentionPoolClassifier())

The names below are imported on first use, so that ``import sklearn_dinoatten`` (and
``dinoatten --help``) does not load torch.
"""

from importlib import import_module

__version__ = "0.1.0"

_MODULES = {
    "AttentionPoolClassifier": "classifiers",
    "DinoSliceEmbedder": "embedding",
    "FineTunedSliceClassifier": "classifiers",
    "ResNet3DClassifier": "classifiers",
    "SCMILClassifier": "classifiers",
    "SliceTransformerClassifier": "classifiers",
    "VolumeResampler": "resampling",
    "clear_memory_cache": "cache",
}

__all__ = [*_MODULES, "__version__"]


def __getattr__(name):
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_MODULES[name]}", __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__():
    return sorted({*globals(), *__all__})
