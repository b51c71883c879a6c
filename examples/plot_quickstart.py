"""
Quick start: slice embeddings and attention pooling
===================================================

A :class:`~sklearn_dinoatten.DinoSliceEmbedder` embeds every slice of a volume with a
frozen 2D backbone; an :class:`~sklearn_dinoatten.AttentionPoolClassifier` learns which
slices matter and classifies the volume. Together they are an ordinary scikit-learn
pipeline: cross-validation and grid search work as for any estimator.

The backbone here has random weights (``weights="random"``: no network) and tiny inputs
so that the example runs in seconds on a CPU: its numbers show the machinery, not what
DINOv2 achieves. For real work leave ``weights`` out (timm downloads the pretrained
weights) or give a local checkpoint such as ``dinov2_vits14_pretrain.pth``.
"""

# %%
# Synthetic volumes
# -----------------
# :func:`~sklearn_dinoatten.datasets.make_volumes` draws brain-like volumes; those of
# class 1 carry a bright blob confined to a few consecutive axial slices (the last
# axis). Here, 40 volumes of 32 x 32 x 16 voxels.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder
from sklearn_dinoatten.datasets import make_volumes

X, y, signal = make_volumes(n_samples=40, shape=(32, 32, 16), return_signal=True,
                            random_state=0)
print(f"{len(X)} volumes of shape {X[0].shape}, classes {np.bincount(y)}")

sick = int(np.flatnonzero(y == 1)[0])
fig, axes = plt.subplots(1, 4, figsize=(9, 2.6), layout="constrained")
for ax, k in zip(axes, [0, signal[sick][0], signal[sick][-1], 15], strict=True):
    ax.imshow(X[sick][:, :, k].T, cmap="gray", origin="lower")
    ax.set(title=f"slice {k}" + (" (signal)" if k in signal[sick] else ""),
           xticks=[], yticks=[])
fig.suptitle(f"Volume {sick}, class 1: axial slices")

# %%
# The pipeline
# ------------
# The embedder turns each volume into a bag of slice embeddings, ``(n_slices, 384)``
# for ViT-S/14; the classifier pools them with attention. ``image_size=28`` gives a
# 2 x 2 grid of 14-pixel patches per slice (224 is the default).
pipe = make_pipeline(
    DinoSliceEmbedder(backbone="vit_small_patch14_dinov2", weights="random", image_size=28,
                      verbose=0),
    AttentionPoolClassifier(max_epochs=15, random_state=0),
)

# %%
# Cross-validation
# ----------------
# Each volume is embedded once, whatever the number of folds: the embeddings are
# cached by volume content and configuration, so the folds only train heads.
scores = cross_val_score(pipe, X, y, cv=StratifiedKFold(4, shuffle=True, random_state=0),
                         scoring="roc_auc")
print("ROC AUC per fold:", scores.round(3), f"mean {scores.mean():.3f}")

# %%
# Grid search
# -----------
# Parameters of the steps are routed as in any pipeline,
# ``attentionpoolclassifier__lr`` and so on.
search = GridSearchCV(pipe, {"attentionpoolclassifier__lr": [1e-3, 1e-2]},
                      cv=StratifiedKFold(3, shuffle=True, random_state=0)).fit(X, y)
print("Grid search best:", search.best_params_, f"accuracy {search.best_score_:.3f}")

fig, axes = plt.subplots(1, 2, figsize=(8, 3), layout="constrained")
axes[0].bar(range(1, len(scores) + 1), scores, color="C0")
axes[0].axhline(0.5, ls=":", color="black", label="chance")
axes[0].set(title="ROC AUC per fold", xlabel="fold", ylim=(0, 1.05))
axes[0].legend()
results = search.cv_results_
lrs = [str(p["attentionpoolclassifier__lr"]) for p in results["params"]]
axes[1].bar(lrs, results["mean_test_score"], yerr=results["std_test_score"], color="C1")
axes[1].set(title="Grid search: accuracy", xlabel="learning rate", ylim=(0, 1.05))

# %%
# The refitted best pipeline predicts new volumes like any classifier; its attention
# head says which slices it looked at
# (:ref:`sphx_glr_auto_examples_plot_attention_saliency.py`).
X_new, y_new = make_volumes(n_samples=6, shape=(32, 32, 16), random_state=1)
print("predicted:", search.predict(X_new), "true:", y_new)
plt.show()
