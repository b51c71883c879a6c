"""Where a frozen backbone's forward pass runs: PyTorch or ONNX Runtime, in float32 or
with dynamically quantised int8 weights.

:func:`forward_features` returns what :class:`~sklearn_dinoatten.embedding.
SliceEncoder` calls: images ``(n, 3, s, s)`` to tokens ``(n, n_tokens, dim)``. On ONNX
Runtime the backbone is exported once per weights, image size and dtype; with a
``cache_dir`` the graph is kept there under a name made of those, written atomically
with its sha256 beside it, checked before each use, and exported again when damaged.
"""

import contextlib
import copy
import hashlib
import io
import os
import tempfile
import warnings

import torch

from ..utils._files import atomic_write
from ..utils._optional import optional_import
from ..utils._options import ENGINES as ENGINES  # re-exported
from ..utils._quiet import root_messages_silenced

ONNX_OPSET = 17


def forward_features(backbone, *, engine="torch", dtype="float32", image_size=224,
                     cache_dir=None, fingerprint=None):
    """A callable running ``backbone.forward_features`` on ``engine``.

    Parameters
    ----------
    backbone : torch.nn.Module
        A frozen timm-style ViT on the CPU (``engine="onnxruntime"`` or ``dtype="int8"``).
    engine : {"torch", "onnxruntime"}, default="torch"
    dtype : str, default="float32"
        ``"int8"``: the weights of the linear layers quantised to int8, activations
        quantised per batch (dynamic quantisation: torch's on ``"torch"``, ONNX
        Runtime's on ``"onnxruntime"``). Other dtypes are torch's autocast, applied by
        the caller, on the ``"torch"`` engine only.
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
    if dtype not in ("float32", "int8"):
        raise ValueError(f"engine='onnxruntime' runs dtype='float32' or 'int8'; got "
                         f"dtype={dtype!r}.")
    ort = _onnxruntime()
    graph = _graph(backbone, dtype, image_size, cache_dir, fingerprint)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def run(images):
        tokens = session.run(None, {"images": images.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(tokens)

    return run


def _onnxruntime():
    return optional_import("onnxruntime", "onnx", "engine='onnxruntime'")


def _graph(backbone, dtype, image_size, cache_dir, fingerprint):
    """The serialised ONNX graph of ``backbone``, from ``cache_dir`` when it holds a
    whole one, else exported (and kept there)."""
    if cache_dir is None:
        return _export(backbone, dtype, image_size)
    if fingerprint is None:
        raise ValueError("a kept ONNX graph needs the backbone's weights fingerprint.")
    name = hashlib.sha256(
        f"{fingerprint}|{image_size}|{dtype}|opset{ONNX_OPSET}|torch{torch.__version__}|"
        f"onnxruntime{_onnxruntime().__version__}".encode()).hexdigest()
    path = os.path.join(cache_dir, "onnx", f"{name}.onnx")
    kept = _read_whole(path)
    if kept is not None:
        return kept
    graph = _export(backbone, dtype, image_size)
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


def _export(backbone, dtype, image_size):
    """The ONNX graph of ``backbone`` (a dynamic batch), quantised for ``"int8"``."""
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
        raise ValueError(f"engine='onnxruntime': this backbone cannot be exported to ONNX "
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
