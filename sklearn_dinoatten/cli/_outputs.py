"""Where a command writes: its run folder or output file, checked before any work, and
the embedding cache it uses."""

import os

from ..utils._files import atomic_folder, writable_folder

PROG = "dinoatten"


class CommandError(Exception):
    """A problem with the command's input, reported as one line."""


def run_directory(out, overwrite=False):
    """An atomic folder for a run at ``out`` (see :func:`atomic_folder`): ``out`` may be
    absent or empty, or, with ``overwrite``, an earlier run (a folder holding run.json),
    which the new run replaces whole, its report included; anything else is refused
    before any work."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise CommandError(f"--out {out!r} is a file; give a folder for the results.")
    if os.path.isdir(out) and os.listdir(out):
        if not os.path.isfile(os.path.join(out, "run.json")):
            raise CommandError(f"--out {out!r} holds files that are not a {PROG} run; give a "
                               "new or empty folder.")
        if not overwrite:
            raise CommandError(f"--out {out!r} holds a run already: pass --overwrite to "
                               "replace it whole (its report too), or give a new folder.")
    return atomic_folder(out)


def output_file(path, overwrite=True, inputs=()):
    """Check, before any work, that a file can be written at ``path``: not one of the
    command's ``inputs``, and, unless ``overwrite``, not there already."""
    if os.path.isdir(path):
        raise CommandError(f"--out {path!r} is a folder; give a file name.")
    if any(os.path.exists(path) and os.path.exists(given) and os.path.samefile(path, given)
           for given in inputs):
        raise CommandError(f"--out {path!r} is one of the command's inputs (the model or a "
                           "scan); give another file.")
    if not overwrite and os.path.exists(path):
        raise CommandError(f"--out {path!r} exists; pass --overwrite to replace it.")
    writable_folder(os.path.dirname(os.path.abspath(path)), "--out's folder")
    return path


def cache_of(args):
    """The on-disk embedding cache the command uses, or None."""
    if args.command == "demo":
        return os.path.join(args.out, "cache")
    return getattr(args, "cache_dir", None)
