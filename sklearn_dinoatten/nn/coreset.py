"""Greedy coreset selection for a memory bank of patch embeddings (PatchCore)."""

import numpy as np
import torch


def greedy_coreset(points, size, rng, device, *, projection_dim=128):
    """Indices of ``size`` points chosen by greedy farthest-point (k-center) sampling
    on a random projection to ``projection_dim`` dimensions.

    ``points`` is a float32 array ``(n, dim)``; ``rng`` a ``numpy.random.RandomState``
    drawing the projection and the first point.
    """
    points = torch.from_numpy(points).to(device)
    if points.shape[1] > projection_dim:
        projection = torch.from_numpy(
            rng.normal(size=(points.shape[1], projection_dim)).astype(np.float32)).to(device)
        points = points @ projection
    chosen = [int(rng.randint(len(points)))]
    nearest = torch.cdist(points, points[chosen[0]][None])[:, 0]
    for _ in range(size - 1):
        chosen.append(int(nearest.argmax()))
        nearest = torch.minimum(nearest, torch.cdist(points, points[chosen[-1]][None])[:, 0])
    return np.array(chosen)
