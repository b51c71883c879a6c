"""The classification layer on the training loop (:mod:`._training`): labels and their
classes, class weights, the composite loss, softmax probabilities, and the log-loss that
early stopping watches; the base of every classifier of the package."""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import ClassifierMixin
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, column_or_1d

from ..nn import CompositeLoss
from ..utils._docs import TRAINING_ATTRIBUTE_DOCS, TRAINING_PARAMETER_DOCS
from ..utils._fit import check_fitted
from ..utils._options import CLASS_WEIGHTS
from ..utils._validation import DICT, NONE, classes_array, options
from ._training import BaseTorchEstimator, TaskNet

# The end of every classifier's docstring Parameters, and the start of its Attributes.
TRAINING_DOCS = f"""class_weight : None, "balanced" or dict, default=None
        Cross-entropy class weights, as in scikit-learn.
    {TRAINING_PARAMETER_DOCS}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    {TRAINING_ATTRIBUTE_DOCS}"""

TRAINING_CONSTRAINTS = {"class_weight": [NONE, options(*CLASS_WEIGHTS), DICT],
                        **BaseTorchEstimator._constraints}


def _plain(label):
    """A label as Python writes it (``'a'``, not ``np.str_('a')``), for messages."""
    return label.item() if isinstance(label, np.generic) else label


def _softmax(logits):
    return torch.softmax(logits, dim=-1)


class _ClassifierNet(TaskNet):
    """A classifier's net: early stopping watches the log-loss of the predicted
    probabilities, whatever the training objective."""

    def validation_loss(self, logits, y_true):
        return F.cross_entropy(logits, y_true)


class BaseTorchClassifier(ClassifierMixin, BaseTorchEstimator):
    """Base of the classifiers that train a torch module with skorch.

    The training loop is :class:`~sklearn_dinoatten.classifiers.BaseTorchEstimator`'s;
    this layer adds the classes (labels of any type ``numpy.unique`` can sort, at least
    two), class weights, the loss (cross-entropy unless ``_build_criterion`` says
    otherwise), softmax probabilities, and early stopping on the validation log-loss
    with a share held out by class. The module's first output is the logits. A head
    subclasses it as the training base says, with ``_build_module(n_features,
    n_classes)``; ``_build_criterion(class_weight)`` takes the class weights as a tensor.
    """

    _net_class = _ClassifierNet
    _stratified_validation = True
    _fitted_constraints = {**BaseTorchEstimator._fitted_constraints,
                           "classes_": [classes_array()]}

    def __init__(self, *, class_weight=None, lr=1e-3, max_epochs=50, batch_size=16,
                 optimizer=torch.optim.AdamW, lr_schedule="constant", early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, device="auto",
                 random_state=None, verbose=0, **kwargs):
        self.class_weight = class_weight
        super().__init__(lr=lr, max_epochs=max_epochs, batch_size=batch_size,
                         optimizer=optimizer, lr_schedule=lr_schedule,
                         early_stopping=early_stopping,
                         validation_fraction=validation_fraction,
                         n_iter_no_change=n_iter_no_change, device=device,
                         random_state=random_state, verbose=verbose, **kwargs)

    def _encode_targets(self, X, y):
        """The labels' indices in ``classes_`` (set here), at least two classes."""
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has only one class ({_plain(self.classes_[0])!r}); a "
                             "classifier needs at least two.")
        return y_index.astype(np.int64)

    def _encode_validation_targets(self, X_val, y_val):
        y_val = column_or_1d(y_val)
        check_consistent_length(X_val, y_val)
        unknown = sorted(set(y_val.tolist()) - set(self.classes_.tolist()))
        if unknown:
            raise ValueError(f"y_val has class {unknown[0]!r}, which y does not have.")
        return np.searchsorted(self.classes_, y_val).astype(np.int64)

    def _check_validation_split(self, targets):
        counts = np.bincount(targets)
        if counts.min() < 2:
            raise ValueError(
                "early_stopping=True holds out a stratified validation set, which needs 2 "
                f"samples of every class; class {_plain(self.classes_[counts.argmin()])!r} has "
                f"{counts.min()} sample. Set early_stopping=False or give more samples."
            )

    def _criterion_args(self, targets):
        """The class weights, as a tensor (None without ``class_weight``)."""
        if self.class_weight is None:
            return None
        return torch.tensor(compute_class_weight(self.class_weight, classes=self.classes_,
                                                 y=self.classes_[targets]),
                            dtype=torch.float32)

    def _n_outputs(self):
        return len(self.classes_)

    def _predict_nonlinearity(self):
        return _softmax

    def _build_criterion(self, class_weight):
        """The training loss of ``(logits, embedding, labels)``: cross-entropy."""
        return CompositeLoss(supcon_weight=0.0, variance_weight=0.0, class_weight=class_weight)

    def predict_proba(self, X):
        """Class probabilities, shape ``(n_samples, n_classes)``, columns in ``classes_`` order."""
        check_fitted(self)
        proba = self.net_.predict_proba(self._check_X(X)).astype(np.float64)
        return proba / proba.sum(axis=1, keepdims=True)  # rows sum to 1 in float64 too

    def predict(self, X):
        """Predicted labels, taken from ``classes_``."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
