"""Model cards: what a saved model classifies, the scans it was trained on, how, at
which operating point, how it was evaluated and what it was not validated on (the
model-card and TRIPOD+AI practice), and a fingerprint of its training scans.

A card's record (:func:`make_card`) holds what the model itself cannot tell: the
training data (scans and subjects per class, the labels file and its SHA-256, the
content digest of every training scan), the weights file's SHA-256 and, optionally, the
metrics of an evaluation of the same recipe (:func:`evaluation_record`).
:func:`~sklearn_dinoatten.persistence.save_model` stores it in the model file, under the
file's digest; :func:`~sklearn_dinoatten.evaluation.card_markdown` writes the card from
it and from the model (its recipe, classes, operating point and calibration: one source
for each fact).

``dinoatten fit`` saves the card with the model and ``dinoatten card MODEL`` prints it;
from Python::

    from sklearn_dinoatten.evaluation import card_markdown, make_card
    from sklearn_dinoatten.persistence import load_model, read_card, save_model

    save_model(model, "model.safetensors", card=make_card(model, paths, y))
    print(card_markdown(load_model("model.safetensors"), read_card("model.safetensors")))
"""

import json
import os
import time

import numpy as np
from sklearn.base import is_regressor

from ..utils._files import file_sha256
from ..utils._fit import is_fitted
from ..volumes import read_scan
from ._clinical import check_threshold
from ._run_json import jsonable
from ._runs import embedder_of, read_run

CARD_FORMAT = "sklearn_dinoatten.card/1"
SHA256_HEX = 64


def scan_digests(X):
    """The content digest of each scan (``Scan.digest``: its stored voxels, orientation,
    scaling and voxel size; the digest the embedding cache keys start from): the same
    for the same scan, however it is named or held."""
    return [read_scan(volume, index=index).digest() for index, volume in enumerate(X)]


def make_card(model, X, y, *, groups=None, X_val=None, scans="all the labelled scans",
              labels_file=None, evaluation=None, target_name=None, units=None):
    """The card's record of a model fitted on scans ``X`` with labels ``y`` (a regressor's:
    targets).

    Parameters
    ----------
    model : fitted Pipeline or estimator
    X : list of paths or 3D arrays
        The scans it was fitted on.
    y : array-like of shape (n_scans,)
    groups : array-like of shape (n_scans,), default=None
        The subject of each scan.
    X_val : list of paths or 3D arrays, default=None
        The validation scans its fit used (early stopping, the recalibration, the
        threshold). With ``X``, their content digests are the card's fingerprint: the
        scans an external test must not hold.
    scans : str, default="all the labelled scans"
        Which scans were used, in words (e.g. "the 10 'train' scans; 2 'val' scans for
        early stopping and the operating point; 6 'test' scans left out").
    labels_file : str or path, default=None
        The labels CSV: its name and SHA-256 are recorded.
    evaluation : dict, default=None
        From :func:`evaluation_record`.
    target_name, units : str, default=None
        A regressor's: the target's name (the label column) and units, recorded with its
        range in the training scans.

    Returns
    -------
    card : dict of JSON values
    """
    from .. import __version__

    y = np.asarray(y)
    groups = None if groups is None else np.asarray(groups)
    regressor = is_regressor(model)
    classes = [] if regressor else [
        [str(c), int(np.sum(y == c)), None if groups is None else len(np.unique(groups[y == c]))]
        for c in np.unique(y)]
    weights = getattr(model[0] if hasattr(model, "steps") else model, "weights", None)
    has_file = isinstance(weights, (str, os.PathLike)) and weights != "random" \
        and os.path.isfile(weights)
    return check_card({
        "format": CARD_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "toolkit_version": __version__,
        "training": {
            "n_scans": len(y),
            "n_validation": 0 if X_val is None else len(X_val),
            "n_subjects": None if groups is None else len(np.unique(groups)),
            "classes": classes,
            **({"target": {"name": target_name or "target", "units": units,
                           "min": float(y.min()), "max": float(y.max()),
                           "mean": float(y.mean()), "sd": float(y.std())}}
               if regressor else {}),
            "scans": scans,
            "labels_file": None if labels_file is None else os.path.basename(labels_file),
            "labels_sha256": None if labels_file is None else file_sha256(labels_file),
            "scan_digests": scan_digests([*X, *([] if X_val is None else X_val)]),
        },
        "weights_sha256": file_sha256(weights) if has_file else None,
        "evaluation": evaluation,
    })


