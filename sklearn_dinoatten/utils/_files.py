"""Atomic writes of files and folders: a reader sees the old one or the whole new one,
never a part."""

import csv
import hashlib
import io
import os
import shutil
import tempfile
from contextlib import contextmanager


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
        os.chmod(tmp, _plain_mode(0o666))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@contextmanager
def atomic_folder(path):
    """Yield a new folder beside ``path`` to fill; when the block ends it replaces
    ``path`` whole (an earlier folder there is removed only once the new one is in
    place). If the block fails, or the final rename does, the new folder is removed and
    ``path`` is left as it was."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    folder = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.")
    try:
        yield folder
        os.chmod(folder, _plain_mode(0o777))  # mkdtemp's folder is private
        if os.path.exists(path):
            old = folder + ".old"
            os.rename(path, old)
            try:
                os.rename(folder, path)
            except BaseException:
                os.rename(old, path)  # the earlier folder back in place
                raise
            shutil.rmtree(old)
        else:
            os.rename(folder, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def staged_files(folder):
    """Yield a new hidden folder inside the existing ``folder`` to write files in; when
    the block ends they are moved into ``folder``, each replacing any file of its name.
    If the block fails, they are removed and ``folder`` is left as it was."""
    stage = tempfile.mkdtemp(dir=folder, prefix=".staged.")
    try:
        yield stage
        for name in sorted(os.listdir(stage)):
            os.replace(os.path.join(stage, name), os.path.join(folder, name))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def check_file(path, what):
    """Raise ``FileNotFoundError`` saying that ``what`` (``"Volume file"``) ``path`` does
    not exist, or is a folder, unless it is a file."""
    if not os.path.isfile(path):
        problem = "is a folder, not a file" if os.path.isdir(path) else "does not exist"
        raise FileNotFoundError(f"{what} {str(os.fspath(path))!r} {problem}.")


def file_sha256(path):
    """The SHA-256 of a file's bytes, as ``sha256sum`` prints it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_identity(path):
    """What tells, without reading it, that the file at ``path`` still holds what it
    held: its real path, device, inode, size, and modification and change times.
    Copies that keep the modification time (``cp -p``, ``rsync -a``, ``tar x``) still
    move the change time (ctime), which no program can set back, or give a new inode."""
    stat = os.stat(path)
    return (os.path.realpath(path), stat.st_dev, stat.st_ino, stat.st_size,
            stat.st_mtime_ns, stat.st_ctime_ns)


def _plain_mode(bits):
    """The permissions a plain ``open`` or ``mkdir`` would give: ``bits`` less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return bits & ~umask


def can_write(folder):
    """Whether a file can be created in the existing ``folder``."""
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


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


def write_csv(path, rows):
    """Write ``rows`` (dicts with the same keys) as a CSV file with a header, atomically;
    values as ``str`` gives them."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda f: f.write(text.getvalue().encode("utf-8")))
