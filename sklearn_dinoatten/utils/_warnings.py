"""Warnings about a configuration, given once per process: a search or a cross-validation
fits the same configuration many times, and each fit would otherwise say the same."""

import warnings

_GIVEN = set()  # the keys of the warnings given in this process


def warn_once(message, category=UserWarning, stacklevel=2, key=None):
    """``warnings.warn(message)``, unless this process has given it before: the same
    ``key`` (the configuration it is about; by default the text). Python's own filters
    key on the code location too, and are reset by the ``catch_warnings`` blocks that
    scikit-learn and test runners use."""
    key = message if key is None else key
    if key in _GIVEN:
        return
    _GIVEN.add(key)
    warnings.warn(message, category, stacklevel=stacklevel + 1)
