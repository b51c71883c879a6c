"""The base of the classifiers that train a torch module with skorch: one training
loop, one early-stopping rule, one device rule, one way to pickle and to save."""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    column_or_1d,
)
from skorch.dataset import Dataset, ValidSplit
from skorch.helper import predefined_split

from ..nn import CompositeLoss
from ..utils._devices import resolve_device, seeded_torch
from ..utils._fit import FitContractMixin, check_fitted, fit_context
from ..utils._options import CLASS_WEIGHTS
from ..utils._persistable import PersistableMixin
from ..utils._skorch import EarlyStopping, InterruptibleNet
from ..utils._tags import VolumeInputMixin
from ..utils._validation import (
    BOOLEAN,
    DEVICE,
    DICT,
    NONE,
    OPTIMIZER,
    RANDOM_STATE,
    VERBOSE,
    classes_array,
    integer,
    options,
    real,
)
from ._callbacks import LR_SCHEDULES, lr_schedule

ROUTED_PREFIXES = ("optimizer__", "iterator_train__", "iterator_valid__", "callbacks__")

# The end of every classifier's docstring Parameters, and the start of its Attributes.
TRAINING_DOCS = """class_weight : None, "balanced" or dict, default=None
        Cross-entropy class weights, as in scikit-learn.
    lr : float, default=1e-3
        Learning rate.
    max_epochs : int, default=50
        Training epochs (the most, with early stopping).
    batch_size : int, default=16
        Volumes per training batch.
    optimizer : torch optimizer class, default=torch.optim.AdamW
        Its own parameters are routed skorch-style, e.g. ``optimizer__weight_decay=1e-2``.
    lr_schedule : {"constant", "cosine", "step"}, default="constant"
        The learning rate over the epochs: constant; cosine annealing to 0 at
        ``max_epochs``; or divided by 10 at half and at three quarters of ``max_epochs``
        (MedMNIST v2's schedule).
    early_stopping : bool, default=False
        Stop when the validation log-loss (of the predicted probabilities, whatever the
        training loss) has not improved for ``n_iter_no_change`` epochs, and keep the
        weights of the best epoch. The validation set is ``X_val, y_val`` given to
        ``fit``, else a stratified ``validation_fraction`` of the training data.
    validation_fraction : float, default=0.1
        Share of the training data held out when ``early_stopping`` and no ``X_val``.
    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    device : str, default="auto"
        ``"auto"`` uses CUDA when present, else the CPU.
    random_state : int, RandomState or None, default=None
        Seeds initialisation, shuffling and the validation split: a fixed value gives
        identical fits on the CPU.
    verbose : int, default=0
        ``1`` prints skorch's table of losses per epoch.
    **kwargs
        Parameters starting with ``optimizer__``, ``iterator_train__``,
        ``iterator_valid__`` or ``callbacks__``, passed to the skorch net.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    n_features_in_ : int
        Size of one slice embedding seen in ``fit``.
    net_ : skorch.NeuralNet
        The trained net: ``net_.module_`` is the torch module, ``net_.history`` the
        training history.
    device_ : torch.device
        The device it was trained on."""

