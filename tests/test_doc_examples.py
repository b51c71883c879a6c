"""The Python examples of the README and the user guide run as written.

Every block's imports of the package are run (so a renamed name fails here). A block that
defines everything it uses runs whole; one that continues the text's placeholders
(``paths``, ``y``, ``pipe``...) runs whole with them bound to a small labelled folder and
a fast pipeline. Only a block that needs what no test machine has (DINOv2's download, a
checkpoint file, a cluster) runs its imports alone, and says why.
"""

import ast
import builtins
import pathlib
import re

import numpy as np
import pytest

from .cli.test_cli import make_study

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs" / "user_guide").glob("*.md"))]
NEEDS = {  # text of a block -> what it needs that a test machine does not have
    "DinoSliceEmbedder()": "DINOv2's pretrained weights, downloaded",
    "dinov2_vits14_pretrain.pth": "a checkpoint file",
    "Client(": "a Dask cluster",
    "ResNet3DClassifier(depth=18)": "an hour of CPU (5 folds of a ResNet-18, 50 epochs)",
}


def blocks():
    for page in PAGES:
        for i, match in enumerate(re.finditer(r"```python\n(.*?)```", page.read_text(), re.S)):
            yield pytest.param(match.group(1), id=f"{page.name}-{i}")


def free_names(code):
    """The names a block reads before (or without) binding them."""
    bound, free = set(dir(builtins)), set()
    for node in ast.walk(ast.parse(code)):  # bindings anywhere count (a loop's target)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):  # a function's or lambda's parameter
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.comprehension):
            bound.update(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in bound:
            free.add(node.id)
    return free


@pytest.fixture(scope="module")
def placeholders(tmp_path_factory):
    """The names the text leaves to the reader: a labelled folder ``DATA`` of 12 scans of
    6 subjects (the working directory of the blocks) and a fast pipeline."""
    from sklearn.pipeline import make_pipeline

    from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder
    from sklearn_dinoatten.datasets import load_nifti_folder

    root = tmp_path_factory.mktemp("examples")
    paths, y, groups, _ = load_nifti_folder(make_study(root / "DATA", n=12, subjects=True))
    pipe = make_pipeline(DinoSliceEmbedder(weights="random", image_size=28, n_slices=4,
                                           verbose=0),
                         AttentionPoolClassifier(max_epochs=2, random_state=0))
    rng = np.random.default_rng(0)
    return root, dict(paths=paths, y=y, groups=groups, subjects=groups, new_paths=paths[:2],
                      pipe=pipe, model=pipe, score=y + rng.normal(size=len(y)),
                      score_other=rng.normal(size=len(y)))


@pytest.fixture
def metrics_kept():
    """The metric registry as it was before an example registered one."""
    from sklearn_dinoatten.evaluation import METRICS

    before = dict(METRICS)
    yield
    METRICS.clear()
    METRICS.update(before)


@pytest.mark.parametrize("code", blocks())
def test_the_example_runs_as_written(code, placeholders, monkeypatch, metrics_kept):
    imports = [node for node in ast.parse(code).body
               if isinstance(node, (ast.Import, ast.ImportFrom))
               and (getattr(node, "module", None) or node.names[0].name).startswith(
                   "sklearn_dinoatten")]
    exec(compile(ast.Module(imports, []), "<example imports>", "exec"), {})
    needs = [why for text, why in NEEDS.items() if text in code]
    if needs:
        pytest.skip(f"imports only: the example needs {needs[0]}")
    root, bound = placeholders
    missing = free_names(code) - set(bound)
    assert not missing, f"the example uses {sorted(missing)} without defining them"
    monkeypatch.chdir(root)
    namespace = {name: bound[name] for name in free_names(code)}
    if "model" in namespace:  # a fitted model, as the text has it
        namespace["model"] = bound["pipe"].fit(bound["paths"], bound["y"])
    exec(compile(code, "<example>", "exec"), namespace)
