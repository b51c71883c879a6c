"""The training loop apart from the task, as skorch's ``NeuralNet`` is apart from its
``NeuralNetClassifier``: a torch module trained with skorch, early stopping on
validation scans (given, or a share of the training ones), learning-rate schedules, the
device, Ctrl-C, persistence and the fit contract. A task is a thin layer on top
(:class:`~sklearn_dinoatten.classifiers.BaseTorchClassifier`): what the targets are,
the loss, and what ``predict`` returns."""

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array
from skorch.dataset import Dataset, ValidSplit
from skorch.helper import predefined_split

from ..nn import refresh_batch_norm
from ..utils._devices import resolve_device, seeded_torch
from ..utils._fit import FitContractMixin, check_fitted, fit_context
from ..utils._persistable import PersistableMixin
from ..utils._skorch import EarlyStopping, InterruptibleNet
from ..utils._tags import VolumeInputMixin
from ..utils._validation import (
    BOOLEAN,
    DEVICE,
    OPTIMIZER,
    RANDOM_STATE,
    VERBOSE,
    integer,
    options,
    real,
)
from ._callbacks import LR_SCHEDULES, lr_schedule

ROUTED_PREFIXES = ("optimizer__", "iterator_train__", "iterator_valid__", "callbacks__")

TRAINING_CONSTRAINTS = {
    "lr": [real(0, low_open=True)],
    "max_epochs": [integer(1)],
    "batch_size": [integer(1)],
    "optimizer": [OPTIMIZER],
    "lr_schedule": [options(*LR_SCHEDULES)],
    "early_stopping": [BOOLEAN],
    "validation_fraction": [real(0, 1, low_open=True, high_open=True)],
    "n_iter_no_change": [integer(1)],
    "device": [DEVICE],
    "random_state": [RANDOM_STATE],
    "verbose": [VERBOSE],
}


class TaskNet(InterruptibleNet):
    """skorch net for modules returning ``(outputs, embedding, attention)``.

    Training minimises the criterion of outputs, embedding and targets. The validation
    loss, which early stopping watches, is the task's :meth:`validation_loss` of the
    outputs alone: contrastive terms are not defined on validation batches of one
    sample, and a loss that anneals between objectives would make epochs incomparable.
    """

    def get_loss(self, y_pred, y_true, X=None, training=False):
        outputs, embedding, _ = y_pred
        y_true = y_true.to(outputs.device)
        if not training:
            return self.validation_loss(outputs, y_true)
        return self.criterion_(outputs, embedding, y_true)

    def validation_loss(self, outputs, y_true):
        """The task's loss of the outputs on validation batches."""
        raise NotImplementedError


