"""The demo's data: labelled NIfTI scans written to a folder.
"""

import os

import numpy as np

from ..utils._files import write_csv
from ._folders import SPLITS
from ._medmnist import data_dir, load_medmnist3d
from ._synthetic import make_brain_ages, make_volumes


def write_demo_data(root, *, dataset="synthetic", n_scans=100):
    """Write ``n_scans`` labelled NIfTI scans and labels.csv into ``root``, for the demo;
    returns the source's name and the number of scans written.

    ``dataset="synthetic"``: volumes of :func:`make_volumes` (class 1 has a bright blob
    in 3 of 24 slices).

    ``dataset="brain-age"``: a regression's, the phantom heads of
    :func:`make_brain_ages`, two scans two years apart per subject at varied voxel
    sizes and orientations (their NIfTI headers say which); labels.csv has columns
    ``path``, ``age``, ``subject`` and ``sex`` (a subgroup column of no effect).

    AdrenalMNIST3D holds two glands per patient and no patient ids, so its scans come
    from the official patient-level split (60 % train, 15 % val, 25 % test of
    ``n_scans``), written to a ``split`` column: cross-validating them would leak."""
    import nibabel as nib

    affine, split = np.eye(4), None
    if dataset == "brain-age":
        return _write_brain_ages(root, n_scans)
    if dataset == "adrenal":
        from sklearn.model_selection import train_test_split

        X, y, split = [], [], []
        for name, share in zip(SPLITS, (0.6, 0.15, 0.25), strict=True):
            images, labels = load_medmnist3d("adrenal", os.path.join(data_dir(),
                                             "adrenalmnist3d"), split=name)
            keep = np.sort(train_test_split(  # both classes in proportion
                np.arange(len(labels)), train_size=max(2, round(share * n_scans)),
                stratify=labels, random_state=0)[0])
            X += list(images[keep].astype(np.float32))
            y += list(labels[keep])
            split += [name] * len(keep)
        affine = np.diag([64 / 28] * 3 + [1])  # a 64 mm cube in 28 voxels per side
        source = "AdrenalMNIST3D, official train/val/test split (MedMNIST v2, CC BY 4.0)"
    else:
        X, y = make_volumes(n_samples=n_scans, shape=(48, 48, 24), n_signal_slices=3,
                            noise=0.2, random_state=0)
        source = "synthetic volumes (class 1 has a bright blob in 3 of 24 slices)"
    os.makedirs(root, exist_ok=True)
    rows = []
    for i, (volume, label) in enumerate(zip(X, y, strict=True)):
        name = f"scan_{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(volume, affine), os.path.join(root, name))
        rows.append({"path": name, "label": int(label)}
                    | ({} if split is None else {"split": split[i]}))
    write_csv(os.path.join(root, "labels.csv"), rows)
    return source, len(rows)


def _write_brain_ages(root, n_scans):
    import nibabel as nib

    X, ages, subjects, affines = make_brain_ages(n_subjects=max(1, n_scans // 2),
                                                 scans_per_subject=2, random_state=0)
    sex = np.random.default_rng(0).choice(["F", "M"], size=len(set(subjects)))
    os.makedirs(root, exist_ok=True)
    rows = []
    for i, (volume, age, subject, affine) in enumerate(
            zip(X, ages, subjects, affines, strict=True)):
        name = f"{subject}_scan-{i % 2 + 1}.nii.gz"
        nib.save(nib.Nifti1Image(volume, affine), os.path.join(root, name))
        rows.append({"path": name, "age": repr(float(age)), "subject": subject,
                     "sex": sex[int(subject.removeprefix("sub-"))]})
    write_csv(os.path.join(root, "labels.csv"), rows)
    return ("synthetic phantom heads whose ventricles widen and cortex thins with age "
            "(two scans per subject, varied voxel sizes and orientations)"), len(rows)
