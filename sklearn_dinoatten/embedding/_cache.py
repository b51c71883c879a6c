"""Content-addressed cache of per-volume slice embeddings.

A key hashes a volume's stored voxels (once per volume), the slices kept of it and
everything that shapes their embedding (preprocessing, backbone, weights), so a volume is
embedded at most once per configuration, whatever its path or however often a pipeline
is cloned.

Two levels: a process-wide in-memory LRU, shared by every embedder (and so by every
clone made by ``cross_val_score`` or ``GridSearchCV``), and an optional directory that
outlives the process. Disk entries are written atomically (temporary file, then
``os.replace``) and carry a checksum of their key, shape and content: a damaged entry,
an entry moved to another key's place or one of another shape than asked for is deleted
and recomputed, never returned.
"""

import hashlib
import os
import threading
import warnings
from collections import OrderedDict

import numpy as np

from ..utils._files import atomic_write, can_write, writable_folder
from ..volumes import scan_identity

MEMORY_CACHE_BYTES = 2 * 1024**3


class _MemoryLRU:
    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self._items = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key, value):
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._bytes += value.nbytes
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= dropped.nbytes

    def clear(self):
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self):
        return len(self._items)


_MEMORY = _MemoryLRU(MEMORY_CACHE_BYTES)


# (file identity, settings) -> the keys of its content: a file seen before is looked up
# without reading it again, as long as its identity (volumes.scan_identity) is unchanged.
_FILE_KEYS = {}


def clear_memory_cache():
    """Forget every embedding held in this process's memory (the disk cache stays)."""
    _MEMORY.clear()
    _FILE_KEYS.clear()


def _file_identity(volume, settings):
    if not isinstance(volume, (str, os.PathLike)):
        return None
    return scan_identity(volume), settings


def remembered_file_key(volume, settings):
    """``[(key, shape)]``, one per slicing axis, of the embeddings last computed for this
    file with these settings, if the file is unchanged; ``None`` for arrays and for files
    not seen (or changed) since."""
    identity = _file_identity(volume, settings)
    return None if identity is None else _FILE_KEYS.get(identity)


def remember_file_key(volume, settings, parts):
    identity = _file_identity(volume, settings)
    if identity is not None:
        _FILE_KEYS[identity] = parts


def cache_key(digest, selection, config):
    """The key of a slice set: the digest of its volume's stored voxels (``Scan.digest``),
    the slices and region kept (a ``SliceSelection``), and the configuration string
    that embeds them."""
    kept = (f"{selection.axis}|{np.asarray(selection.indices).tolist()}|{selection.region}|"
            f"{tuple(map(float, selection.pixel_size))}")
    return hashlib.sha256(f"{config}|{digest}|{kept}".encode()).hexdigest()


def cache_folder_is_writable(cache_dir, name):
    """Whether embeddings can be written to ``cache_dir``, created if absent: ``False``
    for a folder that exists but cannot be written (a shared cache, read-only), which is
    read from; ``ValueError`` naming ``name`` for one that cannot be created."""
    path = os.fspath(cache_dir)
    if os.path.isdir(path):
        return can_write(path)
    writable_folder(path, name)
    return True


def open_cache(cache_dir, name="cache_dir"):
    """The :class:`EmbeddingCache` of ``cache_dir`` (``None``: memory only); a folder
    that exists but cannot be written is only read, with a warning."""
    read_only = cache_dir is not None and not cache_folder_is_writable(cache_dir, name)
    if read_only:
        warnings.warn(f"{name} {os.fspath(cache_dir)!r} cannot be written: embeddings are "
                      "read from it, and those it lacks are kept in memory only.",
                      UserWarning, stacklevel=4)
    return EmbeddingCache(cache_dir, read_only)


class EmbeddingCache:
    """Look up and store embeddings by key, in memory and in ``cache_dir`` if given;
    ``read_only``: ``cache_dir`` is only read, what is stored stays in memory."""

    def __init__(self, cache_dir=None, read_only=False):
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self.read_only = read_only

    def get(self, key, shape):
        """The embedding stored under ``key``, if it has ``shape``; else ``None``."""
        value = _MEMORY.get(key)
        if value is None and self.cache_dir is not None:
            value = self._read(key, tuple(shape))
            if value is not None:
                _MEMORY.put(key, value)
        return value if value is not None and value.shape == tuple(shape) else None

    def put(self, key, value):
        value = np.ascontiguousarray(value, dtype=np.float32)
        value.setflags(write=False)
        _MEMORY.put(key, value)
        if self.cache_dir is not None and not self.read_only:
            self._write(key, value)

    def _path(self, key):
        return os.path.join(self.cache_dir, key[:2], key + ".npz")

    def _read(self, key, shape):
        path = self._path(key)
        if not os.path.exists(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as entry:
                value, checksum = entry["embedding"], str(entry["sha256"])
            if value.shape != shape or _checksum(key, value) != checksum:
                raise ValueError("not the entry of this key")
        except Exception:  # damaged entry: drop it so it is recomputed
            try:
                os.remove(path)
            except OSError:
                pass
            return None
        value.setflags(write=False)
        return value

    def _write(self, key, value):
        checksum = _checksum(key, value)
        atomic_write(self._path(key),
                     lambda f: np.savez(f, embedding=value, sha256=np.array(checksum)))


def _checksum(key, value):
    """sha256 of an entry's key, shape, dtype and content."""
    digest = hashlib.sha256(f"{key}|{value.shape}|{value.dtype.str}".encode())
    digest.update(np.ascontiguousarray(value).data)
    return digest.hexdigest()
