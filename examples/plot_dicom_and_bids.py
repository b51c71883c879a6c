"""
Your scans as hospitals keep them: DICOM series and a BIDS dataset
==================================================================

Scans leave a hospital as DICOM series (a folder of slice files each), and research
data sets are shared in BIDS (``sub-<label>/[ses-<label>/]anat/..._T1w.nii.gz`` with a
``participants.tsv``). Both are read as they are: a series folder is a scan wherever a
NIfTI path is, and :func:`~sklearn_dinoatten.datasets.load_bids` reads a BIDS dataset
as labelled scans grouped by subject. This example writes a study in each form, runs a
cross-validated study on each, and shows what a series that is not one volume gets.

The backbone has random weights (``weights="random"``: no network) and the inputs are
tiny, so that the example runs in seconds: the numbers show the machinery, not what
DINOv2 achieves.
"""

# %%
# A study of DICOM series
# -----------------------
# 16 synthetic volumes with a planted signal, each written as a scanner exports it: a
# file per slice in LPS patient space, the file names shuffled so that they say nothing
# of the slice order, the values stored as int16 with a rescale slope.
import os
import tempfile

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pydicom

from sklearn_dinoatten import DinoSliceEmbedder
from sklearn_dinoatten.datasets import (
    load_bids,
    load_nifti_folder,
    make_volumes,
    write_dicom_series,
)
from sklearn_dinoatten.evaluation import cross_validation, make_method, run_study
from sklearn_dinoatten.volumes import load_scan

root = tempfile.mkdtemp()
X, y = make_volumes(n_samples=16, shape=(24, 24, 8), random_state=0)
# voxel -> RAS mm: 0.9 x 0.9 mm in-plane, 3 mm slices, rows and columns running to the
# patient's left and back (the usual axial DICOM orientation)
affine = np.array([[-0.9, 0, 0, 10], [0, -0.9, 0, 10], [0, 0, 3.0, -12], [0, 0, 0, 1]])
with open(os.path.join(root, "labels.csv"), "w") as f:
    f.write("path,label\n")
    for i, (volume, label) in enumerate(zip(X, y, strict=True)):
        write_dicom_series(os.path.join(root, "dicom", f"patient{i:02d}"),
                           np.round(volume * 1000), affine, slope=0.5, random_state=i)
        f.write(f"dicom/patient{i:02d},{label}\n")
print(sorted(os.listdir(os.path.join(root, "dicom", "patient00")))[:4], "...")

# %%
# A labels file lists series folders as it lists NIfTI files. Reading a series sorts
# its slices by their position along the slice normal, takes the voxel size from
# PixelSpacing and the positions, applies the rescale slope and turns LPS to RAS:
paths, labels, groups, split = load_nifti_folder(root)
data, voxel_size = load_scan(paths[0])
print(f"{paths[0]}: {data.shape} voxels of {voxel_size} mm (RAS)")
embedder = DinoSliceEmbedder(weights="random", image_size=28, verbose=0)
methods = {key: make_method(key, max_epochs=10) for key in ("dinoatten3d", "mean")}
run = run_study(paths, labels, methods, cross_validation(labels, n_folds=4,
                                                         random_state=0),
                embedder=embedder, verbose=0)
for row in run.metrics:
    print(f"{row['method']:<14} AUC {row['auc']:.3f} [{row['auc_ci_low']:.3f}, "
          f"{row['auc_ci_high']:.3f}]")
print(run.info["caption"])

# %%
# What is not one volume is refused in one line: here a series with a slice file
# missing in its middle (the message names the files around the gap).
series = os.path.join(root, "dicom", "patient00")
by_position = sorted(os.listdir(series), key=lambda name: float(
    pydicom.dcmread(os.path.join(series, name)).ImagePositionPatient[2]))
os.remove(os.path.join(series, by_position[4]))
try:
    load_scan(series)
except ValueError as error:
    print(error)

# %%
# A BIDS dataset
# --------------
# 8 subjects, each scanned at two sessions, in the BIDS layout; ``participants.tsv``
# holds each subject's group and age. A derivative (a preprocessed copy) lies beside,
# where BIDS puts them; it is not a scan of the study.
bids = os.path.join(root, "bids")
subjects, classes = make_volumes(n_samples=8, shape=(24, 24, 8), random_state=1)
rng = np.random.default_rng(0)
lines = ["participant_id\tgroup\tage"]
for s, (volume, label) in enumerate(zip(subjects, classes, strict=True)):
    subject = f"sub-{s + 1:02d}"
    for session in ("ses-01", "ses-02"):
        folder = os.path.join(bids, subject, session, "anat")
        os.makedirs(folder)
        scan = volume + rng.normal(0, 0.05, volume.shape).astype(np.float32)
        nib.save(nib.Nifti1Image(scan, np.diag([1.0, 1.0, 2.0, 1.0])),
                 os.path.join(folder, f"{subject}_{session}_T1w.nii.gz"))
    lines.append(f"{subject}\t{'patient' if label else 'control'}\t{60 + s}")
with open(os.path.join(bids, "participants.tsv"), "w") as f:
    f.write("\n".join(lines) + "\n")
with open(os.path.join(bids, "dataset_description.json"), "w") as f:
    f.write('{"Name": "two sessions", "BIDSVersion": "1.9.0"}\n')
derivative = os.path.join(bids, "derivatives", "preproc", "sub-01", "ses-01", "anat")
os.makedirs(derivative)
nib.save(nib.Nifti1Image(subjects[0], np.eye(4)),
         os.path.join(derivative, "sub-01_ses-01_desc-preproc_T1w.nii.gz"))

# %%
# :func:`~sklearn_dinoatten.datasets.load_bids` finds the ``_T1w`` scans (each session
# its own scan), labels them from the column named (``label_column`` has no default:
# BIDS names none) and returns each scan's subject, so that the folds keep a subject's
# sessions together and the intervals resample subjects.
paths, labels, groups, _ = load_bids(bids, label_column="group")
print(len(paths), "scans of", len(set(groups)), "subjects;", os.path.relpath(paths[0], bids))
protocol = cross_validation(labels, n_folds=4, groups=groups, random_state=0)
print(protocol.description)
run = run_study(paths, labels, methods, protocol, embedder=embedder, pos_label="patient",
                verbose=0)
for row in run.metrics:
    print(f"{row['method']:<14} AUC {row['auc']:.3f} [{row['auc_ci_low']:.3f}, "
          f"{row['auc_ci_high']:.3f}]")
print(run.info["caption"])

# %%
# The same data from the command line (``dinoatten cv`` takes a BIDS root as DATA):
#
# .. code-block:: console
#
#    $ dinoatten cv bids/ --label-column group --pos-label patient --out results/bids
#
# and the DICOM study from its labels file: ``dinoatten cv study/ --out results/dicom``.
# One slice of the first series, as read (RAS: left of the patient on the image's left
# as drawn here, anterior up):
data, voxel_size = load_scan(os.path.join(root, "dicom", "patient01"))
fig, ax = plt.subplots(figsize=(3, 3), layout="constrained")
ax.imshow(data[:, :, 4].T, cmap="gray", origin="lower",
          aspect=voxel_size[1] / voxel_size[0])
ax.set(title="patient01, axial slice 4", xticks=[], yticks=[])
plt.show()
