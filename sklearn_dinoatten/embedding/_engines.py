"""Where a frozen backbone's forward pass runs: PyTorch, ONNX Runtime or OpenVINO, in
float32, in int8 (dynamically quantised weights: torch, ONNX Runtime) or in bfloat16
(OpenVINO; torch's autocast is the caller's).

:func:`forward_features` returns what :class:`~sklearn_dinoatten.embedding.
SliceEncoder` calls: images ``(n, 3, s, s)`` to tokens ``(n, n_tokens, dim)``. For ONNX
Runtime and OpenVINO the backbone is exported to ONNX once per weights, image size
and engine (and dtype: ONNX Runtime's int8 graph is quantised; OpenVINO compiles its
one float32 graph in either precision); with a ``cache_dir`` the graph is kept there
under a name made of those, written atomically with its sha256 beside it, checked
before each use, and exported again when damaged.
"""

import contextlib
import copy
import ctypes
import hashlib
import io
import os
import sys
import tempfile
import warnings

import torch

from ..utils._files import atomic_write
from ..utils._optional import optional_import
from ..utils._options import ENGINES as ENGINES  # re-exported
from ..utils._quiet import root_messages_silenced

ONNX_OPSET = 17
EXTRAS = {"onnxruntime": "onnx", "openvino": "openvino"}  # engine -> its pip extra
OPENVINO_PRECISIONS = {"float32": "f32", "bfloat16": "bf16"}  # dtype -> inference hint


def forward_features(backbone, *, engine="torch", dtype="float32", image_size=224,
                     cache_dir=None, fingerprint=None):
    """A callable running ``backbone.forward_features`` on ``engine``.

    Parameters
    ----------
    backbone : torch.nn.Module
        A frozen timm-style ViT on the CPU (engines other than ``"torch"``, or
        ``dtype="int8"``).
    engine : {"torch", "onnxruntime", "openvino"}, default="torch"
    dtype : str, default="float32"
        ``"int8"`` (``"torch"``, ``"onnxruntime"``): the weights of the linear layers
        quantised to int8, activations quantised per batch (dynamic quantisation).
        ``"bfloat16"`` on ``"openvino"``: its inference precision, on CPUs with native
        bfloat16 only. On ``"torch"``, other dtypes are autocast, applied by the caller.
    image_size : int, default=224
    cache_dir : str or path, default=None
        Where exported ONNX graphs are kept; ``None``: exported anew in memory.
    fingerprint : str, default=None
        The backbone's weights fingerprint: names the kept graph (needed with
        ``cache_dir``).
    """
    if engine == "torch":
        if dtype != "int8":
            return backbone.forward_features
        with _quantizer_notices_silenced():
            quantized = torch.ao.quantization.quantize_dynamic(
                copy.deepcopy(backbone), {torch.nn.Linear}, dtype=torch.qint8)
        return quantized.forward_features
    if engine == "openvino":
        return _on_openvino(backbone, dtype, image_size, cache_dir, fingerprint)
    if dtype not in ("float32", "int8"):
        raise ValueError(f"engine='onnxruntime' runs dtype='float32' or 'int8'; got "
                         f"dtype={dtype!r}.")
    ort = _engine_module("onnxruntime")
    graph = _graph(backbone, "onnxruntime", dtype, image_size, cache_dir, fingerprint)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def run(images):
        tokens = session.run(None, {"images": images.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(tokens)

    return run


def _on_openvino(backbone, dtype, image_size, cache_dir, fingerprint):
    """The backbone's ONNX graph compiled by OpenVINO for this CPU, in ``dtype``."""
    if dtype not in OPENVINO_PRECISIONS:
        faster = " (for int8, engine='onnxruntime' measured faster)" * (dtype == "int8")
        raise ValueError(f"engine='openvino' runs dtype='float32' or 'bfloat16'; got "
                         f"dtype={dtype!r}{faster}.")
    core = _engine_module("openvino").Core()
    if dtype == "bfloat16" and not openvino_runs_bfloat16(core):
        raise ValueError("engine='openvino' with dtype='bfloat16' needs a CPU with native "
                         "bfloat16 (AVX-512 BF16 or AMX), which this one lacks; use "
                         "dtype='float32'.")
    model = core.read_model(_graph(backbone, "openvino", "float32", image_size, cache_dir,
                                   fingerprint))
    with _signal_stack_kept():
        compiled = core.compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[dtype]})
    request = compiled.create_infer_request()

    def run(images):
        request.infer({"images": images.detach().float().cpu().numpy()})
        return torch.from_numpy(request.get_output_tensor(0).data.copy())

    return run


