"""How much faster than plain PyTorch the toolkit embeds a brain on this CPU, and at what
cost to the embeddings and to a study's AUC.

Measured side by side in one run, after a warm-up of each option on the same shapes:

- **plain PyTorch**: what a user would write: every axial slice of the volume scaled to
  [0, 1], padded to a square, resized to the backbone's input, three channels, timm's
  ViT-S/14 in float32, batches of 32 (the slices are prepared before the clock starts);
- **each engine and precision** of :class:`DinoSliceEmbedder` from the ``.nii.gz`` file
  (reading, preprocessing and the backbone on the clock; repeated slices, such as the
  empty ones around a head, embedded once), as slices/s and as a ratio to plain PyTorch;
- the min and mean, over the brain and the study's volumes, of each volume's centred
  cosine with float32's embeddings: the cosine of all its slice embeddings after each
  set's mean row is subtracted (random-weight CLS tokens are nearly constant, so a
  plain cosine says little);
- **a study check**: the out-of-fold AUC of attention heads trained on float32
  embeddings of volumes with a planted signal (noisy enough that the AUC is mid-range,
  where a drop can show) and scored on each option's embeddings of the held-out folds,
  against float32's.

It ends with one line ``cpu_speedup=<x> engine=<name> min_cosine=<c> auc_change=<d>``
for the fastest option whose min cosine is at least .98 and whose AUC falls by at most
.01 (a rise is no loss; with 32 volumes one pair of scans moves the AUC by .004). The
brain is the 1 mm MNI152 template of ``../shared/data/brain_templates`` (a phantom head
where absent). Random weights (no network) cost what pretrained ones do.

    python benchmarks/cpu_speed.py [--image-size 224] [--study-volumes 32]
"""

import argparse
import os
import platform
import tempfile
import warnings
from datetime import date

import nibabel as nib
import numpy as np
import timm
import torch
import torch.nn.functional as F
from _brain import best_time, brain_image
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder, clear_memory_cache
from sklearn_dinoatten.datasets import make_volumes

BACKBONE = "vit_small_patch14_dinov2"
OPTIONS = {  # name -> DinoSliceEmbedder's parameters
    "torch float32": {},
    "torch dynamic int8": dict(dtype="int8"),
    "ONNX Runtime float32": dict(engine="onnxruntime"),
    "ONNX Runtime dynamic int8": dict(engine="onnxruntime", dtype="int8"),
}
MIN_COSINE, MAX_AUC_DROP = 0.98, 0.01


def cpu_name():
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def brain(folder, n_slices):
    """A brain as .nii.gz (its first ``n_slices`` axial slices, all if None); what it is."""
    image, what = brain_image()
    data = image.get_fdata(dtype=np.float32)[:, :, :n_slices]
    out = os.path.join(folder, "brain.nii.gz")
    nib.save(nib.Nifti1Image(data, image.affine), out)
    empty = int(sum(np.ptp(data[:, :, k]) == 0 for k in range(data.shape[2])))
    return out, f"{what}, {' x '.join(map(str, data.shape))}, {empty} empty axial slices"


def plain_pytorch(path, image_size, repeats):
    """Slices/s of timm's ViT-S/14 in float32 on every axial slice, batches of 32."""
    model = timm.create_model(BACKBONE, pretrained=False, img_size=image_size,
                              num_classes=0).eval()
    data = torch.from_numpy(nib.as_closest_canonical(nib.load(path)).get_fdata(
        dtype=np.float32)).permute(2, 0, 1)[:, None]  # (slices, 1, x, y)
    low = data.amin((1, 2, 3), keepdim=True)
    data = (data - low) / (data.amax((1, 2, 3), keepdim=True) - low).clamp_min(1e-8)
    side = max(data.shape[-2:])
    data = F.pad(data, (0, side - data.shape[-1], 0, side - data.shape[-2]))
    images = F.interpolate(data, size=(image_size, image_size), mode="bilinear",
                           antialias=True).expand(-1, 3, -1, -1).contiguous()

    def run():
        with torch.inference_mode():
            for start in range(0, len(images), 32):
                model.forward_features(images[start:start + 32])

    run()  # warm-up
    return len(images) / best_time(run, repeats)


