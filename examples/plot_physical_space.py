"""
Physical space: voxel spacing, foreground crop and tri-planar bags
==================================================================

By default a :class:`~sklearn_dinoatten.DinoSliceEmbedder` takes every slice by index
and resizes each to fit the backbone input, whatever the voxel size. Scans of other
resolutions then give other numbers of slices and structures of other sizes. The
voxel size is in the NIfTI header; ``slice_spacing`` (a slice every so many mm) and
``pixel_spacing`` (mm per backbone pixel) use it, ``crop="foreground"`` skips empty
margins, and ``axis="all"`` takes slices in the three orientations.
:meth:`~sklearn_dinoatten.DinoSliceEmbedder.kept_slices` says which slices a setting
keeps.

The backbone has random weights (``weights="random"``: no network), which do not
matter here: this example is about which voxels reach the backbone.
"""

# %%
# One object at several resolutions
# ---------------------------------
# A synthetic "brain" at 1 mm, the same volume with 2 mm between axial slices, with
# 2 mm pixels in-plane, and padded by 12 mm of background on every side; each is
# written as NIfTI with an affine that gives its voxel size.
import os
import tempfile
import warnings

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np

from sklearn_dinoatten import DinoSliceEmbedder
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.volumes import load_scan, resize_stack, slice_sets, voxel_size_of

X, _ = make_volumes(n_samples=2, shape=(40, 40, 40), random_state=0)
brain = X[1]
folder = tempfile.mkdtemp()


def write(name, data, spacing):
    """Save ``data`` as NIfTI with voxels of ``spacing`` mm (x, y, z)."""
    path = os.path.join(folder, name)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), np.diag([*spacing, 1.0])), path)
    return path


scans = {
    "1 mm": write("iso.nii.gz", brain, (1, 1, 1)),
    "2 mm slices": write("thick.nii.gz", brain[:, :, ::2], (1, 1, 2)),
    "2 mm pixels": write("coarse.nii.gz", brain[::2, ::2, :], (2, 2, 1)),
    "padded": write("padded.nii.gz", np.pad(brain, 12, constant_values=brain.min()),
                    (1, 1, 1)),
}
paths = list(scans.values())
for name, path in scans.items():
    print(f"{name:<12} shape {nib.load(path).shape}, voxel size "
          f"{tuple(float(s) for s in voxel_size_of(path))} mm")

# %%
# Which axial slices are kept
# ---------------------------
# By index, every slice: 40, 20, 40 and 64 of them. ``fit`` warns when the voxel sizes
# of one fit are more than 20 % apart and neither spacing option is set.
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    DinoSliceEmbedder(weights="random", image_size=28, verbose=0).fit(paths)
print("fit warned:", [str(w.message) for w in caught if "apart" in str(w.message)][0])

