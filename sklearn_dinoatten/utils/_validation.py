"""The constraints an estimator declares for its parameters (``_constraints``): each a
predicate with the words that say what it accepts, checked by
:func:`~sklearn_dinoatten.utils._fit.check_params` at the top of ``fit`` and before
:func:`~sklearn_dinoatten.persistence.load_model` rebuilds a saved estimator.
"""

import os
from numbers import Integral, Real

import numpy as np
import torch


class InvalidParameterError(ValueError):
    """A parameter outside its constraints: ``param`` must be ``allowed`` (in words); it
    is ``value``."""

    def __init__(self, estimator, param, allowed, value):
        super().__init__(f"{type(estimator).__name__}: {param} must be {allowed}; got "
                         f"{value!r}.")
        self.param, self.allowed, self.value = param, allowed, value


class Constraint:
    """A predicate on a value, with the words that describe what it accepts."""

    def __init__(self, accepts, description):
        self.accepts = accepts
        self.description = description


def _is_int(value):
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value)


def integer(low=None, high=None):
    """An integer (not a bool) in ``[low, high]``."""
    words = ("an integer" if low is None and high is None
             else f"an integer >= {low}" if high is None
             else f"an integer <= {high}" if low is None
             else f"an integer in [{low}, {high}]")
    return Constraint(lambda v: _is_int(v) and (low is None or v >= low)
                      and (high is None or v <= high), words)


def real(low=None, high=None, low_open=False, high_open=False):
    """A finite number in the interval given; an open end excludes its bound."""
    def accepts(value):
        return _is_real(value) and (
            low is None or (value > low if low_open else value >= low)) and (
            high is None or (value < high if high_open else value <= high))

    if high is None:
        words = f"a number {'>' if low_open else '>='} {low}"
    else:
        words = (f"a number in {'(' if low_open else '['}{low}, {high}"
                 f"{')' if high_open else ']'}")
    return Constraint(accepts, words)


def options(*values):
    """One of the given values (compared by type too: ``True`` is not ``1``)."""
    def accepts(value):
        value = value.item() if isinstance(value, np.generic) else value
        return any(type(value) is type(option) and value == option for option in values)

    return Constraint(accepts, f"one of {', '.join(map(repr, values))}")


def integers(low=1, length=None, min_length=1):
    """A tuple or list of integers >= ``low``, of ``length`` items (or at least
    ``min_length``)."""
    def accepts(value):
        return isinstance(value, (tuple, list)) and all(
            _is_int(v) and v >= low for v in value) and (
            len(value) == length if length is not None else len(value) >= min_length)

    count = f"{length}" if length is not None else f"{min_length} or more"
    return Constraint(accepts, f"a tuple of {count} integers >= {low}")


def label():
    """A class label: a string, a number or a bool."""
    return Constraint(lambda v: isinstance(v, (str, Real, bool, np.generic)),
                      "a class label (a string, a number or a bool)")


def classes_array():
    """A fitted classifier's ``classes_``: a 1D array of two or more distinct labels
    (numbers or strings), sorted."""
    def accepts(value):
        return (isinstance(value, np.ndarray) and value.ndim == 1 and len(value) >= 2
                and value.dtype.kind in "biufU" and np.array_equal(np.unique(value), value))

    return Constraint(accepts, "a sorted array of two or more distinct class labels")


def array(kinds, ndim, description):
    """A numpy array of ``ndim`` dimensions whose dtype kind is one of ``kinds``, finite
    where it holds numbers."""
    def accepts(value):
        return (isinstance(value, np.ndarray) and value.ndim == ndim
                and value.dtype.kind in kinds
                and (value.dtype.kind not in "f" or np.isfinite(value).all()))

    return Constraint(accepts, description)


def instance(kind, description):
    return Constraint(lambda v: isinstance(v, kind), description)


NONE = Constraint(lambda v: v is None, "None")
BOOLEAN = Constraint(lambda v: isinstance(v, (bool, np.bool_)), "True or False")
PATH = Constraint(lambda v: isinstance(v, (str, os.PathLike)), "a path")
VERBOSE = Constraint(lambda v: isinstance(v, (bool, np.bool_)) or (_is_int(v) and v >= 0),
                     "an integer >= 0")
RANDOM_STATE = Constraint(
    lambda v: v is None or isinstance(v, np.random.RandomState)
    or (_is_int(v) and 0 <= v < 2**32), "None, an integer in [0, 2**32 - 1] or a RandomState")
DICT = instance(dict, "a dict")
OPTIMIZER = Constraint(
    lambda v: isinstance(v, type) and issubclass(v, torch.optim.Optimizer),
    "a torch.optim.Optimizer class")


def _is_device(value):
    if isinstance(value, torch.device) or value == "auto":
        return True
    try:
        return isinstance(value, str) and torch.device(value) is not None
    except (RuntimeError, TypeError):
        return False


DEVICE = Constraint(_is_device, "'auto' or a torch device name ('cpu', 'cuda', 'cuda:1')")