def embedders(X, image_size):
    """Each option's embedder, fitted (ONNX graphs exported) and warmed up on ``X``."""
    fitted = {}
    for name, params in OPTIONS.items():
        embedder = DinoSliceEmbedder(backbone=BACKBONE, weights="random", image_size=image_size,
                                     n_readers=0, verbose=0, **params).fit(X)
        embedder.transform(X[:1])
        fitted[name] = embedder
    return fitted


def embed(embedder, X):
    clear_memory_cache()  # every run embeds; none reads the cache
    return embedder.transform(X)


def centred_cosines(a, b):
    """Per volume, the cosine of its slice embeddings in ``a`` and ``b`` (``(n_volumes,
    n_slices, dim)``) after each set's mean row is subtracted; padding rows left out."""
    values = []
    for x, z in zip(a, b, strict=True):
        keep = ~np.isnan(x).any(1)
        x, z = x[keep] - x[keep].mean(0), z[keep] - z[keep].mean(0)
        values.append(np.sum(x * z) / np.sqrt(np.sum(x * x) * np.sum(z * z)))
    return np.array(values)


def study(fitted, X, y):
    """Per option, its embeddings of ``X`` and the out-of-fold AUC of heads trained on
    float32 embeddings and scored on the option's embeddings of the held-out folds."""
    embeddings = {name: embed(embedder, X) for name, embedder in fitted.items()}
    scores = {name: np.zeros(len(y)) for name in fitted}
    for train, test in StratifiedKFold(4, shuffle=True, random_state=0).split(X, y):
        head = AttentionPoolClassifier(max_epochs=30, random_state=0).fit(
            embeddings["torch float32"][train], y[train])
        for name, Z in embeddings.items():
            scores[name][test] = head.predict_proba(Z[test])[:, 1]
    return embeddings, {name: roc_auc_score(y, s) for name, s in scores.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--n-slices", type=int, default=None,
                        help="the brain's first N axial slices (default: all)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--study-volumes", type=int, default=32)
    parser.add_argument("--study-shape", type=int, nargs=3, default=(32, 32, 8))
    parser.add_argument("--study-noise", type=float, default=0.6,
                        help="make_volumes' noise (0.6: float32's AUC about 0.74 at 224 px)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="weights='random'")
    torch.manual_seed(0)
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{date.today().isoformat()}")
    with tempfile.TemporaryDirectory() as tmp:
        path, what = brain(tmp, args.n_slices)
        print(f"Brain: {what}; {args.image_size} px, ViT-S/14, random weights.\n")
        plain = plain_pytorch(path, args.image_size, args.repeats)
        fitted = embedders([path], args.image_size)
        out, rates = {}, {}
        for name, embedder in fitted.items():
            out[name] = embed(embedder, [path])
            seconds = best_time(lambda e=embedder: embed(e, [path]), args.repeats)
            rates[name] = out[name].shape[1] / seconds
        X, y = make_volumes(n_samples=args.study_volumes, shape=tuple(args.study_shape),
                            noise=args.study_noise, random_state=0)
        embeddings, aucs = study(embedders(X[:1], args.image_size), X, y)
    print("| option | slices/s | x plain PyTorch | min cosine | mean cosine | study AUC |")
    print("|---|---|---|---|---|---|")
    print(f"| plain PyTorch float32 (every slice) | {plain:.2f} | 1.00 | | | |")
    rows = []
    for name in fitted:
        cos = np.concatenate([centred_cosines(out[name], out["torch float32"]),
                              centred_cosines(embeddings[name], embeddings["torch float32"])])
        rows.append((name, rates[name] / plain, cos.min(), aucs[name] - aucs["torch float32"]))
        print(f"| {name} | {rates[name]:.2f} | {rates[name] / plain:.2f} | {cos.min():.4f} | "
              f"{cos.mean():.4f} | {aucs[name]:.3f} |")
    print(f"\nCosines: per volume, the brain's and the study's {args.study_volumes}. Study: "
          f"{args.study_volumes} volumes {tuple(args.study_shape)} with a planted signal "
          f"(noise {args.study_noise}), 4-fold out-of-fold AUC of heads trained on torch "
          "float32 embeddings, scored on each option's.")
    good = [row for row in rows if row[2] >= MIN_COSINE and row[3] >= -MAX_AUC_DROP]
    name, speedup, low, change = max(good, key=lambda row: row[1])
    print(f"cpu_speedup={speedup:.2f} engine={name.replace(' ', '_')} min_cosine={low:.4f} "
          f"auc_change={change:+.3f}")


if __name__ == "__main__":
    main()
