"""Optional dependencies: imported where an option needs them, with one line naming the
extra to install when they are missing."""

from importlib import import_module


def optional_import(name, extra, option):
    """Module ``name``, installed by ``pip install 'sklearn-dinoatten[<extra>]'``; without
    it, an ``ImportError`` saying that ``option`` needs that extra."""
    try:
        return import_module(name)
    except ImportError:
        raise ImportError(f"{option} needs the {extra} extra: pip install "
                          f"'sklearn-dinoatten[{extra}]'") from None
