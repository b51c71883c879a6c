"""The regressors: a planted number learnt through the public API, the target's units
restored, the point losses, early stopping, bad input, and saved models."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.dummy import DummyRegressor
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline

from sklearn_dinoatten import (
    AttentionPoolRegressor,
    ResNet3DRegressor,
    SliceTransformerRegressor,
    VolumeResampler,
)

from .._helpers import round_trip

SLICE_REGRESSORS = [AttentionPoolRegressor, SliceTransformerRegressor]
FAST = dict(max_epochs=40, lr=1e-2, random_state=0)


def planted_ages(n=80, seed=0):
    """Bags of 6 slices of 16 features whose slice 2 carries ``age`` in 8 features."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 90, size=n)
    X = rng.normal(size=(n, 6, 16)).astype(np.float32)
    X[:, 2, :8] += ((age - 55) / 10)[:, None]
    return X, age


@pytest.mark.parametrize("Regressor", SLICE_REGRESSORS)
def test_the_planted_target_is_learnt_out_of_fold(Regressor):
    X, age = planted_ages(n=120)
    cv = KFold(4, shuffle=True, random_state=0)
    mae = -cross_val_score(Regressor(**FAST), X, age, cv=cv,
                           scoring="neg_mean_absolute_error").mean()
    floor = -cross_val_score(DummyRegressor(), X.reshape(len(X), -1), age, cv=cv,
                             scoring="neg_mean_absolute_error").mean()
    assert mae < 0.65 * floor  # the training mean misses by 19 years here


def test_predictions_are_in_the_targets_units():
    X, age = planted_ages()
    model = AttentionPoolRegressor(**FAST).fit(X, age)
    assert model.target_mean_ == pytest.approx(age.mean())
    assert model.target_scale_ == pytest.approx(age.std())
    # The same standardised target: months instead of years give 12 times the prediction.
    months = AttentionPoolRegressor(**FAST).fit(X, 12 * age + 6)
    np.testing.assert_allclose(months.predict(X), 12 * model.predict(X) + 6, rtol=1e-5)
    assert isinstance(model.score(X, age), float) and model.score(X, age) > 0.9  # R²


def test_a_constant_target_is_predicted():
    X, _ = planted_ages(n=20)
    model = AttentionPoolRegressor(max_epochs=2, random_state=0).fit(X, np.full(20, 42.0))
    assert model.target_scale_ == 1.0
    np.testing.assert_allclose(model.predict(X), 42.0, atol=1.0)


@pytest.mark.parametrize("loss", ["mse", "l1", "huber"])
def test_each_loss_trains_and_early_stopping_watches_it(loss):
    import torch
    import torch.nn.functional as F

    X, age = planted_ages(n=100)
    model = AttentionPoolRegressor(loss=loss, early_stopping=True, n_iter_no_change=3,
                                   max_epochs=100, lr=1e-2, random_state=0)
    model.fit(X[:70], age[:70], X_val=X[70:], y_val=age[70:])
    standardised = torch.tensor((model.predict(X[70:]) - model.target_mean_)
                                / model.target_scale_)
    target = torch.tensor((age[70:] - model.target_mean_) / model.target_scale_)
    expected = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}[loss](
        standardised, target)
    losses = model.net_.history[:, "valid_loss"]
    assert float(expected) == pytest.approx(min(losses), rel=1e-4, abs=1e-6)
    assert mean_absolute_error(age[70:], model.predict(X[70:])) < 0.65 * np.abs(
        age[70:] - age[:70].mean()).mean()


@pytest.mark.parametrize("y, message", [
    (["a"] * 10, "could not convert"),
    ([1.0] * 9 + [np.nan], "y contains NaN"),
    ([1.0] * 9 + [np.inf], "y contains infinity"),
    ([1.0] * 9, "inconsistent numbers of samples"),
])
def test_bad_targets_are_named(y, message):
    X, _ = planted_ages(n=10)
    with pytest.raises(ValueError, match=message):
        AttentionPoolRegressor(max_epochs=1).fit(X, y)


def test_bad_validation_targets_are_named():
    X, age = planted_ages(n=10)
    model = AttentionPoolRegressor(max_epochs=1, early_stopping=True)
    with pytest.raises(ValueError, match="y_val contains NaN"):
        model.fit(X, age, X_val=X[:2], y_val=[1.0, np.nan])
    with pytest.raises(ValueError, match="loss must be one of"):
        AttentionPoolRegressor(loss="quantile").fit(X, age)


