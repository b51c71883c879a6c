"""
Attention over patch tokens of 2D images
========================================

The same attention head that pools the slices of a volume can pool the patch tokens
of one image: with ``DinoSliceEmbedder(feature="patch")`` every patch token is a row,
so an :class:`~sklearn_dinoatten.AttentionPoolClassifier` learns which patches decide
(the fine-tuning study's best frozen setting). No new head is needed, and its
attention is a map over the patch grid.

The backbone has random weights (``weights="random"``: no network): the numbers show
the machinery, not what DINOv2's patch tokens achieve.
"""

# %%
# Images and patch tokens
# -----------------------
# 2D scans, label -1 with a dark lesion somewhere in the organ, 1 without (a list of
# 2D arrays is taken as volumes of one slice). ``image_size=112`` cuts each image into
# an 8 x 8 grid of 14-pixel patches: 64 rows of 384 features per image.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder
from sklearn_dinoatten.datasets import make_anomaly_images

X, y, masks = make_anomaly_images(n_normal=40, n_anomalous=40, return_masks=True,
                                  random_state=0)
pipe = make_pipeline(
    DinoSliceEmbedder(weights="random", image_size=112, feature="patch", verbose=0),
    AttentionPoolClassifier(max_epochs=30, random_state=0),
)

# %%
# Cross-validation
# ----------------
cv = StratifiedKFold(4, shuffle=True, random_state=0)
scores = cross_val_score(pipe, X, y, cv=cv, scoring="roc_auc")
print("ROC AUC per fold:", scores.round(3), f"mean {scores.mean():.3f}")

# %%
# Where the attention goes
# ------------------------
# Fitted on all images, the head's attention over the 64 patches of each image
# (``attention_weights`` of the embedded images), compared with the patches the lesion
# covers. Attention over instances varies with the seed, as MIL attention does.
pipe.fit(X, y)
embedder, head = pipe[0], pipe[-1]
attention = head.attention_weights(embedder.transform(X))  # (n_images, 64)
rows, columns = embedder.grid_shape_
block = X[0].shape[0] // rows  # a patch covers 8 x 8 pixels of the 64 x 64 image
lesion = [m.reshape(rows, block, columns, block).any(axis=(1, 3)).ravel() for m in masks]
sick = np.flatnonzero(y == -1)
mass = np.mean([attention[i][lesion[i]].sum() for i in sick])
chance = np.mean([lesion[i].mean() for i in sick])
print(f"grid {embedder.grid_shape_}; attention on the lesion's patches: {mass:.0%} of the "
      f"total (uniform attention: {chance:.0%})")

top = attention[sick[:5]].max()  # one colour scale for the five maps
at_patch = (np.arange(X[0].shape[0]) + 0.5) / block - 0.5  # pixel centres, in patches
fig, axes = plt.subplots(2, 5, figsize=(11, 4.8), layout="constrained")
for column, i in enumerate(sick[:5]):
    axes[0, column].imshow(X[i], cmap="gray")
    axes[0, column].contour(masks[i], levels=[0.5], colors="cyan", linewidths=1)
    axes[0, column].set_title(f"image {i}")
    grid = attention[i].reshape(rows, columns)
    shown = axes[1, column].imshow(grid, cmap="inferno", vmin=0, vmax=top)
    axes[1, column].contour(at_patch, at_patch, masks[i], levels=[0.5], colors="cyan",
                            linewidths=1)
    axes[1, column].set_title(f"{attention[i][lesion[i]].sum():.0%} on the lesion")
for ax in axes.ravel():
    ax.set(xticks=[], yticks=[])
axes[0, 0].set_ylabel("image, lesion outlined")
axes[1, 0].set_ylabel("attention, 8 x 8 patches")
fig.colorbar(shown, ax=axes[1, :], shrink=0.8, label="attention weight")
plt.show()
