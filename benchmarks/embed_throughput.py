"""How fast DinoSliceEmbedder embeds, against the machine's peak, and what a study costs.

Five measurements, each as ratios taken in this one run (absolute times drift with the
machine's load):

1. throughput: slices/s of NIfTI volumes read from disk, for plain batched float32 and
   each speed option (engines and precisions included), with the fraction of peak (FLOPs
   of one forward, counted by ``torch.utils.flop_counter``, times slices/s, over a
   measured large-matmul rate in the same precision), the worst cosine and the centred
   cosine to the float32 embeddings;
2. readers: slices/s that a reader process (``n_readers``) delivers from brain-sized
   ``.nii.gz`` volumes, without the backbone: today's readers, which only inflate, check
   and hash a scan, side by side with the earlier ones, which also scaled, sliced and
   resized on the CPU; each gzip inflater installed; against the backbone's rate on a
   GPU (measured in bfloat16 when there is one, else estimated from the FLOP count at
   40 % of an H100's bfloat16 peak), how many reader cores it needs;
3. study: embedding N volumes once, then 5-fold CV x a 6-point grid of head parameters
   (GridSearchCV over the pipeline), as a ratio to the embedding pass alone, and a naive
   loop that embeds again in every fold (as the published code does; still kinder than
   it, since a fold's grid points share the embeddings);
4. memory: the peak RSS of embedding one 182 x 218 x 182 volume, beyond what the
   backbone's activations take, in float32 copies of the volume;
5. with a GPU, the same throughput table on it; and with ``--pipeline``, slices/s from
   ``.nii.gz`` brains to embeddings per backbone and reader count, the fraction of the
   device's bfloat16 peak, and whether the readers or the device set the pace.

    python benchmarks/embed_throughput.py                 # 224 px, all four
    python benchmarks/embed_throughput.py --skip-study --n-volumes 2
    python benchmarks/embed_throughput.py --readers-only  # 2 alone: reader_cores_per_gpu=
    python benchmarks/embed_throughput.py --pipeline      # on a GPU: files to embeddings,
                                                          # ViT-S/14 and ViT-B/14, 0/4/8 readers

Random weights (no network needed) cost exactly what pretrained ones do.
"""

import argparse
import gzip
import hashlib
import importlib
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from joblib import cpu_count
from nibabel.orientations import apply_orientation, io_orientation
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold
from sklearn.pipeline import make_pipeline
from torch.utils.flop_counter import FlopCounterMode

from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder, clear_memory_cache
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.embedding import read_volumes
from sklearn_dinoatten.embedding.backbones import build_backbone
from sklearn_dinoatten.volumes import voxel_size_of

OPTIONS = [  # (name, embedder parameters, precision of the peak it is compared with)
    ("float32, batch 1, no read-ahead", dict(batch_size=1, prefetch=0), "float32"),
    ("float32, batch 32, no read-ahead", dict(prefetch=0), "float32"),  # "auto" on CPU
    ("read-ahead (prefetch=2)", dict(prefetch=2), "float32"),
    ("a reader process (n_readers=1)", dict(n_readers=1), "float32"),
    ("channels_last", dict(channels_last=True), "float32"),
    ("torch.compile", dict(compile=True), "float32"),
    ("bfloat16 autocast", dict(dtype="bfloat16"), "bfloat16"),
    ("float16 autocast", dict(dtype="float16"), "float16"),
    ("bfloat16 + torch.compile", dict(dtype="bfloat16", compile=True), "bfloat16"),
    # CPU only; the peak compared with is float32's
    ("torch dynamic int8", dict(dtype="int8"), "float32"),
    ("ONNX Runtime float32", dict(engine="onnxruntime"), "float32"),
    ("ONNX Runtime dynamic int8", dict(engine="onnxruntime", dtype="int8"), "float32"),
]
REFERENCE = 1  # plain batched float32
PROBE_SLICES = 8  # what a precision without native support is timed on
H100_BF16_PEAK = 989e12  # FLOP/s, dense, SXM (NVIDIA's datasheet)
GPU_EFFICIENCY = 0.4  # of the peak a ViT's forward reaches, for the estimate
BRAIN = (182, 218, 182)  # MNI152 at 1 mm


