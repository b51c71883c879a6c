"""Public names of a package imported on first use, so that importing the package (and
``dinoatten --help``) does not load torch or scikit-learn."""

from importlib import import_module


def lazy_exports(package, modules):
    """``(__getattr__, __dir__)`` for ``package`` whose public names are defined in the
    modules ``modules`` maps them to (relative to ``package``)."""
    namespace = import_module(package).__dict__

    def __getattr__(name):
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(modules[name], package), name)
        namespace[name] = value  # looked up once
        return value

    def __dir__():
        return sorted({*namespace, *modules})

    return __getattr__, __dir__
