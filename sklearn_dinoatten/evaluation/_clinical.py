"""What a clinician acts on, beyond discrimination: how well the probabilities are
calibrated, the operating point a threshold gives, and the net benefit of acting on it.

Binary labels ``truth`` in {0, 1} and the positive class's probability ``score``:

- :func:`brier_score`, :func:`calibration_intercept_slope` (logistic recalibration:
  the intercept with the logit of the score as an offset, "calibration in the large",
  and the slope of the logit; 0 and 1 when calibrated), :func:`expected_calibration_error`;
- :func:`choose_threshold` applies a threshold rule (``0.5``, a number, ``"youden"``,
  ``"sensitivity=0.9"``, ``"specificity=0.9"``) to scores the threshold will not be
  applied to; :func:`operating_point` gives sensitivity, specificity, PPV, NPV and
  accuracy of the decisions it makes;
- :func:`net_benefit` (Vickers and Elkin 2006): true positives less false positives
  weighted by the odds of the threshold probability, per scan; and that of treating all.
"""


import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

THRESHOLD_RULES = ("youden", "sensitivity=<share>", "specificity=<share>", "<number>")
CALIBRATION_BINS = 10
INNER_FOLDS = 3  # the inner cross-validation that chooses a fold's threshold
_CLIP = 1e-12  # scores of exactly 0 or 1 have an infinite logit


def brier_score(truth, score):
    """Mean squared difference between the positive class's probability and the truth."""
    truth, score = np.asarray(truth, dtype=float), np.asarray(score, dtype=float)
    return float(np.mean((score - truth) ** 2))


def logit(score):
    """The log-odds of probabilities, clipped so that 0 and 1 stay finite."""
    score = np.clip(np.asarray(score, dtype=float), _CLIP, 1 - _CLIP)
    return np.log(score / (1 - score))


def calibration_intercept_slope(truth, score):
    """``(intercept, slope)`` of logistic recalibration: the slope is the coefficient of
    ``logit(score)`` in a logistic regression of the truth on it; the intercept is that
    of a logistic regression with ``logit(score)`` as an offset (slope fixed at 1).
    Perfect calibration gives ``(0, 1)``.

    The intercept exists whenever both classes are present, however overconfident the
    scores: it is the root of its score equation, which decreases from the number of
    positives to minus the number of negatives. The slope does not exist where the
    scores separate the classes (every positive's at least every negative's, or the
    reverse: the likelihood grows without bound); it is NaN there, and NaN is returned
    for nothing else.
    """
    return calibration_intercept(truth, score), calibration_slope(truth, score)


def calibration_intercept(truth, score):
    """The intercept of :func:`calibration_intercept_slope` alone."""
    return _offset_intercept(np.asarray(truth, dtype=float), logit(score))


def calibration_slope(truth, score):
    """The slope of :func:`calibration_intercept_slope` alone."""
    return _slope(np.asarray(truth, dtype=float), logit(score))


def _offset_intercept(truth, offset):
    """The root ``b`` of ``sum(truth - expit(b + offset)) = 0``, bracketed (NaN with one
    class, where it has none)."""
    if truth.min() == truth.max():
        return np.nan
    width = np.abs(offset).max() + 50.0  # expit(-50) < 2e-22: the sum has its sign there
    return float(brentq(lambda b: np.sum(truth - expit(b + offset)), -width, width,
                        xtol=1e-12, rtol=4 * np.finfo(float).eps))


def _slope(truth, x):
    positive, negative = x[truth == 1], x[truth == 0]
    if not len(positive) or not len(negative) or positive.min() >= negative.max() \
            or negative.min() >= positive.max():  # separated: no finite maximum
        return np.nan
    return float(logistic_fit(truth, np.column_stack([np.ones(len(x)), x]))[1])


def logistic_fit(target, design, iterations=100, tolerance=1e-10):
    """Maximum-likelihood coefficients of a logistic regression of ``target`` (in [0, 1]:
    labels, or Platt's soft targets) on the columns of ``design``: Newton's method with
    step halving, so that every step increases the likelihood and the fit converges
    wherever the maximum is finite. NaN when it is not (separated labels, a singular
    design)."""
    def log_likelihood(beta):
        z = design @ beta
        return float(np.sum(target * z - np.logaddexp(0.0, z)))

    beta = np.zeros(design.shape[1])
    current = log_likelihood(beta)
    for _ in range(iterations):
        p = expit(design @ beta)
        gradient = design.T @ (target - p)
        hessian = (design * (p * (1 - p))[:, None]).T @ design
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            break
        candidate = log_likelihood(beta + step)
        while candidate < current and np.abs(step).max() >= tolerance:
            step = step / 2  # halved until the likelihood does not fall
            candidate = log_likelihood(beta + step)
        if np.abs(step).max() < tolerance:
            return beta + step
        beta, current = beta + step, candidate
    return np.full(design.shape[1], np.nan)


def expected_calibration_error(truth, score, *, n_bins=CALIBRATION_BINS):
    """The mean absolute gap between the observed share of positives and the mean
    score in ``n_bins`` equal-width bins of the score, weighted by the bins' sizes."""
    truth, score = np.asarray(truth, dtype=float), np.asarray(score, dtype=float)
    # the bins of sklearn.calibration.calibration_curve(strategy="uniform")
    bins = np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], score)
    gaps = [abs(truth[bins == b].mean() - score[bins == b].mean()) * np.mean(bins == b)
            for b in np.unique(bins)]
    return float(np.sum(gaps))


