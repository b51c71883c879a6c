"""The package's shape, as the architecture section of the user guide describes it: small
modules, no reach into another module's private names, keyword-only estimator parameters,
one fit contract, one way to import an optional extra."""

import ast
import importlib
import inspect
import pathlib
import re

import pytest

import sklearn_dinoatten
from sklearn_dinoatten.utils._fit import fit_context
from sklearn_dinoatten.utils._validation import InvalidParameterError

PACKAGE = pathlib.Path(sklearn_dinoatten.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 400
SUBPACKAGES = ["anomaly", "classifiers", "cli", "datasets", "embedding", "embedding.backbones",
               "evaluation", "nn", "regressors", "volumes"]
ESTIMATORS = ["AttentionPoolClassifier", "AttentionPoolRegressor", "DinoSliceEmbedder",
              "FineTunedSliceClassifier", "ResNet3DClassifier", "ResNet3DRegressor",
              "SCMILClassifier", "SliceTransformerClassifier", "SliceTransformerRegressor",
              "VolumeResampler"]
DETECTORS = ["MemoryBankAnomalyDetector", "SpatialARAnomalyDetector"]


def _estimator_classes():
    from sklearn_dinoatten import anomaly

    return ([getattr(sklearn_dinoatten, name) for name in ESTIMATORS]
            + [getattr(anomaly, name) for name in DETECTORS])


def _is_private(name):
    return name.startswith("_") and not name.startswith("__")


def _private_definitions(tree):
    """Private names a module defines: at its top level, in its classes, or as
    ``self._name`` attributes; and, separately, those of its ``...Mixin`` classes."""
    names, hooks = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and _is_private(node.name):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        if isinstance(node, ast.ClassDef) and node.name.endswith("Mixin"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    hooks.add(item.name)
                elif isinstance(item, ast.Assign):
                    hooks.update(t.id for t in item.targets if isinstance(t, ast.Name))
    return {n for n in names if _is_private(n)}, {n for n in hooks if _is_private(n)}


def test_no_module_is_over_the_line_limit():
    long = {str(p.relative_to(PACKAGE)): n for p in MODULES
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_module_uses_another_modules_private_names():
    """A private name (``_name``) is used only in the module that defines it (on
    ``self``, or by a subclass through ``self``); other modules reach it through a public
    name. The hooks a documented mixin of ``utils`` declares with their defaults
    (``_constraints``, ``_saved_modules``, ...) are the exception: they are the protocol."""
    trees = {path: ast.parse(path.read_text()) for path in MODULES}
    defined, hooks = {}, set()
    for path, tree in trees.items():
        defined[path], module_hooks = _private_definitions(tree)
        if path.parent.name == "utils":
            hooks |= module_hooks
    everywhere = set().union(*defined.values())
    reaches = []
    for path, tree in trees.items():
        where = path.relative_to(PACKAGE)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "")
                                                     .startswith("sklearn_dinoatten")):
                reaches += [f"{where}:{node.lineno} imports {a.name}" for a in node.names
                            if _is_private(a.name)]
            elif isinstance(node, ast.Attribute) and _is_private(node.attr):
                base = node.value
                own = (isinstance(base, ast.Name) and base.id in ("self", "cls")) or (
                    isinstance(base, ast.Call) and isinstance(base.func, ast.Name)
                    and base.func.id == "super")
                if (not own and node.attr in everywhere and node.attr not in defined[path]
                        and node.attr not in hooks):
                    reaches.append(f"{where}:{node.lineno} uses .{node.attr}")
    assert not reaches, "\n".join(reaches)


def test_the_private_name_check_finds_a_reach_in(tmp_path):
    """The rule above on two small modules: one reaches into the other."""
    owner = ast.parse("class A:\n    def _inner(self):\n        return 1\n")
    user = ast.parse("def f(a):\n    return a._inner()\n")
    defined_owner, _ = _private_definitions(owner)
    defined_user, _ = _private_definitions(user)
    uses = [n.attr for n in ast.walk(user) if isinstance(n, ast.Attribute)]
    assert "_inner" in defined_owner and "_inner" not in defined_user and "_inner" in uses


def _imported_module(path, node):
    """The module (dotted, below the package) an ``import from`` of the package's file
    ``path`` names, or None for an import from outside the package."""
    if node.level == 0:
        module = node.module or ""
        return module.partition(".")[2] if module.startswith("sklearn_dinoatten.") else None
    base = list(path.relative_to(PACKAGE).parts[:-1])
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + (node.module.split(".") if node.module else []))


def _unit(module):
    """The subpackage a module (dotted, below the package) belongs to; '' for the
    package's own modules (explain, persistence)."""
    parts = module.split(".")
    return parts[0] if (PACKAGE / parts[0]).is_dir() else ""


