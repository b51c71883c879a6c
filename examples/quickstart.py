"""Quick start: cross-validate DINOv2 slice embeddings + attention pooling on synthetic volumes.

Runs offline on a laptop CPU in a few minutes. ``weights="random"`` stands in for the
pretrained DINOv2 (no network here); for real work leave it out (timm downloads the
pretrained weights) or give a local checkpoint such as ``dinov2_vits14_pretrain.pth``.
"""

from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder
from sklearn_dinoatten.datasets import make_volumes

X, y = make_volumes(n_samples=60, shape=(32, 64, 64), random_state=0)  # list of 3D arrays, labels
pipe = make_pipeline(
    DinoSliceEmbedder(backbone="vit_small_patch14_dinov2", weights="random", image_size=112),
    AttentionPoolClassifier(max_epochs=30, random_state=0),
)
scores = cross_val_score(pipe, X, y, cv=StratifiedKFold(5), scoring="roc_auc")
print("ROC AUC per fold:", scores.round(3), f"mean {scores.mean():.3f}")

search = GridSearchCV(pipe, {"attentionpoolclassifier__lr": [1e-3, 1e-2]}, cv=3).fit(X, y)
print("Grid search best:", search.best_params_, f"accuracy {search.best_score_:.3f}")
