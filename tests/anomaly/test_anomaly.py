import joblib
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from sklearn_dinoatten import DinoSliceEmbedder
from sklearn_dinoatten.anomaly import MemoryBankAnomalyDetector, SpatialARAnomalyDetector
from sklearn_dinoatten.datasets import make_anomaly_images
from sklearn_dinoatten.nn.autoregressive import SpatialARNet, prediction_error

EMBEDDER = DinoSliceEmbedder(weights="random", image_size=112, verbose=0)  # 8 x 8 patches
DETECTORS = {
    "spatial_ar": lambda: SpatialARAnomalyDetector(embedder=EMBEDDER, max_epochs=20,
                                                   random_state=0),
    "memory_bank": lambda: MemoryBankAnomalyDetector(embedder=EMBEDDER, random_state=0),
}


@pytest.fixture(scope="module")
def images():
    X, y, masks = make_anomaly_images(n_normal=40, n_anomalous=10, return_masks=True,
                                      random_state=0)
    return X[:30], X[30:], y[30:], masks[30:]  # train on normal images only


@pytest.fixture(scope="module", params=list(DETECTORS))
def fitted(request, images):
    train, *_ = images
    return DETECTORS[request.param]().fit(train)


def test_detector_finds_and_locates_planted_anomalies(fitted, images):
    _, test, y, masks = images
    scores = fitted.score_samples(test)
    assert roc_auc_score(y == -1, -scores) > 0.9  # chance: 0.5
    maps = fitted.anomaly_map(test)
    assert all(m.shape == (64, 64) for m in maps)
    peaks = [mask[np.unravel_index(m.argmax(), m.shape)]
             for m, mask, label in zip(maps, masks, y, strict=True) if label == -1]
    assert np.mean(peaks) >= 0.7  # the lesion covers ~2 % of the image


def test_outlier_api(fitted, images):
    train, test, *_ = images
    decision = fitted.decision_function(test)
    np.testing.assert_allclose(decision, fitted.score_samples(test) - fitted.offset_)
    np.testing.assert_array_equal(fitted.predict(test), np.where(decision >= 0, 1, -1))
    flagged = fitted.predict(train) == -1
    assert np.sum(flagged) == 3  # contamination=0.1 of the 30 training images


@pytest.mark.parametrize("name", list(DETECTORS))
@pytest.mark.parametrize("contamination", [0.1, 0.3])
def test_fit_predict_flags_the_contamination_share(name, contamination, images):
    train, *_ = images
    detector = DETECTORS[name]().set_params(contamination=contamination)
    flagged = detector.fit_predict(train) == -1
    assert np.sum(flagged) == round(contamination * len(train))
    np.testing.assert_array_equal(detector.predict(train) == -1, flagged)


def test_pickle_round_trip(fitted, images, tmp_path):
    _, test, *_ = images
    joblib.dump(fitted, tmp_path / "detector.joblib")
    loaded = joblib.load(tmp_path / "detector.joblib")
    np.testing.assert_array_equal(loaded.score_samples(test), fitted.score_samples(test))


def test_volumes_slice_by_slice():
    X, y = make_anomaly_images(n_normal=24, n_anomalous=4, random_state=1)
    normal = [np.stack(X[i:i + 4], axis=2) for i in range(0, 16, 4)]  # (64, 64, 4)
    sick = [np.stack([X[16 + i], X[17 + i], X[24 + i], X[18 + i]], axis=2) for i in range(4)]
    detector = MemoryBankAnomalyDetector(embedder=EMBEDDER).fit(normal)
    scores = detector.score_samples(normal[:2] + sick)
    assert scores[2:].max() < scores[:2].min()
    maps = detector.anomaly_map(sick)
    assert all(m.shape == (64, 64, 4) and m.max(axis=(0, 1)).argmax() == 2 for m in maps)


