"""The forward passes of a frozen backbone over the slices of many volumes.

:class:`SliceEncoder` takes preprocessed slice stacks one volume at a time and fills
each batch with slices of as many volumes as it takes, so a volume of 5 slices does
not cost a forward pass of its own. It knows nothing of files, caches or
scikit-learn: :class:`~sklearn_dinoatten.DinoSliceEmbedder` reads and preprocesses
the volumes, looks up its cache and hands the rest to an encoder.
"""

from collections import deque

import numpy as np
import torch

from ..utils._options import DTYPES as DTYPE_NAMES
from ..utils._options import FEATURES as FEATURES  # re-exported
from ..volumes import IMAGENET_MEAN, IMAGENET_STD, to_channels

# Precision name -> autocast dtype; int8 weights are quantised before (engines), so its
# activations run in float32.
DTYPES = {name: torch.float32 if name == "int8" else getattr(torch, name)
          for name in DTYPE_NAMES}


class SliceEncoder:
    """Embed slices with a backbone's token features, in batches across volumes.

    Parameters
    ----------
    forward_features : callable
        Maps images ``(n, 3, s, s)`` to tokens ``(n, n_tokens, dim)``, prefix tokens
        (CLS first, then registers) before the patch tokens, as timm's
        ``forward_features``.
    num_prefix_tokens : int
        How many tokens precede the patch tokens.
    feature : {"cls", "mean", "cls+mean", "patch"}, default="cls"
        What one slice gives: the CLS token, the mean patch token, both concatenated,
        or every patch token.
    batch_size : int, default=32
        Slices per forward pass.
    dtype : {"float32", "bfloat16", "float16", "int8"}, default="float32"
        Autocast precision of the forward pass (none for float32 and int8, whose
        weights ``forward_features`` holds quantised); embeddings are float32.
    device : torch.device, default="cpu"
    normalization : {"minmax", "zscore"}, default="minmax"
        How the slices were normalised: ``"minmax"`` slices get ``mean`` and ``std``
        on the way to three channels.
    channels_last : bool, default=False
        Give the backbone channels-last images.
    mean, std : tuples of 3 floats, default=ImageNet's
        The backbone's input normalisation, per channel.
    num_patches : int, default=None
        The patch tokens a slice gives; when given, a backbone that gives another
        number of tokens than ``num_prefix_tokens + num_patches`` raises ``ValueError``
        rather than have a prefix token taken for a patch.

    Examples
    --------
    >>> import torch
    >>> from sklearn_dinoatten.embedding import SliceEncoder
    >>> tokens = lambda images: images.flatten(2).transpose(1, 2)  # 3 features a pixel
    >>> encoder = SliceEncoder(tokens, num_prefix_tokens=1, batch_size=4)
    >>> stacks = [("a", torch.rand(3, 1, 2, 2)), ("b", torch.rand(2, 1, 2, 2))]
    >>> [(key, embedding.shape) for key, embedding in encoder.encode(stacks)]
    [('a', (3, 3)), ('b', (2, 3))]
    """

    def __init__(self, forward_features, *, num_prefix_tokens, feature="cls", batch_size=32,
                 dtype="float32", device="cpu", normalization="minmax", channels_last=False,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, num_patches=None):
        self.forward_features = forward_features
        self.num_prefix_tokens = num_prefix_tokens
        self.feature = feature
        self.batch_size = batch_size
        self.dtype = dtype
        self.device = torch.device(device)
        self.normalization = normalization
        self.channels_last = channels_last
        self.mean, self.std = mean, std
        self.num_patches = num_patches

    def encode(self, stacks):
        """Yield ``(key, embedding)`` for each ``(key, images)`` of ``stacks``, in order.

        ``images`` are one volume's preprocessed gray slices ``(n, 1, s, s)``; its
        ``embedding`` is a float32 array ``(n, dim)``, or ``(n, n_patches, dim)`` for
        ``feature="patch"``. Slices of a volume equal to an earlier one of it, pixel for
        pixel (the empty slices around a head, repeated slices), are embedded once and
        its row repeated. A volume is yielded once the batch after its last slice is
        launched, so that a GPU always has a batch to do while the host waits for one.
        """
        repeats = deque()  # per volume, the row of each slice among its distinct ones
        distinct = ((key, _distinct(images, repeats)) for key, images in stacks)
        for key, rows in self._encode(distinct):
            inverse = repeats.popleft()
            yield key, rows if inverse is None else rows[inverse]

    def _encode(self, stacks):
        owners = deque()  # (key, n_slices) of the volumes not yet yielded, in order
        embedded = []  # features of the slices embedded but not yet yielded
        running = None  # the last batch launched, brought back once the next one is queued
        for batch in _batches(stacks, owners, self.batch_size):
            launched = self._launch(batch)
            if running is not None:
                embedded.append(running.cpu().numpy())
                yield from _finished(owners, embedded)
            running = launched
        if running is not None:
            embedded.append(running.cpu().numpy())
            yield from _finished(owners, embedded)

    def forward(self, chunks):
        """Features of one batch, given as chunks of gray images ``(n, 1, s, s)``."""
        return self._launch(chunks).cpu().numpy()

    def _launch(self, chunks):
        """Features of one batch as a float32 tensor on the device, queued there."""
        images = torch.cat([chunk.to(self.device, non_blocking=True) for chunk in chunks])
        images = to_channels(images, method=self.normalization, mean=self.mean, std=self.std)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        dtype = DTYPES[self.dtype]
        with torch.inference_mode(), torch.autocast(
            self.device.type, dtype=dtype, enabled=dtype is not torch.float32
        ):
            tokens = self.forward_features(images)
            if self.num_patches is not None and (
                    tokens.shape[1] != self.num_prefix_tokens + self.num_patches):
                raise ValueError(
                    f"The backbone gave {tokens.shape[1]} tokens per slice, not its "
                    f"{self.num_prefix_tokens} prefix tokens and {self.num_patches} "
                    "patches: it does not describe its tokens as a timm vision "
                    "transformer does (num_prefix_tokens, patch size).")
            patches = tokens[:, self.num_prefix_tokens:]
            if self.feature == "cls":
                feature = tokens[:, 0]
            elif self.feature == "mean":
                feature = patches.mean(dim=1)
            elif self.feature == "cls+mean":
                feature = torch.cat([tokens[:, 0], patches.mean(dim=1)], dim=1)
            else:
                feature = patches
        return feature.float()


