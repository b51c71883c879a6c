"""Save fitted estimators and pipelines without pickle, and load them back.

:func:`save_model` writes one ``.safetensors`` file: each estimator's class, parameters
and plain fitted attributes as JSON in the header, its arrays and network weights as
tensors. :func:`load_model` builds only this package's estimators and scikit-learn's
``Pipeline``, from parameters that are plain values (torch optimizers by name), and
reads tensors only, so a model file cannot run code; a joblib pickle can.

>>> import tempfile, os
>>> from sklearn_dinoatten import AttentionPoolClassifier
>>> from sklearn_dinoatten.persistence import load_model, save_model
>>> import numpy as np
>>> X, y = np.random.default_rng(0).normal(size=(8, 3, 4)), [0, 1] * 4
>>> model = AttentionPoolClassifier(max_epochs=2, random_state=0).fit(X, y)
>>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
>>> save_model(model, path)
>>> bool((load_model(path).predict_proba(X) == model.predict_proba(X)).all())
True
"""

import json
import os

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as serialize
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from skorch import NeuralNet

from ._files import atomic_write

FORMAT = "sklearn_dinoatten.model/1"


def save_model(model, path):
    """Write a fitted (or unfitted) estimator or pipeline of this package to ``path``.

    Raises ``ValueError`` naming the part that cannot be saved without pickle: an
    estimator from elsewhere, or a parameter that is not a plain value (a
    ``torch.nn.Module`` as backbone, a callback object); save those with joblib.
    """
    tensors = {}
    spec = _encode_estimator(model, "model", tensors)
    from . import __version__

    header = {"format": FORMAT, "version": __version__, "model": json.dumps(spec)}
    data = serialize({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, header)
    atomic_write(os.fspath(path), lambda f: f.write(data))


def load_model(path):
    """Load a model written by :func:`save_model`; it runs on its ``device`` parameter
    (``"auto"``: CUDA when present), whatever device it was saved from."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Model file {path!r} does not exist.")
    try:
        with safe_open(path, framework="pt") as f:
            header = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # safetensors raises several types for other files
        raise ValueError(f"Cannot read model file {path!r}: not a safetensors file "
                         f"({exc}).") from exc
    if header.get("format") != FORMAT:
        raise ValueError(f"{path!r} is a safetensors file but no model saved by "
                         "sklearn_dinoatten.persistence.save_model.")
    try:
        return _decode_estimator(json.loads(header["model"]), tensors)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"Model file {path!r} is damaged or from another version: "
                         f"{exc}") from exc


def _estimator_classes():
    from .anomaly import MemoryBankAnomalyDetector, SpatialARAnomalyDetector
    from .classifiers import (
        AttentionPoolClassifier,
        FineTunedSliceClassifier,
        ResNet3DClassifier,
        SCMILClassifier,
        SliceTransformerClassifier,
    )
    from .embedding import DinoSliceEmbedder
    from .resampling import VolumeResampler

    return {cls.__name__: cls for cls in (
        AttentionPoolClassifier, DinoSliceEmbedder, FineTunedSliceClassifier,
        MemoryBankAnomalyDetector, Pipeline, ResNet3DClassifier, SCMILClassifier,
        SliceTransformerClassifier, SpatialARAnomalyDetector, VolumeResampler,
    )}


def _encode_estimator(estimator, name, tensors):
    if _estimator_classes().get(type(estimator).__name__) is not type(estimator):
        raise ValueError(f"{name}: {type(estimator).__name__} cannot be saved without "
                         "pickle; save_model takes this package's estimators and Pipeline.")
    params = estimator.get_params(deep=False)
    spec = {"class": type(estimator).__name__,
            "params": {k: _encode(v, f"{name}.{k}", tensors) for k, v in params.items()},
            "fitted": {}, "modules": {}}
    for attr, value in vars(estimator).items():
        if attr in params or _rebuilt_on_load(value):
            continue
        spec["fitted"][attr] = _encode(value, f"{name}.{attr}", tensors)
    if spec["fitted"] and hasattr(estimator, "_saved_modules"):
        for module_name, module in estimator._saved_modules().items():
            key = f"{name}.{module_name}"
            tensors.update({f"{key}.{k}": v for k, v in module.state_dict().items()})
            spec["modules"][module_name] = key
    return spec


def _rebuilt_on_load(value):
    """Networks, devices and compiled functions are rebuilt from the parameters."""
    return isinstance(value, (torch.nn.Module, NeuralNet, torch.device)) or (
        callable(value) and not isinstance(value, (type, BaseEstimator))
    )


def _encode(value, name, tensors):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, BaseEstimator):
        return {"estimator": _encode_estimator(value, name, tensors)}
    if isinstance(value, (tuple, list)):
        items = [_encode(v, f"{name}[{i}]", tensors) for i, v in enumerate(value)]
        return {"tuple": items} if isinstance(value, tuple) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v, f"{name}.{k}", tensors) for k, v in value.items()}}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        tensors[name] = torch.from_numpy(np.ascontiguousarray(value))
        return {"array": name}
    if isinstance(value, np.ndarray) and value.dtype.kind == "U":
        return {"strings": value.tolist()}
    if isinstance(value, type) and issubclass(value, torch.optim.Optimizer) \
            and getattr(torch.optim, value.__name__, None) is value:
        return {"optimizer": value.__name__}
    raise ValueError(f"{name}: a {type(value).__name__} cannot be saved without pickle; "
                     "only plain values, arrays, torch.optim classes and this package's "
                     "estimators can (save the model with joblib if you trust its readers).")


def _decode_estimator(spec, tensors):
    cls = _estimator_classes()[spec["class"]]
    params = {k: _decode(v, tensors) for k, v in spec["params"].items()}
    estimator = cls(**params)
    for attr, value in spec["fitted"].items():
        setattr(estimator, attr, _decode(value, tensors))
    if spec["fitted"] and hasattr(estimator, "_restore_modules"):
        modules = estimator._restore_modules()
        if sorted(modules) != sorted(spec["modules"]):
            raise ValueError(f"{spec['class']} saved networks {sorted(spec['modules'])}, "
                             f"rebuilt {sorted(modules)}")
        for module_name, module in modules.items():
            prefix = spec["modules"][module_name] + "."
            module.load_state_dict(
                {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            )
    return estimator


def _decode(value, tensors):
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    (kind, content), = value.items()
    if kind == "estimator":
        return _decode_estimator(content, tensors)
    if kind == "tuple":
        return tuple(_decode(v, tensors) for v in content)
    if kind == "dict":
        return {k: _decode(v, tensors) for k, v in content.items()}
    if kind == "array":
        return tensors[content].numpy()
    if kind == "strings":
        return np.array(content)
    if kind == "optimizer":
        optimizer = getattr(torch.optim, content, None)
        if not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
            raise ValueError(f"{content!r} is not a torch optimizer")
        return optimizer
    raise ValueError(f"unknown entry {kind!r}")
