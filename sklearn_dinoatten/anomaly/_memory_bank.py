"""Nearest-neighbour anomaly detection (PatchCore-style): the distance of each patch to its
nearest normal patch in a memory bank.
"""

import hashlib

import numpy as np
import torch
from sklearn.utils import check_random_state

from ..nn import greedy_coreset
from ..utils._validation import (
    NONE,
    array,
    real,
)
from ._base import COMMON_CONSTRAINTS, BaseDinoAnomalyDetector, detector_docs


@detector_docs
class MemoryBankAnomalyDetector(BaseDinoAnomalyDetector):
    """Nearest-neighbour anomaly detection on DINO patch embeddings (PatchCore-style).

    Every normal patch embedding goes into a memory bank (or a greedy coreset of it); a
    patch's anomaly score is the Euclidean distance to its nearest neighbour in the
    bank. The baseline :class:`SpatialARAnomalyDetector` is compared with: no training,
    but memory and scoring time grow with the training set.

    A slice seen in ``fit`` (recognised by its embedding) is scored against the patches
    of the other training slices, in ``fit`` and whenever it is scored again: its own
    patches would give it a score of 0. So ``fit_predict`` and ``predict`` on the
    training data flag the ``contamination`` share of it.

    Parameters
    ----------
    {common}
    coreset_ratio : float in (0, 1] or None, default=None
        Keep this share of the bank, chosen by greedy farthest-point sampling on a
        random projection (as in PatchCore); ``None`` keeps every patch.
    {contamination}
    device : str, default="auto"
    random_state : int, RandomState or None, default=None
        Seeds the coreset's projection and first point.

    Attributes
    ----------
    {attributes}
    memory_bank_ : ndarray of shape (n_kept_patches, dim)
        The standardised normal patch embeddings kept.

    Examples
    --------
    >>> from sklearn_dinoatten.anomaly import MemoryBankAnomalyDetector
    >>> from sklearn_dinoatten.datasets import make_anomaly_images
    >>> from sklearn_dinoatten import DinoSliceEmbedder
    >>> X, y = make_anomaly_images(n_normal=20, n_anomalous=4, random_state=0)
    >>> embedder = DinoSliceEmbedder(weights="random", image_size=56, verbose=0)
    >>> detector = MemoryBankAnomalyDetector(embedder=embedder, coreset_ratio=0.5,
    ...                                      random_state=0)
    >>> detector.fit([x for x, label in zip(X, y) if label == 1]).memory_bank_.shape
    (160, 384)
    """

    _params_fixed_by_fit = (*BaseDinoAnomalyDetector._params_fixed_by_fit, "coreset_ratio")

    def __init__(self, *, embedder=None, coreset_ratio=None, reduction="max",
                 slice_reduction="max", contamination=0.1, device="auto", random_state=None):
        self.embedder = embedder
        self.coreset_ratio = coreset_ratio
        self.reduction = reduction
        self.slice_reduction = slice_reduction
        self.contamination = contamination
        self.device = device
        self.random_state = random_state

    _constraints = {
        **COMMON_CONSTRAINTS,
        "coreset_ratio": [NONE, real(0, 1, low_open=True)],
    }
    _fitted_constraints = {
        **BaseDinoAnomalyDetector._fitted_constraints,
        "memory_bank_": [array("f", 2, "a 2D array of finite floats")],
        "_bank_owner": [array("iu", 1, "a 1D array of integers")],
        "_slice_digests": [array("U", 1, "a 1D array of strings")],
    }

    def _fit_patches(self, grids):
        ratio = self.coreset_ratio
        bank = grids.reshape(-1, grids.shape[-1])
        owner = np.repeat(np.arange(len(grids)), np.prod(grids.shape[1:3]))
        if ratio is not None and ratio < 1:
            keep = greedy_coreset(bank, max(1, int(ratio * len(bank))),
                                  check_random_state(self.random_state), self.device_)
            bank, owner = bank[keep], owner[keep]
        self.memory_bank_, self._bank_owner = bank, owner
        self._slice_digests = np.array([_digest(grid) for grid in grids])

    def _patch_errors(self, grids):
        """Distance of each patch to the nearest bank patch not of the same training slice."""
        bank = torch.from_numpy(self.memory_bank_).to(self.device_)
        owner = torch.from_numpy(self._bank_owner).to(self.device_)
        first_seen = {digest: i for i, digest in reversed(list(enumerate(self._slice_digests)))}
        own_slice = torch.tensor([first_seen.get(_digest(grid), -1) for grid in grids],
                                 device=self.device_)  # -1: not a training slice
        patches = np.prod(grids.shape[1:3])
        queries = torch.from_numpy(grids.reshape(-1, grids.shape[-1])).to(self.device_)
        distances = []
        for start in range(0, len(queries), 1024):
            chunk = torch.cdist(queries[start:start + 1024], bank)
            query_slice = torch.arange(start, start + len(chunk), device=self.device_) // patches
            own = owner[None, :] == own_slice[query_slice][:, None]
            distances.append(chunk.masked_fill(own, float("inf")).min(dim=1).values.cpu())
        return torch.cat(distances).double().numpy().reshape(grids.shape[:3])


def _digest(grid):
    """A slice's identity: the hash of its standardised patch embeddings."""
    return hashlib.blake2b(np.ascontiguousarray(grid).tobytes(), digest_size=16).hexdigest()
