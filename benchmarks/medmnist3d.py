"""MedMNIST v2's 3D benchmark on AdrenalMNIST3D, next to the published table.

Every method trains on the official train split, stops early on (is selected on) val
and scores test once, as the published baselines do. The 3D ResNet-18, trained from
scratch, needs no pretrained weights: it checks the training machinery, and its test AUC
should hold the published 0.827 inside its bootstrap CI. The slice methods run on the
backbone given by --weights; without a checkpoint (no network here) that is random
weights, and the table says so.

    python benchmarks/medmnist3d.py                      # CPU setting, ~20 min on 2 cores
    python benchmarks/medmnist3d.py --size 64 --volume-size 32
    python benchmarks/medmnist3d.py --paper --device cuda   # the paper's ResNet-18 (GPU)
    python benchmarks/medmnist3d.py --weights dinov2_vits14_pretrain.pth

The CPU setting trains a ResNet-18 at half width with MONAI's standard stem (a 7^3
convolution, max pooling) for 12 epochs under a cosine schedule; --paper trains the
published network (full width, a 3^3 stem without pooling on 28^3, as MedMNIST's
CIFAR-style ResNets), batch 32, lr 1e-3, 100 epochs, divided by 10 at epochs 50 and 75.
MedMNIST's code also multiplies shape masks by a random factor in training (0.5 in
evaluation); no augmentation is used here. The slices go to the backbone at 28 px, the
masks' own size (2 x 2 patches): cheap, and enough for random weights; give a real
checkpoint a larger --image-size (56 or 112).

AdrenalMNIST3D holds both adrenal glands of each patient and no patient ids; its split is
by patient, so no patient is in two sets, but the test set's two glands per patient are
counted as independent by the bootstrap: the intervals are somewhat too narrow.
"""

import argparse
import csv
import os
import time

import numpy as np

from sklearn_dinoatten import DinoSliceEmbedder
from sklearn_dinoatten.datasets import MEDMNIST3D, SPLITS, data_dir, load_medmnist3d
from sklearn_dinoatten.evaluation import (
    METHODS,
    caption,
    cross_validate_method,
    held_out,
    make_method,
    method_name,
    metrics_table,
    positive_class,
)

# MedMNIST v2, 3D benchmark, AdrenalMNIST3D at 28^3, official test split (medmnist.com).
PUBLISHED = {
    "adrenal": [
        ("ResNet-18 + 2.5D", 0.718, 0.772), ("ResNet-18 + 3D", 0.827, 0.721),
        ("ResNet-18 + ACS", 0.839, 0.754), ("ResNet-50 + 2.5D", 0.732, 0.763),
        ("ResNet-50 + 3D", 0.828, 0.745), ("ResNet-50 + ACS", 0.828, 0.758),
        ("auto-sklearn", 0.828, 0.802), ("AutoKeras", 0.804, 0.705),
    ],
}
REFERENCE_ROW = "ResNet-18 + 3D"
CPU = dict(epochs=12, resnet_width=0.5, stem="standard", lr_schedule="cosine", patience=12)
PAPER = dict(epochs=100, resnet_width=1.0, stem="small", lr_schedule="step", patience=100)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="adrenal", choices=list(MEDMNIST3D))
    parser.add_argument("--data-dir", help="folder of the .npz files (default: "
                                           "$SKLEARN_DINOATTEN_DATA/<dataset>mnist3d)")
    parser.add_argument("--size", type=int, default=28, choices=(28, 64))
    parser.add_argument("--methods", default="all",
                        help=f"comma-separated keys of {', '.join(METHODS)}, or all")
    parser.add_argument("--paper", action="store_true",
                        help="the published ResNet-18 setting (a GPU job): "
                             + ", ".join(f"{k}={v}" for k, v in PAPER.items()))
    parser.add_argument("--epochs", type=int, help=f"3D ResNet epochs (CPU: {CPU['epochs']})")
    parser.add_argument("--resnet-depth", type=int, default=18)
    parser.add_argument("--resnet-width", type=float,
                        help=f"width factor (CPU: {CPU['resnet_width']})")
    parser.add_argument("--stem", choices=("standard", "strided", "small"),
                        help=f"first layer (CPU: {CPU['stem']})")
    parser.add_argument("--lr-schedule", choices=("constant", "cosine", "step"),
                        help=f"(CPU: {CPU['lr_schedule']})")
    parser.add_argument("--patience", type=int, help="epochs without a better validation "
                                                     "log-loss before stopping")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--volume-size", type=int,
                        help="resample volumes to this side for the 3D ResNet (default: size)")
    parser.add_argument("--weights", default="random",
                        help="backbone of the slice methods: a checkpoint file, or random")
    parser.add_argument("--image-size", type=int, default=28,
                        help="slice side for the backbone, a multiple of 14 (default: 28)")
    parser.add_argument("--slice-epochs", type=int, default=100,
                        help="most epochs of the slice heads (early stopping on val)")
    parser.add_argument("--cache-dir", help="on-disk embedding cache")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/medmnist3d")
    args = parser.parse_args()
    for key, value in (PAPER if args.paper else CPU).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def load(args):
    """Volumes scaled to [0, 1] (as MedMNIST's loader), labels and the split of each."""
    folder = args.data_dir or os.path.join(data_dir(), f"{args.dataset}mnist3d")
    parts = [load_medmnist3d(args.dataset, folder, split=s, size=args.size) for s in SPLITS]
    X = np.concatenate([images for images, _ in parts]).astype(np.float32) / 255.0
    y = np.concatenate([labels for _, labels in parts])
    split = np.repeat(SPLITS, [len(labels) for _, labels in parts])
    return X, y, split


