"""scikit-learn classifiers that train a torch module with skorch.

- :class:`AttentionPoolClassifier`, :class:`SliceTransformerClassifier` and
  :class:`SCMILClassifier` take slice embeddings ``(n_volumes, n_slices, dim)`` as made
  by :class:`~sklearn_dinoatten.DinoSliceEmbedder`: rows that are all NaN are padding. A
  2D array ``(n_samples, dim)`` is taken as one slice per sample, so they also work on
  plain feature tables.
- :class:`ResNet3DClassifier` takes volumes of one shape ``(n_volumes, x, y, z)``.
- :class:`FineTunedSliceClassifier` takes volumes (paths or arrays) or 2D images.

:class:`BaseTorchEstimator` is the training loop apart from the task (epochs, early
stopping, validation scans, schedules, devices, interruption, persistence);
:class:`BaseTorchClassifier` the classification layer on it (classes, class weights,
the loss, softmax), which a new head subclasses; :class:`TaskNet` the skorch net whose
validation loss a task defines (the regressors of :mod:`sklearn_dinoatten.regressors`
stand on the same base).
"""

from ._base import BaseTorchClassifier
from ._finetune import FineTunedSliceClassifier
from ._heads import AttentionPoolClassifier, SCMILClassifier, SliceTransformerClassifier
from ._resnet import ResNet3DClassifier
from ._training import BaseTorchEstimator, TaskNet

__all__ = [
    "AttentionPoolClassifier",
    "BaseTorchClassifier",
    "BaseTorchEstimator",
    "FineTunedSliceClassifier",
    "ResNet3DClassifier",
    "SCMILClassifier",
    "SliceTransformerClassifier",
    "TaskNet",
]
