"""Atomic file writes: a reader sees the old file or the whole new one, never a part."""

import os
import tempfile


def atomic_write(path, write):
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it.

    The file gets the permissions a plain ``open`` would give; on any error, including
    an interrupt, the temporary file is removed and ``path`` is left as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    descriptor, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def writable_folder(path, name):
    """Create the folder ``path`` if needed and check that files can be written in it;
    ``ValueError`` naming it (``name``: the parameter or option) otherwise."""
    path = os.fspath(path)
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as exc:
        reason = "it is a file" if os.path.isfile(path) else exc.strerror or exc
        raise ValueError(f"{name} {path!r} cannot hold files: {reason}.") from None
    return path
