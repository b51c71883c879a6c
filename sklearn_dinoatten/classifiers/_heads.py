"""The classifiers over frozen slice embeddings ``(n_volumes, n_slices, dim)``:
DinoAtten3D's attention-pooling head, the Medical Slice Transformer's aggregator and
SC-MIL."""

import torch

from ..nn import (
    AnnealedSupConLoss,
    AttentionPoolNet,
    CompositeLoss,
    SCMILNet,
    SliceTransformerNet,
)
from ..utils._docs import shared_docs
from ..utils._heads import (
    ATTENTION_POOL_CONSTRAINTS,
    ATTENTION_POOL_DOCS,
    SLICE_TRANSFORMER_CONSTRAINTS,
    SLICE_TRANSFORMER_DOCS,
    SLICE_TRANSFORMER_NOTES,
)
from ..utils._validation import BOOLEAN, integer, integers, real
from ._base import TRAINING_CONSTRAINTS, TRAINING_DOCS, BaseTorchClassifier
from ._callbacks import AnnealCEWeight

TEMPERATURE = [real(0, low_open=True)]


@shared_docs(head=ATTENTION_POOL_DOCS, training=TRAINING_DOCS)
class AttentionPoolClassifier(BaseTorchClassifier):
    """DinoAtten3D's head: attention pooling over slices, an MLP embedding head and a
    linear classifier, all trained with ``CE + SupCon + within-class variance``.

    Parameters
    ----------
    {head}
    supcon_weight : float, default=1.0
        Weight of the supervised contrastive term (0 disables it).
    variance_weight : float, default=0.1
        Weight of the within-class variance term (0 disables it).
    temperature : float, default=0.07
        SupCon temperature.
    {training}

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
        **ATTENTION_POOL_CONSTRAINTS,
        "supcon_weight": [real(0)],
        "variance_weight": [real(0)],
        "temperature": TEMPERATURE,
    }

    def __init__(self, *, pooling="attention", attention_dim=64, hidden_dims=(256, 128),
                 dropout=0.0, supcon_weight=1.0, variance_weight=0.1, temperature=0.07,
                 class_weight=None, lr=1e-3, max_epochs=50, batch_size=16,
                 optimizer=torch.optim.AdamW, lr_schedule="constant", early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, device="auto",
                 random_state=None, verbose=0, **kwargs):
        super().__init__(class_weight=class_weight, lr=lr, max_epochs=max_epochs,
                         batch_size=batch_size, optimizer=optimizer, lr_schedule=lr_schedule,
                         early_stopping=early_stopping, validation_fraction=validation_fraction,
                         n_iter_no_change=n_iter_no_change, device=device,
                         random_state=random_state, verbose=verbose, **kwargs)
        self.pooling = pooling
        self.attention_dim = attention_dim
        self.hidden_dims = hidden_dims
        self.dropout = dropout
        self.supcon_weight = supcon_weight
        self.variance_weight = variance_weight
        self.temperature = temperature

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


@shared_docs(head=SLICE_TRANSFORMER_DOCS, notes=SLICE_TRANSFORMER_NOTES,
             training=TRAINING_DOCS)
class SliceTransformerClassifier(BaseTorchClassifier):
    """The Medical Slice Transformer's aggregator (MST, Mueller-Franzes et al. 2024) over
    frozen slice embeddings: a learnable CLS token, pre-norm transformer layers with the
    padding masked, and a linear head on the normed CLS output, trained with
    cross-entropy.

    Parameters
    ----------
    {head}
    {training}

    {notes}

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

    _constraints = {**TRAINING_CONSTRAINTS, **SLICE_TRANSFORMER_CONSTRAINTS}

    def __init__(self, *, n_layers=1, n_heads=None, ffn_dim=None, dropout=0.0,
                 position_embedding=False, max_slices=1024, class_weight=None, lr=1e-3,
                 max_epochs=50, batch_size=16, optimizer=torch.optim.AdamW,
                 lr_schedule="constant", early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, device="auto", random_state=None, verbose=0, **kwargs):
        super().__init__(class_weight=class_weight, lr=lr, max_epochs=max_epochs,
                         batch_size=batch_size, optimizer=optimizer, lr_schedule=lr_schedule,
                         early_stopping=early_stopping, validation_fraction=validation_fraction,
                         n_iter_no_change=n_iter_no_change, device=device,
                         random_state=random_state, verbose=verbose, **kwargs)
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.ffn_dim = ffn_dim
        self.dropout = dropout
        self.position_embedding = position_embedding
        self.max_slices = max_slices

    def _build_module(self, n_features, n_classes):
        return SliceTransformerNet(
            n_features, n_classes, n_layers=self.n_layers, n_heads=self.n_heads,
            ffn_dim=self.ffn_dim, dropout=self.dropout,
            position_embedding=self.position_embedding, max_slices=self.max_slices,
        )


@shared_docs(training=TRAINING_DOCS)
class SCMILClassifier(BaseTorchClassifier):
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
        Gated attention (Ilse et al. 2018), the paper's attention-MIL pooling.
    projection_dims : tuple of int, default=(256, 128)
        Sizes of the projection head whose outputs SupCon compares.
    temperature : float, default=0.07
        Temperature of the SupCon term.
    {training}

    Examples
    --------
    >>> from sklearn_dinoatten import SCMILClassifier
    >>> import numpy as np
    >>> y = np.repeat([0, 1], 20)
    >>> X = np.random.default_rng(0).normal(size=(40, 6, 16)).astype(np.float32)
    >>> X[y == 1, 2] += 2.0
    >>> clf = SCMILClassifier(max_epochs=30, random_state=0).fit(X, y)
    >>> clf.score(X, y) >= 0.9
    True
    >>> [round(clf.net_.history[epoch, "ce_weight"], 3) for epoch in (0, -1)]  # CE's share
    [0.017, 0.983]
    """

    _constraints = {
        **TRAINING_CONSTRAINTS,
        "attention_dim": [integer(1)],
        "gated": [BOOLEAN],
        "projection_dims": [integers(1)],
        "temperature": TEMPERATURE,
    }

    def __init__(self, *, attention_dim=64, gated=True, projection_dims=(256, 128),
                 temperature=0.07, class_weight=None, lr=1e-3, max_epochs=50, batch_size=16,
                 optimizer=torch.optim.AdamW, lr_schedule="constant", early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, device="auto", random_state=None,
                 verbose=0, **kwargs):
        super().__init__(class_weight=class_weight, lr=lr, max_epochs=max_epochs,
                         batch_size=batch_size, optimizer=optimizer, lr_schedule=lr_schedule,
                         early_stopping=early_stopping, validation_fraction=validation_fraction,
                         n_iter_no_change=n_iter_no_change, device=device,
                         random_state=random_state, verbose=verbose, **kwargs)
        self.attention_dim = attention_dim
        self.gated = gated
        self.projection_dims = projection_dims
        self.temperature = temperature

    def _build_module(self, n_features, n_classes):
        return SCMILNet(
            n_features, n_classes, attention_dim=self.attention_dim, gated=self.gated,
            projection_dims=tuple(self.projection_dims),
        )

    def _build_criterion(self, class_weight):
        return AnnealedSupConLoss(temperature=self.temperature, class_weight=class_weight)

    def _callbacks(self):
        return [("anneal_ce_weight", AnnealCEWeight())]
