"""
Anomaly detection and anomaly maps on patch embeddings
======================================================

Two unsupervised detectors learn from normal scans only, on the patch embeddings of a
frozen backbone. :class:`~sklearn_dinoatten.anomaly.SpatialARAnomalyDetector`
predicts each patch embedding from the patches before it (a masked CNN, PixelCNN
style); :class:`~sklearn_dinoatten.anomaly.MemoryBankAnomalyDetector` measures each
patch's distance to the nearest normal patch (PatchCore style). Both follow
scikit-learn's outlier-detector API (``score_samples`` is high for normal samples,
``predict`` gives +1 / -1) and give an anomaly map at the image's resolution.

The backbone has random weights (``weights="random"``: no network): the numbers show
the machinery, not what DINOv2's features achieve.
"""

# %%
# Normal and anomalous scans
# --------------------------
# :func:`~sklearn_dinoatten.datasets.make_anomaly_images` draws 64 x 64 "organs";
# anomalous ones (label -1) carry a small dark lesion, within the image's intensity
# range. The detectors learn from 60 normal images; the test set has 20 normal and
# 20 anomalous ones.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from sklearn_dinoatten import DinoSliceEmbedder
from sklearn_dinoatten.anomaly import MemoryBankAnomalyDetector, SpatialARAnomalyDetector
from sklearn_dinoatten.datasets import make_anomaly_images

X, y, masks = make_anomaly_images(n_normal=80, n_anomalous=20, return_masks=True,
                                  random_state=0)
train, test, y_test, masks_test = X[:60], X[60:], y[60:], masks[60:]
print(f"{len(train)} normal training images; test: {np.sum(y_test == 1)} normal, "
      f"{np.sum(y_test == -1)} anomalous")

# %%
# Two detectors on the same embedder
# ----------------------------------
# ``image_size=112`` gives an 8 x 8 grid of 14-pixel patches per image; the embedder
# is shared, so each image is embedded once. The AUROC ranks the test images by
# ``-score_samples`` (higher: more anomalous); the anomaly map's maximum should fall
# on the lesion.
embedder = DinoSliceEmbedder(weights="random", image_size=112, verbose=0)
detectors = {
    "spatial AR": SpatialARAnomalyDetector(embedder=embedder, random_state=0),
    "memory bank": MemoryBankAnomalyDetector(embedder=embedder, coreset_ratio=0.25),
}
scores, maps = {}, {}
for name, detector in detectors.items():
    detector.fit(train)
    scores[name] = -detector.score_samples(test)
    maps[name] = detector.anomaly_map(test)  # one (64, 64) map per image
    peaks = [mask[np.unravel_index(m.argmax(), m.shape)]
             for m, mask, label in zip(maps[name], masks_test, y_test, strict=True)
             if label == -1]
    print(f"{name}: AUROC {roc_auc_score(y_test == -1, scores[name]):.3f}; map peaks on "
          f"the lesion in {np.mean(peaks):.0%} of anomalous images; "
          f"{np.mean(detector.predict(test) == y_test):.0%} of the test set labelled right")

# %%
# Scores and ROC curves
# ---------------------
# ``predict`` flags as anomalous the scores beyond ``offset_``, set on the training
# scores so that ``contamination`` (10 %) of them would be flagged.
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), layout="constrained")
for ax, (name, s) in zip(axes[:2], scores.items(), strict=True):
    bins = np.linspace(s.min(), s.max(), 20)
    ax.hist(s[y_test == 1], bins, alpha=0.6, label="normal")
    ax.hist(s[y_test == -1], bins, alpha=0.6, label="anomalous")
    ax.axvline(-detectors[name].offset_, color="black", ls="--", label="threshold")
    ax.set(title=name, xlabel="anomaly score (-score_samples)")
    ax.legend(fontsize="small")
for name, s in scores.items():
    axes[2].plot(*roc_curve(y_test == -1, s)[:2],
                 label=f"{name} (AUROC {roc_auc_score(y_test == -1, s):.2f})")
axes[2].plot([0, 1], [0, 1], ":", color="black")
axes[2].set(title="ROC", xlabel="false-positive rate", ylabel="true-positive rate")
axes[2].legend(fontsize="small")

# %%
# Anomaly maps
# ------------
# Per-patch scores upsampled to the image, over the anomalous test images; the lesion
# is outlined in cyan.
sick = np.flatnonzero(y_test == -1)[:5]
fig, axes = plt.subplots(3, len(sick), figsize=(11, 7), layout="constrained")
for column, i in enumerate(sick):
    axes[0, column].imshow(test[i], cmap="gray")
    axes[0, column].set_title(f"test image {i}")
    for row, name in enumerate(detectors, start=1):
        ax = axes[row, column]
        ax.imshow(test[i], cmap="gray")
        ax.imshow(maps[name][i], cmap="inferno", alpha=0.55)
        ax.contour(masks_test[i], levels=[0.5], colors="cyan", linewidths=1)
    for ax in axes[:, column]:
        ax.set(xticks=[], yticks=[])
for row, name in enumerate(["image", *detectors]):
    axes[row, 0].set_ylabel(name)
plt.show()
