"""Reading a DICOM series against reading the same volume as ``.nii.gz``, and against
embedding it on this machine's CPU.

A 256-slice brain (the 1 mm MNI152 template of ``../shared/data/brain_templates``,
padded with background to 256 axial slices; a synthetic head where the template is
absent) is written as int16 ``.nii.gz`` and as a DICOM series of 256 files (one per
slice, file names shuffled). Prints, as ratios measured in this one run:

- the seconds to read each into a RAS float32 volume (``load_scan``; best of
  ``--repeats``, files in the page cache), and the series' time over the NIfTI's;
- the seconds to look a seen series up (its files' identities: what the embedding cache
  checks before reading a scan again);
- the seconds to embed the volume (ViT-S/14, random weights, 224 px, every axial slice,
  ``n_readers=0``), and each reading time as a share of it.

    python benchmarks/dicom_reading.py [--repeats 3] [--n-slices 256]
"""

import argparse
import os
import tempfile

import nibabel as nib
import numpy as np
from _brain import best_time, brain_image

from sklearn_dinoatten import DinoSliceEmbedder, clear_memory_cache
from sklearn_dinoatten.datasets import write_dicom_series
from sklearn_dinoatten.volumes import load_scan, scan_identity


def brain(n_slices):
    """An int16 head of ``n_slices`` axial slices and its affine; what it is."""
    image, what = brain_image()
    data, affine = image.get_fdata(), image.affine
    data = 4000 * (data - data.min()) / (data.max() - data.min())
    padded = np.zeros((*data.shape[:2], n_slices))
    kept = min(n_slices, data.shape[2])
    start = (n_slices - kept) // 2
    padded[:, :, start:start + kept] = data[:, :, :kept]
    return np.round(padded), affine, f"{what}, padded to {n_slices} axial slices"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-slices", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    data, affine, what = brain(args.n_slices)
    print(f"Volume: {what}, {' x '.join(map(str, data.shape))} voxels.")
    with tempfile.TemporaryDirectory() as tmp:
        nifti = os.path.join(tmp, "brain.nii.gz")
        nib.save(nib.Nifti1Image(data.astype(np.int16), affine), nifti)
        series = os.path.join(tmp, "series")
        write_dicom_series(series, data, affine, random_state=0)
        np.testing.assert_array_equal(load_scan(series)[0], load_scan(nifti)[0])
        seconds = {
            ".nii.gz": best_time(lambda: load_scan(nifti), args.repeats),
            "DICOM series": best_time(lambda: load_scan(series), args.repeats),
            "DICOM series, seen before (identity)": best_time(lambda: scan_identity(series),
                                                              args.repeats),
        }
        clear_memory_cache()
        embedder = DinoSliceEmbedder(weights="random", image_size=args.image_size,
                                     n_readers=0, verbose=0).fit([nifti])
        embed = best_time(lambda: (clear_memory_cache(), embedder.transform([nifti])), 1)
    print(f"Embedding it (ViT-S/14, random weights, {args.image_size} px, "
          f"{data.shape[2]} axial slices, this CPU): {embed:.1f} s.\n")
    print("| reading | seconds | vs .nii.gz | share of embedding |")
    print("|---|---|---|---|")
    for name, value in seconds.items():
        print(f"| {name} | {value:.3f} | {value / seconds['.nii.gz']:.2f}x | "
              f"{100 * value / embed:.1f} % |")


if __name__ == "__main__":
    main()
