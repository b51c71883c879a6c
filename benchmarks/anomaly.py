"""The spatial autoregressive detector against the memory bank, on one data set.

Both detectors see the same patch embeddings (embedded once, before any timing), so the
times are the detectors' own. Prints AUROC and AUPR (anomalies as positives), fit and
scoring time, and the fitted model's size, with the memory bank's costs as ratios to
the autoregressive model's, all measured in this one run.

    python benchmarks/anomaly.py                      # 224 px, random weights
    python benchmarks/anomaly.py --weights dinov2_vits14_pretrain.pth

Synthetic scans (``make_anomaly_images``): normal organs, anomalies with a dark lesion.
"""

import argparse
import time
import warnings

from sklearn.metrics import average_precision_score, roc_auc_score

from sklearn_dinoatten import DinoSliceEmbedder
from sklearn_dinoatten.anomaly import MemoryBankAnomalyDetector, SpatialARAnomalyDetector
from sklearn_dinoatten.datasets import make_anomaly_images


def model_bytes(detector):
    if isinstance(detector, SpatialARAnomalyDetector):
        return sum(p.numel() * p.element_size() for p in detector.net_.module_.parameters())
    return detector.memory_bank_.nbytes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=200, help="normal training images")
    parser.add_argument("--n-test", type=int, default=100, help="test images of each kind")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--weights", default="random")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)

    X, y = make_anomaly_images(n_normal=args.n_train + args.n_test, n_anomalous=args.n_test,
                               random_state=0)
    train, test, y_test = X[:args.n_train], X[args.n_train:], y[args.n_train:] == -1
    embedder = DinoSliceEmbedder(weights=args.weights, image_size=args.image_size,
                                 feature="patch", verbose=0)
    start = time.perf_counter()
    embedder.fit(X).transform(X)  # fills the cache every detector reads from
    print(f"{args.n_train} normal training images; test: {args.n_test} normal + "
          f"{args.n_test} anomalous; {args.image_size} px, weights={args.weights}; "
          f"embedding all {len(X)} once: {time.perf_counter() - start:.1f} s\n")

    detectors = {
        "spatial AR": SpatialARAnomalyDetector(embedder=embedder, max_epochs=args.epochs,
                                               random_state=0),
        "memory bank": MemoryBankAnomalyDetector(embedder=embedder, random_state=0),
        "memory bank, 10 % coreset": MemoryBankAnomalyDetector(
            embedder=embedder, coreset_ratio=0.1, random_state=0),
    }
    rows = {}
    for name, detector in detectors.items():
        start = time.perf_counter()
        detector.fit(train)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        score = -detector.score_samples(test)
        score_seconds = time.perf_counter() - start
        rows[name] = (roc_auc_score(y_test, score), average_precision_score(y_test, score),
                      fit_seconds, score_seconds, model_bytes(detector))

    reference = rows["spatial AR"]
    print("| detector | AUROC | AUPR | fit s | score s | model MB | fit x | score x | memory x |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (auroc, aupr, fit, score, size) in rows.items():
        print(f"| {name} | {auroc:.3f} | {aupr:.3f} | {fit:.2f} | {score:.2f} | "
              f"{size / 2**20:.2f} | {fit / reference[2]:.2f} | {score / reference[3]:.2f} | "
              f"{size / reference[4]:.1f} |")
    print("\nx: ratio to the spatial AR detector in this run (embedding time excluded).")


if __name__ == "__main__":
    main()
