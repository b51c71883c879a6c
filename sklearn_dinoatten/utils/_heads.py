"""The parameters a head has whatever it predicts, written once: their docstring
sections and allowed values, for the classifier and the regressor of each head (the
attention-pooling head, the slice transformer, the 3D ResNet)."""

from ._options import POOLINGS, RESNET_DEPTHS, RESNET_STEMS
from ._validation import BOOLEAN, NONE, integer, integers, options, real

DROPOUT = [real(0, 1, high_open=True)]

ATTENTION_POOL_DOCS = """pooling : {"attention", "gated", "mean", "max"}, default="attention"
        How slices are pooled: attention ``w2^T tanh(W1 z)``; gated attention, which
        multiplies that by ``sigmoid(U z)`` (Ilse et al. 2018); the mean of the slices
        (a strong, cheap baseline); or their feature-wise max.
    attention_dim : int, default=64
        Hidden size ``h`` of the attention scorer (attention pooling only).
    hidden_dims : tuple of int, default=(256, 128)
        Sizes of the MLP embedding head; its input size follows the data.
    dropout : float, default=0.0
        Dropout between the MLP layers."""

ATTENTION_POOL_CONSTRAINTS = {
    "pooling": [options(*POOLINGS)],
    "attention_dim": [integer(1)],
    "hidden_dims": [integers(1)],
    "dropout": DROPOUT,
}

SLICE_TRANSFORMER_DOCS = """n_layers : int, default=1
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
        Longest slice stack the position embedding covers."""

SLICE_TRANSFORMER_CONSTRAINTS = {
    "n_layers": [integer(1)],
    "n_heads": [NONE, integer(1)],
    "ffn_dim": [NONE, integer(1)],
    "dropout": DROPOUT,
    "position_embedding": [BOOLEAN],
    "max_slices": [integer(1)],
}

SLICE_TRANSFORMER_NOTES = """Notes
    -----
    ``attention_weights(X)`` is the last layer's CLS row of attention, averaged over
    heads and renormalised over the slices (MST's slice attention); padding gets 0."""

RESNET_DOCS = """depth : {10, 18, 34, 50}, default=18
    widen_factor : float, default=1.0
        Scales the channel widths (0.25 makes a much cheaper net for quick runs).
    stem : {"standard", "strided", "small"}, default="standard"
        The first layer: a 7^3 convolution and a max pooling of stride 2 (MONAI's
        default); the same convolution with stride 2 (as MedicalNet's), which leaves 8
        times fewer voxels to the next layers, for large volumes; or a 3^3 convolution
        without pooling, which keeps small inputs whole (as the ResNets of MedMNIST v2's
        28^3 benchmark) and costs the most."""

RESNET_CONSTRAINTS = {
    "depth": [options(*RESNET_DEPTHS)],
    # MONAI's first layer has int(64 * widen_factor) channels: at least one.
    "widen_factor": [real(1 / 64)],
    "stem": [options(*RESNET_STEMS)],
}