def test_grid_search_and_pipeline():
    X, age = planted_ages(n=60)
    search = GridSearchCV(AttentionPoolRegressor(max_epochs=10, random_state=0),
                          {"pooling": ["mean", "attention"]}, cv=3,
                          scoring="neg_mean_absolute_error").fit(X, age)
    assert search.best_params_["pooling"] in ("mean", "attention")
    assert search.predict(X).shape == (60,)


@pytest.mark.parametrize("Regressor", SLICE_REGRESSORS)
def test_saved_and_loaded_bit_for_bit(Regressor, tmp_path):
    X, age = planted_ages(n=30)
    model = Regressor(max_epochs=3, random_state=0).fit(X, age)
    loaded = round_trip(model, tmp_path)
    assert type(loaded) is Regressor and loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.attention_weights(X), model.attention_weights(X))


def test_resnet_on_volumes_in_a_pipeline_saved_and_loaded(tmp_path):
    rng = np.random.default_rng(0)
    volumes = [rng.normal(size=(20, 22, 18)).astype(np.float32) for _ in range(6)]
    target = np.arange(6, dtype=float)
    pipe = make_pipeline(VolumeResampler(shape=(17, 17, 17)),
                         ResNet3DRegressor(depth=10, widen_factor=0.25, max_epochs=2,
                                           random_state=0)).fit(volumes, target)
    predicted = pipe.predict(volumes)
    assert predicted.shape == (6,) and np.isfinite(predicted).all()
    np.testing.assert_array_equal(round_trip(pipe, tmp_path).predict(volumes), predicted)
    with pytest.raises(ValueError, match="ResNet3DRegressor was fitted on"):
        pipe[-1].predict(np.zeros((1, 18, 17, 17)))


def test_clone_keeps_routed_parameters():
    model = AttentionPoolRegressor(optimizer__weight_decay=0.5)
    assert clone(model).get_params()["optimizer__weight_decay"] == 0.5


def test_the_3d_resnet_learns_the_phantoms_ages_from_their_files_headers():
    """Through the public API, on nibabel images of varied voxel sizes and orientations:
    the resampler reads them as RAS, and the 3D ResNet (its batch-norm statistics
    recomputed with its final weights) errs far less than the training mean."""
    import nibabel as nib
    from sklearn.model_selection import GroupKFold, cross_val_predict

    from sklearn_dinoatten.datasets import make_brain_ages

    X, ages, subjects, affines = make_brain_ages(n_subjects=30, scans_per_subject=2,
                                                 random_state=0)
    scans = [nib.Nifti1Image(x, affine) for x, affine in zip(X, affines, strict=True)]
    pipe = make_pipeline(VolumeResampler(shape=(24, 24, 24)),
                         ResNet3DRegressor(depth=10, widen_factor=0.25, stem="small",
                                           max_epochs=8, random_state=0))
    predicted = cross_val_predict(pipe, scans, ages, groups=subjects, cv=GroupKFold(3))
    floor = np.abs(ages - ages.mean()).mean()
    assert mean_absolute_error(ages, predicted) < 0.5 * floor


def test_the_rank_term_adds_to_the_training_loss_only():
    import torch

    from sklearn_dinoatten.nn import rank_n_contrast_loss

    X, age = planted_ages(n=40)
    model = AttentionPoolRegressor(rank_weight=0.5, temperature=0.2, max_epochs=3,
                                   random_state=0).fit(X, age)
    outputs, embedding, _ = model.net_.forward(X[:16])
    target = torch.tensor((age[:16] - model.target_mean_) / model.target_scale_,
                          dtype=torch.float32)
    criterion = model.net_.criterion_
    expected = criterion.point_loss(outputs, target) + 0.5 * rank_n_contrast_loss(
        embedding, target, temperature=0.2)
    torch.testing.assert_close(criterion(outputs, embedding, target), expected)
    assert model.net_.validation_loss(outputs, target) == criterion.point_loss(outputs,
                                                                               target)
    assert np.isfinite(model.predict(X)).all()
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        AttentionPoolRegressor(temperature=0).fit(X, age)
