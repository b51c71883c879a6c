"""An external test of models fitted elsewhere: its labels as the models' classes, their
positive class, and a word where the scans scored include the models' training scans."""

import warnings

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._methods import method_name
from ._operating_point import OperatingPointClassifier


def fitted_classes(y, methods):
    """``y`` as the classes of methods fitted elsewhere (an external test set): labels
    are matched to each method's ``classes_`` by name (``"1"`` is ``1``); labels whose
    classes are not exactly the methods' raise ``ValueError`` naming both."""
    y = np.asarray(y)
    given = sorted(set(map(str, y.tolist())))
    by_name = None
    for key, estimator in methods.items():
        check_is_fitted(estimator)
        classes = np.asarray(estimator.classes_).tolist()
        by_name = {str(c): c for c in classes}
        if given != sorted(by_name):
            raise ValueError(
                f"The labels' classes are {given}; {method_name(key)} was fitted on "
                f"{sorted(by_name)}: an external test set is scored on the model's classes, "
                "each present (matched by name).")
    return y if by_name is None else np.array([by_name[str(label)] for label in y.tolist()])


def external_labels(y, methods, pos_label, protocol):
    """``(y, pos_label)`` of an external test of fitted models: the labels as their
    classes (:func:`fitted_classes`), their positive class (:func:`models_positive`); a
    warning where the protocol says their training scans are among those scored."""
    y, pos_label = fitted_classes(y, methods), models_positive(methods, pos_label=pos_label)
    if protocol.training_scans:
        warnings.warn(f"{protocol.training_scans} of the {len(y)} scans were used to train "
                      "this model: this is not an external test, and its metrics say "
                      "nothing of how the model does on other scans.", UserWarning,
                      stacklevel=4)
    return y, pos_label


def models_positive(methods, *, pos_label=None):
    """The positive class of an external test of fitted models: that of the
    OperatingPointClassifier models (``pos_label``, if given, must be theirs), else
    ``pos_label``."""
    own = {str(m.pos_label_): m.pos_label_ for m in methods.values()
           if isinstance(m, OperatingPointClassifier) and m.pos_label_ is not None}
    if len(own) > 1:
        raise ValueError(f"The models call different classes positive ({sorted(own)}): "
                         "score them in separate evaluations.")
    if own and pos_label is not None and str(pos_label) not in own:
        raise ValueError(f"The model calls {next(iter(own.values()))!r} positive at its "
                         f"threshold, not {pos_label!r}: leave the positive class out, or "
                         "give the model's.")
    return next(iter(own.values())) if own else pos_label
