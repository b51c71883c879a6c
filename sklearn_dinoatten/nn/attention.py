"""Attention pooling over slice embeddings (Ilse et al. 2018; DinoAtten3D)."""

import torch
from torch import nn


def padding_mask(x):
    """``True`` for real slices of ``x`` ``(batch, slices, dim)``; all-NaN rows are padding."""
    return ~torch.isnan(x).all(dim=-1)


class AttentionPooling(nn.Module):
    """Attention-weighted sum of instances, ignoring padded ones.

    Scores are ``e_j = w2^T tanh(W1 z_j)``, multiplied by ``sigmoid(U z_j)`` when
    ``gated``; weights are their softmax over the real (unmasked) instances.
    """

    def __init__(self, in_dim, attention_dim=64, gated=False):
        super().__init__()
        self.hidden = nn.Linear(in_dim, attention_dim)
        self.gate = nn.Linear(in_dim, attention_dim) if gated else None
        self.score = nn.Linear(attention_dim, 1, bias=False)

    def forward(self, x, mask):
        """Pool ``x`` ``(batch, n, dim)``; return ``(pooled (batch, dim), weights (batch, n))``."""
        hidden = torch.tanh(self.hidden(x))
        if self.gate is not None:
            hidden = hidden * torch.sigmoid(self.gate(x))
        scores = self.score(hidden).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        return torch.einsum("bn,bnd->bd", weights, x), weights


class AttentionPoolNet(nn.Module):
    """DinoAtten3D's network: attention pooling, an MLP embedding head, a linear classifier.

    ``forward`` takes slice embeddings ``(batch, slices, dim)`` where all-NaN rows are
    padding, and returns ``(logits, embedding, attention)``.
    """

    def __init__(self, in_dim, n_classes, attention_dim=64, gated=False, hidden_dims=(256, 128),
                 dropout=0.0):
        super().__init__()
        self.pooling = AttentionPooling(in_dim, attention_dim, gated)
        layers, width = [], in_dim
        for i, size in enumerate(hidden_dims):
            if i:
                layers += [nn.ReLU(), nn.Dropout(dropout)]
            layers.append(nn.Linear(width, size))
            width = size
        self.embedding_head = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, x):
        mask = padding_mask(x)
        x = torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))
        pooled, attention = self.pooling(x, mask)
        embedding = self.embedding_head(pooled)
        return self.classifier(embedding), embedding, attention
