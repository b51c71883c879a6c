"""Slices in millimetres: the same heads at other resolutions and fields of view.

On the two real brain templates of ``../shared/data/brain_templates`` (MNI152 2009a at
1 mm, Colin27 at 0.5 mm) and copies of them (resampled to half the resolution; padded
with 40 mm of empty background in-plane, as a scan with a wider field of view), prints
for each setting of :class:`DinoSliceEmbedder`:

- the slices embedded per scan, and their share of the default's (the backbone work);
- the seconds to embed it (ViT-S/14, random weights, 224 px, this machine);
- the correlation of the backbone inputs (the preprocessed slices) of each copy with the
  original's, slice by slice at the same relative position in the bag, averaged.

    python benchmarks/physical_space.py [--image-size 224]

Settings: ``default`` (every slice, resized to fit), ``mm`` (``slice_spacing=2,
pixel_spacing=1``), ``mm+crop`` (also ``crop="foreground"``) and ``mm+crop+min`` (also
``min_foreground=0.05``).
"""

import argparse
import os
import time
import warnings

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from sklearn_dinoatten import DinoSliceEmbedder, clear_memory_cache
from sklearn_dinoatten.datasets import data_dir
from sklearn_dinoatten.volumes import load_scan

SETTINGS = {
    "default": {},
    "mm": dict(slice_spacing=2.0, pixel_spacing=1.0),
    "mm+crop": dict(slice_spacing=2.0, pixel_spacing=1.0, crop="foreground"),
    "mm+crop+min": dict(slice_spacing=2.0, pixel_spacing=1.0, crop="foreground",
                        min_foreground=0.05),
}
PAD_MM = 40


def scans():
    """``{name: (nibabel image, name of the original it copies or None)}``."""
    folder = os.path.join(data_dir(), "brain_templates")
    out = {}
    for name, file in (("MNI 1 mm", "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"),
                       ("Colin 0.5 mm", "ch2better.nii.gz")):
        data, voxel_size = load_scan(os.path.join(folder, file))
        out[name] = (nib.Nifti1Image(data, np.diag([*voxel_size, 1.0])), None)
        half = F.interpolate(torch.from_numpy(data)[None, None], scale_factor=0.5,
                             mode="trilinear", align_corners=False)[0, 0].numpy()
        coarse = tuple(2 * v for v in voxel_size)
        out[f"{name} -> {coarse[0]:g} mm"] = (nib.Nifti1Image(half, np.diag([*coarse, 1.0])),
                                              name)
        pad = [(round(PAD_MM / v),) * 2 for v in voxel_size[:2]] + [(0, 0)]
        out[f"{name}, +{PAD_MM} mm margins"] = (
            nib.Nifti1Image(np.pad(data, pad, constant_values=data.min()),
                            np.diag([*voxel_size, 1.0])), name)
    return out


def backbone_inputs(embedder, image):
    data, voxel_size = load_scan(image)
    reader = embedder.slice_reader()
    (slice_set,) = reader.slice_sets(data, voxel_size)
    return reader.backbone_input(slice_set)[:, 0].numpy()


def correlation(a, b):
    """Mean Pearson correlation of the slices of ``a`` and ``b`` at the same relative
    position in their bags (matched from the shorter bag), over the pairs where neither
    slice is constant (empty)."""
    a, b = (a, b) if len(a) <= len(b) else (b, a)
    match = np.round(np.linspace(0, len(b) - 1, len(a))).astype(int)
    pairs = [(x.ravel(), b[j].ravel()) for x, j in zip(a, match, strict=True)]
    return float(np.mean([np.corrcoef(x, y)[0, 1] for x, y in pairs
                          if x.std() > 0 and y.std() > 0]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    images = scans()
    print(f"ViT-S/14, random weights, {args.image_size} px, {torch.get_num_threads()} "
          "threads; correlation: of the backbone inputs with the original's\n")
    print("| scan | setting | slices | share of default's | seconds | correlation |")
    print("|---|---|---|---|---|---|")
    baseline = {}
    for setting, params in SETTINGS.items():
        embedder = DinoSliceEmbedder(weights="random", image_size=args.image_size, verbose=0,
                                     **params)
        inputs = {}
        for name, (image, original) in images.items():
            clear_memory_cache()
            start = time.perf_counter()
            n = int((~np.isnan(embedder.fit_transform([image])[0]).all(axis=1)).sum())
            seconds = time.perf_counter() - start
            baseline.setdefault(name, n)
            inputs[name] = backbone_inputs(embedder, image)
            r = "" if original is None else f"{correlation(inputs[name], inputs[original]):.3f}"
            print(f"| {name} | {setting} | {n} | {n / baseline[name]:.2f} | {seconds:.1f} | "
                  f"{r} |", flush=True)


if __name__ == "__main__":
    main()
