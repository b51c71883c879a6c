"""``dinoatten explain``: a saved model's attention on scans as maps a viewer overlays on
them, and where they went."""

import os
import shlex

from ..utils._files import check_file
from ._inputs import load_fitted
from ._outputs import CommandError
from ._scans import scans_to_predict


def explain(args):
    """Explain scans with a saved model: per scan, its slice attention and saliency as
    NIfTI maps on the scan's own voxel grid (to open over the scan in FSLeyes, ITK-SNAP,
    3D Slicer or MRIcroGL), the saliency over its most salient slices as a PNG, and
    explanations.csv: each scan's prediction and files.

    A backbone other than a timm vision transformer has no in-plane attention: only the
    slice-attention maps are written, as a warning and explanations.csv say."""
    from ..explain import explain_scans, explanation_paths
    from ..volumes import is_dicom_series

    paths = scans_to_predict(args)[0]
    check_file(args.model, "Model file")
    try:  # before the model is loaded
        explanation_paths(paths, args.out, overwrite=args.overwrite)
    except FileExistsError as error:
        raise CommandError(f"--out {args.out!r} holds {os.path.basename(error.path)!r} of an "
                           "earlier explanation already; pass --overwrite to replace it, or "
                           "choose another --out.") from None
    rows = explain_scans(load_fitted(args), paths, args.out, overwrite=args.overwrite,
                         n_slices=args.overlay_slices, verbose=int(args.verbosity >= 1))
    first = rows[0]
    files = ", ".join(first[key] for key in ("slice_attention", "saliency", "overlay")
                      if first[key])
    scan = shlex.quote(first["scan"])
    shown = shlex.quote(os.path.join(args.out, first["saliency"] or first["slice_attention"]))
    print(f"Explanations of {len(rows)} scan(s) written to {args.out}, listed with each scan's "
          f"prediction in explanations.csv; the first scan's: {files}. The .nii.gz maps lie "
          "on the scan's own voxel grid; open one over its scan:")
    if is_dicom_series(first["scan"]):
        print(f"  {scan} is a DICOM series: load it with the viewer's DICOM import (or convert "
              f"it with dcm2niix), then add {shown} as an overlay (FSLeyes, ITK-SNAP, 3D "
              "Slicer and MRIcroGL place it by its affine)")
        return
    print(f"  fsleyes {scan} {shown} -cm hot -a 60\n"
          f"  itksnap -g {scan} -o {shown}\n"
          f"  Slicer {scan} {shown}   (then the map as the slice views' foreground)\n"
          "  MRIcroGL: open the scan, then Overlay > Add the map")
