"""Helpers shared by the tests."""

import builtins
import errno
import os
import sys
import tempfile

import nibabel as nib
import numpy as np
import timm
import torch

from sklearn_dinoatten import (
    AttentionPoolClassifier,
    DinoSliceEmbedder,
    FineTunedSliceClassifier,
    ResNet3DClassifier,
    SCMILClassifier,
    SliceTransformerClassifier,
)

# A small, fast configuration: ViT-S/14 at 28 px (2x2 patches), random weights.
FAST = dict(weights="random", image_size=28, verbose=0)
GOOD_SHAPE = (20, 24, 6)  # a small volume

# Every classifier, small and seeded.
CLASSIFIERS = {
    "AttentionPoolClassifier": lambda: AttentionPoolClassifier(max_epochs=2, random_state=0),
    "SliceTransformerClassifier": lambda: SliceTransformerClassifier(max_epochs=2,
                                                                     random_state=0),
    "SCMILClassifier": lambda: SCMILClassifier(max_epochs=2, random_state=0),
    "ResNet3DClassifier": lambda: ResNet3DClassifier(depth=10, widen_factor=0.25,
                                                     max_epochs=1, random_state=0),
    "FineTunedSliceClassifier": lambda: FineTunedSliceClassifier(
        embedder=DinoSliceEmbedder(n_slices=2, **FAST), max_epochs=1, random_state=0),
}


def round_trip(model, tmp_path):
    """``model`` saved to a model file in ``tmp_path`` and loaded back."""
    from sklearn_dinoatten.persistence import load_model, save_model

    path = tmp_path / "model.safetensors"
    save_model(model, path)
    return load_model(path)


def classifier_inputs(name, n):
    """Inputs each classifier takes: embeddings, or volumes for the last two."""
    rng = np.random.default_rng(0)
    if name == "ResNet3DClassifier":
        return rng.normal(size=(n, 32, 32, 32)).astype(np.float32)
    if name == "FineTunedSliceClassifier":
        return [rng.normal(size=GOOD_SHAPE).astype(np.float32) for _ in range(n)]
    return rng.normal(size=(n, 3, 8)).astype(np.float32)


# Slices per backbone forward, across every copy of a CountingViT (clone deep-copies
# the module, but not this module-level list).
FORWARD_SLICES = []


class CountingViT(torch.nn.Module):
    """ViT-S/14 at 28 px that records how many slices each forward embeds: in
    ``FORWARD_SLICES``, and with ``log_path`` also as a line appended to that file, which
    counts across processes."""

    def __init__(self, log_path=None):
        super().__init__()
        self.log_path = log_path
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.vit = timm.create_model("vit_small_patch14_dinov2", img_size=28, num_classes=0)
        self.num_prefix_tokens = self.vit.num_prefix_tokens
        self.num_features = self.vit.num_features

    @property
    def patch_embed(self):
        return self.vit.patch_embed

    def forward_features(self, x):
        FORWARD_SLICES.append(len(x))
        if self.log_path is not None:
            with open(self.log_path, "a") as log:
                log.write(f"{len(x)}\n")
        return self.vit.forward_features(x)


def save_nifti(path, data, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), path)
    return str(path)


def hide_module(monkeypatch, module):
    """Make ``import <module>`` fail, as it does where the extra that brings it is not
    installed."""
    real_import = builtins.__import__

    def without(name, *args, **kwargs):
        if name == module:
            raise ImportError(f"No module named {module!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    monkeypatch.setitem(sys.modules, module, None)  # importlib.import_module fails too


def make_read_only(monkeypatch, folder):
    """Make ``folder`` read-only, as a shared cache mounted read-only is: its permissions,
    and, since root ignores those, every file or folder created in it refused."""
    folder = os.path.realpath(folder)
    for root, _, files in os.walk(folder):
        for name in files:
            os.chmod(os.path.join(root, name), 0o444)
        os.chmod(root, 0o555)
    monkeypatch.setattr(os, "makedirs", _refused_in(folder, os.makedirs, "name"))
    for name in ("mkstemp", "TemporaryFile"):
        monkeypatch.setattr(tempfile, name, _refused_in(folder, getattr(tempfile, name), "dir"))


def _refused_in(folder, create, where):
    """``create`` (a file in folder ``dir=``, or the folder ``name``), refused inside
    ``folder`` as a read-only file system refuses it."""
    def refused(*args, **kwargs):
        target = kwargs.get(where, args[0] if args and where == "name" else None)
        new = where == "dir" or (target is not None and not os.path.isdir(target))
        if new and target is not None and os.path.realpath(target).startswith(folder):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), target)
        return create(*args, **kwargs)

    return refused
