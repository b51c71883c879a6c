"""The device and seeding rules shared by every estimator: ``"auto"`` is CUDA when
present; a ``random_state`` seeds torch without touching the global generator."""

import warnings
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.utils import check_random_state


def resolve_device(device):
    """Return a ``torch.device`` for ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ..."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto' or a torch device name; got {device!r}.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but CUDA is not available here.")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device={device!r} was asked for, but this machine has "
                         f"{torch.cuda.device_count()} CUDA device(s).")
    return resolved


def device_available(device):
    """Whether :func:`resolve_device` accepts ``device`` on this machine."""
    try:
        resolve_device(device)
    except ValueError:
        return False
    return True


def warn_if_slow_precision(dtype, device):
    """Warn when ``dtype`` (``"bfloat16"``, ``"float16"``) runs on a CPU without native
    support for it, where autocast is several times slower than float32."""
    if device.type != "cpu" or dtype in ("float32", "int8"):
        return
    try:
        check = {"bfloat16": torch.ops.mkldnn._is_mkldnn_bf16_supported,
                 "float16": torch.ops.mkldnn._is_mkldnn_fp16_supported}[dtype]
        native = check()
    except (AttributeError, RuntimeError):  # private API: no warning when it is absent
        return
    if not native:
        warnings.warn(
            f"dtype={dtype!r}: this CPU has no native {dtype} support (AVX-512 BF16/FP16 or "
            "AMX), so it runs several times slower than float32 here; use float32 on this "
            "machine (benchmarks/embed_throughput.py measures both).",
            UserWarning, stacklevel=4,
        )


@contextmanager
def seeded_torch(random_state, device):
    """Seed torch's generators (CPU, and ``device`` if CUDA) from ``random_state`` for
    the ``with`` block, restoring them afterwards; yields the seed."""
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield seed
