"""Slice-embedding throughput of DinoSliceEmbedder, and what the cache saves.

Prints slices/s for the CLS embedding at batch sizes 1, 8 and 32, and the ratio of a
second, cached pass over the same volumes to the first. Ratios measured in one run
are what to compare: absolute times drift with the machine's load.

    python benchmarks/embed_throughput.py [--image-size 224] [--n-volumes 4] [--n-slices 32]

Random weights (no network needed) cost exactly what pretrained ones do.
"""

import argparse
import time
import warnings

import numpy as np
import torch

from sklearn_dinoatten import DinoSliceEmbedder, clear_memory_cache
from sklearn_dinoatten.datasets import make_volumes


def timed(embedder, X):
    start = time.perf_counter()
    embedder.transform(X)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--n-volumes", type=int, default=4)
    parser.add_argument("--n-slices", type=int, default=32)
    parser.add_argument("--backbone", default="vit_small_patch14_dinov2")
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)

    X, _ = make_volumes(n_samples=args.n_volumes, shape=(96, 96, args.n_slices), random_state=0)
    n = args.n_volumes * args.n_slices
    print(f"{args.backbone}, CLS at {args.image_size} px, {args.n_volumes} volumes x "
          f"{args.n_slices} slices, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    print(f"{'batch size':>10} {'seconds':>8} {'slices/s':>9}")
    for batch_size in (1, 8, 32):
        embedder = DinoSliceEmbedder(args.backbone, weights="random", image_size=args.image_size,
                                     batch_size=batch_size, verbose=0).fit(X)
        embedder.transform(X[:1])  # warm-up: first-call allocations
        clear_memory_cache()
        first = timed(embedder, X)
        print(f"{batch_size:>10} {first:>8.2f} {n / first:>9.1f}")
    cached = timed(embedder, X)
    print(f"cached second pass: {cached:.4f} s; first / cached = {first / cached:.0f}x "
          f"(batch size 32)")
    assert np.isfinite(embedder.transform(X)).all()


if __name__ == "__main__":
    main()
