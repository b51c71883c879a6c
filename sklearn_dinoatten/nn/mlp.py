"""A plain multi-layer perceptron builder shared by the heads."""

from torch import nn


def mlp(in_dim, sizes, dropout=0.0):
    """Linear layers of ``sizes`` with ReLU (and dropout) between them, none after the last."""
    layers, width = [], in_dim
    for i, size in enumerate(sizes):
        if i:
            layers += [nn.ReLU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(width, size))
        width = size
    return nn.Sequential(*layers)
