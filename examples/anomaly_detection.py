"""Unsupervised anomaly detection on DINOv2 patch embeddings, trained on normal scans only.

The spatial autoregressive detector predicts each patch embedding from the ones before
it; the memory bank measures each patch's distance to the nearest normal patch. Both
give an anomaly map at the image's resolution. Runs offline in about a minute on 2 CPU
cores (``weights="random"`` stands in for DINOv2).
"""

import numpy as np
from sklearn.metrics import roc_auc_score

from sklearn_dinoatten import DinoSliceEmbedder
from sklearn_dinoatten.anomaly import MemoryBankAnomalyDetector, SpatialARAnomalyDetector
from sklearn_dinoatten.datasets import make_anomaly_images

X, y, masks = make_anomaly_images(n_normal=80, n_anomalous=20, return_masks=True,
                                  random_state=0)
train, test, y_test, masks_test = X[:60], X[60:], y[60:], masks[60:]  # 60 normal to learn
embedder = DinoSliceEmbedder(weights="random", image_size=112)

for detector in (SpatialARAnomalyDetector(embedder=embedder, random_state=0),
                 MemoryBankAnomalyDetector(embedder=embedder, coreset_ratio=0.25)):
    detector.fit(train)
    auroc = roc_auc_score(y_test == -1, -detector.score_samples(test))
    maps = detector.anomaly_map(test)  # one (64, 64) map per image
    peaks = [mask[np.unravel_index(m.argmax(), m.shape)]
             for m, mask, label in zip(maps, masks_test, y_test, strict=True) if label == -1]
    print(f"{type(detector).__name__}: AUROC {auroc:.3f}; anomaly map peaks on the "
          f"lesion in {np.mean(peaks):.0%} of anomalous images; "
          f"{np.mean(detector.predict(test) == y_test):.0%} of the test set labelled right")