def openvino_runs_bfloat16(core=None):
    """Whether OpenVINO computes in bfloat16 on this CPU (else it would run float32)."""
    core = core or _engine_module("openvino").Core()
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class _SignalStack(ctypes.Structure):  # Linux's stack_t
    _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]


@contextlib.contextmanager
def _signal_stack_kept():
    """Give this thread back its signal stack after the block. OpenVINO's CPU plugin
    sets one of 20 kB when it compiles; on a CPU with AMX, whose register state makes
    signal frames larger, the next signal handled there (the SIGCHLD of a reader process
    ending) overflows it and the process dies of a segmentation fault."""
    if not sys.platform.startswith("linux"):
        yield
        return
    libc, kept = ctypes.CDLL(None), _SignalStack()
    libc.sigaltstack(None, ctypes.byref(kept))
    try:
        yield
    finally:
        libc.sigaltstack(ctypes.byref(kept), None)


def _engine_module(engine):
    return optional_import(engine, EXTRAS[engine], f"engine={engine!r}")


def _graph(backbone, engine, dtype, image_size, cache_dir, fingerprint):
    """The serialised ONNX graph of ``backbone`` for ``engine``, from ``cache_dir`` when
    it holds a whole one, else exported (and kept there)."""
    if cache_dir is None:
        return _export(backbone, engine, dtype, image_size)
    if fingerprint is None:
        raise ValueError("a kept ONNX graph needs the backbone's weights fingerprint.")
    name = hashlib.sha256(
        f"{fingerprint}|{image_size}|{dtype}|opset{ONNX_OPSET}|torch{torch.__version__}|"
        f"{engine}{_engine_module(engine).__version__}".encode()).hexdigest()
    path = os.path.join(cache_dir, "onnx", f"{name}.onnx")
    kept = _read_whole(path)
    if kept is not None:
        return kept
    graph = _export(backbone, engine, dtype, image_size)
    digest = hashlib.sha256(graph).hexdigest().encode()
    with contextlib.suppress(OSError):  # a read-only cache_dir: used, not kept
        atomic_write(path, lambda f: f.write(graph))
        atomic_write(path + ".sha256", lambda f: f.write(digest))
    return graph


def _read_whole(path):
    """The bytes of ``path`` if its sha256 matches the one written beside it, else None
    (a damaged or half-kept graph is removed)."""
    try:
        with open(path, "rb") as f:
            graph = f.read()
        with open(path + ".sha256", "rb") as f:
            digest = f.read().decode().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if hashlib.sha256(graph).hexdigest() == digest:
        return graph
    for damaged in (path, path + ".sha256"):
        with contextlib.suppress(OSError):  # absent, or a read-only cache_dir
            os.remove(damaged)
    return None


class _Tokens(torch.nn.Module):
    """``backbone.forward_features`` as a module's forward, for the exporter."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, images):
        return self.backbone.forward_features(images)


def _export(backbone, engine, dtype, image_size):
    """The ONNX graph of ``backbone`` (a dynamic batch), quantised for ``"int8"``."""
    optional_import("onnx", EXTRAS[engine], f"engine={engine!r}")  # torch's exporter's
    module = _Tokens(copy.deepcopy(backbone).float().cpu()).eval()
    example = torch.zeros(2, 3, image_size, image_size)
    buffer = io.BytesIO()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        # nn.MultiheadAttention's fused inference path (open_clip's ViTs) has no ONNX form
        torch.backends.mha.set_fastpath_enabled(False)
        with warnings.catch_warnings():  # the exporter's deprecation notices
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), buffer, input_names=["images"],
                              output_names=["tokens"], opset_version=ONNX_OPSET, dynamo=False,
                              dynamic_axes={"images": {0: "n"}, "tokens": {0: "n"}})
    except torch.onnx.errors.OnnxExporterError as exc:
        raise ValueError(f"engine={engine!r}: this backbone cannot be exported to ONNX "
                         f"({str(exc).splitlines()[0]}); use engine='torch'.") from None
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    graph = buffer.getvalue()
    if dtype != "int8":
        return graph
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as folder:
        source, target = os.path.join(folder, "f32.onnx"), os.path.join(folder, "int8.onnx")
        with open(source, "wb") as f:
            f.write(graph)
        with _quantizer_notices_silenced():
            quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        with open(target, "rb") as f:
            return f.read()


@contextlib.contextmanager
def _quantizer_notices_silenced():
    """Silence what the quantisers say that a user cannot act on: torch.ao's deprecation
    notices (torchao replaces it; it works in torch 2.14) and ONNX Runtime's advice,
    logged on the root logger, to pre-process the graph first (measured here: no
    faster, 12.2 against 13.3 slices/s)."""
    with root_messages_silenced("pre-processing before quantization"), \
            warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated")
        warnings.filterwarnings("ignore", ".*quantized tensor creation functions")
        yield
