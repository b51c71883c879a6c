"""scikit-learn regressors that train a torch module with skorch: a number per scan
(brain age, a severity score, a volume).

- :class:`AttentionPoolRegressor` and :class:`SliceTransformerRegressor` take slice
  embeddings ``(n_volumes, n_slices, dim)`` as made by
  :class:`~sklearn_dinoatten.DinoSliceEmbedder` (all-NaN rows are padding; a 2D table
  is one slice per sample).
- :class:`ResNet3DRegressor` takes volumes of one shape ``(n_volumes, x, y, z)``.

:class:`BaseTorchRegressor` is the regression layer on the training base the
classifiers share (:class:`~sklearn_dinoatten.classifiers.BaseTorchEstimator`): the
target standardised in ``fit`` and restored by ``predict``, the point loss, R² as
``score``.
"""

from ._base import BaseTorchRegressor
from ._heads import AttentionPoolRegressor, SliceTransformerRegressor
from ._resnet import ResNet3DRegressor

__all__ = [
    "AttentionPoolRegressor",
    "BaseTorchRegressor",
    "ResNet3DRegressor",
    "SliceTransformerRegressor",
]