def matmul_rate(dtype, device, seconds=0.5):
    """FLOP/s of a large square matmul run as the backbone runs its layers (``F.linear``
    on float32 tensors under autocast to ``dtype``): the machine's practical peak. The side
    doubles from 256 until one product takes ``seconds`` or reaches 4096."""
    n = 256
    while True:
        a = torch.randn(n, n, device=device)
        with torch.autocast(device.type, dtype=getattr(torch, dtype),
                            enabled=dtype != "float32"):
            F.linear(a, a)
            sync(device)
            start = time.perf_counter()
            F.linear(a, a)
            sync(device)
            elapsed = time.perf_counter() - start
        if elapsed >= seconds or n >= 4096:
            return 2 * n**3 / elapsed
        n *= 2


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def forward_flops(backbone, image_size):
    module = build_backbone(backbone, weights="random", image_size=image_size).module
    for layer in module.modules():  # the counter misses fused attention on the CPU
        if hasattr(layer, "fused_attn"):
            layer.fused_attn = False
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        module.forward_features(torch.zeros(1, 3, image_size, image_size))
    return counter.get_total_flops()


def write_volumes(folder, n, n_slices, shape=(160, 192)):
    X, y = make_volumes(n_samples=n, shape=(*shape, n_slices), random_state=0)
    paths = []
    for i, volume in enumerate(X):
        paths.append(os.path.join(folder, f"scan_{i:03d}.nii.gz"))
        nib.save(nib.Nifti1Image((volume * 1000).astype(np.int16), np.eye(4)), paths[-1])
    return paths, y


def throughput(args, paths, probe, device, flops):
    peaks = {dtype: matmul_rate(dtype, device) for dtype in ("float32", "bfloat16", "float16")}
    print(f"one forward: {flops / 1e9:.2f} GFLOP per slice; large matmul: "
          + ", ".join(f"{d} {p / 1e9:.0f} GFLOP/s" for d, p in peaks.items()))
    print(f"\n{len(paths)} volumes x {args.n_slices} slices from .nii.gz, {args.image_size} px, "
          f"device {device}; a precision whose matmul is under 1/4 of float32's (no native "
          f"support) is timed on one {PROBE_SLICES}-slice volume\n", flush=True)
    rows, reference = [], {}
    for name, params, precision in OPTIONS:
        if device.type == "cuda" and (params.get("engine") or params.get("dtype") == "int8"):
            continue  # CPU-only engines
        native = peaks[precision] >= peaks["float32"] / 4
        X = paths if native else probe
        embedder = DinoSliceEmbedder(backbone=args.backbone, weights="random",
                                     image_size=args.image_size, verbose=0, **params).fit(X)
        for _ in range(2):  # a warm-up on the same batch shapes (allocations, compiling),
            clear_memory_cache()  # then the timed run; both embed, never read the cache
            start = time.perf_counter()
            out = embedder.transform(X).reshape(-1, embedder.embedding_dim_)
        rate = len(out) / (time.perf_counter() - start)
        if not reference:
            reference = {id(paths): out, id(probe): embedder.transform(probe)[0]}
        rows.append((name + ("" if native else f" ({PROBE_SLICES} slices)"), rate,
                     rate * flops / peaks[precision], cosines(out, reference[id(X)]).min(),
                     centred_cosine(out, reference[id(X)])))
    print("| option | slices/s | x plain batched | % of peak (int8: of float32's) | "
          "min cosine to float32 | centred cosine |")
    print("|---|---|---|---|---|---|")
    for name, rate, fraction, cosine, centred in rows:
        print(f"| {name} | {rate:.1f} | {rate / rows[REFERENCE][1]:.2f} | {100 * fraction:.0f} "
              f"| {cosine:.5f} | {centred:.5f} |")
    return {name: rate for name, rate, *_ in rows}


def earlier_reader(embedder, config):
    """What a reader process did before readers only decoded (kept here to measure
    against): nibabel's own gzip, the voxels scaled to float32 and reoriented on the CPU,
    each slice set copied, hashed as float32 and resized to the backbone's size there."""

    def read(path, index=None):
        image = nib.load(path)  # nibabel's own gzip: the package leaves it as it is
        data = apply_orientation(image.get_fdata(dtype=np.float32),
                                 io_orientation(image.affine))
        reader, out = embedder.slice_reader(), []
        for kept in reader.slice_sets(data, voxel_size_of(path)):
            digest = hashlib.sha256(config.encode())
            digest.update(np.ascontiguousarray(kept.stack).data)
            out.append((digest.hexdigest(), reader.backbone_input(kept)))
        return out

    return read


