"""Several slice encoders on the same scans (``dinoatten cv --backbone a,b``): fitted
together before any of them embeds, so that one error names every encoder whose patch size
does not divide the image size and the one size that fits them all."""

import math

from ..utils._fit import is_fitted
from .backbones._backbone import ImageSizeError, nearest_multiple


def fit_embedders(embedders, X):
    """Fit each embedder of ``embedders`` (name -> DinoSliceEmbedder) that is not fitted
    yet on ``X``. Where image sizes do not fit patch sizes, ``ValueError`` names every
    encoder's patch size and the smallest common multiple nearest to the image size."""
    patch_sizes, misfits = {}, []
    for name, embedder in embedders.items():
        try:
            if not is_fitted(embedder):
                embedder.fit(X)
        except ImageSizeError as error:
            if len(embedders) == 1:
                raise
            patch_sizes[name] = error.patch_size
            misfits.append(name)
            continue
        patch_sizes[name] = embedder.patch_size_
    if not misfits:
        return embedders
    sizes = {embedder.image_size for embedder in embedders.values()}
    listed = ", ".join(f"{name} {size}" for name, size in patch_sizes.items())
    if len(sizes) > 1:  # several image sizes: each misfit its own
        raise ValueError("image_size is not a multiple of the patch size of " + ", ".join(
            f"{name} ({embedders[name].image_size}; try "
            f"{nearest_multiple(embedders[name].image_size, patch_sizes[name])})"
            for name in misfits) + f". Patch sizes: {listed}.")
    size, common = sizes.pop(), math.lcm(*patch_sizes.values())
    fits = nearest_multiple(size, common)
    raise ValueError(f"image_size={size} is not a multiple of every encoder's patch size "
                     f"({listed}); try {fits}, " + (
                         "the smallest size they all divide." if fits == common else
                         f"the nearest size they all divide (multiples of {common})."))