def evaluation_record(run_dir, key, model, *, weights_sha256=None):
    """The card's record of the evaluation of method ``key`` in the run directory
    ``run_dir``, after checking that it evaluated the recipe of the fitted pipeline
    ``model`` (see :func:`recipe_differences`; ``ValueError`` naming what differs):
    where and when it was made, its caption and its metrics row."""
    run = read_run(run_dir)
    differences = recipe_differences(run.info, key, model, weights_sha256=weights_sha256)
    if differences:
        more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
        raise ValueError(f"The run {os.fspath(run_dir)!r} evaluated another recipe: "
                         f"{describe_difference(*differences[0])}{more}.")
    row = run.metrics_row(key)
    if row is None:
        raise ValueError(f"The run {os.fspath(run_dir)!r} has no metrics of {key!r}.")
    data = run.info.get("data") or {}
    return {"run": os.path.abspath(run_dir), "created": str(run.info.get("created")),
            "caption": str(run.info.get("caption", "")),
            "reference": run.names[run.reference],
            "labels_sha256": data.get("labels_sha256"),
            "metrics": {k: str(v) for k, v in row.items()}}


def check_card(card):
    """``card`` if every field has the type and shape :func:`make_card` gives it;
    ``ValueError`` naming the first that does not."""
    _expect(card, dict, "the card")
    if card.get("format") != CARD_FORMAT:
        raise ValueError(f"format must be {CARD_FORMAT!r}; got {card.get('format')!r}")
    for key in ("created", "toolkit_version"):
        _expect(card.get(key), str, key)
    training = _expect(card.get("training"), dict, "training")
    _expect(training.get("n_scans"), int, "training.n_scans")
    _expect(training.get("n_validation"), int, "training.n_validation")
    _expect(training.get("n_subjects"), (int, type(None)), "training.n_subjects")
    _expect(training.get("scans"), str, "training.scans")
    for entry in _expect(training.get("classes"), list, "training.classes"):
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
                and isinstance(entry[1], int) and isinstance(entry[2], (int, type(None)))):
            raise ValueError(f"training.classes must hold [class, scans, subjects] "
                             f"entries; got {entry!r}")
    target = training.get("target")
    if target is not None:
        _expect(target, dict, "training.target")
        _expect(target.get("name"), str, "training.target.name")
        _expect(target.get("units"), (str, type(None)), "training.target.units")
        for key in ("min", "max", "mean", "sd"):
            _expect(target.get(key), float, f"training.target.{key}")
    _expect(training.get("labels_file"), (str, type(None)), "training.labels_file")
    for key, value in (("training.labels_sha256", training.get("labels_sha256")),
                       ("weights_sha256", card.get("weights_sha256"))):
        if value is not None and not _is_sha256(value):
            raise ValueError(f"{key} must be a SHA-256 in hex; got {value!r}")
    digests = _expect(training.get("scan_digests"), list, "training.scan_digests")
    fitted_on = training["n_scans"] + training["n_validation"]
    if len(digests) != fitted_on or not all(map(_is_sha256, digests)):
        raise ValueError(f"training.scan_digests must be {fitted_on} SHA-256 digests")
    evaluation = card.get("evaluation")
    if evaluation is not None:
        _expect(evaluation, dict, "evaluation")
        for key in ("run", "created", "caption", "reference"):
            _expect(evaluation.get(key), str, f"evaluation.{key}")
        if evaluation.get("labels_sha256") is not None \
                and not _is_sha256(evaluation["labels_sha256"]):
            raise ValueError("evaluation.labels_sha256 must be a SHA-256 in hex")
        metrics = _expect(evaluation.get("metrics"), dict, "evaluation.metrics")
        if not all(isinstance(v, str) for v in metrics.values()):
            raise ValueError("evaluation.metrics must map metric names to text")
    return card


