"""The methods a study compares, by name: the registry behind ``dinoatten cv --method``.

Importing this module is cheap (no torch, no scikit-learn): the command line reads the
names for its help; :func:`make_method` imports the estimator it builds.
"""

from dataclasses import dataclass, field
from importlib import import_module

from ..utils._options import MAX_EPOCHS, RANDOM_STATE, RESNET_DEPTH, RESNET_WIDTH, TASKS

INPUTS = ("slices", "volumes")  # what a method trains on: slice embeddings, or volumes
# Where each task's estimators live
PACKAGES = {"classification": "..classifiers", "regression": "..regressors"}


@dataclass(frozen=True)
class Method:
    """A method of the study: its display name, the name of its classifier in
    :mod:`sklearn_dinoatten.classifiers` and of its regressor in
    :mod:`sklearn_dinoatten.regressors` (None for a method of classes only), the
    parameters that make it this method, and its ``input`` (one of :data:`INPUTS`:
    slice embeddings, or resampled volumes)."""

    name: str
    estimator: str
    params: dict = field(default_factory=dict)
    regressor: str | None = None
    input: str = "slices"

    @property
    def takes_volumes(self):
        """Whether it trains on resampled volumes, not on slice embeddings."""
        return self.input == "volumes"

    @property
    def tasks(self):
        """The tasks it has an estimator for: ``"classification"``, and
        ``"regression"`` where it has a regressor."""
        return ("classification",) + (("regression",) if self.regressor else ())

    def estimator_name(self, task):
        """The name of its estimator for ``task``."""
        return self.estimator if task == "classification" else self.regressor


METHODS = {
    "dinoatten3d": Method("DinoAtten3D", "AttentionPoolClassifier",
                          regressor="AttentionPoolRegressor"),
    "attention-ce": Method("Attention, CE only", "AttentionPoolClassifier",
                           dict(supcon_weight=0.0, variance_weight=0.0)),
    "mean": Method("Mean pooling", "AttentionPoolClassifier", dict(pooling="mean"),
                   regressor="AttentionPoolRegressor"),
    "gated": Method("Gated attention", "AttentionPoolClassifier", dict(pooling="gated"),
                    regressor="AttentionPoolRegressor"),
    "mst": Method("MST aggregator", "SliceTransformerClassifier",
                  regressor="SliceTransformerRegressor"),
    "scmil": Method("SC-MIL", "SCMILClassifier"),
    "resnet3d": Method("3D ResNet", "ResNet3DClassifier", dict(batch_size=8),
                       regressor="ResNet3DRegressor", input="volumes"),
}
REFERENCE = "dinoatten3d"
ENCODER_SEPARATOR = "@"  # "<method>@<encoder>": a method on one of a study's encoders
TRAINING_MEAN = "training-mean"  # a regression's floor: the training scans' mean target
CORRECTED = "+bias-corrected"  # the suffix of a method's bias-corrected predictions


def method_name(key):
    """A method's display name (its key, for a method outside :data:`METHODS`); the key
    ``"<method>@<encoder>"`` of a study of several slice encoders names the encoder;
    ``"<key>+bias-corrected"`` is a method's bias-corrected predictions (regression)."""
    if key == TRAINING_MEAN:
        return "Training mean"
    if key.endswith(CORRECTED):
        return f"{method_name(key[:-len(CORRECTED)])} (bias-corrected)"
    method, _, encoder = key.partition(ENCODER_SEPARATOR)
    name = METHODS[method].name if method in METHODS else method
    return f"{name} [{encoder}]" if encoder else name


def encoder_key(key, encoder):
    """The key of method ``key`` on slice encoder ``encoder`` in a study of several."""
    return f"{key}{ENCODER_SEPARATOR}{encoder}"


def methods_for(task):
    """The keys of :data:`METHODS` with an estimator for ``task``."""
    return [key for key, method in METHODS.items() if task in method.tasks]


def make_method(key, *, task="classification", max_epochs=MAX_EPOCHS,
                random_state=RANDOM_STATE, class_weight=None, resnet_depth=RESNET_DEPTH,
                resnet_width=RESNET_WIDTH):
    """An unfitted classifier (or, with ``task="regression"``, regressor) for a method of
    :data:`METHODS`.

    ``"resnet3d"`` takes resampled volumes (``METHODS[key].takes_volumes``); the others
    take slice embeddings. ``class_weight`` is the classifiers'.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}; got {task!r}.")
    if key not in METHODS or task not in METHODS[key].tasks:
        raise ValueError(f"method must be one of {methods_for(task)} for {task}; got {key!r}.")
    method = METHODS[key]
    params = dict(method.params, max_epochs=max_epochs, random_state=random_state)
    if task == "classification":
        params["class_weight"] = class_weight
    if method.takes_volumes:
        params.update(depth=resnet_depth, widen_factor=resnet_width)
    package = import_module(PACKAGES[task], __package__)
    return getattr(package, method.estimator_name(task))(**params)


def method_of(estimator):
    """The key of the method ``estimator`` (a classifier or regressor) is: the one of its
    class whose parameters it has (the most specific), or None for one of no method."""
    params = estimator.get_params()
    name = type(estimator).__name__
    keys = [k for k, m in METHODS.items() if name in (m.estimator, m.regressor)]
    if len(keys) == 1:
        return keys[0]
    keys = [k for k in keys if all(params.get(p) == v for p, v in METHODS[k].params.items())]
    return max(keys, key=lambda k: len(METHODS[k].params), default=None)
