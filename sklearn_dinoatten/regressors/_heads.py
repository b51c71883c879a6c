"""The regressors over frozen slice embeddings ``(n_volumes, n_slices, dim)``: the
attention-pooling head and the Medical Slice Transformer's aggregator, predicting a
number."""

import torch

from ..nn import AttentionPoolNet, RegressionLoss, SliceTransformerNet
from ..utils._docs import shared_docs
from ..utils._heads import (
    ATTENTION_POOL_CONSTRAINTS,
    ATTENTION_POOL_DOCS,
    SLICE_TRANSFORMER_CONSTRAINTS,
    SLICE_TRANSFORMER_DOCS,
    SLICE_TRANSFORMER_NOTES,
)
from ..utils._validation import real
from ._base import TRAINING_CONSTRAINTS, TRAINING_DOCS, BaseTorchRegressor


@shared_docs(head=ATTENTION_POOL_DOCS, training=TRAINING_DOCS)
class AttentionPoolRegressor(BaseTorchRegressor):
    """DinoAtten3D's head for a number: pooling over slices, an MLP embedding head and a
    linear output, trained with a point loss of the standardised target.

    Parameters
    ----------
    {head}
    rank_weight : float, default=0.0
        Weight of a Rank-N-Contrast term (Zha et al. 2023) on the embedding head's
        output, which orders the embeddings as the targets are, added to ``loss`` (0
        disables it). On planted targets ``rank_weight=1`` lowered the out-of-fold MAE
        by 7 % (``benchmarks/regression_losses.py``: two synthetic data sets), at three
        times the cost of an epoch: worth trying, not yet the default.
    temperature : float, default=0.1
        Its temperature (0.1 did better there than the paper's 2).
    {training}

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_dinoatten.regressors import AttentionPoolRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 6, 16)).astype(np.float32)  # 60 volumes, 6 slices
    >>> age = rng.uniform(20, 80, size=60)
    >>> X[:, 2, 0] += (age - 50) / 10                          # age shows in slice 2
    >>> reg = AttentionPoolRegressor(max_epochs=60, random_state=0).fit(X, age)
    >>> reg.predict(X).shape
    (60,)
    >>> reg.score(X, age) > 0.8                                # R²
    True
    """

    _constraints = {**TRAINING_CONSTRAINTS, **ATTENTION_POOL_CONSTRAINTS,
                    "rank_weight": [real(0)], "temperature": [real(0, low_open=True)]}

    def __init__(self, *, pooling="attention", attention_dim=64, hidden_dims=(256, 128),
                 dropout=0.0, rank_weight=0.0, temperature=0.1, loss="mse", lr=1e-3,
                 max_epochs=50, batch_size=16, optimizer=torch.optim.AdamW,
                 lr_schedule="constant", early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, device="auto", random_state=None, verbose=0,
                 **kwargs):
        super().__init__(loss=loss, lr=lr, max_epochs=max_epochs, batch_size=batch_size,
                         optimizer=optimizer, lr_schedule=lr_schedule,
                         early_stopping=early_stopping, validation_fraction=validation_fraction,
                         n_iter_no_change=n_iter_no_change, device=device,
                         random_state=random_state, verbose=verbose, **kwargs)
        self.pooling = pooling
        self.attention_dim = attention_dim
        self.hidden_dims = hidden_dims
        self.dropout = dropout
        self.rank_weight = rank_weight
        self.temperature = temperature

    def _build_module(self, n_features, n_outputs):
        return AttentionPoolNet(
            n_features, n_outputs, pooling=self.pooling, attention_dim=self.attention_dim,
            hidden_dims=tuple(self.hidden_dims), dropout=self.dropout,
        )

    def _build_criterion(self, args):
        return RegressionLoss(self.loss, rank_weight=self.rank_weight,
                              temperature=self.temperature)


@shared_docs(head=SLICE_TRANSFORMER_DOCS, notes=SLICE_TRANSFORMER_NOTES,
             training=TRAINING_DOCS)
class SliceTransformerRegressor(BaseTorchRegressor):
    """The Medical Slice Transformer's aggregator (MST, Mueller-Franzes et al. 2024) for a
    number: a learnable CLS token, pre-norm transformer layers with the padding masked,
    and a linear output on the normed CLS output.

    Parameters
    ----------
    {head}
    {training}

    {notes}
    """

    _constraints = {**TRAINING_CONSTRAINTS, **SLICE_TRANSFORMER_CONSTRAINTS}

    def __init__(self, *, n_layers=1, n_heads=None, ffn_dim=None, dropout=0.0,
                 position_embedding=False, max_slices=1024, loss="mse", lr=1e-3,
                 max_epochs=50, batch_size=16, optimizer=torch.optim.AdamW,
                 lr_schedule="constant", early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, device="auto", random_state=None, verbose=0, **kwargs):
        super().__init__(loss=loss, lr=lr, max_epochs=max_epochs, batch_size=batch_size,
                         optimizer=optimizer, lr_schedule=lr_schedule,
                         early_stopping=early_stopping, validation_fraction=validation_fraction,
                         n_iter_no_change=n_iter_no_change, device=device,
                         random_state=random_state, verbose=verbose, **kwargs)
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.ffn_dim = ffn_dim
        self.dropout = dropout
        self.position_embedding = position_embedding
        self.max_slices = max_slices

    def _build_module(self, n_features, n_outputs):
        return SliceTransformerNet(
            n_features, n_outputs, n_layers=self.n_layers, n_heads=self.n_heads,
            ffn_dim=self.ffn_dim, dropout=self.dropout,
            position_embedding=self.position_embedding, max_slices=self.max_slices,
        )
