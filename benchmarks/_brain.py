"""What the benchmarks share: a real brain to measure on, and a best-of timer."""

import os
import time

import nibabel as nib

from sklearn_dinoatten.datasets import data_dir, make_brain_ages

TEMPLATE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def brain_image():
    """The 1 mm MNI152 template of ``../shared/data/brain_templates`` (a phantom head where
    it is absent), reoriented to RAS so that axis 2 runs inferior to superior; what it is."""
    path = os.path.join(data_dir(), "brain_templates", TEMPLATE)
    if os.path.isfile(path):
        image, what = nib.load(path), f"{TEMPLATE} (1 mm)"
    else:
        volumes, _, _, affines = make_brain_ages(n_subjects=1, random_state=0)
        image, what = nib.Nifti1Image(volumes[0], affines[0]), "a phantom head (no template)"
    return nib.as_closest_canonical(image), what


def best_time(function, repeats):
    """The shortest of ``repeats`` runs of ``function``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)