def test_spatial_ar_net_is_causal_in_raster_order():
    torch.manual_seed(0)
    net = SpatialARNet(dim=6, hidden=8, dilations=(1, 2)).eval()
    grid = torch.randn(1, 6, 5, 5)
    changed = grid.clone()
    changed[:, :, 2, 3] += 5.0
    before, after = net(grid), net(changed)
    order = torch.arange(25).reshape(5, 5)
    same = (before - after).abs().amax(dim=1)[0] < 1e-6
    assert same[order <= 2 * 5 + 3].all()  # the changed patch and everything before it
    assert not same[order > 2 * 5 + 3].all()  # later patches do see it


@pytest.mark.parametrize("error", ["squared", "cosine", "gaussian"])
def test_prediction_errors_are_finite_and_zero_at_the_target(error):
    target = torch.randn(2, 4, 3, 3)
    prediction = torch.cat([target, torch.zeros_like(target)], 1) if error == "gaussian" else target
    errors = prediction_error(prediction, target, error=error)
    assert errors.shape == (2, 3, 3) and torch.isfinite(errors).all()
    worse = prediction_error(prediction + 1.0, target, error=error)
    assert (worse > errors).all()


def test_other_errors_and_reductions_train(images):
    train, test, y, _ = images
    for params in (dict(error="gaussian", reduction=0.05), dict(error="cosine", reduction="mean",
                                                               dilations=(1,))):
        detector = SpatialARAnomalyDetector(embedder=EMBEDDER, max_epochs=5, random_state=0,
                                            **params).fit(train[:10])
        assert np.isfinite(detector.score_samples(test)).all()


def test_reductions_are_ordered(images):
    train, test, *_ = images
    scores = {r: -MemoryBankAnomalyDetector(embedder=EMBEDDER, reduction=r).fit(train[:10])
              .score_samples(test) for r in ("mean", 0.1, "max")}
    assert (scores["mean"] <= scores[0.1]).all() and (scores[0.1] <= scores["max"]).all()


def test_coreset_keeps_its_share_and_still_detects(images):
    train, test, y, _ = images
    detector = MemoryBankAnomalyDetector(embedder=EMBEDDER, coreset_ratio=0.25,
                                         random_state=0).fit(train)
    assert detector.memory_bank_.shape == (30 * 64 // 4, 384)
    assert len(np.unique(detector.memory_bank_, axis=0)) == len(detector.memory_bank_)
    assert roc_auc_score(y == -1, -detector.score_samples(test)) > 0.9


@pytest.mark.parametrize("Detector, params, message", [
    (SpatialARAnomalyDetector, dict(reduction="median"), "reduction must be"),
    (SpatialARAnomalyDetector, dict(reduction=1.5), "reduction must be"),
    (SpatialARAnomalyDetector, dict(slice_reduction="min"), "slice_reduction must be"),
    (SpatialARAnomalyDetector, dict(contamination=0.7), "contamination must be"),
    (SpatialARAnomalyDetector, dict(error="l1"), "error must be one of"),
    (SpatialARAnomalyDetector, dict(kernel_size=4), "kernel_size must be an odd integer"),
    (SpatialARAnomalyDetector, dict(embedder="dinov2"), "embedder must be"),
    (MemoryBankAnomalyDetector, dict(coreset_ratio=0.0), "coreset_ratio must be"),
])
def test_bad_parameters(images, Detector, params, message):
    with pytest.raises(ValueError, match=message):
        Detector(**{"embedder": EMBEDDER, **params}).fit(images[0][:2])


def test_images_and_volumes_do_not_mix(images):
    with pytest.raises(ValueError, match="mixes images"):
        MemoryBankAnomalyDetector(embedder=EMBEDDER).fit([images[0][0], np.ones((8, 8, 8))])


def test_dinov3_backbone(images):
    train, test, *_ = images
    embedder = DinoSliceEmbedder(backbone="vit_small_patch16_dinov3", weights="random",
                                 image_size=64, verbose=0)
    detector = SpatialARAnomalyDetector(embedder=embedder, max_epochs=2).fit(train[:6])
    assert detector.embedder_.grid_shape_ == (4, 4)  # 16 px patches
    assert detector.anomaly_map(test[:2])[0].shape == (64, 64)
