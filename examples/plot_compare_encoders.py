"""
Comparing slice encoders on the same splits
===========================================

Which 2D encoder suits a task is an empirical question. Given a dict of
:class:`~sklearn_dinoatten.DinoSliceEmbedder`,
:func:`~sklearn_dinoatten.evaluation.run_study` embeds the scans once per encoder and
evaluates every method on slice embeddings on each, on the same folds, so that their
AUCs can be compared scan for scan (DeLong's test). Here DINOv2's ViT-S/14 (timm) and a
ResNet-18 (torchvision, its global-average-pooled feature map as the slice embedding).

Both backbones have random weights (``weights="random"``: no network) and tiny inputs,
so that the example runs in seconds: which one wins here says nothing about the
pretrained models; the example shows the machinery.
"""

# %%
# Two encoders
# ------------
# The encoders must keep the same slices (the same slicing settings); the input size
# may differ, a multiple of each patch size (14 for the ViT, the total stride of 32 for
# the ResNet). Fitted embedders are used as they are; fitting one only builds its
# backbone.
import matplotlib.pyplot as plt
import numpy as np

from sklearn_dinoatten import DinoSliceEmbedder
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.evaluation import cross_validation, make_method, roc_figure, run_study

X, y = make_volumes(n_samples=40, shape=(32, 32, 16), random_state=0)
encoders = {
    "vit": DinoSliceEmbedder(backbone="vit_small_patch14_dinov2", weights="random",
                             image_size=28, verbose=0),
    "resnet": DinoSliceEmbedder(backbone="torchvision:resnet18", weights="random",
                                image_size=64, verbose=0),
}
for name, encoder in encoders.items():
    encoder.fit(X)
    print(f"{name}: {encoder.backbone}, {encoder.embedding_dim_} features per slice, "
          f"patch size {encoder.patch_size_} px")

# %%
# The study
# ---------
# Two heads (DinoAtten3D and mean pooling) on each encoder: four rows, named
# ``"<method> [<encoder>]"``, their probabilities under ``"<key>@<encoder>"``. DeLong's
# test compares each with the reference method on the first encoder.
methods = {key: make_method(key, max_epochs=15) for key in ("dinoatten3d", "mean")}
run = run_study(X, y, methods, cross_validation(y, n_folds=4), embedder=encoders,
                verbose=0)
for row in run.metrics:
    print(f"{row['method']:<24} AUC {row['auc']:.3f} [{row['auc_ci_low']:.3f}, "
          f"{row['auc_ci_high']:.3f}]  accuracy {row['accuracy']:.3f}  "
          f"DeLong p {row['delong_p']:.3f}")
print(list(run.proba))
print(run.info["caption"])

# %%
# AUCs side by side
# -----------------
fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
auc = np.array([row["auc"] for row in run.metrics])
error = np.array([[row["auc"] - row["auc_ci_low"], row["auc_ci_high"] - row["auc"]]
                  for row in run.metrics]).T
colors = ["C0" if row["method"].endswith("[vit]") else "C1" for row in run.metrics]
ax.barh(range(len(auc)), auc, xerr=error, color=colors, capsize=4)
ax.set_yticks(range(len(auc)), [row["method"] for row in run.metrics])
ax.axvline(0.5, ls=":", color="black")
ax.invert_yaxis()
ax.set(xlim=(0, 1.05), xlabel="ROC AUC, 95 % bootstrap interval",
       title="Same folds, two slice encoders (random weights)")

# %%
# The report's ROC figure, one panel per method and encoder, the reference in grey
# (``plt.figure`` hands the returned figure to pyplot so that it is shown).
row_of = {row["method"]: row for row in run.metrics}
plt.figure(roc_figure(run, {key: f"AUC {row_of[name]['auc']:.3f}"
                            for key, name in run.names.items()}))

# %%
# On the command line the same comparison is ``dinoatten cv DATA --backbone
# vit_small_patch14_dinov2,torchvision:resnet18 --method dinoatten3d,mean``.
plt.show()
