"""Pooling of slice embeddings into one volume embedding, and DinoAtten3D's network.

Every pooling module maps ``(x (batch, n, dim), mask (batch, n))`` to
``(pooled (batch, dim), weights (batch, n))``: the weights say how much each real slice
contributed and are 0 on padding.
"""

import torch
from torch import nn

from ..utils._options import POOLINGS
from .mlp import mlp


def padding_mask(x):
    """``True`` for real slices of ``x`` ``(batch, slices, dim)``; all-NaN rows are padding."""
    return ~torch.isnan(x).all(dim=-1)


def zero_padding(x, mask):
    """``x`` with its padding rows set to 0, so that they are finite for the layers."""
    return torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))


class AttentionPooling(nn.Module):
    """Attention-weighted sum of instances (Ilse et al. 2018).

    Scores are ``e_j = w2^T tanh(W1 z_j)``, multiplied by ``sigmoid(U z_j)`` when
    ``gated``; weights are their softmax over the real instances.
    """

    def __init__(self, in_dim, attention_dim=64, gated=False):
        super().__init__()
        self.hidden = nn.Linear(in_dim, attention_dim)
        self.gate = nn.Linear(in_dim, attention_dim) if gated else None
        self.score = nn.Linear(attention_dim, 1, bias=False)

    def forward(self, x, mask):
        hidden = torch.tanh(self.hidden(x))
        if self.gate is not None:
            hidden = hidden * torch.sigmoid(self.gate(x))
        scores = self.score(hidden).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        return torch.einsum("bn,bnd->bd", weights, x), weights


class MeanPooling(nn.Module):
    """Mean of the real instances; each gets weight ``1 / n_real``."""

    def forward(self, x, mask):
        weights = mask.to(x.dtype) / mask.sum(dim=1, keepdim=True)
        return torch.einsum("bn,bnd->bd", weights, x), weights


class MaxPooling(nn.Module):
    """Feature-wise max over the real instances; an instance's weight is the share of
    features in which it is the max."""

    def forward(self, x, mask):
        x = x.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        pooled, winner = x.max(dim=1)
        wins = torch.zeros(mask.shape, dtype=x.dtype, device=x.device)
        wins.scatter_add_(1, winner, torch.ones_like(pooled))
        return pooled, wins / x.shape[-1]


def make_pooling(pooling, in_dim, *, attention_dim=64):
    """Build the pooling module named by ``pooling`` (one of ``POOLINGS``)."""
    if pooling in ("attention", "gated"):
        return AttentionPooling(in_dim, attention_dim, gated=pooling == "gated")
    if pooling == "mean":
        return MeanPooling()
    if pooling == "max":
        return MaxPooling()
    raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}.")


class AttentionPoolNet(nn.Module):
    """DinoAtten3D's network: pooling, an MLP embedding head and a linear classifier.

    ``forward`` takes slice embeddings ``(batch, slices, dim)`` where all-NaN rows are
    padding, and returns ``(logits, embedding, weights)``.
    """

    def __init__(self, in_dim, n_classes, pooling="attention", attention_dim=64,
                 hidden_dims=(256, 128), dropout=0.0):
        super().__init__()
        self.pooling = make_pooling(pooling, in_dim, attention_dim=attention_dim)
        self.embedding_head = mlp(in_dim, hidden_dims, dropout)
        self.classifier = nn.Linear(hidden_dims[-1] if hidden_dims else in_dim, n_classes)

    def forward(self, x):
        mask = padding_mask(x)
        pooled, weights = self.pooling(zero_padding(x, mask), mask)
        embedding = self.embedding_head(pooled)
        return self.classifier(embedding), embedding, weights
