"""Unsupervised anomaly detection on DINO patch embeddings, with scikit-learn's
outlier-detector API.

Both detectors are fitted on normal images or volumes only. A frozen backbone embeds
every patch of every slice (``DinoSliceEmbedder(feature="patch")``, with its cache);
each patch gets an anomaly score; a slice's score reduces its patches', a volume's
reduces its slices'. ``score_samples`` is high for normal samples, as in scikit-learn.

- :class:`SpatialARAnomalyDetector`: a small masked CNN predicts each patch embedding
  from the patches before it in raster order; the score is the prediction error. One
  forward pass per image, a model of a few hundred kB, no memory bank.
- :class:`MemoryBankAnomalyDetector`: the distance of each patch to its nearest normal
  patch in a memory bank (PatchCore-style, optionally a greedy coreset of it).
"""

from ._memory_bank import MemoryBankAnomalyDetector
from ._spatial_ar import SpatialARAnomalyDetector

__all__ = ["MemoryBankAnomalyDetector", "SpatialARAnomalyDetector"]
