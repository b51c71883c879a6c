"""A volume written as a DICOM series, for examples, tests and benchmarks: what a scanner
would export, with the geometry of a NIfTI affine."""

import os

import numpy as np

from ..utils._files import atomic_folder

LPS = np.diag([-1.0, -1.0, 1.0])  # RAS+ <-> LPS+ (its own inverse)
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4.1"


def write_dicom_series(folder, volume, affine, *, slope=1.0, intercept=0.0,
                       series_uid=None, description="synthetic volume", multiframe=False,
                       random_state=None):
    """Write a volume as one DICOM series (MR images, 16-bit signed), as a scanner
    exports it: slice ``k`` of the last axis in its own file (or, with ``multiframe``,
    every slice a frame of one enhanced MR file).

    Parameters
    ----------
    folder : str or path
        Where the files go, created (whole, or not at all) or replaced.
    volume : array of shape (x, y, n_slices)
        The values, stored as ``round((value - intercept) / slope)`` in int16.
    affine : array of shape (4, 4)
        Voxel indices to RAS+ mm, as a NIfTI file's; column 2 runs across slices.
    slope, intercept : float, default=1.0, 0.0
        RescaleSlope and RescaleIntercept.
    series_uid : str, default=None
        Its SeriesInstanceUID; a new one when ``None``.
    description : str, default="synthetic volume"
        Its SeriesDescription.
    multiframe : bool, default=False
        One enhanced multi-frame file instead of a file per slice.
    random_state : int, default=None
        Shuffles the file names (the frames of a multi-frame file), so that their order
        says nothing of the slices'.

    Returns
    -------
    files : list of str
        The files written, in slice order.
    """
    from pydicom.uid import generate_uid

    volume, affine = np.asarray(volume, dtype=np.float64), np.asarray(affine, np.float64)
    if volume.ndim != 3 or affine.shape != (4, 4):
        raise ValueError(f"volume must be 3D and affine 4 x 4; got shapes {volume.shape} and "
                         f"{affine.shape}.")
    stored = np.round((volume - intercept) / slope)
    if stored.min() < -32768 or stored.max() > 32767:
        raise ValueError("The volume's values do not fit in int16 with this slope and "
                         "intercept.")
    columns = LPS @ affine[:3, :3]
    steps = np.linalg.norm(columns, axis=0)
    geometry = dict(orientation=[*(columns[:, 0] / steps[0]), *(columns[:, 1] / steps[1])],
                    spacing=[steps[1], steps[0]],  # between rows (axis 1), columns (axis 0)
                    positions=[LPS @ (affine[:3, 3] + k * affine[:3, 2])
                               for k in range(volume.shape[2])])
    pixels = [stored[:, :, k].T.astype(np.int16) for k in range(volume.shape[2])]
    series_uid, study_uid = series_uid or generate_uid(), generate_uid()
    order = np.random.default_rng(random_state).permutation(len(pixels))
    with atomic_folder(folder) as tmp:
        if multiframe:
            names = ["enhanced.dcm"]
            shuffled = dict(geometry, positions=[geometry["positions"][k] for k in order])
            enhanced = _enhanced([pixels[k] for k in order], shuffled, slope, intercept,
                                 series_uid, study_uid, description)
            enhanced.save_as(os.path.join(tmp, names[0]), enforce_file_format=True)
        else:
            names = [f"IM{order[k]:05d}.dcm" for k in range(len(pixels))]
            for k, name in enumerate(names):
                ds = _image(MR_IMAGE, pixels[k], series_uid, study_uid, description)
                ds.ImagePositionPatient = _decimals(geometry["positions"][k])
                ds.ImageOrientationPatient = _decimals(geometry["orientation"])
                ds.PixelSpacing = _decimals(geometry["spacing"])
                ds.RescaleSlope, ds.RescaleIntercept = _decimals([slope, intercept])
                ds.InstanceNumber = int(order[k]) + 1  # as wrong as the file names
                ds.save_as(os.path.join(tmp, name), enforce_file_format=True)
    return [os.path.join(os.fspath(folder), name) for name in names]


def _decimals(values):
    """Numbers as DICOM decimal strings (at most 16 characters each)."""
    return [f"{float(v):.10g}" for v in values]


def _image(sop_class, pixels, series_uid, study_uid, description, n_frames=1):
    """A DICOM dataset with its file meta, patient and study, and 16-bit pixels."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.PatientName = "MR", "phantom", "Phantom"
    ds.StudyInstanceUID = ds.FrameOfReferenceUID = study_uid
    ds.SeriesInstanceUID, ds.SeriesDescription = series_uid, description
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    if n_frames > 1:
        ds.NumberOfFrames = n_frames
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<i2").tobytes()
    return ds


def _enhanced(pixels, geometry, slope, intercept, series_uid, study_uid, description):
    """An enhanced MR image: every slice a frame, their geometry in functional groups."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    def item(**attributes):
        group = Dataset()
        for keyword, value in attributes.items():
            setattr(group, keyword, value)
        return group

    ds = _image(ENHANCED_MR_IMAGE, np.stack(pixels), series_uid, study_uid, description,
                len(pixels))
    shared = item(
        PlaneOrientationSequence=Sequence([item(
            ImageOrientationPatient=_decimals(geometry["orientation"]))]),
        PixelMeasuresSequence=Sequence([item(PixelSpacing=_decimals(geometry["spacing"]))]),
        PixelValueTransformationSequence=Sequence([item(
            RescaleSlope=_decimals([slope])[0], RescaleIntercept=_decimals([intercept])[0],
            RescaleType="US")]))
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.PerFrameFunctionalGroupsSequence = Sequence([
        item(PlanePositionSequence=Sequence([item(ImagePositionPatient=_decimals(p))]))
        for p in geometry["positions"]])
    return ds
