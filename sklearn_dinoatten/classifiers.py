"""scikit-learn classifiers over slice embeddings, trained with skorch.

Input is ``(n_volumes, n_slices, dim)`` as made by :class:`DinoSliceEmbedder`: rows
that are all NaN are padding. A 2D array ``(n_samples, dim)`` is taken as one slice
per sample, so the classifiers also work on plain feature tables.
"""

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
    check_is_fitted,
    column_or_1d,
)
from skorch.callbacks import Callback, LRScheduler
from skorch.dataset import Dataset, ValidSplit
from skorch.helper import predefined_split

from ._skorch import EarlyStopping, InterruptibleNet, unfitted_on_error
from ._validation import (
    BOOLEAN,
    DEVICE,
    DICT,
    NONE,
    OPTIMIZER,
    RANDOM_STATE,
    VERBOSE,
    check_params,
    check_unchanged_since_fit,
    instance,
    integer,
    integers,
    options,
    real,
    record_fitted_params,
)
from .backbones import SAVED_WEIGHTS, build_backbone
from .devices import resolve_device, seeded_torch
from .embedding import SLICING_CONSTRAINTS
from .nn import (
    POOLINGS,
    RESNET_DEPTHS,
    RESNET_STEMS,
    AnnealedSupConLoss,
    AttentionPoolNet,
    CompositeLoss,
    ResNet3DNet,
    SCMILNet,
    SliceTransformerNet,
)
from .nn.finetune import AGGREGATORS, FREEZE_MODES, FineTunedSliceNet, set_trainable
from .nn.resnet3d import resnet_downsampling
from .preprocessing import slice_tensors
from .volumes import check_axis

ROUTED_PREFIXES = ("optimizer__", "iterator_train__", "iterator_valid__", "callbacks__")
LR_SCHEDULES = ("constant", "cosine", "step")


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


TRAINING_PARAMETERS = """class_weight : None, "balanced" or dict, default=None
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
        ``iterator_valid__`` or ``callbacks__``, passed to the skorch net."""

FITTED_ATTRIBUTES = """classes_ : ndarray of shape (n_classes,)
        The class labels.
    n_features_in_ : int
        Size of one slice embedding seen in ``fit``.
    net_ : skorch.NeuralNet
        The trained net: ``net_.module_`` is the torch module, ``net_.history`` the
        training history.
    device_ : torch.device
        The device it was trained on."""