def resnet(args):
    estimator = make_method("resnet3d", max_epochs=args.epochs, random_state=args.seed,
                            resnet_depth=args.resnet_depth, resnet_width=args.resnet_width)
    return estimator.set_params(stem=args.stem, lr=args.lr, lr_schedule=args.lr_schedule,
                                batch_size=args.batch_size, n_iter_no_change=args.patience,
                                device=args.device, verbose=1)


def inputs_for(keys, X, args):
    """The arrays each kind of method trains on: volumes, and slice embeddings."""
    inputs = {}
    if any(METHODS[k].takes_volumes for k in keys):
        volumes = X
        if args.volume_size and args.volume_size != X.shape[1]:
            import torch
            import torch.nn.functional as F

            volumes = F.interpolate(torch.from_numpy(X)[:, None], size=(args.volume_size,) * 3,
                                    mode="trilinear", align_corners=False)[:, 0].numpy()
        inputs["volumes"] = volumes
    if any(not METHODS[k].takes_volumes for k in keys):
        start = time.perf_counter()
        embedder = DinoSliceEmbedder(weights=None if args.weights == "pretrained" else
                                     args.weights, image_size=args.image_size,
                                     device=args.device, cache_dir=args.cache_dir)
        inputs["embeddings"] = embedder.fit_transform(list(X))
        print(f"embedded {inputs['embeddings'].shape[0]} x {inputs['embeddings'].shape[1]} "
              f"slices at {args.image_size} px in {time.perf_counter() - start:.0f} s "
              f"(weights: {args.weights})", flush=True)
    return inputs


def main():
    args = parse_args()
    keys = list(METHODS) if args.methods == "all" else args.methods.split(",")
    start = time.perf_counter()
    X, y, split = load(args)
    protocol = held_out(split, y)
    positive = positive_class(y)
    counts = {s: int(np.sum(split == s)) for s in SPLITS}
    print(f"{args.dataset}mnist3d at {args.size}^3: {counts}; {protocol.description}",
          flush=True)
    if "resnet3d" in keys:
        print(f"3D ResNet-{args.resnet_depth}: width {args.resnet_width}, stem {args.stem}, "
              f"{args.epochs} epochs, lr {args.lr} ({args.lr_schedule}), batch "
              f"{args.batch_size}, patience {args.patience}, input "
              f"{args.volume_size or args.size}^3", flush=True)
    inputs = inputs_for(keys, X, args)
    results = {}
    for key in keys:
        estimator = resnet(args) if METHODS[key].takes_volumes else make_method(
            key, max_epochs=args.slice_epochs, random_state=args.seed).set_params(
            device=args.device)
        print(f"training {method_name(key)} ...", flush=True)
        results[key] = cross_validate_method(
            estimator, inputs["volumes" if METHODS[key].takes_volumes else "embeddings"], y,
            protocol.splits)
        print(f"  {method_name(key)}: {results[key].fit_seconds[0]:.0f} s", flush=True)
    reference = "resnet3d" if "resnet3d" in keys else keys[0]
    rows = metrics_table(y, results, reference=reference, pos_label=positive,
                         random_state=args.seed)
    text = caption(protocol, positive, reference=reference, random_weights=args.weights == "random")
    if args.dataset == "adrenal":
        text += (" The test set holds both glands of its patients and no patient ids: the "
                 "bootstrap and DeLong's test count glands as independent, so intervals are "
                 "somewhat narrow and p-values somewhat small.")
    print_table(args, rows, reference, text)
    write(args, rows)
    print(f"total {time.perf_counter() - start:.0f} s; the paper's ResNet-18 setting (a GPU "
          f"job): python benchmarks/medmnist3d.py --paper --methods resnet3d --device cuda")


def print_table(args, rows, reference, text):
    backbone = os.path.basename(args.weights) + " backbone"
    lines = [f"| method | source | test AUC [95% CI] | test ACC | DeLong p vs "
             f"{method_name(reference)} |", "|---|---|---|---|---|"]
    for row in rows:
        source = "this run" + ("" if row["method"] == method_name("resnet3d") else f", {backbone}")
        p = "-" if np.isnan(row["delong_p"]) else f"{row['delong_p']:.3g}"
        lines.append(f"| {row['method']} | {source} | {row['auc']:.3f} "
                     f"[{row['auc_ci_low']:.3f}, {row['auc_ci_high']:.3f}] | "
                     f"{row['accuracy']:.3f} | {p} |")
    published = PUBLISHED.get(args.dataset, []) if args.size == 28 else []
    lines += [f"| {name} | published | {auc:.3f} | {acc:.3f} | |"
              for name, auc, acc in published]
    print("\n" + "\n".join(lines) + "\n\n" + text)
    resnet_row = next((r for r in rows if r["method"] == method_name("resnet3d")), None)
    reference = dict((name, auc) for name, auc, _ in published).get(REFERENCE_ROW)
    if resnet_row is not None and reference is not None:
        inside = resnet_row["auc_ci_low"] <= reference <= resnet_row["auc_ci_high"]
        print(f"\nThe published {REFERENCE_ROW} AUC {reference:.3f} is "
              f"{'inside' if inside else 'OUTSIDE'} this run's 95 % CI "
              f"[{resnet_row['auc_ci_low']:.3f}, {resnet_row['auc_ci_high']:.3f}].")


def write(args, rows):
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{args.dataset}_{args.size}.csv")
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
