"""Recalibration maps of a classifier's probabilities, fitted on scores of scans it was
not fitted on, and kept as arrays (a saved model holds them as tensors).

- ``"platt"``: Platt scaling on the logit, ``q = expit(a * logit(p) + b)``, a logistic
  regression of the truth on the logit of the probability with Platt's targets
  (``(n+ + 1) / (n+ + 2)`` and ``1 / (n- + 2)``, so that the fit is finite on separated
  scores); a well-calibrated model gets ``a`` near 1 and ``b`` near 0. One map is the
  array ``[a, b]``.
- ``"isotonic"``: isotonic regression (scikit-learn's :class:`~sklearn.isotonic.
  IsotonicRegression`, non-decreasing, clipped outside the scores it was fitted on). One
  map is the array of its knots, ``(n_knots, 2)``: scores and calibrated values,
  interpolated linearly.

Two classes: one map of the second class's probability, the first's its complement (as
scikit-learn's ``CalibratedClassifierCV``); more: one map per class against the rest,
the rows then normalised to sum to 1.

A map must increase with the probability: a Platt fit with a slope of 0 or less (scores
that rank the classes the wrong way, or not at all) would reverse or erase the
classifier's order, and an isotonic fit that is flat would erase it. Such a fit is
not applied: :func:`fit_maps` returns None with the reason.
"""

import numpy as np
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression

from ..utils._options import RECALIBRATIONS
from ._clinical import logistic_fit, logit


def fit_maps(method, proba, y_index):
    """``(maps, None)``: the recalibration maps of ``proba`` (columns of the classes,
    ``y_index`` each scan's column), one per calibrated column; ``(None, reason)`` where
    a map would not increase with its probability."""
    columns = [1] if proba.shape[1] == 2 else range(proba.shape[1])
    maps = []
    for column in columns:
        score, truth = proba[:, column], (y_index == column).astype(float)
        fitted = _fit_platt(score, truth) if method == "platt" else _fit_isotonic(score, truth)
        reason = _not_increasing(method, fitted)
        if reason:
            return None, reason
        maps.append(fitted)
    return maps, None


def apply_maps(method, maps, proba):
    """``proba`` recalibrated by the ``maps`` of :func:`fit_maps`; rows sum to 1."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape[1] == 2:
        positive = _apply(method, maps[0], proba[:, 1])
        return np.column_stack([1 - positive, positive])
    calibrated = np.column_stack([_apply(method, m, proba[:, c]) for c, m in enumerate(maps)])
    total = calibrated.sum(axis=1, keepdims=True)
    uniform = np.full_like(calibrated, 1 / calibrated.shape[1])  # every column mapped to 0
    return np.where(total > 0, calibrated / np.where(total > 0, total, 1), uniform)


def check_maps(method, maps, n_classes):
    """Raise ``ValueError`` unless ``maps`` are what :func:`fit_maps` makes for
    ``method`` and ``n_classes``: the right number of finite float arrays of the right
    shape, each increasing (a saved model's maps are checked so before use)."""
    if method not in RECALIBRATIONS:
        raise ValueError(f"recalibration {method!r} is not one of {RECALIBRATIONS}")
    expected = 1 if n_classes == 2 else n_classes
    if not isinstance(maps, list) or len(maps) != expected:
        raise ValueError(f"{method} recalibration needs {expected} map(s) for {n_classes} "
                         f"classes; got {type(maps).__name__} of "
                         f"{len(maps) if isinstance(maps, list) else 'no'} items")
    for m in maps:
        shape_ok = isinstance(m, np.ndarray) and m.dtype.kind == "f" and (
            m.shape == (2,) if method == "platt" else (m.ndim == 2 and m.shape[1] == 2
                                                       and len(m) >= 1))
        if not shape_ok or not np.isfinite(m).all():
            raise ValueError(f"each {method} map must be finite floats of shape "
                             f"{'(2,)' if method == 'platt' else '(n_knots, 2)'}; got "
                             f"{getattr(m, 'shape', type(m).__name__)}")
        if method == "isotonic" and ((np.diff(m[:, 0]) <= 0).any()
                                     or (np.diff(m[:, 1]) < 0).any()
                                     or m[:, 1].min() < 0 or m[:, 1].max() > 1):
            raise ValueError("an isotonic map's scores must increase and its values rise "
                             "within [0, 1]")
        reason = _not_increasing(method, m)
        if reason:
            raise ValueError(f"a {method} map of slope {m[0]:.3g}: {reason}" if method ==
                             "platt" else f"an isotonic map: {reason}")


def _fit_platt(score, truth):
    n_positive = truth.sum()
    target = np.where(truth == 1, (n_positive + 1) / (n_positive + 2),
                      1 / (len(truth) - n_positive + 2))
    x = logit(score)
    return logistic_fit(target, np.column_stack([x, np.ones(len(x))]))  # [a, b]


def _fit_isotonic(score, truth):
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(score, truth)
    return np.column_stack([isotonic.X_thresholds_, isotonic.y_thresholds_]).astype(np.float64)


def _apply(method, fitted, score):
    if method == "platt":
        slope, intercept = fitted
        return expit(slope * logit(score) + intercept)
    return np.interp(score, fitted[:, 0], fitted[:, 1])  # clipped beyond the end knots


def _not_increasing(method, fitted):
    """Why a fitted map does not increase with the probability, or None (in words that
    do not depend on the fit, so that a study's splits say it once)."""
    if method == "platt" and not (np.isfinite(fitted).all() and fitted[0] > 0):
        return ("its slope on the logit is not positive: the scores it was fitted on rank "
                "the classes the wrong way (or not at all), and it would reverse (or erase) "
                "the classifier's order")
    if method == "isotonic" and fitted[:, 1].min() == fitted[:, 1].max():
        return ("it is flat: the scores it was fitted on do not rank the classes, and it "
                "would erase the classifier's order")
    return None
