"""How much faster than plain PyTorch the toolkit embeds a brain on this CPU, and at what
cost to the embeddings and to a study's AUC; and which CPU kernels are worth shipping.

Measured side by side in one run, after a warm-up of each option on the same shapes:

- **kernels**: each engine and precision of :class:`DinoSliceEmbedder` as its
  :class:`~sklearn_dinoatten.embedding.SliceEncoder` runs it on the same prepared brain
  slices (channels, precision, the backbone and the CLS token; no reading), next to two
  candidates the toolkit does not ship, built from the ONNX graph it exports and
  calibrated on 8 other slices of the same brain: ONNX Runtime's static (QDQ) int8 and
  OpenVINO's int8 by NNCF's post-training quantisation (``pip install nncf``; its row is
  left out without it), as slices/s, as a ratio to torch float32 and as a centred cosine
  to it;
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

bfloat16 is measured only where this CPU computes in it natively (AVX-512 BF16, AMX):
elsewhere torch warns that it is several times slower and OpenVINO refuses it, and the
run says so. An engine whose extra is not installed is left out, with a line.

It ends with one line ``cpu_speedup=<x> engine=<name> min_cosine=<c> auc_change=<d>``
for the fastest option whose min cosine is at least .98 and whose AUC falls by at most
.01 (a rise is no loss; with 64 volumes one pair of scans moves the AUC by .001). The
brain is the 1 mm MNI152 template of ``../shared/data/brain_templates`` (a phantom head
where absent). Random weights (no network) cost what pretrained ones do.

    python benchmarks/cpu_speed.py [--image-size 224] [--study-volumes 64]
"""

import argparse
import contextlib
import glob
import io
import logging
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
from sklearn_dinoatten.embedding import SliceEncoder

BACKBONE = "vit_small_patch14_dinov2"
REFERENCE = "torch float32"
OPTIONS = {  # name -> DinoSliceEmbedder's parameters
    REFERENCE: {},
    "torch bfloat16": dict(dtype="bfloat16"),
    "torch dynamic int8": dict(dtype="int8"),
    "ONNX Runtime float32": dict(engine="onnxruntime"),
    "ONNX Runtime dynamic int8": dict(engine="onnxruntime", dtype="int8"),
    "OpenVINO float32": dict(engine="openvino"),
    "OpenVINO bfloat16": dict(engine="openvino", dtype="bfloat16"),
}
STATIC_INT8, NNCF_INT8 = "ONNX Runtime static int8 (QDQ)", "OpenVINO NNCF int8"  # candidates
MIN_COSINE, MAX_AUC_DROP = 0.98, 0.01
KERNEL_SLICES, CALIBRATION_SLICES, BATCH = 64, 8, 32


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


def gray_slices(path, image_size):
    """Every axial slice of ``path`` scaled to [0, 1], padded square and resized:
    ``(slices, 1, s, s)``, as a plain PyTorch loop would prepare them."""
    data = torch.from_numpy(nib.as_closest_canonical(nib.load(path)).get_fdata(
        dtype=np.float32)).permute(2, 0, 1)[:, None]  # (slices, 1, x, y)
    low = data.amin((1, 2, 3), keepdim=True)
    data = (data - low) / (data.amax((1, 2, 3), keepdim=True) - low).clamp_min(1e-8)
    side = max(data.shape[-2:])
    data = F.pad(data, (0, side - data.shape[-1], 0, side - data.shape[-2]))
    return F.interpolate(data, size=(image_size, image_size), mode="bilinear", antialias=True)


def plain_pytorch(gray, image_size, repeats):
    """Slices/s of timm's ViT-S/14 in float32 on every slice, batches of 32."""
    model = timm.create_model(BACKBONE, pretrained=False, img_size=image_size,
                              num_classes=0).eval()
    images = gray.expand(-1, 3, -1, -1).contiguous()

    def run():
        with torch.inference_mode():
            for start in range(0, len(images), BATCH):
                model.forward_features(images[start:start + BATCH])

    run()  # warm-up
    return len(images) / best_time(run, repeats)


