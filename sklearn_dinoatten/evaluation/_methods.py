"""The methods a study compares, by name: the registry behind ``dinoatten cv --method``.

Importing this module is cheap (no torch, no scikit-learn): the command line reads the
names for its help; :func:`make_method` imports the classifier it builds.
"""

from dataclasses import dataclass, field
from importlib import import_module

from ..utils._options import MAX_EPOCHS, RANDOM_STATE, RESNET_DEPTH, RESNET_WIDTH

INPUTS = ("slices", "volumes")  # what a method trains on: slice embeddings, or volumes
TASKS = ("classification",)  # what it predicts


@dataclass(frozen=True)
class Method:
    """A method of the study: its display name, the name of its estimator in
    :mod:`sklearn_dinoatten.classifiers`, the parameters that make it this method, its
    ``task`` (one of :data:`TASKS`) and its ``input`` (one of :data:`INPUTS`: slice
    embeddings, or resampled volumes)."""

    name: str
    estimator: str
    params: dict = field(default_factory=dict)
    task: str = "classification"
    input: str = "slices"

    @property
    def takes_volumes(self):
        """Whether it trains on resampled volumes, not on slice embeddings."""
        return self.input == "volumes"


METHODS = {
    "dinoatten3d": Method("DinoAtten3D", "AttentionPoolClassifier"),
    "attention-ce": Method("Attention, CE only", "AttentionPoolClassifier",
                           dict(supcon_weight=0.0, variance_weight=0.0)),
    "mean": Method("Mean pooling", "AttentionPoolClassifier", dict(pooling="mean")),
    "gated": Method("Gated attention", "AttentionPoolClassifier", dict(pooling="gated")),
    "mst": Method("MST aggregator", "SliceTransformerClassifier"),
    "scmil": Method("SC-MIL", "SCMILClassifier"),
    "resnet3d": Method("3D ResNet", "ResNet3DClassifier", dict(batch_size=8),
                       input="volumes"),
}
REFERENCE = "dinoatten3d"
ENCODER_SEPARATOR = "@"  # "<method>@<encoder>": a method on one of a study's encoders


def method_name(key):
    """A method's display name (its key, for a method outside :data:`METHODS`); the key
    ``"<method>@<encoder>"`` of a study of several slice encoders names the encoder."""
    method, _, encoder = key.partition(ENCODER_SEPARATOR)
    name = METHODS[method].name if method in METHODS else method
    return f"{name} [{encoder}]" if encoder else name


def encoder_key(key, encoder):
    """The key of method ``key`` on slice encoder ``encoder`` in a study of several."""
    return f"{key}{ENCODER_SEPARATOR}{encoder}"


def make_method(key, *, max_epochs=MAX_EPOCHS, random_state=RANDOM_STATE, class_weight=None,
                resnet_depth=RESNET_DEPTH, resnet_width=RESNET_WIDTH):
    """An unfitted classifier for a method of :data:`METHODS`.

    ``"resnet3d"`` takes resampled volumes (``METHODS[key].takes_volumes``); the others
    take slice embeddings.
    """
    if key not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}; got {key!r}.")
    method = METHODS[key]
    params = dict(method.params, max_epochs=max_epochs, random_state=random_state,
                  class_weight=class_weight)
    if method.takes_volumes:
        params.update(depth=resnet_depth, widen_factor=resnet_width)
    estimator = getattr(import_module("..classifiers", __package__), method.estimator)
    return estimator(**params)


def method_of(classifier):
    """The key of the method ``classifier`` is: the one of its class whose parameters it
    has (the most specific), or None for a classifier of no method."""
    params = classifier.get_params()
    keys = [k for k, m in METHODS.items() if m.estimator == type(classifier).__name__]
    if len(keys) == 1:
        return keys[0]
    keys = [k for k in keys if all(params.get(p) == v for p, v in METHODS[k].params.items())]
    return max(keys, key=lambda k: len(METHODS[k].params), default=None)