def _back_doors(path, tree):
    """The imports of ``path`` that enter another subpackage (``utils`` aside) other than
    by its front door: a private module, or a name its ``__all__`` does not list."""
    here = _unit(".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        module = _imported_module(path, node)
        if not module or _unit(module) in (here, "utils"):
            continue
        where = f"{path.relative_to(PACKAGE)}:{node.lineno}"
        if any(_is_private(part) for part in module.split(".")):
            found.append(f"{where} imports from the private module {module}")
            continue
        exported = getattr(importlib.import_module(f"sklearn_dinoatten.{module}"), "__all__",
                           ())
        found += [f"{where} imports {a.name}, which {module}.__all__ does not list"
                  for a in node.names if a.name not in exported]
    return found


def test_subpackages_are_entered_by_their_front_doors():
    """A subpackage imports another (``utils`` aside) through its package, ``from
    ..evaluation import run_study``, never its private modules, and only names the
    package's ``__all__`` lists: what crosses a subpackage's line is its public API."""
    found = [line for path in MODULES for line in _back_doors(path, ast.parse(path.read_text()))]
    assert not found, "\n".join(found)


def test_the_front_door_check_finds_a_back_door():
    """The rule above on imports a module of the command line could write."""
    cli = PACKAGE / "cli" / "_commands.py"
    assert _back_doors(cli, ast.parse("from ..evaluation._study import run_study")) == [
        "cli/_commands.py:1 imports from the private module evaluation._study"]
    assert _back_doors(cli, ast.parse("from ..evaluation import run_study, helper")) == [
        "cli/_commands.py:1 imports helper, which evaluation.__all__ does not list"]
    assert not _back_doors(cli, ast.parse("from ..evaluation import run_study\n"
                                          "from ..utils._files import atomic_write\n"
                                          "from ._inputs import study_inputs"))


@pytest.mark.parametrize("cls", _estimator_classes(), ids=lambda cls: cls.__name__)
def test_estimator_parameters_are_keyword_only(cls):
    kinds = {p.name: p.kind for p in inspect.signature(cls.__init__).parameters.values()
             if p.name != "self"}
    positional = [name for name, kind in kinds.items()
                  if kind not in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD)]
    assert not positional
    with pytest.raises(TypeError, match="positional"):
        cls(None)


def _public_functions():
    """Every function a subpackage (or ``explain``, ``persistence``) lists in
    ``__all__``, once."""
    functions = {}
    for name in [*SUBPACKAGES, "explain", "persistence"]:
        module = importlib.import_module(f"sklearn_dinoatten.{name}")
        functions.update({f"{name}.{n}": getattr(module, n) for n in module.__all__
                          if inspect.isfunction(getattr(module, n))})
    return [pytest.param(name, f, id=name)
            for name, f in {id(f): (name, f) for name, f in functions.items()}.values()]


# Data arguments that have a default: the command line's words (sys.argv[1:] if None)
DATA_WITH_DEFAULT = {"cli.main": {"argv"}}


@pytest.mark.parametrize("name, function", _public_functions())
def test_public_functions_take_options_by_keyword(name, function):
    """Data arguments (those without a default) positionally, everything else by keyword
    (after ``*``), as scikit-learn's functions do."""
    positional = [p.name for p in inspect.signature(function).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                  and p.default is not p.empty
                  and p.name not in DATA_WITH_DEFAULT.get(name, ())]
    assert not positional, f"{name}: {positional} should be keyword-only"


@pytest.mark.parametrize("cls", _estimator_classes(), ids=lambda cls: cls.__name__)
def test_every_fit_follows_the_fit_contract(cls):
    """``fit`` is wrapped by :func:`fit_context`: a parameter outside its constraints is
    refused before any work (``X=None`` is never looked at), naming it."""
    assert cls.fit.__code__ is fit_context(lambda self: None).__code__
    first = list(inspect.signature(cls.__init__).parameters)[1]  # after self
    estimator = cls().set_params(**{first: object()})
    with pytest.raises(InvalidParameterError, match=rf"{cls.__name__}: {first} must be"):
        estimator.fit(None, None)
    assert not [name for name in vars(estimator) if name.endswith("_")]


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_each_subpackage_exports_what_its_all_lists(name):
    module = importlib.import_module(f"sklearn_dinoatten.{name}")
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert module.__all__ and not missing


def test_optional_extras_are_imported_in_one_place():
    """Every "needs the X extra" message comes from ``utils._optional.optional_import``."""
    saying = [str(p.relative_to(PACKAGE)) for p in MODULES if "extra: pip install"
              in p.read_text()]
    assert saying == ["utils/_optional.py"]


ARCHITECTURE = PACKAGE.parent / "docs" / "user_guide" / "architecture.md"


def _mapped_modules(text):
    """Module path (below the package) -> its one-line purpose, from the map of
    architecture.md: a tree of folders (``name/``) and modules (``name.py``), two spaces
    an indentation level."""
    tree = re.search(r"```text\nsklearn_dinoatten/\n(.*?)```", text, re.S).group(1)
    mapped, folders = {}, []
    for line in tree.splitlines():
        found = re.match(r"( +)(\S+/|\S+\.py)(?: +(.*))?$", line)
        if found is None:
            continue  # a purpose continued from the line above
        indent, name, purpose = found.groups()
        folders = folders[:len(indent) // 2 - 1]
        if name.endswith("/"):
            folders.append(name[:-1])
        else:
            mapped["/".join([*folders, name])] = purpose
    return mapped


def test_the_architecture_map_lists_every_module_with_its_purpose():
    mapped = _mapped_modules(ARCHITECTURE.read_text())
    modules = {str(p.relative_to(PACKAGE)) for p in MODULES
               if p.name != "__init__.py" or p.parent == PACKAGE}
    assert sorted(modules - set(mapped)) == [], "modules without their line in the map"
    assert sorted(set(mapped) - modules) == [], "lines of modules that do not exist"
    assert all(mapped.values()), [m for m, purpose in mapped.items() if not purpose]


def test_the_architecture_map_reader_sees_a_missing_line():
    text = ("```text\nsklearn_dinoatten/\n  volumes/   volumes\n    _scans.py   scans,\n"
            "                continued\n  explain.py   saliency\n```")
    assert _mapped_modules(text) == {"volumes/_scans.py": "scans,",
                                     "explain.py": "saliency"}