def inflaters(path, repeats=3):
    """Seconds to inflate ``path`` with each gzip implementation installed."""
    packed = open(path, "rb").read()
    found = {"standard library (zlib)": gzip.decompress}
    for name, module in [("ISA-L igzip (isal)", "isal.igzip"), ("zlib-ng", "zlib_ng.gzip_ng")]:
        try:
            found[name] = importlib.import_module(module).decompress
        except ImportError:
            pass
    return {name: min(timed(lambda f=inflate: f(packed)) for _ in range(repeats))
            for name, inflate in found.items()}


def timed(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def readers(args, folder, gpu_rate, flops):
    """Slices/s a reader process delivers, the earlier path against today's, and how
    many reader cores the backbone's rate on a GPU (``gpu_rate``, measured, or ``None``:
    the estimate from ``flops`` per slice) needs. Ends with ``reader_cores_per_gpu=``."""
    os.makedirs(os.path.join(folder, "brains"), exist_ok=True)
    paths, _ = write_volumes(os.path.join(folder, "brains"), args.n_reader_volumes, BRAIN[2],
                             shape=BRAIN[:2])
    print(f"\nreaders: {len(paths)} volumes of {'x'.join(map(str, BRAIN))} int16 voxels "
          f"(.nii.gz, {os.path.getsize(paths[0]) / 1e6:.1f} MB each), axial slices, "
          f"{args.image_size} px, no backbone\n", flush=True)
    times = inflaters(paths[0])
    print("| inflating one file | seconds | x standard library |\n|---|---|---|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.3f} | {times['standard library (zlib)'] / seconds:.2f} |")
    print("\n| slices kept per volume | readers | earlier: slices/s per reader | now: "
          "slices/s per reader | x earlier |\n|---|---|---|---|---|")
    rates = {}
    for n_slices in (None, 32):
        embedder = DinoSliceEmbedder(backbone=args.backbone, weights="random",
                                     image_size=args.image_size, n_slices=n_slices,
                                     verbose=0).fit(paths)
        earlier, reader = earlier_reader(embedder, "v1"), embedder.stack_reader()
        earlier(paths[0]), reader(paths[0], 0)  # warm-up: imports, first allocations
        kept = n_slices or BRAIN[2]
        for k in (0, 1, 2):
            per_reader = []
            for read in (earlier, reader):
                clear_memory_cache()
                seconds = timed(lambda r=read, k=k: list(read_volumes(
                    r, paths, range(len(paths)), n_readers=k, prefetch_depth=2)))
                per_reader.append(len(paths) * kept / seconds / max(k, 1))
            rates[n_slices, k] = per_reader
            print(f"| {kept} | {k or '0 (this process)'} | {per_reader[0]:.0f} | "
                  f"{per_reader[1]:.0f} | {per_reader[1] / per_reader[0]:.2f} |", flush=True)
    embedder.set_params(n_slices=None).fit(paths)
    clear_memory_cache()
    read = [embedder.stack_reader()(path, 0) for path in paths]  # every slice kept
    slices = embedder.slice_reader()
    device = sum(len(s.selection.indices) for r in read for s in r.stacks) / timed(lambda: [
        list(slices.backbone_inputs(r.scan, [s.selection for s in r.stacks])) for r in read])
    print(f"\nWhat readers no longer do, the embedding device does: on this CPU, "
          f"{device:.0f} slices/s (every slice kept).")
    if gpu_rate is None:
        gpu_rate = GPU_EFFICIENCY * H100_BF16_PEAK / flops
        source = (f"estimated: {flops / 1e9:.2f} GFLOP per slice at {GPU_EFFICIENCY:.0%} of "
                  f"an H100's {H100_BF16_PEAK / 1e12:.0f} TFLOP/s bfloat16 peak")
    else:
        source = "measured here, bfloat16"
    cores = {n: [gpu_rate / rate for rate in rates[n, 1]] for n in (None, 32)}
    print(f"\nbackbone on a GPU: {gpu_rate:.0f} slices/s ({source}). Reader processes it "
          f"needs at this CPU's rate of one, earlier -> now: {cores[None][0]:.0f} -> "
          f"{cores[None][1]:.0f} with every slice kept, {cores[32][0]:.0f} -> "
          f"{cores[32][1]:.0f} with 32 per volume (a file is inflated whole however few "
          "slices are kept)." + (" The readers, not the GPU, set the pace on this machine."
                                 if gpu_rate > cpu_count() * rates[None, 1][1] else ""))
    print(f"reader_cores_per_gpu={math.ceil(cores[None][1])}")


def cosines(a, b):
    return np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def centred_cosine(a, b):
    """One cosine of all rows after subtracting each set's mean row: random-weight CLS
    tokens are nearly constant, so a plain cosine hides errors in what varies."""
    a, b = a - a.mean(0), b - b.mean(0)
    return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))


