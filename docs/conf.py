"""Sphinx configuration: an API reference generated from the numpydoc docstrings
(autosummary), a gallery of examples run at build time (sphinx-gallery), and the user
guide's Markdown pages (MyST). Builds offline: no inventory, font or asset is fetched."""

import os
import sys
import warnings

sys.path.insert(0, os.path.abspath(".."))

import sklearn_dinoatten  # noqa: E402

project = "sklearn_dinoatten"
author = "The sklearn_dinoatten developers"
copyright = "2026, " + author
release = version = sklearn_dinoatten.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.md5", "sg_execution_times.rst"]
templates_path = ["_templates"]

# The API reference: a page per public name, its parameters once (numpydoc).
autosummary_generate = True
autosummary_imported_members = True
# Members a class inherits from the package's own mixins are its own (slice_reader());
# those of torch's Module and scikit-learn's bases (get_params, score...) are theirs.
autodoc_default_options = {
    "members": True,
    "inherited-members": "Module,BaseEstimator,ClassifierMixin,TransformerMixin,OutlierMixin",
    "exclude-members": ",".join(f"set_{method}_request" for method in (
        "fit", "predict", "predict_proba", "score", "transform", "partial_fit",
        "inverse_transform", "decision_function", "score_samples", "split"))
    + ",set_output,get_metadata_routing",
}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Warnings are errors (make docs runs sphinx -W): every reference to this package's own
# names must resolve; names of other libraries are not linked (no intersphinx: offline).
nitpicky = True


def _public_names():
    import importlib

    names = set()
    for module in ["sklearn_dinoatten", "sklearn_dinoatten.volumes", "sklearn_dinoatten.embedding",
                   "sklearn_dinoatten.embedding.backbones", "sklearn_dinoatten.classifiers",
                   "sklearn_dinoatten.nn", "sklearn_dinoatten.anomaly", "sklearn_dinoatten.explain",
                   "sklearn_dinoatten.evaluation", "sklearn_dinoatten.datasets",
                   "sklearn_dinoatten.persistence", "sklearn_dinoatten.cli"]:
        names.update(importlib.import_module(module).__all__)
    return names


_PUBLIC = _public_names()
# Ignored: dotted names of other libraries, and bare names that are not this package's
# (numpydoc's types, torch's inherited docstrings); the package's own must resolve.
nitpick_ignore_regex = [(r"py:.*", r"(?!sklearn_dinoatten)\w+\..*"),
                        (r"py:.*", r"(?!(" + "|".join(sorted(_PUBLIC)) + r")$)\w+")]

myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# The gallery: every example runs at build time, on synthetic data (random backbone
# weights: no network), its figures on its page.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "matplotlib_animations": False,
    "reference_url": {"sklearn_dinoatten": None},
    # What the examples print, not the repr of a cell's last expression (a set_title's
    # stray "Text(0.5, 1.0, ...)")
    "capture_repr": (),
}
warnings.filterwarnings("ignore", message="weights='random'", category=UserWarning)
warnings.filterwarnings("ignore", category=UserWarning,
                        message="Matplotlib is currently using agg")

html_theme = "pydata_sphinx_theme"
html_title = f"sklearn_dinoatten {version}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