def embedders(X, image_size):
    """Each option this machine runs: its embedder, fitted (ONNX graphs exported) and
    warmed up on ``X``; and why each other option is left out."""
    fitted, left_out = {}, {}
    for name, params in OPTIONS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", UserWarning)  # torch's slow-bfloat16 notice
                warnings.filterwarnings("ignore", message="weights='random'")
                embedder = DinoSliceEmbedder(backbone=BACKBONE, weights="random",
                                             image_size=image_size, n_readers=0, verbose=0,
                                             **params).fit(X)
        except (ImportError, ValueError, UserWarning) as exc:
            left_out[name] = str(exc).split(";")[0]
            continue
        embedder.transform(X[:1])
        fitted[name] = embedder
    return fitted, left_out


def candidates(reference, gray, image_size):
    """The kernels not shipped, as callables of images: ONNX Runtime's static (QDQ) int8
    and OpenVINO's NNCF int8, quantised from the toolkit's own exported float32 graph
    and calibrated on ``gray``'s normalised images; and why any is left out."""
    found, left_out = {}, {}
    encoder = reference.slice_encoder()
    mean = torch.tensor(encoder.mean)[:, None, None]
    std = torch.tensor(encoder.std)[:, None, None]
    calibration = [((image.expand(3, -1, -1) - mean) / std)[None].numpy() for image in gray]
    with tempfile.TemporaryDirectory() as folder:
        try:
            DinoSliceEmbedder(backbone=BACKBONE, weights="random", image_size=image_size,
                              engine="onnxruntime", cache_dir=folder,
                              verbose=0).fit([np.ones((8, 8, 2))])  # exports the graph
        except ImportError as exc:
            return found, dict.fromkeys([STATIC_INT8, NNCF_INT8], str(exc))
        (graph,) = glob.glob(os.path.join(folder, "onnx", "*.onnx"))
        found[STATIC_INT8] = onnxruntime_static_int8(graph, calibration, folder)
        try:
            found[NNCF_INT8] = openvino_nncf_int8(graph, calibration)
        except ImportError as exc:
            left_out[NNCF_INT8] = f"{exc} (pip install nncf)"
    return found, left_out