def study(args, paths, y):
    grid = {"attentionpoolclassifier__lr": [1e-3, 3e-3, 1e-2],
            "attentionpoolclassifier__supcon_weight": [0.0, 1.0]}
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    pipe = make_pipeline(
        DinoSliceEmbedder(backbone=args.backbone, weights="random", image_size=args.image_size,
                          verbose=0),
        AttentionPoolClassifier(max_epochs=20, random_state=0),
    )
    paths = np.asarray(paths)

    def timed(run):
        clear_memory_cache()
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    embed = timed(lambda: pipe[0].fit_transform(paths))
    once = timed(lambda: GridSearchCV(pipe, grid, cv=cv, scoring="roc_auc").fit(paths, y))

    def naive():  # every fold embeds its volumes again; its grid points share them
        for train, test in cv.split(paths, y):
            clear_memory_cache()
            for params in ParameterGrid(grid):
                pipe.set_params(**params).fit(paths[train], y[train]).predict(paths[test])

    again = timed(naive)
    print(f"\nstudy: {len(paths)} volumes x {args.n_study_slices} slices, 5 folds x 6 grid "
          f"points, {args.image_size} px\n")
    print("| run | seconds | x embedding pass |")
    print("|---|---|---|")
    for name, seconds in [("embedding pass alone", embed),
                          ("embed once, 5-fold CV x 6-point grid (GridSearchCV)", once),
                          ("naive: embed again in every fold", again)]:
        print(f"| {name} | {seconds:.1f} | {seconds / embed:.2f} |")


MEMORY_SCRIPT = """
import sys
import numpy as np
from sklearn_dinoatten import DinoSliceEmbedder, clear_memory_cache

def rss(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))

def peak_extra(X):
    clear_memory_cache()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # restart the peak (VmHWM) from the current RSS
    base = rss("VmRSS:")
    embedder.transform(X)
    return rss("VmHWM:") - base

path, image_size = sys.argv[1], int(sys.argv[2])
embedder = DinoSliceEmbedder(weights="random", image_size=image_size, verbose=0).fit([path])
small = np.random.default_rng(0).normal(size=(32, 32, 64))  # two full batches
embedder.transform([small])
print(peak_extra([small]), peak_extra([path]))
"""


def memory(args, folder):
    shape = (182, 218, 182)
    volume = np.random.default_rng(0).integers(0, 1000, size=shape, dtype=np.int16)
    path = os.path.join(folder, "brain.nii.gz")
    nib.save(nib.Nifti1Image(volume, np.eye(4)), path)
    output = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, path, str(args.image_size)],
                            capture_output=True, text=True, check=True).stdout
    small, big = (int(v) for v in output.split())
    copy = np.prod(shape) * 4
    print(f"\nmemory: one {'x'.join(map(str, shape))} volume ({copy / 1e6:.0f} MB as float32), "
          f"{args.image_size} px, batch 32: peak RSS +{big / 1e6:.0f} MB; a small volume "
          f"(the backbone's activations) +{small / 1e6:.0f} MB; the difference is "
          f"{(big - small) / copy:.1f} float32 copies of the volume")


def backbone_rate(backbone, image_size, device, dtype, batch=64, seconds=2.0):
    """Slices/s of the backbone alone, on images already on ``device``."""
    embedder = DinoSliceEmbedder(backbone=backbone, weights="random", image_size=image_size,
                                 dtype=dtype, batch_size=batch, verbose=0)
    encoder = embedder.fit(np.zeros((1, 8, 8, 2))).slice_encoder()
    images = torch.rand(batch, 1, image_size, image_size, device=device)
    encoder.forward([images])  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        encoder.forward([images])  # returns on the host: synchronised
        count += batch
    return count / (time.perf_counter() - start)


