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

import dataclasses
import hashlib
import json
import os
import warnings

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as serialize
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from skorch import NeuralNet

from .embedding.backbones import update_digest
from .utils._devices import device_available
from .utils._files import atomic_write, check_file
from .utils._fit import FitContractMixin, check_params, record_fitted_params
from .utils._persistable import PersistableMixin
from .utils._validation import BOOLEAN, NONE, instance

__all__ = ["FORMAT", "load_model", "read_card", "save_model"]

FORMAT = "sklearn_dinoatten.model/3"
READABLE = ("sklearn_dinoatten.model/2", FORMAT)  # /3 added the model card
# A loaded Pipeline may not cache its steps: Pipeline(memory=DIR) unpickles what DIR
# holds, and a model file must not point the program at files it unpickles.
PIPELINE_CONSTRAINTS = {"steps": [instance(list, "a list of steps")], "memory": [NONE],
                        "transform_input": [NONE], "verbose": [BOOLEAN]}


def save_model(model, path, *, card=None):
    """Write a fitted (or unfitted) estimator or pipeline of this package to ``path``.

    The file holds a sha256 digest of its contents, checked by :func:`load_model`.
    Raises ``ValueError`` naming the part that cannot be saved without pickle: an
    estimator from elsewhere, or a parameter that is not a plain value (a
    ``torch.nn.Module`` as backbone, a callback object); save those with joblib.

    ``card``: the model card's record (:func:`sklearn_dinoatten.evaluation.make_card`),
    stored with the model under the same digest and read back by :func:`read_card`.
    """
    tensors = {}
    spec = json.dumps(_encode_estimator(model, "model", tensors))
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    from . import __version__

    header = {"format": FORMAT, "version": __version__, "model": spec}
    if card is not None:
        header["card"] = json.dumps(card, allow_nan=False)
    header["sha256"] = _digest(spec, tensors, header.get("card"))
    data = serialize(tensors, header)
    atomic_write(os.fspath(path), lambda f: f.write(data))


def load_model(path, *, device=None, cache_dir=None):
    """Load a model written by :func:`save_model`.

    Nothing is built before the file's digest, every parameter (against the
    estimators' declared constraints) and the shape of every saved tensor (against
    networks built on the ``meta`` device, which holds no memory) are checked.

    Parameters
    ----------
    path : str or path
    device : str, default=None
        Run every estimator of the model on this device (``"cpu"``, ``"cuda"``,
        ``"auto"``). ``None`` keeps the saved ``device`` parameters, except one not
        available here (a model trained with ``device="cuda"``, loaded on a machine
        without CUDA), which becomes ``"auto"`` with a warning.
    cache_dir : str or path, default=None
        The embedders' on-disk cache. Like the device, it belongs to the machine, not
        to the model: the saved one (a folder of the machine that fitted it) is not
        used.
    """
    path = os.fspath(path)
    header, tensors = _read_checked(path)
    try:
        spec = json.loads(header["model"])
    except (KeyError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise ValueError(f"Model file {path!r} has no readable model description.") from exc
    try:
        with torch.random.fork_rng(devices=[]):  # building draws initial weights
            return _decode_estimator(spec, tensors, _this_machine(device, cache_dir))
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError,
            IndexError) as exc:  # a forged description: one line, whatever it breaks
        raise ValueError(f"Model file {path!r} cannot be loaded: {exc}") from exc


def read_card(path):
    """The model card's record saved with the model at ``path`` (see
    :func:`sklearn_dinoatten.evaluation.make_card`), checked field by field; ``None`` for a
    model saved without one. The file's digest is checked first, as by :func:`load_model`.
    """
    from .evaluation import check_card

    path = os.fspath(path)
    header, _ = _read_checked(path)
    if "card" not in header:
        return None
    try:
        return check_card(json.loads(header["card"]))
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise ValueError(f"Model file {path!r} has a malformed model card: {exc}") from exc


def _read_checked(path):
    """The header and tensors of a model file, its format and digest checked."""
    check_file(path, "Model file")
    try:
        with safe_open(path, framework="pt") as f:
            header = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # safetensors raises several types for other files
        raise ValueError(f"Cannot read model file {path!r}: not a safetensors file "
                         f"({exc}).") from exc
    if header.get("format") not in READABLE:
        older = str(header.get("format", "")).startswith(FORMAT.split("/")[0])
        raise ValueError(f"{path!r} is a safetensors file but no model saved by "
                         "sklearn_dinoatten.persistence.save_model" + (
                             f" of this version (it is {header['format']!r}, this version "
                             f"reads {' and '.join(map(repr, READABLE))}): fit it again."
                             if older else "."))
    if header.get("sha256") != _digest(header.get("model", ""), tensors, header.get("card")):
        raise ValueError(f"Model file {path!r} is damaged: its contents do not match the "
                         "sha256 digest written with them.")
    return header, tensors