def _distinct(images, repeats):
    """The distinct slices of a stack, in order of first appearance; appends to
    ``repeats`` the row of each slice among them (``None`` where all differ).

    Candidates share two sums per slice, computed where the images are; each is then
    compared with the first of its candidates pixel for pixel, so only equal slices are
    merged (slices the sums tell apart are never compared)."""
    flat = images.reshape(len(images), -1)
    sums = torch.stack([flat.sum(1, dtype=torch.float64),
                        flat.square().sum(1, dtype=torch.float64)], 1)
    _, groups = torch.unique(sums, dim=0, return_inverse=True)
    groups = groups.tolist()
    first, inverse, kept = {}, [], []  # group -> [(slice, its row)]
    for i, group in enumerate(groups):
        row = next((r for j, r in first.get(group, ()) if torch.equal(flat[i], flat[j])), None)
        if row is None:
            row = len(kept)
            kept.append(i)
            first.setdefault(group, []).append((i, row))
        inverse.append(row)
    if len(kept) == len(images):
        repeats.append(None)
        return images
    repeats.append(np.array(inverse))
    return images[kept]


def _batches(stacks, owners, batch_size):
    """Yield batches (lists of chunks of slices) of ``batch_size`` slices from ``(key,
    images)`` stacks, the last one smaller, appending ``(key, n_slices)`` to ``owners``
    as each stack comes."""
    queued = deque()  # slices waiting for a batch, in chunks
    for key, images in stacks:
        owners.append((key, len(images)))
        queued.append(images)
        while sum(map(len, queued)) >= batch_size:
            yield _take(queued, batch_size)
    while queued:
        yield _take(queued, batch_size)


def _take(queued, n):
    """Up to ``n`` slices from the front of ``queued``, as a list of chunks."""
    chunks = []
    while queued and n:
        chunk = queued.popleft()
        if len(chunk) > n:
            queued.appendleft(chunk[n:])
            chunk = chunk[:n]
        chunks.append(chunk)
        n -= len(chunk)
    return chunks


def _finished(owners, embedded):
    """Yield ``(key, features)`` of the volumes at the front of ``owners`` whose slices
    are all in ``embedded``, removing them from both."""
    while owners and sum(map(len, embedded)) >= owners[0][1]:
        key, count = owners.popleft()
        rows = np.concatenate(embedded)
        embedded[:] = [rows[count:]]
        yield key, rows[:count].copy()  # not a view holding the rows after it
