"""run.json's description of a study: what was evaluated, how, on which data, with which
versions; written by ``run_study``, read back by :func:`~sklearn_dinoatten.evaluation.read_run`."""

import os
import platform
import time
from importlib import metadata

import numpy as np

from ..utils._files import file_sha256
from ._methods import method_name


def data_record(root, labels_csv, n_scans):
    """Where a run's scans came from, for run.json: the folder, the labels file and its
    sha256 (a later change of the labels shows)."""
    return {"root": os.path.abspath(root), "labels_csv": os.path.abspath(labels_csv),
            "labels_sha256": file_sha256(labels_csv), "n_scans": n_scans}


def describe_study(study, *, scored, reference, calls, caption, embedders, resampler,
                   methods, weights_sha256, protocol_name, extra_methods=()):
    """run.json's description of a study (a ``Study`` of ``run_study``): its task,
    classes and positive class, protocol, grouping, scored scans, caption, how the scans
    were called (``calls``), the reference method, the slice embedders' (``embedders``,
    those that embedded) and the resampler's parameters, each method's (``methods``: key
    -> ``(estimator, encoder name or None)``; ``extra_methods``: the keys of rows
    without an estimator of their own, such as a regression's training mean), the
    weights files' SHA-256 and versions."""
    groups, protocol = study.protocol.groups, study.protocol
    params = {name: jsonable(e.get_params()) for name, e in embedders.items()}
    several = len(study.embedders) > 1
    info = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "task": study.task,
        "classes": np.unique(study.y).tolist() if study.task == "classification" else None,
        "positive_label": study.positive,
        "protocol": protocol_name,
        "training_scans_scored": protocol.training_scans,
        "protocol_description": protocol.description,
        "folds": None if protocol.held_out else len(protocol.splits),
        "grouped": groups is not None,
        "n_subjects": None if groups is None else len(np.unique(groups[scored])),
        "n_scored": int(scored.sum()),
        "caption": caption,
        **calls,
        "random_weights": any(e.weights == "random" for e in study.embedders.values()),
        "seed": study.random_state,
        "reference": reference,
        "embedder": next(iter(params.values())) if len(params) == 1 else None,
        "resampler": None if resampler is None else jsonable(resampler.get_params()),
        "methods": {k: {"name": method_name(k), "params": jsonable(m.get_params()),
                        **({"encoder": source} if several and source else {})}
                    for k, (m, source) in methods.items()},
        "versions": versions(),
        "weights_sha256": weights_sha256,
    }
    info["methods"].update({k: {"name": method_name(k), "params": {}}
                            for k in extra_methods})
    if len(params) > 1:
        info["embedders"] = params
    if study.subgroups:
        info["subgroups"] = list(study.subgroups)
    return info


def jsonable(params):
    """Estimator parameters as JSON values: classes by their dotted name, other objects
    by their ``repr``."""
    return {k: v if isinstance(v, (str, int, float, bool, type(None), list, tuple, dict))
            else (f"{v.__module__}.{v.__qualname__}" if isinstance(v, type) else repr(v))
            for k, v in params.items()}


def versions():
    """The versions of Python, this package and its main dependencies, the platform and
    the device, for run.json."""
    import torch

    from .. import __version__

    found = {"python": platform.python_version(), "sklearn_dinoatten": __version__,
             "platform": platform.platform(),
             "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    for package in ("numpy", "torch", "timm", "scikit-learn", "skorch", "nibabel", "monai"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found
