"""Training throughput of FineTunedSliceClassifier's network, per freeze mode.

Times forward + backward + optimiser steps of the backbone and slice transformer on
random volumes (slices per second, after warm-up steps), with what is frozen varied,
and prints each mode's rate as a ratio to the frozen backbone's in this one run. On
CUDA the backbone runs under bfloat16 autocast, as the classifier does.

    python benchmarks/finetune_throughput.py                   # 224 px, 16 slices
    python benchmarks/finetune_throughput.py --image-size 112 --steps 3
"""

import argparse
import time
import warnings

import torch

from sklearn_dinoatten.embedding.backbones import build_backbone
from sklearn_dinoatten.nn.finetune import FineTunedSliceNet, set_trainable
from sklearn_dinoatten.utils._devices import resolve_device


def slices_per_second(freeze, args, device):
    backbone = build_backbone(args.backbone, weights="random", image_size=args.image_size,
                              in_chans=1).module
    net = FineTunedSliceNet(set_trainable(backbone, freeze=freeze), n_classes=2).to(device).train()
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-5)
    x = torch.randn(args.batch_size, args.n_slices, 1, args.image_size, args.image_size,
                    device=device)
    y = torch.randint(0, 2, (args.batch_size,), device=device)

    def step():
        logits, _, _ = net(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return args.steps * args.batch_size * args.n_slices / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="vit_small_patch14_dinov2")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--n-slices", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=2, help="volumes per step")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    device = resolve_device(args.device)
    print(f"{args.backbone} at {args.image_size} px, {args.batch_size} volumes x "
          f"{args.n_slices} slices per step, {args.steps} timed steps on {device}"
          f"{' (bfloat16 autocast)' if device.type == 'cuda' else ''}")
    rates = {mode: slices_per_second(mode, args, device)
             for mode in ("all", "last_n_blocks", "none")}
    print("| frozen | slices/s | vs. frozen backbone |\n|---|---|---|")
    for mode, rate in rates.items():
        label = {"all": "whole backbone", "last_n_blocks": "all but the last 2 blocks",
                 "none": "nothing"}[mode]
        print(f"| {label} | {rate:.1f} | {rate / rates['all']:.2f} |")


if __name__ == "__main__":
    main()
