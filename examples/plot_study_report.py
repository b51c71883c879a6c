"""
A study: several methods on the same folds, and the report's figures
====================================================================

:func:`~sklearn_dinoatten.evaluation.run_study` is the loop behind ``dinoatten cv``: it
embeds the scans once, fits every method on every fold's training scans, scores the
held-out scans, and returns a :class:`~sklearn_dinoatten.evaluation.Run` with the
predictions, the metrics table (AUC with a bootstrap interval, DeLong's test against
the reference method) and a caption that says how they were computed. The figures of
the HTML report are functions of that run.

The backbone has random weights (``weights="random"``: no network) and the inputs are
tiny, so that the example runs in seconds: the numbers show the machinery, not what
DINOv2 achieves.
"""

# %%
# Data, methods and protocol
# --------------------------
# Three heads on the same slice embeddings: DinoAtten3D (attention pooling with
# ``CE + SupCon + variance``, the reference), mean pooling and gated attention, each
# built by :func:`~sklearn_dinoatten.evaluation.make_method` from its key in
# :data:`~sklearn_dinoatten.evaluation.METHODS`. The protocol is a 4-fold stratified
# cross-validation.
import os
import tempfile

import matplotlib.pyplot as plt

from sklearn_dinoatten import DinoSliceEmbedder, evaluation
from sklearn_dinoatten.datasets import make_volumes

X, y = make_volumes(n_samples=40, shape=(32, 32, 16), random_state=0)
embedder = DinoSliceEmbedder(weights="random", image_size=28, verbose=0)
methods = {key: evaluation.make_method(key, max_epochs=15)
           for key in ("dinoatten3d", "mean", "gated")}
protocol = evaluation.cross_validation(y, n_folds=4)
print(protocol.description)

run = evaluation.run_study(X, y, methods, protocol, embedder=embedder, verbose=0)

# %%
# The metrics table
# -----------------
# One row per method, on the scans every method scored. ``delong_p`` compares each AUC
# with the reference method's on the same scans (NaN for the reference itself).
print(f"{'method':<18}{'accuracy':>9}{'AUC [95 % CI]':>22}{'sens.':>7}{'spec.':>7}"
      f"{'DeLong p':>10}")
for row in run.metrics:
    print(f"{row['method']:<18}{row['accuracy']:>9.3f}"
          f"{row['auc']:>9.3f} [{row['auc_ci_low']:.3f}, {row['auc_ci_high']:.3f}]"
          f"{row['sensitivity']:>7.2f}{row['specificity']:>7.2f}{row['delong_p']:>10.3f}")

# %%
# The caption says what the table shows and how it was computed; a run on random
# weights says so.
print(run.info["caption"])

# %%
# ROC curves
# ----------
# :func:`~sklearn_dinoatten.evaluation.roc_figure` draws one panel per method, with a
# 95 % bootstrap band and the reference's curve in grey; ``legends`` gives each
# method's label. The report's figures are plain matplotlib
# :class:`~matplotlib.figure.Figure` objects; ``plt.figure(fig)`` hands one to pyplot
# so that it is shown (the gallery shows pyplot's figures).
row_of = {row["method"]: row for row in run.metrics}  # run.names: key -> method name
legends = {key: f"AUC {row_of[name]['auc']:.3f}" for key, name in run.names.items()}
plt.figure(evaluation.roc_figure(run, legends))

# %%
# Confusion matrices
# ------------------
plt.figure(evaluation.confusion_figure(run))

# %%
# The volume embeddings
# ---------------------
# :func:`~sklearn_dinoatten.evaluation.embedding_figure` projects the volume
# embeddings a method learnt (the output of its MLP head, for the scans each fold held
# out) by PCA and t-SNE; the marker is the fold.
plt.figure(evaluation.embedding_figure(run, "dinoatten3d"))

# %%
# Writing the run and its report
# ------------------------------
# :func:`~sklearn_dinoatten.evaluation.write_run` writes the run as ``dinoatten cv``
# does (``run.json``, ``predictions.csv``, ``metrics.csv``, ``metrics.md`` with the
# caption, ``outputs.npz``), and :func:`~sklearn_dinoatten.evaluation.write_report`
# turns that folder into one self-contained HTML file with these figures; on the
# command line, ``dinoatten report RUN_DIR``. Overlays of attention on scans need the
# scan files, so with arrays as here ``overlays=0``.
run_dir = os.path.join(tempfile.mkdtemp(), "run")
evaluation.write_run(run_dir, run)
report = evaluation.write_report(run_dir, overlays=0)
print(sorted(os.listdir(run_dir)))
print(open(os.path.join(run_dir, "metrics.md")).read())
plt.show()
