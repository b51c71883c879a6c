"""The regression layer on the training loop: a number per scan (brain age, a score, a
volume), the target standardised inside ``fit`` and restored by ``predict``, a point
loss, and early stopping on that loss; the base of every regressor of the package."""

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_array, check_consistent_length, column_or_1d

from ..classifiers import BaseTorchEstimator, TaskNet
from ..nn import RegressionLoss
from ..utils._docs import TRAINING_ATTRIBUTE_DOCS, TRAINING_PARAMETER_DOCS
from ..utils._fit import check_fitted
from ..utils._options import REGRESSION_LOSSES
from ..utils._validation import options, real

# The end of every regressor's docstring Parameters, and the start of its Attributes.
TRAINING_DOCS = f"""loss : {{"mse", "l1", "huber"}}, default="mse"
        The training loss of the standardised target: squared error, absolute error,
        or Huber's (squared within one standard deviation of the target, absolute
        beyond, so that a few outlying targets pull less).
    {TRAINING_PARAMETER_DOCS}

    Attributes
    ----------
    target_mean_ : float
    target_scale_ : float
        The training targets' mean and standard deviation (1 for a constant target): the
        network learns ``(y - target_mean_) / target_scale_``, and ``predict`` answers in
        the units of ``y``.
    {TRAINING_ATTRIBUTE_DOCS}"""

TRAINING_CONSTRAINTS = {"loss": [options(*REGRESSION_LOSSES)],
                        **BaseTorchEstimator._constraints}


class _RegressorNet(TaskNet):
    """A regressor's net: early stopping watches the point loss of the standardised
    target (the training loss, less any term of the embedding)."""

    def validation_loss(self, outputs, y_true):
        return self.criterion_.point_loss(outputs, y_true)


class BaseTorchRegressor(RegressorMixin, BaseTorchEstimator):
    """Base of the regressors that train a torch module with skorch.

    The training loop is :class:`~sklearn_dinoatten.classifiers.BaseTorchEstimator`'s;
    this layer adds a finite numeric target of one column, standardised for the net
    (``target_mean_``, ``target_scale_``) and restored in :meth:`predict`, the point
    loss (``loss``), and early stopping on it. The module's first output has one
    column: the standardised prediction. ``score`` is R², as scikit-learn's regressors'.
    A head subclasses it as the training base says, with ``_build_module(n_features,
    n_outputs)``.
    """

    _net_class = _RegressorNet
    _fitted_constraints = {**BaseTorchEstimator._fitted_constraints,
                           "target_mean_": [real()],
                           "target_scale_": [real(0, low_open=True)]}

    def __init__(self, *, loss="mse", lr=1e-3, max_epochs=50, batch_size=16,
                 optimizer=torch.optim.AdamW, lr_schedule="constant", early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, device="auto",
                 random_state=None, verbose=0, **kwargs):
        self.loss = loss
        super().__init__(lr=lr, max_epochs=max_epochs, batch_size=batch_size,
                         optimizer=optimizer, lr_schedule=lr_schedule,
                         early_stopping=early_stopping,
                         validation_fraction=validation_fraction,
                         n_iter_no_change=n_iter_no_change, device=device,
                         random_state=random_state, verbose=verbose, **kwargs)

    def _target(self, X, y, name):
        """``y`` checked against ``X``: one finite number per sample, float64."""
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        return check_array(y, ensure_2d=False, dtype=np.float64, input_name=name)

    def _encode_targets(self, X, y):
        """The standardised target (``target_mean_`` and ``target_scale_`` set here)."""
        y = self._target(X, y, "y")
        self.target_mean_ = float(y.mean())
        scale = float(y.std())
        self.target_scale_ = scale if scale > 0 else 1.0
        return self._standardised(y)

    def _encode_validation_targets(self, X_val, y_val):
        return self._standardised(self._target(X_val, y_val, "y_val"))

    def _standardised(self, y):
        return ((y - self.target_mean_) / self.target_scale_).astype(np.float32)

    def _check_validation_split(self, targets):
        if len(targets) < 2:
            raise ValueError("early_stopping=True holds out a share of the training samples "
                             f"for validation, which needs 2 samples; got {len(targets)}.")

    def _n_outputs(self):
        return 1

    def _build_criterion(self, args):
        """The training loss of ``(outputs, embedding, target)``: ``loss``'s point loss."""
        return RegressionLoss(self.loss)

    def score(self, X, y, sample_weight=None):
        """R² of ``predict(X)`` against ``y`` (:func:`sklearn.metrics.r2_score`): 1 is
        perfect, 0 is predicting ``y``'s own mean, below 0 worse."""
        return super().score(X, y, sample_weight=sample_weight)

    def predict(self, X):
        """The predicted target of each sample, shape ``(n_samples,)``, in ``y``'s units."""
        check_fitted(self)
        outputs, _, _ = self.net_.forward(self._check_X(X))
        standardised = outputs[:, 0].numpy().astype(np.float64)
        return standardised * self.target_scale_ + self.target_mean_