TRAINING_CONSTRAINTS = {
    "class_weight": [NONE, options(*CLASS_WEIGHTS), DICT],
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


def _plain(label):
    """A label as Python writes it (``'a'``, not ``np.str_('a')``), for messages."""
    return label.item() if isinstance(label, np.generic) else label


def _softmax(logits):
    return torch.softmax(logits, dim=-1)


class _MultiOutputNet(InterruptibleNet):
    """skorch net for modules returning ``(logits, embedding, attention)``.

    Training minimises the criterion of logits, embedding and targets. The validation
    loss, which early stopping watches, is the log-loss of the predicted probabilities
    whatever the training objective: contrastive terms are not defined on validation
    batches of one sample, and a loss that anneals between objectives would make
    epochs incomparable.
    """

    def get_loss(self, y_pred, y_true, X=None, training=False):
        logits, embedding, _ = y_pred
        y_true = y_true.to(logits.device)
        if not training:
            return F.cross_entropy(logits, y_true)
        return self.criterion_(logits, embedding, y_true)


class BaseTorchClassifier(FitContractMixin, PersistableMixin, VolumeInputMixin,
                          ClassifierMixin, BaseEstimator):
    """Base of the classifiers that train a torch module with skorch.

    The module takes a batch of ``X`` and returns ``(logits, embedding, attention)``;
    the criterion takes ``(logits, embedding, labels)``. Subclasses define ``__init__``
    (keyword-only: its own parameters, assigned, then the training ones of
    ``TRAINING_DOCS`` and ``**kwargs``, passed on to this one), ``_constraints``
    (their parameters' allowed values, with ``TRAINING_CONSTRAINTS``) and
    ``_build_module(n_features, n_classes)``; they may replace
    ``_build_criterion(class_weight)`` (cross-entropy here), ``_callbacks()``,
    ``_net_kwargs()`` and ``_check_X``. Keyword arguments beyond the signature must
    start with ``optimizer__``, ``iterator_train__``, ``iterator_valid__`` or
    ``callbacks__`` (checked in ``fit``); they go to the skorch net unchanged, as in
    skorch.
    """

    # Whether the module's third output weighs slices (``attention_weights``).
    _has_slice_weights = True
    _fitted_constraints = {"classes_": [classes_array()], "n_features_in_": [integer(1)]}

    def __init__(self, *, class_weight=None, lr=1e-3, max_epochs=50, batch_size=16,
                 optimizer=torch.optim.AdamW, lr_schedule="constant", early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, device="auto",
                 random_state=None, verbose=0, **kwargs):
        self.class_weight = class_weight
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
        """Train on ``X`` and labels ``y``.

        Parameters
        ----------
        X : array of shape (n_samples, n_slices, dim) or (n_samples, dim)
            Slice embeddings; all-NaN rows are padding.
        y : array-like of shape (n_samples,)
            Class labels (any type ``numpy.unique`` can sort), at least two classes.
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
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has only one class ({_plain(self.classes_[0])!r}); a "
                             "classifier needs at least two.")
        validation = self._validation_set(X_val, y_val)
        counts = np.bincount(y_index)
        if self.early_stopping and validation is None and counts.min() < 2:
            raise ValueError(
                "early_stopping=True holds out a stratified validation set, which needs 2 "
                f"samples of every class; class {_plain(self.classes_[counts.argmin()])!r} has "
                f"{counts.min()} sample. Set early_stopping=False or give more samples."
            )
        class_weight = None
        if self.class_weight is not None:
            class_weight = torch.tensor(
                compute_class_weight(self.class_weight, classes=self.classes_, y=y),
                dtype=torch.float32,
            )
        self.device_ = resolve_device(self.device)
        with seeded_torch(self.random_state, self.device_) as seed:
            module = self._build_module(self.n_features_in_, len(self.classes_))
            self.net_ = self._new_net(module, self._build_criterion(class_weight), seed,
                                      validation)
            self.net_.fit(X, y_index.astype(np.int64))
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
        y_val = column_or_1d(y_val)
        check_consistent_length(X_val, y_val)
        unknown = sorted(set(y_val.tolist()) - set(self.classes_.tolist()))
        if unknown:
            raise ValueError(f"y_val has class {unknown[0]!r}, which y does not have.")
        return Dataset(X_val, np.searchsorted(self.classes_, y_val).astype(np.int64))

    def _new_net(self, module, criterion, seed, validation=None):
        """The skorch net that trains ``module``; ``seed`` draws the validation split
        unless a ``validation`` dataset is given."""
        if validation is not None:
            train_split = predefined_split(validation)
        elif self.early_stopping:
            train_split = ValidSplit(self.validation_fraction, stratified=True,
                                     random_state=seed)
        else:
            train_split = None
        stopping = ([("early_stopping", EarlyStopping(patience=self.n_iter_no_change,
                                                      load_best=True))]
                    if self.early_stopping else [])
        return _MultiOutputNet(
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
            predict_nonlinearity=_softmax,
            iterator_train__shuffle=True,
            # One sample per forward at prediction: float32 BLAS results change in the
            # last bit with the batch's shape, and a volume's score must not depend on
            # which other volumes are predicted with it.
            iterator_valid__batch_size=1,
            device=str(self.device_),
            verbose=self.verbose,
            **self._routed_params(),
        )

    # For sklearn_dinoatten.persistence: the networks saved, an untrained network of the
    # fitted shape to receive them, and the loaded network put to use.
    def _saved_modules(self):
        return {"module": self.net_.module_}

    def _empty_modules(self):
        return {"module": self._build_module(self.n_features_in_, len(self.classes_))}

    def _restore(self, modules):
        self.device_ = resolve_device(self.device)
        self.net_ = self._new_net(modules["module"], self._build_criterion(None),
                                  seed=0).initialize()
        self.net_.module_.eval()

    def _build_criterion(self, class_weight):
        """The training loss of ``(logits, embedding, labels)``: cross-entropy."""
        return CompositeLoss(supcon_weight=0.0, variance_weight=0.0, class_weight=class_weight)

    def _callbacks(self):
        """Extra skorch callbacks ``[(name, callback)]`` a subclass trains with."""
        return []

    def _net_kwargs(self):
        """Extra keyword arguments of the skorch net a subclass trains with."""
        return {}

    def predict_proba(self, X):
        """Class probabilities, shape ``(n_samples, n_classes)``, columns in ``classes_`` order."""
        check_fitted(self)
        proba = self.net_.predict_proba(self._check_X(X)).astype(np.float64)
        return proba / proba.sum(axis=1, keepdims=True)  # rows sum to 1 in float64 too

    def predict(self, X):
        """Predicted labels, taken from ``classes_``."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    @available_if(lambda self: self._has_slice_weights)
    def attention_weights(self, X):
        """Per-slice attention weights, shape ``(n_samples, n_slices)``; padding gets 0."""
        check_fitted(self)
        _, _, attention = self.net_.forward(self._check_X(X))
        return attention.numpy().astype(np.float64)

    def volume_embeddings(self, X):
        """The learned embedding each sample is classified from, ``(n_samples, dim)``.

        The embedding head's output for the attention classifiers, the normed CLS
        output for the slice transformer, the SupCon projection for SC-MIL, the pooled
        features for the 3D ResNet: what the papers plot with t-SNE.
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
