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
           "sklearn_dinoatten.nn", "sklearn_dinoatten.regressors", "sklearn_dinoatten.anomaly",
           "sklearn_dinoatten.explain",
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


ROOT = pathlib.Path(__file__).parents[1]


def test_the_readme_and_the_getting_started_page_give_the_same_durations():
    """Before: the tests took "about 5.5" minutes in one, "10 to 11" in the other."""
    def said(page):
        text = " ".join((ROOT / page).read_text().split())
        return re.search(r"the demo (?:then )?takes (.*?) minutes .*? the tests (about )?"
                         r"([\d.]+( to [\d.]+)?)", text).group(1, 3)

    assert said("README.md") == said("docs/user_guide/getting_started.md")


def test_gallery_pages_show_what_the_examples_print_only():
    """Before: a cell ending in ``ax.set_title(...)`` printed ``Text(0.5, 1.0, ...)``."""
    conf = {}
    source = (ROOT / "docs" / "conf.py").read_text()
    start = source.index("sphinx_gallery_conf = {")
    exec(source[start:source.index("\n}\n", start) + 3], {}, conf)
    assert conf["sphinx_gallery_conf"]["capture_repr"] == ()


def test_api_page_titles_wrap_rather_than_run_off_the_page():
    """An API page's title is a long dotted name (clipped at 1400 px before)."""
    source = (ROOT / "docs" / "conf.py").read_text()
    assert 'html_css_files = ["custom.css"]' in source and '"_static"' in source
    css = (ROOT / "docs" / "_static" / "custom.css").read_text()
    assert re.search(r"\.bd-article h1 \{\s*overflow-wrap: anywhere;", css)
