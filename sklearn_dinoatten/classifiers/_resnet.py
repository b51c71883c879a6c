"""The 3D ResNet baseline: a classifier of whole volumes of one shape."""

import numpy as np
import torch

from ..nn import ResNet3DNet, check_resnet_volumes
from ..utils._docs import shared_docs
from ..utils._heads import RESNET_CONSTRAINTS, RESNET_DOCS
from ..utils._validation import integers
from ._base import TRAINING_CONSTRAINTS, TRAINING_DOCS, BaseTorchClassifier


@shared_docs(head=RESNET_DOCS, training=TRAINING_DOCS)
class ResNet3DClassifier(BaseTorchClassifier):
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
    {head}
    {training}
    volume_shape_ : tuple of 3 ints
        The volume shape it was fitted on (``n_features_in_`` is its voxel count).
    """

    _has_slice_weights = False
    _refresh_batch_norm = True
    _fitted_constraints = {**BaseTorchClassifier._fitted_constraints,
                           "volume_shape_": [integers(1, length=3)]}

    _constraints = {**TRAINING_CONSTRAINTS, **RESNET_CONSTRAINTS}

    def __init__(self, *, depth=18, widen_factor=1.0, stem="standard", class_weight=None,
                 lr=1e-3, max_epochs=50, batch_size=16, optimizer=torch.optim.AdamW,
                 lr_schedule="constant", early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, device="auto", random_state=None, verbose=0,
                 **kwargs):
        super().__init__(class_weight=class_weight, lr=lr, max_epochs=max_epochs,
                         batch_size=batch_size, optimizer=optimizer, lr_schedule=lr_schedule,
                         early_stopping=early_stopping, validation_fraction=validation_fraction,
                         n_iter_no_change=n_iter_no_change, device=device,
                         random_state=random_state, verbose=verbose, **kwargs)
        self.depth = depth
        self.widen_factor = widen_factor
        self.stem = stem

    def _check_X(self, X, reset=False):
        X = check_resnet_volumes(X, self.stem, estimator=type(self).__name__,
                                 volume_shape=None if reset else self.volume_shape_)
        if reset:
            self.n_features_in_ = int(np.prod(X.shape[1:]))
            self.volume_shape_ = tuple(int(side) for side in X.shape[1:])
        return X

    def _build_module(self, n_features, n_classes):
        return ResNet3DNet(n_classes, depth=self.depth, widen_factor=self.widen_factor,
                           stem=self.stem)