def onnxruntime_static_int8(graph, calibration, folder):
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Slices(CalibrationDataReader):
        def __init__(self):
            self.left = iter(calibration)

        def get_next(self):
            image = next(self.left, None)
            return None if image is None else {"images": image}

    target = os.path.join(folder, "static_int8.onnx")
    quantize_static(graph, target, Slices(), quant_format=QuantFormat.QDQ, per_channel=True,
                    op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8,
                    activation_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(target, options, providers=["CPUExecutionProvider"])
    return lambda images: torch.from_numpy(session.run(None, {"images": images.numpy()})[0])


def openvino_nncf_int8(graph, calibration):
    import nncf
    import openvino as ov

    core = ov.Core()
    nncf.set_log_level(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):  # its progress bars
        quantized = nncf.quantize(core.read_model(graph), nncf.Dataset(calibration),
                                  model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(calibration))
    compiled = core.compile_model(quantized, "CPU", {
        "INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32"})  # int8 where quantised, float32 elsewhere
    request = compiled.create_infer_request()

    def run(images):
        request.infer({"images": images.numpy()})
        return torch.from_numpy(request.get_output_tensor(0).data.copy())

    return run


def kernel_rows(fitted, gray, image_size, repeats):
    """Per kernel, shipped or candidate: (slices/s, CLS embeddings) on ``gray``."""
    step = max(1, len(gray) // KERNEL_SLICES)
    measured = gray[::step][:KERNEL_SLICES]
    # spread over the brain, between the measured ones where there are enough
    calibration = gray[torch.linspace(step // 2, len(gray) - 1, CALIBRATION_SLICES).long()]
    encoders = {name: embedder.slice_encoder() for name, embedder in fitted.items()}
    found, left_out = candidates(fitted[REFERENCE], calibration, image_size)
    reference = encoders[REFERENCE]
    for name, run in found.items():
        encoders[name] = SliceEncoder(run, num_prefix_tokens=1, batch_size=BATCH,
                                      mean=reference.mean, std=reference.std)
    rows = {}
    for name, encoder in encoders.items():
        def run(e=encoder):
            return np.concatenate([e.forward([measured[k:k + BATCH]])
                                   for k in range(0, len(measured), BATCH)])
        out = run()  # warm-up
        rows[name] = (len(measured) / best_time(run, repeats), out)
    return rows, left_out, len(measured)


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
            embeddings[REFERENCE][train], y[train])
        for name, Z in embeddings.items():
            scores[name][test] = head.predict_proba(Z[test])[:, 1]
    return embeddings, {name: roc_auc_score(y, s) for name, s in scores.items()}


def print_kernels(kernels, n_slices, left_out):
    rate, reference = kernels[REFERENCE]
    print(f"Kernels: {n_slices} of the brain's slices, batches of {BATCH}, CLS token; "
          f"candidates calibrated on {CALIBRATION_SLICES} others.\n")
    print("| kernel | slices/s | x torch float32 | centred cosine |")
    print("|---|---|---|---|")
    for name, (slices_per_second, out) in kernels.items():
        cosine = centred_cosines(out[None], reference[None])[0]
        shipped = "" if name in OPTIONS else " (candidate)"
        print(f"| {name}{shipped} | {slices_per_second:.2f} | {slices_per_second / rate:.2f} "
              f"| {cosine:.4f} |")
    for name, why in left_out.items():
        print(f"Left out: {name}: {why}.")
    print()


def print_pipeline(plain, rates, out, embeddings, aucs, args):
    print("| option | slices/s | x plain PyTorch | min cosine | mean cosine | study AUC |")
    print("|---|---|---|---|---|---|")
    print(f"| plain PyTorch float32 (every slice) | {plain:.2f} | 1.00 | | | |")
    rows = []
    for name in rates:
        cos = np.concatenate([centred_cosines(out[name], out[REFERENCE]),
                              centred_cosines(embeddings[name], embeddings[REFERENCE])])
        rows.append((name, rates[name] / plain, cos.min(), aucs[name] - aucs[REFERENCE]))
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--n-slices", type=int, default=None,
                        help="the brain's first N axial slices (default: all)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--study-volumes", type=int, default=64)
    parser.add_argument("--study-shape", type=int, nargs=3, default=(32, 32, 8))
    parser.add_argument("--study-noise", type=float, default=0.6,
                        help="make_volumes' noise (0.6: float32's AUC about 0.74 at 224 px)")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)  # the quantisers' advice
    torch.manual_seed(0)
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{date.today().isoformat()}")
    with tempfile.TemporaryDirectory() as tmp:
        path, what = brain(tmp, args.n_slices)
        print(f"Brain: {what}; {args.image_size} px, ViT-S/14, random weights.\n")
        gray = gray_slices(path, args.image_size)
        fitted, left_out = embedders([path], args.image_size)
        for name, why in left_out.items():
            print(f"Left out: {name}: {why}.")
        kernels, kernels_left_out, n_kernel_slices = kernel_rows(
            fitted, gray[gray.amax((1, 2, 3)) > 0], args.image_size, args.repeats)
        print_kernels(kernels, n_kernel_slices, kernels_left_out)
        plain = plain_pytorch(gray, args.image_size, args.repeats)
        out, rates = {}, {}
        for name, embedder in fitted.items():
            out[name] = embed(embedder, [path])
            rates[name] = out[name].shape[1] / best_time(lambda e=embedder: embed(e, [path]),
                                                         args.repeats)
        X, y = make_volumes(n_samples=args.study_volumes, shape=tuple(args.study_shape),
                            noise=args.study_noise, random_state=0)
        embeddings, aucs = study(embedders(X[:1], args.image_size)[0], X, y)
    print_pipeline(plain, rates, out, embeddings, aucs, args)


if __name__ == "__main__":
    main()