def _digest(spec, tensors, card=None):
    """sha256 of the model description, every tensor in name order and the card."""
    digest = hashlib.sha256(spec.encode())
    update_digest(digest, {key: tensors[key] for key in sorted(tensors)})
    if card is not None:
        digest.update(card.encode())
    return digest.hexdigest()


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
    from .evaluation import OperatingPointClassifier
    from .regressors import AttentionPoolRegressor, ResNet3DRegressor, SliceTransformerRegressor
    from .volumes import VolumeResampler

    return {cls.__name__: cls for cls in (
        AttentionPoolClassifier, AttentionPoolRegressor, DinoSliceEmbedder,
        FineTunedSliceClassifier, MemoryBankAnomalyDetector, OperatingPointClassifier,
        Pipeline, ResNet3DClassifier, ResNet3DRegressor, SCMILClassifier,
        SliceTransformerClassifier, SliceTransformerRegressor, SpatialARAnomalyDetector,
        VolumeResampler,
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
        if attr in params or attr == "_params_at_fit" or _rebuilt_on_load(value):
            continue
        spec["fitted"][attr] = _encode(value, f"{name}.{attr}", tensors)
    if spec["fitted"] and isinstance(estimator, PersistableMixin):
        for module_name, module in estimator._saved_modules().items():
            key = f"{name}.{module_name}"
            tensors.update({f"{key}.{k}": v for k, v in module.state_dict().items()})
            spec["modules"][module_name] = key
    return spec


def _rebuilt_on_load(value):
    """Networks, devices, compiled functions and the records that describe a network
    (``backbone_info_``) are rebuilt from the parameters."""
    return isinstance(value, (torch.nn.Module, NeuralNet, torch.device)) or (
        callable(value) and not isinstance(value, (type, BaseEstimator))
    ) or (dataclasses.is_dataclass(value) and not isinstance(value, type))


def _encode(value, name, tensors):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
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


def _this_machine(device, cache_dir):
    """Set, in an estimator's saved parameters, what belongs to the machine loading it
    rather than to the model: its device and its embedding cache folder."""
    def adjust(name, params):
        if "cache_dir" in params:
            params["cache_dir"] = cache_dir
        if device is not None and "device" in params:
            params["device"] = device
        elif "device" in params and not device_available(params["device"]):
            warnings.warn(f"{name} was saved with device={params['device']!r}, which is not "
                          "available here: it runs on the 'auto' device (give load_model "
                          "device=..., or --device, to choose).", UserWarning, stacklevel=5)
            params["device"] = "auto"
        return params

    return adjust


def _decode_estimator(spec, tensors, here):
    cls = _estimator_classes().get(spec["class"])
    if cls is None:
        raise ValueError(f"{spec['class']!r} is not an estimator this loader builds")
    params = here(spec["class"], {k: _decode(v, tensors, here)
                                  for k, v in spec["params"].items()})
    estimator = cls(**params)
    check_params(estimator, PIPELINE_CONSTRAINTS if cls is Pipeline else None)
    declared = getattr(cls, "_fitted_constraints", {})
    for attr, value in spec["fitted"].items():
        if attr == "_params_at_fit":  # recorded again below, from the parameters loaded
            continue
        if attr not in declared:
            raise ValueError(f"{spec['class']} has no fitted attribute {attr!r}")
        value = _decode(value, tensors, here)
        if not any(constraint.accepts(value) for constraint in declared[attr]):
            raise ValueError(f"{spec['class']}.{attr} must be "
                             f"{' or '.join(c.description for c in declared[attr])}; the "
                             f"file has {_described(value)}")
        setattr(estimator, attr, value)
    if spec["fitted"] and isinstance(estimator, PersistableMixin):
        _restore_modules(estimator, spec, tensors)
    if spec["fitted"] and isinstance(estimator, FitContractMixin):
        record_fitted_params(estimator)  # of the parameters loaded, nested estimators too
    return estimator


def _described(value):
    """A decoded value in a few words, for an error."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _restore_modules(estimator, spec, tensors):
    """Check the saved tensors against networks built on the meta device (no memory),
    then build them for real, load the tensors and hand them to the estimator."""
    saved = spec["modules"]
    with torch.device("meta"):
        expected = {name: module.state_dict()
                    for name, module in estimator._empty_modules().items()}
    if sorted(expected) != sorted(saved):
        raise ValueError(f"{spec['class']} saved networks {sorted(saved)}, its parameters "
                         f"make {sorted(expected)}")
    states = {}
    for name, shapes in expected.items():
        prefix = saved[name] + "."
        states[name] = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        for key in sorted(set(shapes) | set(states[name])):
            want, got = shapes.get(key), states[name].get(key)
            if want is None or got is None or want.shape != got.shape or want.dtype != got.dtype:
                raise ValueError(
                    f"the saved network {name!r} of {spec['class']} does not fit its "
                    f"parameters: tensor {key!r} is "
                    f"{'absent' if got is None else tuple(got.shape)} in the file, "
                    f"{'absent' if want is None else tuple(want.shape)} for the parameters")
    modules = estimator._empty_modules()
    for name, module in modules.items():
        module.load_state_dict(states[name])
    estimator._restore(modules)


def _decode(value, tensors, here):
    if isinstance(value, list):
        return [_decode(v, tensors, here) for v in value]
    if not isinstance(value, dict):
        return value
    (kind, content), = value.items()
    if kind == "estimator":
        return _decode_estimator(content, tensors, here)
    if kind == "tuple":
        return tuple(_decode(v, tensors, here) for v in content)
    if kind == "dict":
        return {k: _decode(v, tensors, here) for k, v in content.items()}
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
