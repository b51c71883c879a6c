"""The hooks :mod:`sklearn_dinoatten.persistence` calls to save and load the torch
modules of a fitted estimator, with their defaults (an estimator without networks)."""


class PersistableMixin:
    """Hooks of :func:`~sklearn_dinoatten.persistence.save_model` and
    :func:`~sklearn_dinoatten.persistence.load_model`.

    Parameters and plain fitted attributes (arrays, numbers, strings) are saved by the
    loader itself; networks, devices and compiled functions are not, and are rebuilt on
    load through these hooks.

    Attributes
    ----------
    _fitted_constraints : dict of str -> list of Constraint
        The plain fitted attributes a saved model may hold, and the values each may take
        (any one of its constraints): the loader checks every one it reads, and refuses
        one not declared, before the estimator is used. Default: none.
    """

    _fitted_constraints = {}

    def _saved_modules(self):
        """The fitted networks to save, by name. Default: none."""
        return {}

    def _empty_modules(self):
        """Networks of the fitted shape, by the same names, to load the saved weights
        into (built on the "meta" device first, to check the file). Default: none."""
        return {}

    def _restore(self, modules):
        """Put the loaded networks to use (and rebuild what depends on them, such as
        the device). Default: nothing."""
