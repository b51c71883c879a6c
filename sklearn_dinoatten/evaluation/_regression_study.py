"""The steps of a study of a number that differ from classification's: every regressor
fitted on every split (with its bias-corrected predictions, where asked), the training
mean as the floor, and the tables, caption and record of the run."""

import numpy as np

from ._methods import CORRECTED, TRAINING_MEAN, method_name
from ._regression_out_of_fold import corrected, cross_validate_regressor, training_mean
from ._regression_table import (
    regression_caption,
    regression_subgroup_table,
    regression_table,
)


def regression_results(study, inputs):
    """Method key -> ``RegressionOutOfFold``: each method on every split, then the
    training mean (not in an external test, whose fitted methods have no training
    scans), each followed by its bias-corrected predictions (``"<key>+bias-corrected"``)
    with a bias correction."""
    splits, results = study.protocol.splits, {}
    options = dict(groups=study.protocol.groups, bias_correction=study.bias_correction,
                   random_state=study.random_state)
    for n, (key, (estimator, source)) in enumerate(study.evaluated.items(), 1):
        if study.verbose:
            print(f"  {method_name(key)} ({n}/{len(study.evaluated)}):", flush=True)
        results[key] = cross_validate_regressor(estimator, inputs[source], study.y, splits,
                                                verbose=study.verbose, **options)
    if not study.external:
        results[TRAINING_MEAN] = training_mean(study.y, splits, **options)
    if not study.bias_correction:
        return results
    return {k: r for key, result in results.items()
            for k, r in ((key, result), (key + CORRECTED, _corrected(result, study.y, splits)))}


def _corrected(result, y, splits):
    """A result whose test predictions are bias-corrected by their split's line (its
    fit time is the method's: NaN here)."""
    pred = np.full(len(y), np.nan)
    for split, correction in zip(splits, result.corrections, strict=True):
        pred[split.test] = corrected(y[split.test], result.pred[split.test], correction)
    return type(result)(pred, None, None, [np.nan], result.corrections)


def regression_parts(study, results, reference):
    """The regression run's ``calls`` (its record of the bias correction), caption,
    metrics table and subgroup table."""
    y, groups = study.y, study.protocol.groups
    tables = dict(reference=reference, groups=groups, random_state=study.random_state)
    calls = {"bias_correction": study.bias_correction}
    if study.bias_correction:
        calls["corrections"] = {k: [list(c) for c in r.corrections]
                                for k, r in results.items()
                                if r.corrections and not k.endswith(CORRECTED)}
    caption = regression_caption(
        study.protocol, study.target_name, reference=reference,
        random_weights=any(e.weights == "random" for e in study.embedders.values()),
        encoders=list(study.embedders), bias_correction=study.bias_correction,
        floor=TRAINING_MEAN in results,
        compared=len([k for k in results if not k.endswith(CORRECTED)]) > 1)
    return dict(
        calls=calls, caption=caption, metrics=regression_table(y, results, **tables),
        subgroups=(regression_subgroup_table(y, results, study.subgroups, **tables)
                   if study.subgroups else None))


def describe_target(y, name):
    """run.json's record of a number's target: its name, range, mean and SD."""
    y = np.asarray(y, dtype=np.float64)
    return {"name": name, "min": float(y.min()), "max": float(y.max()),
            "mean": float(y.mean()), "sd": float(y.std())}