def pipeline(args, folder, device):
    """Slices/s from ``.nii.gz`` brains to embeddings, per backbone and reader count,
    against the backbone alone on the same device: who sets the pace."""
    os.makedirs(os.path.join(folder, "pipeline"), exist_ok=True)
    paths, _ = write_volumes(os.path.join(folder, "pipeline"), args.n_pipeline_volumes,
                             BRAIN[2], shape=BRAIN[:2])
    dtype = "bfloat16" if device.type == "cuda" else "float32"
    peak = matmul_rate(dtype, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"\npipeline on {name}: {len(paths)} brains ({'x'.join(map(str, BRAIN))} int16 "
          f".nii.gz) to CLS embeddings, every axial slice, {args.image_size} px, {dtype}, "
          f"batch 64; {dtype} matmul peak measured {peak / 1e12:.1f} TFLOP/s; the pace is "
          "the device's where the pipeline reaches 85 % of the backbone alone\n", flush=True)
    print("| backbone | readers | slices/s | % of peak | backbone alone, slices/s | "
          "pace set by |\n|---|---|---|---|---|---|")
    for backbone in args.pipeline_backbones:
        flops = forward_flops(backbone, args.image_size)
        alone = backbone_rate(backbone, args.image_size, device, dtype)
        for k in args.pipeline_readers:
            embedder = DinoSliceEmbedder(backbone=backbone, weights="random", dtype=dtype,
                                         image_size=args.image_size, n_readers=k,
                                         prefetch=2, batch_size=64, verbose=0).fit(paths)
            embedder.transform(paths[:2])  # warm-up
            clear_memory_cache()
            rate = len(paths) * BRAIN[2] / timed(lambda e=embedder: e.transform(paths))
            pace = "the device" if rate >= 0.85 * alone else "the readers"
            print(f"| {backbone} | {k} | {rate:.0f} | {100 * rate * flops / peak:.0f} | "
                  f"{alone:.0f} | {pace} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--n-volumes", type=int, default=4)
    parser.add_argument("--n-slices", type=int, default=32)
    parser.add_argument("--n-reader-volumes", type=int, default=6)
    parser.add_argument("--n-study-volumes", type=int, default=40)
    parser.add_argument("--n-study-slices", type=int, default=16)
    parser.add_argument("--backbone", default="vit_small_patch14_dinov2")
    parser.add_argument("--skip-study", action="store_true")
    parser.add_argument("--readers-only", action="store_true",
                        help="only the reader table, ending with reader_cores_per_gpu=<n>")
    parser.add_argument("--pipeline", action="store_true",
                        help="only the end-to-end table (files to embeddings), for a GPU")
    parser.add_argument("--n-pipeline-volumes", type=int, default=24)
    parser.add_argument("--pipeline-backbones", nargs="+",
                        default=["vit_small_patch14_dinov2", "vit_base_patch14_dinov2"])
    parser.add_argument("--pipeline-readers", nargs="+", type=int, default=[0, 4, 8])
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"{args.backbone}, CLS, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {cpu_count()} cores",
          flush=True)
    with tempfile.TemporaryDirectory() as folder:
        flops = forward_flops(args.backbone, args.image_size)
        if args.pipeline:
            pipeline(args, folder, device)
            return
        if args.readers_only:
            rate = (backbone_rate(args.backbone, args.image_size, device, "bfloat16")
                    if device.type == "cuda" else None)
            readers(args, folder, rate, flops)
            return
        paths, _ = write_volumes(folder, args.n_volumes, args.n_slices)
        os.mkdir(os.path.join(folder, "probe"))
        probe = write_volumes(os.path.join(folder, "probe"), 2, PROBE_SLICES)[0][:1]
        rates = throughput(args, paths, probe, device, flops)
        readers(args, folder, rates.get("bfloat16 autocast") if device.type == "cuda" else None,
                flops)
        if not args.skip_study:
            os.mkdir(os.path.join(folder, "study"))
            study_paths, y = write_volumes(os.path.join(folder, "study"),
                                           args.n_study_volumes, args.n_study_slices)
            study(args, study_paths, y)
        if os.path.exists("/proc/self/clear_refs"):
            memory(args, folder)


if __name__ == "__main__":
    main()