TRAINING_CONSTRAINTS = {
    "class_weight": [NONE, options("balanced"), DICT],
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
DROPOUT = [real(0, 1, high_open=True)]
TEMPERATURE = [real(0, low_open=True)]


def _shared_docs(cls):
    """Fill the ``{training}`` and ``{fitted}`` placeholders of a classifier's docstring."""
    cls.__doc__ = cls.__doc__.replace("{training}", TRAINING_PARAMETERS).replace(
        "{fitted}", FITTED_ATTRIBUTES
    )
    return cls


class BaseSkorchClassifier(ClassifierMixin, BaseEstimator):
    """Base of the skorch-backed classifiers: one training loop, one early-stopping
    rule, one device rule, one way to pickle.

    Subclasses define ``__init__`` (storing their own parameters, then passing the
    training parameters and ``**kwargs`` to this ``__init__``),
    ``_build_module(n_features, n_classes)`` and ``_build_criterion(class_weight)``.
    Keyword arguments beyond the signature must start with ``optimizer__``,
    ``iterator_train__``, ``iterator_valid__`` or ``callbacks__`` (checked in ``fit``);
    they go to the skorch net unchanged, as in skorch.
    """

    # Parameters whose change after fit would make predict disagree with the fitted
    # network (checked before predicting); the heads on embeddings have none.
    _params_fixed_by_fit = ()

    def __init__(self, *, class_weight, lr, max_epochs, batch_size, optimizer, lr_schedule,
                 early_stopping, validation_fraction, n_iter_no_change, device, random_state,
                 verbose, **kwargs):
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
        for name, value in kwargs.items():
            setattr(self, name, value)

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
        check_params(self)
        with unfitted_on_error(self):  # an interrupted or failed fit leaves no model
            self._fit(X, y, X_val, y_val)
        return self

    def _fit(self, X, y, X_val, y_val):
        record_fitted_params(self)
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
        return _MultiOutputNet(
            module=module,
            criterion=criterion,
            optimizer=self.optimizer,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            train_split=train_split,
            **self._net_kwargs(),
            callbacks=self._callbacks() + self._schedule_callbacks() + (
                [("early_stopping", EarlyStopping(patience=self.n_iter_no_change,
                                                  load_best=True))]
                if self.early_stopping else []
            ),
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
        record_fitted_params(self)

    def _callbacks(self):
        """Extra skorch callbacks ``[(name, callback)]`` a subclass trains with."""
        return []

    def _schedule_callbacks(self):
        if self.lr_schedule == "cosine":
            scheduler = LRScheduler("CosineAnnealingLR", T_max=self.max_epochs)
        elif self.lr_schedule == "step":
            scheduler = LRScheduler("MultiStepLR", gamma=0.1, milestones=[
                self.max_epochs // 2, 3 * self.max_epochs // 4])
        else:
            return []
        return [("lr_schedule", scheduler)]

    def _net_kwargs(self):
        """Extra keyword arguments of the skorch net a subclass trains with."""
        return {}

    def predict_proba(self, X):
        """Class probabilities, shape ``(n_samples, n_classes)``, columns in ``classes_`` order."""
        check_is_fitted(self)
        proba = self.net_.predict_proba(self._check_X(X)).astype(np.float64)
        return proba / proba.sum(axis=1, keepdims=True)  # rows sum to 1 in float64 too

    def predict(self, X):
        """Predicted labels, taken from ``classes_``."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    _has_slice_weights = True

    @available_if(lambda self: self._has_slice_weights)
    def attention_weights(self, X):
        """Per-slice attention weights, shape ``(n_samples, n_slices)``; padding gets 0."""
        check_is_fitted(self)
        _, _, attention = self.net_.forward(self._check_X(X))
        return attention.numpy().astype(np.float64)

    def volume_embeddings(self, X):
        """The learned embedding each sample is classified from, ``(n_samples, dim)``.

        The embedding head's output for the attention classifiers, the normed CLS
        output for the slice transformer, the SupCon projection for SC-MIL, the pooled
        features for the 3D ResNet: what the papers plot with t-SNE.
        """
        check_is_fitted(self)
        _, embedding, _ = self.net_.forward(self._check_X(X))
        return embedding.numpy().astype(np.float64)

    def _check_X(self, X, reset=False):
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


@_shared_docs
class AttentionPoolClassifier(BaseSkorchClassifier):
    """DinoAtten3D's head: attention pooling over slices, an MLP embedding head and a
    linear classifier, all trained with ``CE + SupCon + within-class variance``.

    Parameters
    ----------
    attention_dim : int, default=64
        Hidden size ``h`` of the attention scorer (attention pooling only).
    pooling : {"attention", "gated", "mean", "max"}, default="attention"
        How slices are pooled: attention ``w2^T tanh(W1 z)``; gated attention, which
        multiplies that by ``sigmoid(U z)`` (Ilse et al. 2018); the mean of the slices
        (a strong, cheap baseline); or their feature-wise max.
    hidden_dims : tuple of int, default=(256, 128)
        Sizes of the MLP embedding head; its input size follows the data.
    dropout : float, default=0.0
        Dropout between the MLP layers.
    supcon_weight : float, default=1.0
        Weight of the supervised contrastive term (0 disables it).
    variance_weight : float, default=0.1
        Weight of the within-class variance term (0 disables it).
    temperature : float, default=0.07
        SupCon temperature.
    {training}

    Attributes
    ----------
    {fitted}

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dinoatten import AttentionPoolClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 6, 16)).astype(np.float32)  # 40 volumes, 6 slices
    >>> y = np.repeat([0, 1], 20)
    >>> X[y == 1, 2] += 2.0                                    # signal in slice 2
    >>> clf = AttentionPoolClassifier(max_epochs=30, random_state=0).fit(X, y)
    >>> clf.predict_proba(X).shape
    (40, 2)
    >>> int(clf.attention_weights(X)[y == 1].mean(axis=0).argmax())
    2
    """

    _constraints = {
        **TRAINING_CONSTRAINTS,
        "pooling": [options(*POOLINGS)],
        "attention_dim": [integer(1)],
        "hidden_dims": [integers(1)],
        "dropout": DROPOUT,
        "supcon_weight": [real(0)],
        "variance_weight": [real(0)],
        "temperature": TEMPERATURE,
    }

    def __init__(
        self,
        pooling="attention",
        attention_dim=64,
        hidden_dims=(256, 128),
        dropout=0.0,
        supcon_weight=1.0,
        variance_weight=0.1,
        temperature=0.07,
        class_weight=None,
        lr=1e-3,
        max_epochs=50,
        batch_size=16,
        optimizer=torch.optim.AdamW,
        lr_schedule="constant",
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        device="auto",
        random_state=None,
        verbose=0,
        **kwargs,
    ):
        self.pooling = pooling
        self.attention_dim = attention_dim
        self.hidden_dims = hidden_dims
        self.dropout = dropout
        self.supcon_weight = supcon_weight
        self.variance_weight = variance_weight
        self.temperature = temperature
        super().__init__(
            class_weight=class_weight, lr=lr, max_epochs=max_epochs, batch_size=batch_size,
            optimizer=optimizer, lr_schedule=lr_schedule, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            device=device, random_state=random_state, verbose=verbose, **kwargs,
        )

    def _build_module(self, n_features, n_classes):
        return AttentionPoolNet(
            n_features, n_classes, pooling=self.pooling, attention_dim=self.attention_dim,
            hidden_dims=tuple(self.hidden_dims), dropout=self.dropout,
        )

    def _build_criterion(self, class_weight):
        return CompositeLoss(
            supcon_weight=self.supcon_weight, variance_weight=self.variance_weight,
            temperature=self.temperature, class_weight=class_weight,
        )



@_shared_docs
class SliceTransformerClassifier(BaseSkorchClassifier):
    """The Medical Slice Transformer's aggregator (MST, Mueller-Franzes et al. 2024) over
    frozen slice embeddings: a learnable CLS token, pre-norm transformer layers with the
    padding masked, and a linear head on the normed CLS output, trained with
    cross-entropy.

    Parameters
    ----------
    n_layers : int, default=1
        Transformer layers (MST: 1).
    n_heads : int or None, default=None
        Attention heads; ``None`` takes the most heads up to 12 that divide the embedding
        size (MST: 12 for 384).
    ffn_dim : int or None, default=None
        Hidden size of the feed-forward block; ``None`` is the embedding size (as MST).
    dropout : float, default=0.0
    position_embedding : bool, default=False
        Add a learned embedding of each slice's position (up to ``max_slices``).
    max_slices : int, default=1024
        Longest slice stack the position embedding covers.
    {training}

    Attributes
    ----------
    {fitted}

    Notes
    -----
    ``attention_weights(X)`` is the last layer's CLS row of attention, averaged over
    heads and renormalised over the slices (MST's slice attention); padding gets 0.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dinoatten import SliceTransformerClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 6, 24)).astype(np.float32)
    >>> y = np.repeat([0, 1], 20)
    >>> X[y == 1, 2] += np.tile([1.0, -1.0], 12)  # signal in slice 2
    >>> clf = SliceTransformerClassifier(max_epochs=20, random_state=0).fit(X, y)
    >>> clf.predict_proba(X).shape, clf.attention_weights(X).shape
    ((40, 2), (40, 6))
    """

    _constraints = {
        **TRAINING_CONSTRAINTS,
        "n_layers": [integer(1)],
        "n_heads": [NONE, integer(1)],
        "ffn_dim": [NONE, integer(1)],
        "dropout": DROPOUT,
        "position_embedding": [BOOLEAN],
        "max_slices": [integer(1)],
    }

    def __init__(
        self,
        n_layers=1,
        n_heads=None,
        ffn_dim=None,
        dropout=0.0,
        position_embedding=False,
        max_slices=1024,
        class_weight=None,
        lr=1e-3,
        max_epochs=50,
        batch_size=16,
        optimizer=torch.optim.AdamW,
        lr_schedule="constant",
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        device="auto",
        random_state=None,
        verbose=0,
        **kwargs,
    ):
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.ffn_dim = ffn_dim
        self.dropout = dropout
        self.position_embedding = position_embedding
        self.max_slices = max_slices
        super().__init__(
            class_weight=class_weight, lr=lr, max_epochs=max_epochs, batch_size=batch_size,
            optimizer=optimizer, lr_schedule=lr_schedule, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            device=device, random_state=random_state, verbose=verbose, **kwargs,
        )

    def _build_module(self, n_features, n_classes):
        return SliceTransformerNet(
            n_features, n_classes, n_layers=self.n_layers, n_heads=self.n_heads,
            ffn_dim=self.ffn_dim, dropout=self.dropout,
            position_embedding=self.position_embedding, max_slices=self.max_slices,
        )

    def _build_criterion(self, class_weight):
        return CompositeLoss(supcon_weight=0.0, variance_weight=0.0, class_weight=class_weight)


class _AnnealCEWeight(Callback):
    """Before epoch ``e`` (from 1), set the criterion's CE weight to
    ``(e - 1/2) / max_epochs`` and record it in the history as ``ce_weight``."""

    def on_epoch_begin(self, net, **kwargs):
        epoch = len(net.history)  # the history already holds the starting epoch
        net.criterion_.ce_weight = min(1.0, (epoch - 0.5) / net.max_epochs)
        net.history.record("ce_weight", net.criterion_.ce_weight)


@_shared_docs
class SCMILClassifier(BaseSkorchClassifier):
    """SC-MIL (Juyal et al., WACV 2024): attention-MIL pooling, a projection head
    trained with supervised contrastive loss, and a linear classifier trained with
    cross-entropy, the weight moving from SupCon to CE over training.

    The paper leaves these choices, made here: gated attention pooling (as its
    attention-MIL backbone); the classifier reads the pooled bag embedding, the projection
    head (``projection_dims``) is used by SupCon only; the loss at epoch ``e`` of ``E``
    (from 1) is ``a * CE + (1 - a) * SupCon`` with ``a = (e - 1/2) / E`` rising linearly
    from ``1 / 2E`` to ``1 - 1 / 2E``: the first epochs mostly learn the representation,
    the last ones mostly the classifier, and both heads train in every epoch (also when
    ``E = 1``).

    Parameters
    ----------
    attention_dim : int, default=64
        Hidden size of the attention scorer.
    gated : bool, default=True
        Gated attention (Ilse et al. 2018).
    projection_dims : tuple of int, default=(256, 128)
        Sizes of the SupCon projection head.
    temperature : float, default=0.07
        SupCon temperature.
    {training}

    Attributes
    ----------
    {fitted}

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dinoatten import SCMILClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 6, 16)).astype(np.float32)
    >>> y = np.repeat([0, 1], 20)
    >>> X[y == 1, 2] += 2.0
    >>> clf = SCMILClassifier(max_epochs=30, random_state=0).fit(X, y)
    >>> clf.score(X, y) >= 0.9
    True
    """

    _constraints = {
        **TRAINING_CONSTRAINTS,
        "attention_dim": [integer(1)],
        "gated": [BOOLEAN],
        "projection_dims": [integers(1)],
        "temperature": TEMPERATURE,
    }

    def __init__(
        self,
        attention_dim=64,
        gated=True,
        projection_dims=(256, 128),
        temperature=0.07,
        class_weight=None,
        lr=1e-3,
        max_epochs=50,
        batch_size=16,
        optimizer=torch.optim.AdamW,
        lr_schedule="constant",
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        device="auto",
        random_state=None,
        verbose=0,
        **kwargs,
    ):
        self.attention_dim = attention_dim
        self.gated = gated
        self.projection_dims = projection_dims
        self.temperature = temperature
        super().__init__(
            class_weight=class_weight, lr=lr, max_epochs=max_epochs, batch_size=batch_size,
            optimizer=optimizer, lr_schedule=lr_schedule, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            device=device, random_state=random_state, verbose=verbose, **kwargs,
        )

    def _build_module(self, n_features, n_classes):
        return SCMILNet(
            n_features, n_classes, attention_dim=self.attention_dim, gated=self.gated,
            projection_dims=tuple(self.projection_dims),
        )

    def _build_criterion(self, class_weight):
        return AnnealedSupConLoss(temperature=self.temperature, class_weight=class_weight)

    def _callbacks(self):
        return [("anneal_ce_weight", _AnnealCEWeight())]


@_shared_docs
class ResNet3DClassifier(BaseSkorchClassifier):
    """A 3D ResNet trained from scratch on whole volumes (MONAI ``resnet10/18/34/50``,
    one input channel), with cross-entropy: the baseline DinoAtten3D and MST compare
    against.

    It takes volumes of one shape, ``(n_volumes, x, y, z)``, the shape it was fitted on
    (it does not resize): put a :class:`VolumeResampler` in front of it to take paths or
    arrays of any shape, e.g.
    ``make_pipeline(VolumeResampler((64, 64, 64)), ResNet3DClassifier())``. The deepest
    feature map must keep 2 voxels per side: every side must be at least 17 voxels with
    the standard stem, 33 with the strided one and 9 with the small one.

    Parameters
    ----------
    depth : {10, 18, 34, 50}, default=18
    widen_factor : float, default=1.0
        Scales the channel widths (0.25 makes a much cheaper net for quick runs).
    stem : {"standard", "strided", "small"}, default="standard"
        The first layer: a 7^3 convolution and a max pooling of stride 2 (MONAI's
        default); the same convolution with stride 2 (as MedicalNet's), which leaves 8
        times fewer voxels to the next layers, for large volumes; or a 3^3 convolution
        without pooling, which keeps small inputs whole (as the ResNets of MedMNIST v2's
        28^3 benchmark) and costs the most.
    {training}

    Attributes
    ----------
    {fitted}
    """

    _has_slice_weights = False

    _constraints = {
        **TRAINING_CONSTRAINTS,
        "depth": [options(*RESNET_DEPTHS)],
        # MONAI's first layer has int(64 * widen_factor) channels: at least one.
        "widen_factor": [real(1 / 64)],
        "stem": [options(*RESNET_STEMS)],
    }

    def __init__(
        self,
        depth=18,
        widen_factor=1.0,
        stem="standard",
        class_weight=None,
        lr=1e-3,
        max_epochs=50,
        batch_size=16,
        optimizer=torch.optim.AdamW,
        lr_schedule="constant",
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        device="auto",
        random_state=None,
        verbose=0,
        **kwargs,
    ):
        self.depth = depth
        self.widen_factor = widen_factor
        self.stem = stem
        super().__init__(
            class_weight=class_weight, lr=lr, max_epochs=max_epochs, batch_size=batch_size,
            optimizer=optimizer, lr_schedule=lr_schedule, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            device=device, random_state=random_state, verbose=verbose, **kwargs,
        )

    def _check_X(self, X, reset=False):
        X = check_array(X, allow_nd=True, dtype=np.float32, input_name="X")
        if X.ndim != 4:
            raise ValueError(
                "X must be volumes of one shape, (n_volumes, x, y, z); got shape "
                f"{X.shape}. Resample them first, e.g. with VolumeResampler."
            )
        if reset:
            smallest = resnet_downsampling(self.stem) + 1
            if min(X.shape[1:]) < smallest:
                raise ValueError(
                    f"Volumes of shape {X.shape[1:]} are too small for a 3D ResNet with "
                    f"stem={self.stem!r}: every side must be at least {smallest} voxels "
                    "(VolumeResampler(shape=...) can resize them; stem='small' takes 9)."
                )
            self.n_features_in_ = int(np.prod(X.shape[1:]))
            self.volume_shape_ = tuple(int(side) for side in X.shape[1:])
        elif tuple(X.shape[1:]) != tuple(self.volume_shape_):
            raise ValueError(
                f"X has volumes of shape {X.shape[1:]}, but ResNet3DClassifier was fitted on "
                f"{tuple(self.volume_shape_)}: resample them to that shape (e.g. with the "
                "same VolumeResampler)."
            )
        return X

    def _build_module(self, n_features, n_classes):
        return ResNet3DNet(n_classes, depth=self.depth, widen_factor=self.widen_factor,
                           stem=self.stem)

    def _build_criterion(self, class_weight):
        return CompositeLoss(supcon_weight=0.0, variance_weight=0.0, class_weight=class_weight)



@_shared_docs
class FineTunedSliceClassifier(BaseSkorchClassifier):
    """A DINOv2 backbone fine-tuned end to end with a slice aggregator on top (MST with
    an unfrozen backbone; the fine-tuning study's setting).

    Takes volumes (paths or 3D arrays) or 2D images (a list of 2D arrays, one slice
    each) and trains the backbone's chosen part, with its own learning rate, together
    with an MST-style slice transformer or an attention aggregator over the slices' CLS
    tokens. Meant for a GPU (bfloat16 mixed precision there); tiny settings run on a CPU.

    Parameters
    ----------
    backbone : str, default="vit_small_patch14_dinov2"
        A timm vision transformer name.
    weights : None, "random" or path, default=None
        As for :class:`DinoSliceEmbedder`.
    image_size : int, default=224
        Slice side; timm interpolates a checkpoint's position embedding to it.
    in_chans : {1, 3}, default=1
        ``1``: a single-channel patch embedding, adapted by timm from the RGB one
        (kernels summed), for grayscale scans; ``3``: gray replicated to RGB.
    freeze : {"last_n_blocks", "none", "all"}, default="last_n_blocks"
        What of the backbone stays fixed: all but its last ``n_trainable_blocks``
        blocks (and final norm), nothing, or all of it.
    n_trainable_blocks : int, default=2
    backbone_lr : float, default=1e-5
        Learning rate of the backbone; ``lr`` is the aggregator's.
    aggregator : {"transformer", "attention"}, default="transformer"
        MST's slice transformer or DinoAtten3D's attention pooling head (trained with
        cross-entropy only).
    axis, n_slices, slice_selection, normalization :
        As for :class:`DinoSliceEmbedder`; ``n_slices`` defaults to 16 here, so that
        a batch fits in memory.
    mixed_precision : bool, default=True
        bfloat16 autocast of the backbone on CUDA (ignored on the CPU).
    {training}

    Attributes
    ----------
    {fitted}

    Examples
    --------
    >>> from sklearn_dinoatten import FineTunedSliceClassifier
    >>> from sklearn_dinoatten.datasets import make_volumes
    >>> X, y = make_volumes(n_samples=6, shape=(28, 28, 8), random_state=0)
    >>> clf = FineTunedSliceClassifier(weights="random", image_size=28, n_slices=4,
    ...                                max_epochs=1, batch_size=2, random_state=0).fit(X, y)
    >>> clf.predict_proba(X).shape, clf.attention_weights(X).shape
    ((6, 2), (6, 4))
    """

    _constraints = {
        **TRAINING_CONSTRAINTS,
        **SLICING_CONSTRAINTS,
        "backbone": [instance(str, "a timm model name")],
        "in_chans": [options(1, 3)],
        "freeze": [options(*FREEZE_MODES)],
        "n_trainable_blocks": [integer(0)],
        "backbone_lr": [real(0)],
        "aggregator": [options(*AGGREGATORS)],
        "mixed_precision": [BOOLEAN],
    }

    def __init__(
        self,
        backbone="vit_small_patch14_dinov2",
        weights=None,
        image_size=224,
        in_chans=1,
        freeze="last_n_blocks",
        n_trainable_blocks=2,
        backbone_lr=1e-5,
        aggregator="transformer",
        axis="axial",
        n_slices=16,
        slice_selection="uniform",
        normalization="minmax",
        mixed_precision=True,
        class_weight=None,
        lr=1e-4,
        max_epochs=10,
        batch_size=4,
        optimizer=torch.optim.AdamW,
        lr_schedule="constant",
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        device="auto",
        random_state=None,
        verbose=0,
        **kwargs,
    ):
        self.backbone = backbone
        self.weights = weights
        self.image_size = image_size
        self.in_chans = in_chans
        self.freeze = freeze
        self.n_trainable_blocks = n_trainable_blocks
        self.backbone_lr = backbone_lr
        self.aggregator = aggregator
        self.axis = axis
        self.n_slices = n_slices
        self.slice_selection = slice_selection
        self.normalization = normalization
        self.mixed_precision = mixed_precision
        super().__init__(
            class_weight=class_weight, lr=lr, max_epochs=max_epochs, batch_size=batch_size,
            optimizer=optimizer, lr_schedule=lr_schedule, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            device=device, random_state=random_state, verbose=verbose, **kwargs,
        )

    _params_fixed_by_fit = ("backbone", "weights", "image_size", "in_chans", "aggregator",
                            "axis", "n_slices", "slice_selection", "normalization")

    def _check_X(self, X, reset=False):
        if not reset:
            check_unchanged_since_fit(self)
        images = slice_tensors(X, self.image_size, check_axis(self.axis), self.n_slices,
                               self.slice_selection, self.normalization, self.in_chans)
        if reset:
            self.n_features_in_ = int(np.prod(images.shape[2:]))
        return images

    def _build_module(self, n_features, n_classes, weights=None):
        weights = self.weights if weights is None else weights
        built = build_backbone(self.backbone, weights, self.image_size, self.in_chans)
        backbone = set_trainable(built.module, self.freeze, self.n_trainable_blocks)
        return FineTunedSliceNet(backbone, n_classes, self.aggregator, self.mixed_precision)

    def _build_criterion(self, class_weight):
        return CompositeLoss(supcon_weight=0.0, variance_weight=0.0, class_weight=class_weight)

    def _empty_modules(self):
        return {"module": self._build_module(self.n_features_in_, len(self.classes_),
                                             SAVED_WEIGHTS)}

    def _net_kwargs(self):
        if "optimizer__param_groups" in self._routed_params():
            raise ValueError("FineTunedSliceClassifier sets optimizer__param_groups itself "
                             "(from backbone_lr); leave it out.")
        return {"optimizer__param_groups": [("backbone.*", {"lr": self.backbone_lr})]}
