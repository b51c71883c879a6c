"""Data sets: a labelled folder of NIfTI scans, the MedMNIST 3D sets (local files), and
synthetic volumes and images with a planted, known signal."""

from ._demo import write_demo_data
from ._folders import (
    MISSING,
    SPLITS,
    find_nifti_files,
    load_nifti_folder,
    looks_continuous,
    read_csv,
    warn_if_subjects_change_label,
)
from ._medmnist import MEDMNIST3D, data_dir, load_medmnist3d
from ._synthetic import make_anomaly_images, make_brain_ages, make_volumes

__all__ = [
    "MEDMNIST3D", "MISSING", "SPLITS", "data_dir", "find_nifti_files", "load_medmnist3d",
    "load_nifti_folder", "looks_continuous", "make_anomaly_images", "make_brain_ages",
    "make_volumes", "read_csv", "warn_if_subjects_change_label", "write_demo_data",
]
