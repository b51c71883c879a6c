"""A 2D backbone fine-tuned end to end with a slice aggregator: a classifier of volumes
(paths or arrays) or 2D images."""

import numpy as np
import torch

from ..embedding import DinoSliceEmbedder
from ..embedding.backbones import (
    ADAPTER_PREFIXES,
    SAVED_WEIGHTS,
    build_backbone,
    timm_input_normalization,
)
from ..nn import AGGREGATORS, FREEZE_MODES, FineTunedSliceNet, set_trainable
from ..utils._docs import shared_docs
from ..utils._validation import (
    BOOLEAN,
    NONE,
    Constraint,
    integer,
    options,
    real,
)
from ..volumes import axes_of, check_volumes, load_scan, to_channels
from ._base import TRAINING_CONSTRAINTS, TRAINING_DOCS, BaseTorchClassifier

DEFAULT_N_SLICES = 16  # so that a batch of volumes fits in memory with gradients


@shared_docs(training=TRAINING_DOCS)
class FineTunedSliceClassifier(BaseTorchClassifier):
    """A DINOv2 backbone fine-tuned end to end with a slice aggregator on top (MST with
    an unfrozen backbone; the fine-tuning study's setting).

    Takes volumes (paths or 3D arrays) or 2D images (a list of 2D arrays, one slice
    each) and trains the backbone's chosen part, with its own learning rate, together
    with an MST-style slice transformer or an attention aggregator over the slices' CLS
    tokens. Meant for a GPU (bfloat16 mixed precision there); tiny settings run on a CPU.

    Parameters
    ----------
    embedder : DinoSliceEmbedder or None, default=None
        Which backbone and slices: its ``backbone`` (a timm model name), ``weights``,
        ``image_size``, ``axis`` (one), ``n_slices``, ``slice_selection``, ``spacing``,
        ``slice_spacing``, ``pixel_spacing``, ``crop``, ``min_foreground`` and
        ``normalization`` are used (the others are how a frozen embedder runs, and do
        not apply). ``None``: ``DinoSliceEmbedder(n_slices=16)``, so that a batch fits
        in memory.
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
    mixed_precision : bool, default=True
        bfloat16 autocast of the backbone on CUDA (ignored on the CPU).
    {training}

    Examples
    --------
    >>> from sklearn_dinoatten import DinoSliceEmbedder, FineTunedSliceClassifier
    >>> from sklearn_dinoatten.datasets import make_volumes
    >>> X, y = make_volumes(n_samples=6, shape=(28, 28, 8), random_state=0)
    >>> embedder = DinoSliceEmbedder(weights="random", image_size=28, n_slices=4)
    >>> clf = FineTunedSliceClassifier(embedder=embedder, max_epochs=1, batch_size=2,
    ...                                random_state=0).fit(X, y)
    >>> clf.predict_proba(X).shape, clf.attention_weights(X).shape
    ((6, 2), (6, 4))
    """

    _constraints = {
        **TRAINING_CONSTRAINTS,
        "embedder": [NONE, Constraint(
            lambda v: isinstance(v, DinoSliceEmbedder) and isinstance(v.backbone, str)
            and not v.backbone.startswith(ADAPTER_PREFIXES) and len(axes_of(v.axis)) == 1,
            "a DinoSliceEmbedder with a timm model name as backbone and one slicing axis")],
        "in_chans": [options(1, 3)],
        "freeze": [options(*FREEZE_MODES)],
        "n_trainable_blocks": [integer(0)],
        "backbone_lr": [real(0)],
        "aggregator": [options(*AGGREGATORS)],
        "mixed_precision": [BOOLEAN],
    }
    _params_fixed_by_fit = ("in_chans", "aggregator", "embedder", *(
        f"embedder__{name}" for name in (
            "backbone", "weights", "image_size", "axis", "n_slices", "slice_selection",
            "spacing", "slice_spacing", "pixel_spacing", "crop", "min_foreground",
            "normalization")))

    def __init__(self, *, embedder=None, in_chans=1, freeze="last_n_blocks",
                 n_trainable_blocks=2, backbone_lr=1e-5, aggregator="transformer",
                 mixed_precision=True, class_weight=None, lr=1e-4, max_epochs=10,
                 batch_size=4, optimizer=torch.optim.AdamW, lr_schedule="constant",
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 device="auto", random_state=None, verbose=0, **kwargs):
        super().__init__(class_weight=class_weight, lr=lr, max_epochs=max_epochs,
                         batch_size=batch_size, optimizer=optimizer, lr_schedule=lr_schedule,
                         early_stopping=early_stopping, validation_fraction=validation_fraction,
                         n_iter_no_change=n_iter_no_change, device=device,
                         random_state=random_state, verbose=verbose, **kwargs)
        self.embedder = embedder
        self.in_chans = in_chans
        self.freeze = freeze
        self.n_trainable_blocks = n_trainable_blocks
        self.backbone_lr = backbone_lr
        self.aggregator = aggregator
        self.mixed_precision = mixed_precision

    def _embedder(self):
        """The embedder whose settings choose and preprocess the slices."""
        if self.embedder is None:
            return DinoSliceEmbedder(n_slices=DEFAULT_N_SLICES)
        return self.embedder

    def _check_X(self, X, reset=False):
        images = _backbone_inputs(self._embedder(), X, self.in_chans)
        if reset:
            self.n_features_in_ = int(np.prod(images.shape[2:]))
        return images

    def _build_module(self, n_features, n_classes, weights=None):
        embedder = self._embedder()
        weights = embedder.weights if weights is None else weights
        built = build_backbone(embedder.backbone, weights=weights, image_size=embedder.image_size,
                               in_chans=self.in_chans)
        backbone = set_trainable(built.module, freeze=self.freeze,
                                 n_trainable_blocks=self.n_trainable_blocks)
        return FineTunedSliceNet(backbone, n_classes, self.aggregator, self.mixed_precision)

    def _empty_modules(self):
        return {"module": self._build_module(self.n_features_in_, len(self.classes_),
                                             SAVED_WEIGHTS)}

    def _net_kwargs(self):
        if "optimizer__param_groups" in self._routed_params():
            raise ValueError("FineTunedSliceClassifier sets optimizer__param_groups itself "
                             "(from backbone_lr); leave it out.")
        return {"optimizer__param_groups": [("backbone.*", {"lr": self.backbone_lr})]}


def _backbone_inputs(embedder, X, in_chans):
    """The embedder's slices of every volume (or image) of ``X``, preprocessed for the
    backbone, as one float32 array ``(n, n_slices_max, in_chans, side, side)``; all-NaN
    slices pad shorter volumes. With ``in_chans=1`` the three normalised channels are
    averaged."""
    stacks, reader = [], embedder.slice_reader()
    mean, std = timm_input_normalization(embedder.backbone)
    for i, volume in enumerate(check_volumes(X, images=True)):
        (kept,) = reader.slice_sets(*load_scan(volume, index=i, images=True,
                                               spacing=embedder.spacing))
        images = to_channels(reader.backbone_input(kept), method=embedder.normalization, mean=mean,
                             std=std)
        stacks.append(images.mean(dim=1, keepdim=True) if in_chans == 1 else images)
    side = embedder.image_size
    out = np.full((len(stacks), embedder.n_slices or max(map(len, stacks)), in_chans, side,
                   side), np.nan, dtype=np.float32)
    for i, images in enumerate(stacks):
        out[i, : len(images)] = images.numpy()
    return out
