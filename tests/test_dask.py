"""Embedding and model selection on a real Dask cluster (two worker processes on this
machine): the same results as one process, and each volume embedded once."""

import joblib
import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import AttentionPoolClassifier, DinoSliceEmbedder, clear_memory_cache
from sklearn_dinoatten.datasets import make_volumes

from ._helpers import CountingViT, save_nifti

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client


@pytest.fixture
def paths(tmp_path):
    X, y = make_volumes(n_samples=12, shape=(20, 20, 5), random_state=0)
    return [save_nifti(tmp_path / f"scan_{i}.nii.gz", v) for i, v in enumerate(X)], y


@pytest.mark.filterwarnings("ignore:Sending large graph")  # the test backbone is pickled
def test_dask_workers_embed_each_volume_once(client, paths, tmp_path):
    paths, _ = paths
    log = tmp_path / "forward.log"
    clear_memory_cache()
    local = DinoSliceEmbedder(backbone=CountingViT(), image_size=28, verbose=0)
    expected = local.fit_transform(paths)
    clear_memory_cache()
    embedder = DinoSliceEmbedder(backbone=CountingViT(log_path=str(log)), image_size=28,
                                 cache_dir=tmp_path / "cache", verbose=0)
    with joblib.parallel_backend("dask"):
        out = embedder.fit_transform(paths)
    np.testing.assert_allclose(out, expected, atol=1e-4, rtol=0)
    assert sum(int(n) for n in log.read_text().split()) == len(paths) * 5
    workers = client.run(lambda: True)
    assert len(workers) == 2
    # The workers filled the shared disk cache, and this process remembers the results.
    assert len(list((tmp_path / "cache").glob("*/*.npz"))) == len(paths)
    with joblib.parallel_backend("dask"):
        np.testing.assert_array_equal(embedder.transform(paths), out)
    assert sum(int(n) for n in log.read_text().split()) == len(paths) * 5


@pytest.mark.filterwarnings("ignore:Sending large graph")
def test_dask_workers_embed_with_the_fitted_backbone(client, paths, fresh_cache):
    """Not one built again from the parameters: here a module changed after fit."""
    paths, _ = paths
    module = CountingViT()
    embedder = DinoSliceEmbedder(backbone=module, image_size=28, verbose=0).fit(paths)
    expected = embedder.transform(paths)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.5)
    clear_memory_cache()
    with joblib.parallel_backend("dask"):
        np.testing.assert_allclose(embedder.transform(paths), expected, atol=1e-4, rtol=0)


@pytest.mark.slow  # the embedding under Dask is tested above; this adds the grid search
def test_grid_search_under_the_dask_backend(client, paths, tmp_path):
    paths, y = paths
    pipe = make_pipeline(
        DinoSliceEmbedder(weights="random", image_size=28, cache_dir=tmp_path / "cache",
                          verbose=0),
        AttentionPoolClassifier(max_epochs=3, random_state=0),
    )
    grid = {"attentionpoolclassifier__lr": [1e-3, 1e-2]}
    cv = StratifiedKFold(3)
    local = GridSearchCV(pipe, grid, cv=cv, scoring="roc_auc").fit(paths, y)
    with joblib.parallel_backend("dask"):
        spread = GridSearchCV(pipe, grid, cv=cv, scoring="roc_auc", n_jobs=-1).fit(paths, y)
    np.testing.assert_allclose(spread.cv_results_["mean_test_score"],
                               local.cv_results_["mean_test_score"], atol=1e-6)
    assert spread.best_params_ == local.best_params_
