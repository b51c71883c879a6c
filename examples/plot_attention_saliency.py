"""
Which slices and where: slice attention and saliency
====================================================

A fitted ``[DinoSliceEmbedder, AttentionPoolClassifier]`` pipeline says which slices it
weighed (:func:`~sklearn_dinoatten.explain.slice_attention`); multiplied by the
backbone's own CLS -> patch attention inside each slice, that gives a saliency volume
(:func:`~sklearn_dinoatten.explain.volume_saliency`, MST-style), which
:func:`~sklearn_dinoatten.explain.plot_saliency` overlays on the scan.

The backbone has random weights (``weights="random"``: no network), so its in-plane
attention is weak and nearly flat: here the slice attention does most of the work. The
pictures show the machinery, not DINOv2's attention, which follows objects.
"""

# %%
# A fitted pipeline
# -----------------
# Class 1 volumes carry a bright blob in two consecutive axial slices, at a random
# depth; ``return_signal=True`` says which.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.explain import plot_saliency, slice_attention, volume_saliency

X, y, signal = make_volumes(n_samples=40, shape=(32, 32, 16), return_signal=True,
                            random_state=0)
model = make_pipeline(
    DinoSliceEmbedder(weights="random", image_size=56, verbose=0),  # 4 x 4 patches a slice
    AttentionPoolClassifier(max_epochs=20, random_state=0),
).fit(X, y)
print(f"training accuracy {model.score(X, y):.3f}")

# %%
# Slice attention
# ---------------
# One weight per kept slice (they sum to 1 per volume); column ``j`` is the ``j``-th
# slice of ``model[0].kept_slices(volume)``, here every axial slice. In class 1
# volumes, how much of the attention falls on the two slices that hold the blob, with
# 2/16 = 12.5 % for uniform attention:
attention = slice_attention(model, X)
sick = np.flatnonzero(y == 1)
on_signal = [attention[i, signal[i]].sum() for i in sick]
print(f"attention on the signal slices: {np.mean(on_signal):.0%} on average "
      f"(uniform: {2 / 16:.1%})")

fig, axes = plt.subplots(2, 3, figsize=(10, 5), sharey=True, layout="constrained")
for ax, i in zip(axes.ravel(), sick[:6], strict=True):
    ax.bar(np.arange(attention.shape[1]), attention[i], color="C0")
    ax.bar(signal[i], attention[i, signal[i]], color="C3", label="signal slices")
    ax.axhline(1 / attention.shape[1], ls=":", color="black", label="uniform")
    ax.set(title=f"volume {i}", xlabel="axial slice")
axes[0, 0].set_ylabel("attention")
axes[1, 0].set_ylabel("attention")
axes[0, 0].legend(fontsize="small")
fig.suptitle("Slice attention of class 1 volumes")

# %%
# Saliency overlays
# -----------------
# :func:`~sklearn_dinoatten.explain.volume_saliency` gives one array per volume, in the
# volume's (RAS) shape: slice attention x in-plane attention, upsampled from the 4 x 4
# patch grid. :func:`~sklearn_dinoatten.explain.plot_saliency` shows the most salient
# slices, each raw and with the saliency over it, with the patient's sides on the
# edges and the slice index in the title.
i = int(sick[0])
saliency = volume_saliency(model, [X[i]])[0]
print(f"volume {i}: saliency of shape {saliency.shape}, highest on axial slice "
      f"{np.unravel_index(saliency.argmax(), saliency.shape)[2]}; blob in slices "
      f"{signal[i].tolist()}")
plot_saliency(X[i], saliency, n_slices=2)

# %%
# Given ``axes``, :func:`~sklearn_dinoatten.explain.plot_saliency` draws into a figure
# of yours: here, without the raw slices, the two most salient slices of three volumes.
fig, axes = plt.subplots(3, 2, figsize=(8.5, 10), layout="constrained")
saliencies = volume_saliency(model, [X[j] for j in sick[1:4]])
for row, j, s in zip(axes, sick[1:4], saliencies, strict=True):
    plot_saliency(X[j], s, n_slices=2, raw=False, axes=row)
plt.show()
