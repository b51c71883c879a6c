"""Data sets: a labelled folder of scans (NIfTI files, DICOM series), a BIDS dataset (its
scans, labelled from participants.tsv), the MedMNIST 3D sets (local files), and synthetic
volumes and images with a planted, known signal (and a volume written as a DICOM
series)."""

from ._bids import bids_columns, find_bids_scans, is_bids_dataset, load_bids
from ._demo import write_demo_data
from ._dicom_series import write_dicom_series
from ._folders import (
    MISSING,
    SPLITS,
    find_scans,
    load_nifti_folder,
    looks_continuous,
    read_csv,
    warn_if_subjects_change_label,
)
from ._medmnist import MEDMNIST3D, data_dir, load_medmnist3d
from ._synthetic import make_anomaly_images, make_brain_ages, make_volumes

__all__ = [
    "MEDMNIST3D", "MISSING", "SPLITS", "bids_columns", "data_dir", "find_bids_scans",
    "find_scans", "is_bids_dataset", "load_bids", "load_medmnist3d", "load_nifti_folder",
    "looks_continuous", "make_anomaly_images", "make_brain_ages", "make_volumes",
    "read_csv", "warn_if_subjects_change_label", "write_demo_data", "write_dicom_series",
]