def _expect(value, kinds, name):
    """``value`` if it is one of ``kinds`` (a bool is no number here); else
    ``ValueError`` naming the field."""
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ValueError(f"{name} has the wrong type ({type(value).__name__})")
    return value


def _is_sha256(value):
    return (isinstance(value, str) and len(value) == SHA256_HEX
            and all(c in "0123456789abcdef" for c in value))


def training_scans_scored(card, X):
    """How many of scans ``X`` the model of ``card`` was fitted on, its validation scans
    included (by content, not by name), or None without a card."""
    if card is None:
        return None
    trained = set(card["training"]["scan_digests"])
    return sum(digest in trained for digest in scan_digests(X))


# Parameters that say how a fit ran, not what it made: left out of the recipe check.
NOT_RECIPE = {"verbose", "device", "random_state", "early_stopping", "cache_dir", "n_jobs",
              "n_readers", "prefetch", "batch_size", "compile", "channels_last", "weights"}


def recipe_differences(info, key, model, *, weights_sha256=None):
    """What differs between the recipe run.json ``info`` evaluated as method ``key`` and
    the pipeline ``model`` (fitted or not; its last step an
    :class:`~sklearn_dinoatten.OperatingPointClassifier`, or a regressor): the
    estimator's parameters,
    the embedder's (``"embedder <name>"``) or resampler's (``"resampler <name>"``)
    before it, the backbone weights (by SHA-256, ``weights_sha256`` being this model's
    file's), the positive class, threshold rule and recalibration and, once fitted, the
    classes. A list of ``(name, evaluated, here)``, empty if nothing differs (see
    :func:`describe_difference`). Parameters that say how a fit ran (device, seed,
    cache, batch size...) are not compared, nor early stopping, which a split with
    validation scans sets."""
    if key not in info["methods"]:
        return [("method", ", ".join(info["methods"]), key)]
    point = model[-1]
    fitted = is_fitted(point)
    estimator = (point if is_regressor(point) else
                 point.estimator_ if fitted else point.estimator)
    differences = _differences("", info["methods"][key]["params"], estimator.get_params())
    if "backbone" in model[0].get_params():  # a slice embedder
        evaluated = embedder_of(info, key)
        differences += _differences("embedder ", evaluated, model[0].get_params())
        shas = info.get("weights_sha256") or {}
        sha = shas.get(info["methods"][key].get("encoder") or next(iter(shas), None))
        if (sha != weights_sha256 if sha or weights_sha256 else
                str((evaluated or {}).get("weights")) != str(model[0].weights)):
            differences.append(("backbone weights (by SHA-256)", sha, weights_sha256))
    else:
        differences += _differences("resampler ", info.get("resampler"),
                                    model[0].get_params())
    if is_regressor(point):  # no operating point, nor classes
        return differences
    here = {"threshold_rule": check_threshold(point.threshold)
            if info.get("positive_label") is not None else None,
            "recalibration": point.recalibration}
    if fitted or point.pos_label is not None:  # else chosen by fit
        here["positive_label"] = point.pos_label_ if fitted else point.pos_label
    if fitted:
        here["classes"] = [str(c) for c in point.classes_]
    return differences + [(name, info.get(name), value) for name, value in here.items()
                          if str(info.get(name)) != str(value)]  # read_run's labels: text


def describe_difference(name, evaluated, here):
    """A difference of :func:`recipe_differences` in words."""
    if name == "method":
        return f"the run evaluated {evaluated}, not {here}"
    return f"{name}: evaluated {evaluated!r}, here {here!r}"


def _differences(prefix, evaluated, params):
    if evaluated is None:
        return [(prefix.strip() or "classifier", None, "its parameters")]
    evaluated, here = _plain(evaluated), _plain(jsonable(params))
    return [(f"{prefix}{name}", evaluated.get(name), here.get(name))
            for name in sorted((set(evaluated) | set(here)) - NOT_RECIPE)
            if evaluated.get(name) != here.get(name)]


def _plain(value):
    """A value as JSON gives it back (tuples as lists, labels as text)."""
    return json.loads(json.dumps(value, default=str))