class BaseTorchEstimator(FitContractMixin, PersistableMixin, VolumeInputMixin,
                         BaseEstimator):
    """Base of the estimators that train a torch module with skorch, whatever the task.

    The module takes a batch of ``X`` and returns ``(outputs, embedding, attention)``;
    the criterion takes ``(outputs, embedding, targets)``. A task layer (such as
    :class:`~sklearn_dinoatten.classifiers.BaseTorchClassifier`) defines the targets
    (``_encode_targets``, ``_encode_validation_targets``, ``_check_validation_split``),
    the criterion's arguments (``_criterion_args``), the number of outputs
    (``_n_outputs``), the net's validation loss (``_net_class``, a :class:`TaskNet`) and
    what ``predict`` returns. A head on top defines ``__init__`` (keyword-only: its own
    parameters, then the training ones and ``**kwargs``, passed on), ``_constraints``
    and ``_build_module(n_features, n_outputs)``; it may replace ``_build_criterion``,
    ``_callbacks()``, ``_net_kwargs()`` and ``_check_X``. Keyword arguments beyond the
    signature must start with ``optimizer__``, ``iterator_train__``,
    ``iterator_valid__`` or ``callbacks__`` (checked in ``fit``); they go to the skorch
    net unchanged, as in skorch.
    """

    # Whether the module's third output weighs slices (``attention_weights``).
    _has_slice_weights = True
    # Whether its batch-norm statistics are recomputed on the training data after
    # training, with the final weights (networks with batch norm: the 3D ResNets).
    _refresh_batch_norm = False
    _net_class = TaskNet  # a task's, with its validation loss
    _stratified_validation = False  # the share held out for early stopping, by class?
    _constraints = TRAINING_CONSTRAINTS  # a head adds its own parameters
    _fitted_constraints = {"n_features_in_": [integer(1)]}

    def __init__(self, *, lr=1e-3, max_epochs=50, batch_size=16, optimizer=torch.optim.AdamW,
                 lr_schedule="constant", early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, device="auto", random_state=None, verbose=0,
                 **kwargs):
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        vars(self).update(kwargs)  # routed to the skorch net (see _routed_params)

    def _routed_params(self):
        """The keyword arguments given beyond the signature (public, not fitted)."""
        named = set(self._get_param_names())
        return {
            k: v for k, v in vars(self).items()
            if k not in named and not k.startswith("_") and not k.endswith("_")
        }

    def get_params(self, deep=True):
        params = super().get_params(deep=deep)
        params.update(self._routed_params())
        return params

    def set_params(self, **params):
        routed = {k: params.pop(k) for k in list(params) if k not in self._get_param_names()}
        for name, value in routed.items():
            setattr(self, name, value)
        return super().set_params(**params)

    @fit_context
    def fit(self, X, y, *, X_val=None, y_val=None):
        """Train on ``X`` and targets ``y``.

        Parameters
        ----------
        X : array of shape (n_samples, n_slices, dim) or (n_samples, dim)
            Slice embeddings; all-NaN rows are padding.
        y : array-like of shape (n_samples,)
            The targets (for a classifier: labels of at least two classes).
        X_val, y_val : array-like, default=None
            A validation set for early stopping (``early_stopping=True``), such as the
            ``val`` part of an official split, instead of a share of ``X``.

        Returns
        -------
        self
        """
        unknown = [k for k in self._routed_params() if not k.startswith(ROUTED_PREFIXES)]
        if unknown:
            raise ValueError(
                f"{type(self).__name__} got unknown parameters {unknown}; parameters beyond "
                f"its signature must start with one of {ROUTED_PREFIXES} (passed to skorch)."
            )
        X = self._check_X(X, reset=True)
        targets = self._encode_targets(X, y)
        validation = self._validation_set(X_val, y_val)
        if self.early_stopping and validation is None:
            self._check_validation_split(targets)
        criterion_args = self._criterion_args(targets)
        self.device_ = resolve_device(self.device)
        with seeded_torch(self.random_state, self.device_) as seed:
            module = self._build_module(self.n_features_in_, self._n_outputs())
            self.net_ = self._new_net(module, self._build_criterion(criterion_args), seed,
                                      validation)
            self.net_.fit(X, targets)
            if self._refresh_batch_norm:
                refresh_batch_norm(self.net_.module_, X, batch_size=self.batch_size,
                                   device=self.device_)
        # Left in inference mode, so that predicting changes nothing in the fitted model.
        self.net_.module_.eval()
        self.net_.criterion_.eval()
        return self

    def _validation_set(self, X_val, y_val):
        """``X_val, y_val`` checked, as a skorch dataset; ``None`` without them."""
        if X_val is None and y_val is None:
            return None
        if X_val is None or y_val is None:
            raise ValueError("X_val and y_val go together; got only "
                             f"{'X_val' if y_val is None else 'y_val'}.")
        if not self.early_stopping:
            raise ValueError("X_val and y_val are for early stopping; set early_stopping=True "
                             "to use them.")
        X_val = self._check_X(X_val)
        return Dataset(X_val, self._encode_validation_targets(X_val, y_val))

    def _new_net(self, module, criterion, seed, validation=None):
        """The skorch net that trains ``module``; ``seed`` draws the validation split
        unless a ``validation`` dataset is given."""
        if validation is not None:
            train_split = predefined_split(validation)
        elif self.early_stopping:
            train_split = ValidSplit(self.validation_fraction,
                                     stratified=self._stratified_validation,
                                     random_state=seed)
        else:
            train_split = None
        stopping = ([("early_stopping", EarlyStopping(patience=self.n_iter_no_change,
                                                      load_best=True))]
                    if self.early_stopping else [])
        return self._net_class(
            module=module,
            criterion=criterion,
            optimizer=self.optimizer,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            train_split=train_split,
            **self._net_kwargs(),
            callbacks=(self._callbacks() + lr_schedule(self.lr_schedule, self.max_epochs)
                       + stopping),
            predict_nonlinearity=self._predict_nonlinearity(),
            iterator_train__shuffle=True,
            # One sample per forward at prediction: float32 BLAS results change in the
            # last bit with the batch's shape, and a volume's score must not depend on
            # which other volumes are predicted with it.
            iterator_valid__batch_size=1,
            device=str(self.device_),
            verbose=self.verbose,
            **self._routed_params(),
        )

    # The task layer's part -----------------------------------------------------------

    def _encode_targets(self, X, y):
        """``y`` checked against ``X`` and encoded for the net (fitted state such as
        ``classes_`` set here)."""
        raise NotImplementedError

    def _encode_validation_targets(self, X_val, y_val):
        """``y_val`` checked against ``X_val`` and encoded as the training targets are."""
        raise NotImplementedError

    def _check_validation_split(self, targets):
        """Refuse targets that ``validation_fraction`` cannot be held out of."""

    def _criterion_args(self, targets):
        """What ``_build_criterion`` takes, from the training targets. Default: None."""
        return None

    def _n_outputs(self):
        """The size of the module's first output."""
        raise NotImplementedError

    def _predict_nonlinearity(self):
        """skorch's ``predict_nonlinearity`` of the net. Default: none (identity)."""
        return None

    # For sklearn_dinoatten.persistence: the networks saved, an untrained network of the
    # fitted shape to receive them, and the loaded network put to use.
    def _saved_modules(self):
        return {"module": self.net_.module_}

    def _empty_modules(self):
        return {"module": self._build_module(self.n_features_in_, self._n_outputs())}

    def _restore(self, modules):
        self.device_ = resolve_device(self.device)
        self.net_ = self._new_net(modules["module"], self._build_criterion(None),
                                  seed=0).initialize()
        self.net_.module_.eval()

    def _callbacks(self):
        """Extra skorch callbacks ``[(name, callback)]`` a subclass trains with."""
        return []

    def _net_kwargs(self):
        """Extra keyword arguments of the skorch net a subclass trains with."""
        return {}

    @available_if(lambda self: self._has_slice_weights)
    def attention_weights(self, X):
        """Per-slice attention weights, shape ``(n_samples, n_slices)``; padding gets 0."""
        check_fitted(self)
        _, _, attention = self.net_.forward(self._check_X(X))
        return attention.numpy().astype(np.float64)

    def volume_embeddings(self, X):
        """The learned embedding each sample is predicted from, ``(n_samples, dim)``.

        The embedding head's output for the attention heads, the normed CLS output for
        the slice transformer, the SupCon projection for SC-MIL, the pooled features
        for the 3D ResNet: what the papers plot with t-SNE.
        """
        check_fitted(self)
        _, embedding, _ = self.net_.forward(self._check_X(X))
        return embedding.numpy().astype(np.float64)

    def _check_X(self, X, reset=False):
        """Bags of slice embeddings ``(n, n_slices, dim)`` (a 2D table is one slice per
        sample) as float32; whole rows of NaN are padding."""
        X = check_array(X, allow_nd=True, ensure_all_finite=False, dtype=np.float32,
                        input_name="X")
        if X.ndim == 2:
            X = X[:, None, :]
        if X.ndim != 3:
            raise ValueError(
                f"X must be (n_samples, n_slices, dim) or (n_samples, dim); got shape {X.shape}."
            )
        if np.isinf(X).any():
            raise ValueError("Input X contains infinity.")
        nan = np.isnan(X)
        padding = nan.all(axis=2)
        if (nan.any(axis=2) & ~padding).any():
            raise ValueError(
                "Input X contains NaN inside a slice embedding; only whole rows of NaN "
                "(padding) are allowed."
            )
        empty = np.flatnonzero(padding.all(axis=1))
        if empty.size:
            raise ValueError(
                f"Samples {empty[:10].tolist()} of X have no slices: every row is NaN padding."
            )
        if reset:
            self.n_features_in_ = X.shape[2]
        elif X.shape[2] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[2]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return X