def check_threshold(rule):
    """``rule`` as a number in (0, 1) or a rule string of :data:`THRESHOLD_RULES`;
    ``ValueError`` echoing what was given and naming the accepted forms otherwise."""
    given = rule
    if isinstance(rule, str):
        text = rule.strip().lower()
        if text == "youden":
            return text
        name, equals, share = text.partition("=")
        if equals and name in ("sensitivity", "specificity"):
            value = _number(share)
            if value is not None and 0 < value <= 1:
                return f"{name}={value}"
            raise ValueError(f"threshold {given!r}: the {name} must be a share in (0, 1], "
                             f"e.g. '{name}=0.9' (90 % is 0.9).")
        rule = _number(text)
    if isinstance(rule, (int, float)) and not isinstance(rule, bool) and 0 < rule < 1:
        return float(rule)
    raise ValueError(f"threshold must be a probability in (0, 1), 'youden', "
                     f"'sensitivity=<share>' or 'specificity=<share>' (a share in (0, 1]); "
                     f"got {given!r}.")


def _number(text):
    """``text`` as a finite number, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def is_data_driven(rule):
    """Whether a threshold rule is chosen from scores (not a fixed number)."""
    return isinstance(check_threshold(rule), str)


def choose_threshold(truth, score, rule):
    """The threshold ``rule`` gives on these scores (a scan is called positive when its
    score is at least the threshold): a number as it is; ``"youden"`` maximises
    sensitivity + specificity - 1; ``"sensitivity=s"`` is the highest threshold whose
    sensitivity is at least ``s`` (the best specificity there), ``"specificity=s"`` the
    lowest whose specificity is at least ``s``. Candidates are the scores themselves;
    on ties of the criterion, the middle one."""
    rule = check_threshold(rule)
    if not isinstance(rule, str):
        return rule
    truth, score = np.asarray(truth, dtype=int), np.asarray(score, dtype=float)
    if truth.min() == truth.max():
        raise ValueError(f"threshold={rule!r} needs scans of both classes to choose it on; "
                         "those it was to be chosen on (a fold's training scans, or the "
                         "'val' scans) hold one class.")
    candidates = np.unique(score)
    positive = score[truth == 1]
    negative = score[truth == 0]
    sensitivity = (positive[None, :] >= candidates[:, None]).mean(axis=1)
    specificity = (negative[None, :] < candidates[:, None]).mean(axis=1)
    if rule == "youden":
        best = np.flatnonzero(np.isclose(sensitivity + specificity,
                                         (sensitivity + specificity).max()))
        return float(candidates[best[len(best) // 2]])
    name, share = rule.split("=")
    share = float(share)
    if name == "sensitivity":  # sensitivity falls as the threshold rises
        return float(candidates[np.flatnonzero(sensitivity >= share - 1e-12).max()])
    return float(candidates[np.flatnonzero(specificity >= share - 1e-12).min()])


def decide(proba, classes, positive, threshold):
    """The labels of two-class probabilities (columns in the order of ``classes``):
    ``positive`` where its probability is at least ``threshold`` (a number, or one per
    row), else the other class."""
    classes = np.asarray(classes)
    column = classes.tolist().index(positive)
    return np.where(np.asarray(proba)[:, column] >= threshold, classes[column],
                    classes[1 - column])


def no_training_scans(rule):
    """The error of a threshold ``rule`` where there are no training scans to choose it
    on (an external test, new scans)."""
    return ValueError(f"threshold={rule!r} is chosen on training scans, and there are none "
                      "here: a model fitted with the rule (dinoatten fit --threshold "
                      f"{rule}) applies the threshold it chose, or give a number, e.g. "
                      "--threshold 0.37.")


def operating_point(truth, decided):
    """Sensitivity, specificity, PPV, NPV and accuracy of binary decisions (NaN where a
    share has no scans to be taken of)."""
    truth, decided = np.asarray(truth, dtype=bool), np.asarray(decided, dtype=bool)

    def share(hits, of):
        return float(hits.sum() / of.sum()) if of.any() else np.nan

    return dict(sensitivity=share(decided & truth, truth),
                specificity=share(~decided & ~truth, ~truth),
                ppv=share(decided & truth, decided), npv=share(~decided & ~truth, ~decided),
                accuracy=float(np.mean(decided == truth)))


def net_benefit(truth, score, thresholds):
    """Net benefit per scan of calling positive the scans whose score is at least each
    threshold probability ``t``: ``TP/n - FP/n * t / (1 - t)``."""
    truth, score = np.asarray(truth, dtype=bool), np.asarray(score, dtype=float)
    thresholds = np.asarray(thresholds, dtype=float)
    decided = score[None, :] >= thresholds[:, None]
    true_positive = (decided & truth).sum(axis=1) / len(truth)
    false_positive = (decided & ~truth).sum(axis=1) / len(truth)
    return true_positive - false_positive * thresholds / (1 - thresholds)


def treat_all_net_benefit(truth, thresholds):
    """Net benefit of calling every scan positive, at each threshold probability."""
    return net_benefit(truth, np.ones(len(truth)), thresholds)
