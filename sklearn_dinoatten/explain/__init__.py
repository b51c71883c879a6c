"""Where a model looks: slice attention, in-plane attention, volume saliency, overlay
plots, and maps a viewer overlays on the scan.

The volume saliency is the Medical Slice Transformer's: the weight the head gives each
slice times the backbone's in-plane attention on that slice (the last layer's CLS ->
patch attention, averaged over heads), brought back to the volume's geometry. It works
for every classifier or regressor with ``attention_weights`` (attention, gated, mean and
max pooling, the slice transformer, SC-MIL) over a timm vision transformer.

- :func:`slice_attention`, :func:`in_plane_attention`: the two attentions
- :func:`saliency_from_parts`, :func:`scan_saliency`, :func:`volume_saliency`,
  :func:`slice_attention_map`: attention brought back to a volume's voxels
- :func:`plot_saliency`, :data:`DIRECTIONS`: the saliency over the scan's slices
- :func:`explain_scans`, :func:`explanation_paths`: per scan, NIfTI maps on its own
  voxel grid (for ITK-SNAP, 3D Slicer, FSLeyes, MRIcroGL), its overlay PNG and a
  summary CSV
"""

from ._attention import in_plane_attention, slice_attention
from ._maps import explain_scans, explanation_paths
from ._plots import DIRECTIONS, plot_saliency
from ._saliency import saliency_from_parts, scan_saliency, slice_attention_map, volume_saliency

__all__ = ["DIRECTIONS", "explain_scans", "explanation_paths", "in_plane_attention",
           "plot_saliency", "saliency_from_parts", "scan_saliency", "slice_attention",
           "slice_attention_map", "volume_saliency"]
