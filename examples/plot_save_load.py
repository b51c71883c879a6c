"""
Saving and loading a fitted pipeline
====================================

:func:`~sklearn_dinoatten.persistence.save_model` writes a fitted estimator or
pipeline of this package as one safetensors file: classes and parameters as JSON in
its header, network weights (the backbone's included) as tensors, and a SHA-256
digest of all of it. :func:`~sklearn_dinoatten.persistence.load_model` checks the
digest, the parameters and the tensors' shapes before it builds anything, so loading a
file cannot run code, unlike a pickle.

The backbone has random weights (``weights="random"``: no network) and the inputs are
tiny, so that the example runs in seconds: the predictions show the machinery, not
what DINOv2 achieves.
"""

# %%
# Fit and save
# ------------
import os
import shutil
import tempfile

import matplotlib.pyplot as plt
import numpy as np
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.persistence import FORMAT, load_model, save_model

X, y = make_volumes(n_samples=30, shape=(32, 32, 12), random_state=0)
X_new, y_new = make_volumes(n_samples=10, shape=(32, 32, 12), random_state=1)
model = make_pipeline(
    DinoSliceEmbedder(weights="random", image_size=28, verbose=0),
    AttentionPoolClassifier(max_epochs=15, random_state=0),
).fit(X, y)

folder = tempfile.mkdtemp()
path = os.path.join(folder, "model.safetensors")
save_model(model, path)
print(f"{FORMAT}: {os.path.getsize(path) / 1e6:.1f} MB (the ViT-S backbone is most of it)")

# %%
# Load and predict
# ----------------
# The loaded pipeline predicts exactly as the fitted one, on its saved ``device``
# parameters; ``device="cpu"`` (or ``"cuda"``, ``"auto"``) moves every estimator of
# it, as when a model trained on a GPU is used on a laptop.
loaded = load_model(path)
on_cpu = load_model(path, device="cpu")
proba = model.predict_proba(X_new)[:, 1]
proba_loaded = loaded.predict_proba(X_new)[:, 1]
proba_cpu = on_cpu.predict_proba(X_new)[:, 1]
print(loaded)
print("identical probabilities:", np.array_equal(proba, proba_loaded),
      "| on the CPU, largest difference:", float(np.abs(proba - proba_cpu).max()))
print("predictions:", loaded.predict(X_new), "true:", y_new)
print("devices of the CPU copy:", on_cpu[0].device_, on_cpu[-1].device_)

fig, ax = plt.subplots(figsize=(4.2, 4), layout="constrained")
ax.plot([0, 1], [0, 1], ":", color="black")
ax.scatter(proba, proba_loaded, s=60, label="load_model(path)")
ax.scatter(proba, proba_cpu, s=15, marker="x", color="C1",
           label='load_model(path, device="cpu")')
ax.set(xlabel="P(class 1), fitted pipeline", ylabel="P(class 1), loaded",
       title="Same probabilities after loading", xlim=(-0.05, 1.05), ylim=(-0.05, 1.05))
ax.legend(loc="upper left", fontsize="small")

# %%
# A damaged file is refused
# -------------------------
# Flipping one byte of a tensor breaks the digest; nothing is built.
with open(path, "rb") as file:
    data = bytearray(file.read())
data[-100] ^= 0xFF
damaged = path.replace(".safetensors", "-damaged.safetensors")
with open(damaged, "wb") as file:
    file.write(bytes(data))
try:
    load_model(damaged)
except ValueError as error:
    print("load_model refused:", error)
shutil.rmtree(folder)  # the two files of this example
plt.show()
