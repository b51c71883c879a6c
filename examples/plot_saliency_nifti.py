"""
Saliency maps for viewers: NIfTI on the scan's own grid
=======================================================

:func:`~sklearn_dinoatten.explain.explain_scans` writes, for each scan, its slice
attention and its saliency as NIfTI files with the scan's own dimensions, voxel order
and affine, which ITK-SNAP, 3D Slicer, FSLeyes and MRIcroGL lay over the scan as they
stand, with the overlay PNG of the report and a CSV of the predictions. Here a scan
stored in LPS order (x running from the patient's right to left, as many DICOM
converters write it) is explained, and its saliency file, read back with nibabel, is
drawn over it.

The backbone has random weights (``weights="random"``: no network), so its in-plane
attention is nearly flat and the slice attention does most of the work: the pictures
show the machinery, not DINOv2's attention, which follows objects.
"""

# %%
# A fitted pipeline and a scan on disk
# ------------------------------------
# Class 1 volumes carry a bright blob in two consecutive axial slices (``signal``).
# The scan is saved in LPS order: its first two axes flipped, the affine saying so.
import os
import shutil
import tempfile

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.explain import explain_scans, plot_saliency

X, y, signal = make_volumes(n_samples=30, shape=(32, 32, 16), return_signal=True,
                            random_state=0)
model = make_pipeline(
    DinoSliceEmbedder(weights="random", image_size=28, verbose=0),
    AttentionPoolClassifier(max_epochs=15, random_state=0),
).fit(X, y)

folder = tempfile.mkdtemp()
i = int(np.flatnonzero(y == 1)[0])
lps = np.diag([-1.0, -1.0, 1.0, 1.0])
lps[:2, 3] = 31.0  # voxel (0, 0, z) is the patient's right, anterior corner
scan = os.path.join(folder, "patient.nii.gz")
nib.save(nib.Nifti1Image(X[i][::-1, ::-1], lps), scan)

# %%
# The maps
# --------
# One call per set of scans: two NIfTI maps and a PNG per scan, and explanations.csv.
maps = os.path.join(folder, "maps")
row = explain_scans(model, [scan], maps)[0]
for key, value in row.items():
    print(f"{key}: {value}")
print("open it over the scan: fsleyes", scan, os.path.join(maps, row["saliency"]),
      "-cm hot -a 60")

# %%
# Read back as a viewer reads it
# ------------------------------
# The saliency file has the scan's shape and affine, so a viewer overlays it voxel for
# voxel. Reoriented to RAS (as :func:`~sklearn_dinoatten.explain.plot_saliency` shows
# a scan file), its most salient axial slice is one of the blob's.
scan_image = nib.load(scan)
saliency_image = nib.load(os.path.join(maps, row["saliency"]))
print(f"scan: {scan_image.shape}, {''.join(nib.aff2axcodes(scan_image.affine))}; "
      f"saliency: {saliency_image.shape}, {''.join(nib.aff2axcodes(saliency_image.affine))}; "
      f"same affine: {np.allclose(scan_image.affine, saliency_image.affine)}")
saliency = nib.as_closest_canonical(saliency_image).get_fdata()
print(f"most salient axial slice {saliency.sum(axis=(0, 1)).argmax()}; blob in slices "
      f"{signal[i].tolist()}")
plot_saliency(scan, saliency, n_slices=2)
shutil.rmtree(folder)  # the files of this example
plt.show()
