"""The API reference (docs/api.rst) has a page for every public name: each name of each
subpackage's ``__all__`` is listed under its module, or, when it is one of the estimators
the package itself exports, under the package."""

import importlib
import pathlib
import re

import pytest

import sklearn_dinoatten

API = pathlib.Path(__file__).parents[1] / "docs" / "api.rst"
MODULES = ["sklearn_dinoatten", "sklearn_dinoatten.volumes", "sklearn_dinoatten.embedding",
           "sklearn_dinoatten.embedding.backbones", "sklearn_dinoatten.classifiers",
           "sklearn_dinoatten.nn", "sklearn_dinoatten.anomaly", "sklearn_dinoatten.explain",
           "sklearn_dinoatten.evaluation", "sklearn_dinoatten.datasets",
           "sklearn_dinoatten.persistence", "sklearn_dinoatten.cli"]


def _documented():
    """``{module: names}`` of the autosummary tables of docs/api.rst."""
    documented, module = {}, None
    for line in API.read_text().splitlines():
        if match := re.match(r"\.\. currentmodule:: (\S+)", line):
            module = match.group(1)
        elif re.match(r"   [A-Za-z_]\w*$", line) and module:
            documented.setdefault(module, set()).add(line.strip())
    return documented


def test_every_subpackage_has_a_section():
    assert set(_documented()) == set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_has_a_page(name):
    documented, module = _documented(), importlib.import_module(name)
    top = {id(getattr(sklearn_dinoatten, n)) for n in documented["sklearn_dinoatten"]}
    missing = [n for n in module.__all__ if n != "__version__"
               and n not in documented[name] and id(getattr(module, n)) not in top]
    assert not missing
    assert documented[name] <= set(module.__all__)  # nothing listed that is not public
