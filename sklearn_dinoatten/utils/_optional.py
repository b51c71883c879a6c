"""Optional dependencies: imported where an option needs them, with one line naming the
extra to install when they are missing."""

from importlib import import_module


class MissingExtraError(ImportError):
    """An option's optional dependency is not installed; the message names the extra."""


def optional_import(name, extra, option):
    """Module ``name``, installed by ``pip install 'sklearn-dinoatten[<extra>]'``; without
    it, a :class:`MissingExtraError` saying that ``option`` needs that extra."""
    try:
        return import_module(name)
    except ImportError:
        raise MissingExtraError(f"{option} needs the {extra} extra: pip install "
                                f"'sklearn-dinoatten[{extra}]'") from None
