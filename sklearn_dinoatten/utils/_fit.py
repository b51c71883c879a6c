"""The fit contract every estimator follows, as scikit-learn's ``_fit_context``.

``fit`` is decorated with :func:`fit_context`, which, before any work, checks every
parameter against the class's declared constraints (a nonsense setting such as
``temperature=0`` is one clear error instead of NaN probabilities or a traceback from
inside torch); records the parameters that shape what ``fit`` builds; and leaves the
estimator unfitted if ``fit`` raises or is interrupted. Methods that use the fitted
state call :func:`check_fitted`, which also refuses a fitted estimator whose
``set_params`` changed one of those parameters since.
"""

import functools

from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from ._validation import InvalidParameterError


class FitContractMixin:
    """The declarations the fit contract reads, with their defaults.

    Attributes
    ----------
    _constraints : dict of str -> list of Constraint
        The values each parameter may take (any one of its constraints); every
        parameter must be declared. Default: none (an estimator without parameters).
    _params_fixed_by_fit : tuple of str
        The parameters whose value shapes what ``fit`` builds (nested ones as
        ``"embedder__image_size"``): changing one after ``fit`` is refused by
        :func:`check_fitted` until the next ``fit``. Default: none.
    """

    _constraints = {}
    _params_fixed_by_fit = ()

    def _routed_params(self):
        """Parameters beyond the signature, passed on unchecked to an object the
        estimator builds (a skorch net's ``optimizer__weight_decay``). Default: none."""
        return {}


def fit_context(fit):
    """Decorate an estimator's ``fit``: parameters checked first, the parameters fixed by
    fit recorded, and no fitted attribute (``name_``) left if it raises, interrupts
    included, so that a failed ``fit`` never leaves a model that looks fitted."""
    @functools.wraps(fit)
    def wrapper(estimator, *args, **kwargs):
        check_params(estimator)
        record_fitted_params(estimator)
        try:
            return fit(estimator, *args, **kwargs)
        except BaseException:
            for name in [n for n in vars(estimator) if n.endswith("_")
                         and not n.startswith("__")]:
                delattr(estimator, name)
            raise

    return wrapper


def check_params(estimator, constraints=None):
    """Raise :class:`InvalidParameterError` for the first parameter of ``estimator`` outside
    its constraints (by default its class's ``_constraints``), and those of the estimators
    it holds as parameters (an embedder). Every parameter must be declared, except the
    routed ones (``optimizer__weight_decay``, ...), which go to their owners unchanged."""
    contract = isinstance(estimator, FitContractMixin)
    declared = type(estimator)._constraints if constraints is None else constraints
    routed = estimator._routed_params() if contract else {}
    for name, value in estimator.get_params(deep=False).items():
        if name in routed:
            continue
        if name not in declared:
            raise ValueError(f"{type(estimator).__name__} has no parameter {name!r} that "
                             "can be checked.")
        allowed = declared[name]
        if not any(constraint.accepts(value) for constraint in allowed):
            raise InvalidParameterError(
                estimator, name, " or ".join(c.description for c in allowed), value)
        if isinstance(value, FitContractMixin):  # an estimator held as a parameter
            check_params(value)


def record_fitted_params(estimator):
    """Remember the values of the parameters that shape what ``fit`` builds, for
    :func:`check_fitted`; also called when a saved model is loaded."""
    params = estimator.get_params()
    estimator._params_at_fit = {name: params.get(name)
                                for name in estimator._params_fixed_by_fit}


def check_fitted(estimator):
    """Raise ``NotFittedError`` before ``fit``, and ``ValueError`` after ``set_params``
    changed a parameter that shaped the fit (the backbone's input size, the
    preprocessing, ...): the fitted state follows the old value, so results would mix the
    two, or fail inside torch."""
    check_is_fitted(estimator)
    params = estimator.get_params()
    for name, value in estimator._params_at_fit.items():
        current = params.get(name)
        same = current is value or (current == value and isinstance(current, bool)
                                    == isinstance(value, bool))  # True is not 1 here
        if not same:
            raise ValueError(
                f"{type(estimator).__name__}: {name} was changed from {value!r} to "
                f"{current!r} after fit; call fit again (or set it back)."
            )


def is_fitted(estimator):
    """Whether ``estimator`` is fitted (scikit-learn's test: attributes ending in ``_``);
    a fitted estimator given to a study is used as it is."""
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True
