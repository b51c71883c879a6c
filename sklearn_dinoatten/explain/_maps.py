"""Explanations for viewers: per scan, its slice attention and saliency as NIfTI maps on
the scan's own voxel grid (ITK-SNAP, 3D Slicer, FSLeyes and MRIcroGL overlay them), the
report's overlay PNG, and one summary CSV of the predictions and files."""

import os
import warnings

import numpy as np
from sklearn.base import is_regressor
from sklearn.utils.validation import check_is_fitted

from ..utils._files import staged_files, writable_folder, write_csv
from ..volumes import axes_of, check_volumes, describe, read_scan
from ._attention import has_in_plane_attention, slice_attention
from ._plots import plot_saliency
from ._saliency import scan_saliency, slice_attention_map

SUMMARY = "explanations.csv"
# The files of each scan: its name (the file name without .nii/.nii.gz) and these
SUFFIXES = {"slice_attention": "_slice_attention.nii.gz", "saliency": "_saliency.nii.gz",
            "overlay": "_saliency.png"}
UNIFORM = ("the head weighs every kept slice alike (mean pooling): the slice attention "
           "shows which slices were kept, not where the model looked")
DESCRIPTIONS = {"slice_attention": b"sklearn_dinoatten slice attention",
                "saliency": b"sklearn_dinoatten saliency: slice x in-plane attention"}


def explanation_paths(scans, out, *, overwrite=False):
    """Where :func:`explain_scans` writes the files of each scan, checked before any work.

    Each scan's files are named after it: its file name without ``.nii``/``.nii.gz`` (a
    DICOM series folder's name; ``scan<i>`` for an array), with ``_2``, ``_3``... after
    a name an earlier scan took. ``out`` is created if needed.

    Returns
    -------
    paths : list of dict
        Per scan, ``{"slice_attention": ..., "saliency": ..., "overlay": ...}``: paths
        in ``out``.

    Raises
    ------
    ValueError
        When ``out`` cannot hold files.
    FileExistsError
        Unless ``overwrite``, when one of these files, or ``out``'s explanations.csv,
        exists already.
    """
    scans = check_volumes(scans)
    out = writable_folder(out, "Output folder")
    taken, paths = set(), []
    for i, scan in enumerate(scans):
        base = name = _scan_name(scan, i)
        copy = 1
        while name.lower() in taken:  # lower case: macOS's file names ignore it
            copy += 1
            name = f"{base}_{copy}"
        taken.add(name.lower())
        paths.append({key: os.path.join(out, name + suffix) for key, suffix in SUFFIXES.items()})
    if not overwrite:
        for path in [*(p for files in paths for p in files.values()), os.path.join(out, SUMMARY)]:
            if os.path.exists(path):
                error = FileExistsError(f"{path!r} exists: pass overwrite=True to replace "
                                        "the explanations there.")
                error.path = path  # for the command line's message
                raise error
    return paths


def explain_scans(model, scans, out, *, overwrite=False, n_slices=4, verbose=0):
    """Write each scan's explanation into ``out``: NIfTI maps a viewer overlays on the
    scan, the overlay PNG, and explanations.csv.

    Per scan (names: :func:`explanation_paths`):

    - ``<name>_slice_attention.nii.gz``: every voxel of a slice the embedder kept holds
      the weight the head gave that slice (:func:`slice_attention`; they sum to 1 over
      the kept slices of a volume), summed over the axes of a tri-planar bag; 0 on the
      slices not kept.
    - ``<name>_saliency.nii.gz``: slice weight x the backbone's in-plane attention on
      that slice, scaled to 1 at its peak (:func:`scan_saliency`).
    - ``<name>_saliency.png``: the ``n_slices`` most salient slices with the saliency
      over them (:func:`plot_saliency`, as in the report).

    Both maps are on the scan's own voxel grid, in its file order and with its affine
    (:meth:`~sklearn_dinoatten.volumes.Scan.to_image`). Where the backbone is not a timm
    vision transformer, it has no in-plane attention: only the slice-attention map is
    written, with a warning, and explanations.csv's ``note`` says so; it also says where
    the head weighs every slice alike (mean pooling), as a warning does. Everything is
    written to a hidden folder in ``out`` first and moved in at the end, so that an
    error leaves ``out`` as it was.

    Parameters
    ----------
    model : fitted Pipeline
        ``[DinoSliceEmbedder, ..., head]`` whose head has ``attention_weights``: a
        classifier or regressor on slice embeddings (attention pooling, the slice
        transformer, SC-MIL), on its own or in an ``OperatingPointClassifier``.
    scans : list of paths, nibabel images or 3D arrays
        As ``model`` takes them; arrays are taken as RAS.
    out : str or path
        The folder to write into (created if needed).
    overwrite : bool, default=False
        Replace the files of an earlier explanation (refused, before any work, without).
    n_slices : int, default=4
        The slices each overlay PNG shows.
    verbose : int, default=0
        Print a line per scan.

    Returns
    -------
    rows : list of dict
        explanations.csv's rows, one per scan: ``scan``; a classifier's
        ``predicted_class`` and ``p_<class>``, the probability of the positive class
        (of two: ``pos_label_``, else the second of ``classes_``; of more, one column
        per class); a regressor's ``predicted_value``; the files written, relative to
        ``out`` (empty where not written); and a ``note``.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder
    >>> from sklearn_dinoatten.datasets import make_volumes
    >>> from sklearn_dinoatten.explain import explain_scans
    >>> X, y = make_volumes(n_samples=6, shape=(28, 28, 8), random_state=0)
    >>> model = make_pipeline(
    ...     DinoSliceEmbedder(weights="random", image_size=28, verbose=0),
    ...     AttentionPoolClassifier(max_epochs=2, random_state=0)).fit(X, y)
    >>> rows = explain_scans(model, X[:1], tempfile.mkdtemp())
    >>> rows[0]["saliency"]
    'scan0_saliency.nii.gz'
    """
    embedder = _check_model(model)
    scans = check_volumes(scans)
    paths = explanation_paths(scans, out, overwrite=overwrite)
    in_plane = has_in_plane_attention(embedder)
    note = "" if in_plane else (
        f"slice attention only: the backbone {_backbone_name(embedder)} is not a timm "
        "vision transformer, so it has no in-plane attention")
    if note:
        warnings.warn(f"{note[0].upper()}{note[1:]}.", stacklevel=2)
    weights = slice_attention(model, scans)
    uniform = [_is_uniform(row) for row in weights]
    if any(uniform):
        warnings.warn(f"{sum(uniform)} of {len(scans)} scan(s): {UNIFORM}.", stacklevel=2)
    predictions = _predictions(model, scans)
    rows = []
    with staged_files(out) as stage:
        for i, (scan, files) in enumerate(zip(scans, paths, strict=True)):
            if verbose:
                print(f"explain {i + 1}/{len(scans)}: {_scan_label(scan, i)}", flush=True)
            image = read_scan(scan, spacing=embedder.spacing)
            maps = {"slice_attention": slice_attention_map(embedder, scan, weights[i])}
            if in_plane:
                maps["saliency"] = scan_saliency(embedder, scan, weights[i])
            written = {key: _save_map(image, data, key, files[key], stage)
                       for key, data in maps.items()}
            if in_plane:
                written["overlay"] = _save_overlay(scan, maps["saliency"], embedder,
                                                   n_slices, files["overlay"], stage)
            rows.append({"scan": _scan_label(scan, i), **predictions[i],
                         **{key: written.get(key, "") for key in SUFFIXES},
                         "note": "; ".join(filter(None, (note, uniform[i] and UNIFORM)))})
        write_csv(os.path.join(stage, SUMMARY), rows)
    return rows