settings = {
    "every slice (default)": {},
    "slice_spacing=4": {"slice_spacing": 4.0},
    'slice_spacing=4, crop="foreground"': {"slice_spacing": 4.0, "crop": "foreground"},
}
kept = {}
for title, params in settings.items():
    embedder = DinoSliceEmbedder(weights="random", image_size=28, verbose=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        embedder.fit(paths)
    kept[title] = [embedder.kept_slices(path)[1] for path in paths]
    print(f"{title:<36} slices kept: {[len(k) for k in kept[title]]}; embedding "
          f"{embedder.transform(paths).shape}")
print('padded, slice_spacing=4, crop="foreground":', kept[title][3].tolist())

# %%
# With ``slice_spacing=4`` every scan keeps a slice every 4 mm: 10 each, the same
# anatomy, except the padded one, whose empty margins are slices too. The foreground
# crop (the box around the voxels above Otsu's threshold, 4 mm wider) drops those.
# Each panel is a coronal section in mm; a line is a kept axial slice.
fig, axes = plt.subplots(len(settings), len(scans), figsize=(11, 8.5), layout="constrained")
for row, title in zip(axes, settings, strict=True):
    for ax, (name, path), indices in zip(row, scans.items(), kept[title], strict=True):
        data, voxel = load_scan(path)
        extent = [0, data.shape[0] * voxel[0], 0, data.shape[2] * voxel[2]]
        ax.imshow(data[:, data.shape[1] // 2, :].T, cmap="gray", origin="lower",
                  extent=extent)
        for k in indices:
            ax.axhline((k + 0.5) * voxel[2], color="C1", lw=0.8)
        ax.set(title=f"{name}: {len(indices)} slices", xlabel="x (mm)")
    row[0].set_ylabel(f"{title}\nz (mm)")
fig.suptitle("Kept axial slices (orange) on a coronal section")

# %%
# What the backbone sees in-plane
# -------------------------------
# Resized to fit, a slice fills the input whatever its field of view: the padded
# scan's brain is smaller, the 2 mm one as large as the 1 mm one. With
# ``pixel_spacing=1`` each slice is resampled to 1 mm per backbone pixel and centred
# on the 56-pixel input (``image_size * pixel_spacing`` = 56 mm of field of view): the
# brain has the same width in pixels in every scan, give or take the blur of the 2 mm
# pixels. The same functions the embedder uses draw it here:
# :func:`~sklearn_dinoatten.volumes.slice_sets` and
# :func:`~sklearn_dinoatten.volumes.resize_stack`.
fig, axes = plt.subplots(2, len(scans), figsize=(10, 5.4), layout="constrained")
for column, (name, path) in enumerate(scans.items()):
    data, voxel = load_scan(path)
    (central,) = slice_sets(data, voxel, axes=(2,), n_slices=1, selection="center")
    for row, pixel_spacing in enumerate([None, 1.0]):
        image = resize_stack(central.stack, 56, pixel_size=central.pixel_size,
                             pixel_spacing=pixel_spacing)[0, 0].numpy()
        wide = np.flatnonzero((image > image.min() + 0.5 * np.ptp(image)).any(axis=1))
        axes[row, column].imshow(image.T, cmap="gray", origin="lower")
        axes[row, column].set(title=f"{name}: {np.ptp(wide) + 1} px wide", xticks=[],
                              yticks=[])
        print(f"pixel_spacing={pixel_spacing}, {name}: brain {np.ptp(wide) + 1} of 56 px")
axes[0, 0].set_ylabel("resized to fit")
axes[1, 0].set_ylabel("pixel_spacing=1")

# %%
# Tri-planar bags
# ---------------
# ``axis="all"`` keeps slices in the three orientations in turn (axial, coronal,
# sagittal), ``n_slices`` per orientation, and tags each row with its orientation by
# three more columns; the attention head pools across views.
# :meth:`~sklearn_dinoatten.DinoSliceEmbedder.kept_slices` gives each row's axis
# (0: sagittal, 1: coronal, 2: axial) and index.
embedder = DinoSliceEmbedder(weights="random", image_size=28, axis="all", n_slices=4,
                             crop="foreground", verbose=0).fit([scans["padded"]])
axes_kept, indices = embedder.kept_slices(scans["padded"])
print("axis of each row: ", axes_kept.tolist())
print("index of each row:", indices.tolist())
print("embedding of the padded scan:", embedder.transform([scans["padded"]]).shape,
      "(12 slices, 384 features + 3 orientation columns)")

data, _ = load_scan(scans["padded"])
fig, (axial, coronal) = plt.subplots(1, 2, figsize=(8, 4.2), layout="constrained")
axial.imshow(data[:, :, data.shape[2] // 2].T, cmap="gray", origin="lower")
coronal.imshow(data[:, data.shape[1] // 2, :].T, cmap="gray", origin="lower")
colors = {0: "C0", 1: "C2", 2: "C1"}
for a, k in zip(axes_kept, indices, strict=True):
    if a == 0:
        axial.axvline(k, color=colors[0])
    elif a == 1:
        axial.axhline(k, color=colors[1])
    else:
        coronal.axhline(k, color=colors[2])
axial.set(title="axial view: sagittal (blue), coronal (green)", xlabel="x", ylabel="y")
coronal.set(title="coronal view: axial slices (orange)", xlabel="x", ylabel="z")
fig.suptitle('axis="all", n_slices=4, crop="foreground": the padded scan')
plt.show()
