"""The Medical Slice Transformer's aggregator (Mueller-Franzes et al. 2024)."""

import torch
from torch import nn

from .pooling import padding_mask, zero_padding


def default_heads(dim, most=12):
    """The most heads (up to ``most``, MST's 12 for 384) that divide ``dim``."""
    return max(h for h in range(1, most + 1) if dim % h == 0)


class PreNormLayer(nn.Module):
    """A pre-norm transformer encoder layer that also returns its attention weights."""

    def __init__(self, dim, n_heads, ffn_dim, dropout=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x, key_padding_mask):
        """Return the layer's output and its head-averaged attention ``(batch, L, L)``."""
        h = self.norm1(x)
        attended, weights = self.attention(h, h, h, key_padding_mask=key_padding_mask,
                                           need_weights=True, average_attn_weights=True)
        x = x + attended
        return x + self.ffn(self.norm2(x)), weights


class SliceTransformerNet(nn.Module):
    """A learnable CLS token and pre-norm transformer layers over slice embeddings.

    ``forward`` takes ``(batch, slices, dim)`` with all-NaN rows as padding and returns
    ``(logits, embedding, attention)``: the normed CLS output and the last layer's CLS
    row of attention over the slices, averaged over heads (0 on padding).
    """

    def __init__(self, in_dim, n_classes, n_layers=1, n_heads=None, ffn_dim=None,
                 dropout=0.0, position_embedding=False, max_slices=1024):
        super().__init__()
        n_heads = n_heads or default_heads(in_dim)
        if in_dim % n_heads:
            raise ValueError(f"n_heads={n_heads} does not divide the embedding size {in_dim}.")
        self.cls_token = nn.Parameter(torch.zeros(1, 1, in_dim))
        nn.init.normal_(self.cls_token, std=0.02)
        self.position = None
        if position_embedding:
            self.position = nn.Parameter(torch.zeros(1, max_slices + 1, in_dim))
            nn.init.normal_(self.position, std=0.02)
        self.layers = nn.ModuleList(
            PreNormLayer(in_dim, n_heads, ffn_dim or in_dim, dropout) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(in_dim)
        self.classifier = nn.Linear(in_dim, n_classes)

    def forward(self, x):
        mask = padding_mask(x)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), zero_padding(x, mask)], dim=1)
        if self.position is not None:
            if x.shape[1] > self.position.shape[1]:
                raise ValueError(
                    f"{x.shape[1] - 1} slices exceed the position embedding's "
                    f"{self.position.shape[1] - 1}; raise max_slices."
                )
            x = x + self.position[:, : x.shape[1]]
        key_padding = torch.cat([torch.zeros_like(mask[:, :1]), ~mask], dim=1)
        for layer in self.layers:
            x, weights = layer(x, key_padding)
        embedding = self.norm(x[:, 0])
        attention = weights[:, 0, 1:]
        return self.classifier(embedding), embedding, attention / attention.sum(1, keepdim=True)