def _is_uniform(weights):
    """Whether a scan's slice attention is the same on every kept slice (mean pooling)."""
    kept = np.asarray(weights)[np.asarray(weights) > 0]
    return bool(len(kept) > 1 and np.allclose(kept, kept.mean(), rtol=1e-4, atol=0))


def _check_model(model):
    """The embedder of a fitted pipeline ``[DinoSliceEmbedder, ..., head]`` whose head
    has slice attention; ``ValueError`` naming the model otherwise."""
    steps = getattr(model, "steps", None)
    head = steps[-1][1] if steps else model
    name = type(getattr(head, "estimator", head)).__name__  # an OperatingPointClassifier's
    if not hasattr(head, "attention_weights"):
        raise ValueError(f"{name} has no slice attention to explain: give a pipeline "
                         "[DinoSliceEmbedder, ..., head] whose head has attention_weights "
                         "(attention pooling, the slice transformer, SC-MIL).")
    if not hasattr(model[0] if steps else model, "kept_slices"):
        raise ValueError(f"{name} is not in a pipeline whose first step is a "
                         "DinoSliceEmbedder, whose slices explain_scans maps.")
    check_is_fitted(model)
    return model[0]


def _predictions(model, scans):
    """Per scan, the prediction's columns of explanations.csv."""
    if is_regressor(model):
        return [{"predicted_value": repr(float(v))} for v in model.predict(scans)]
    proba, classes = model.predict_proba(scans), list(model.classes_)
    shown = classes
    if len(classes) == 2:
        positive = getattr(model[-1], "pos_label_", None)
        shown = [classes[1] if positive is None else positive]
    return [{"predicted_class": label, **{f"p_{c}": repr(float(p[classes.index(c)]))
                                          for c in shown}}
            for label, p in zip(np.asarray(model.predict(scans)).tolist(), proba, strict=True)]


def _save_map(scan, data, key, path, stage):
    """Save a RAS map as a NIfTI file on ``scan``'s grid in ``stage``; its name."""
    import nibabel as nib

    image = scan.to_image(data.astype(np.float32))
    image.header["descrip"] = DESCRIPTIONS[key]
    nib.save(image, os.path.join(stage, os.path.basename(path)))
    return os.path.basename(path)


def _save_overlay(scan, saliency, embedder, n_slices, path, stage):
    """Save the overlay PNG of a scan (the report's) in ``stage``; its name."""
    import matplotlib.pyplot as plt

    figure = plot_saliency(scan, saliency, axis=axes_of(embedder.axis)[0], n_slices=n_slices)
    try:
        figure.savefig(os.path.join(stage, os.path.basename(path)), dpi=100,
                       bbox_inches="tight")
    finally:
        plt.close(figure)
    return os.path.basename(path)


def _scan_name(scan, index):
    """The file name of a scan without .nii/.nii.gz (a folder's name); ``scan<index>``
    for an array or image."""
    if not isinstance(scan, (str, os.PathLike)):
        return f"scan{index}"
    name = os.path.basename(os.path.normpath(os.fspath(scan)))
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    return name


def _scan_label(scan, index):
    return os.fspath(scan) if isinstance(scan, (str, os.PathLike)) else describe(
        scan, index=index)


def _backbone_name(embedder):
    backbone = embedder.backbone
    return repr(backbone) if isinstance(backbone, str) else type(backbone).__name__
