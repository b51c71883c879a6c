import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import log_loss, roc_auc_score

from sklearn_dinoatten import (
    AttentionPoolClassifier,
    DinoSliceEmbedder,
    SCMILClassifier,
    SliceTransformerClassifier,
)
from sklearn_dinoatten.datasets import make_volumes
from sklearn_dinoatten.nn import POOLINGS, AttentionPoolNet
from sklearn_dinoatten.utils._devices import seeded_torch

CLASSIFIERS = [AttentionPoolClassifier, SliceTransformerClassifier, SCMILClassifier]


def planted_bags(n=60, n_slices=8, dim=16, n_classes=2, seed=0):
    """Bags of Gaussian slices; class c > 0 shifts slice 3 by +-2 along its own dimensions.

    Classes differ in what, not where (pooling ignores slice order), and the shifts
    have mixed signs so that a LayerNorm does not remove them.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_slices, dim)).astype(np.float32)
    y = np.arange(n) % n_classes
    shift = 2.0 * rng.choice([-1.0, 1.0], size=dim)
    for c in range(1, n_classes):
        X[y == c, 3, c - 1::n_classes - 1] += shift[c - 1::n_classes - 1]
    return X, y


@pytest.mark.parametrize("pooling", POOLINGS)
def test_pooling_masks_padding(pooling):
    torch.manual_seed(0)
    net = AttentionPoolNet(in_dim=6, n_classes=2, pooling=pooling).eval()
    x = torch.randn(2, 4, 6)
    padded = torch.cat([x, torch.full((2, 3, 6), float("nan"))], dim=1)
    logits, embedding, attention = net(x)
    logits_p, embedding_p, attention_p = net(padded)
    torch.testing.assert_close(logits_p, logits)
    torch.testing.assert_close(attention_p[:, :4], attention)
    assert (attention_p[:, 4:] == 0).all()
    torch.testing.assert_close(attention.sum(dim=1), torch.ones(2))
    assert embedding.shape == (2, 128)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_permuting_slices_permutes_weights(pooling):
    torch.manual_seed(0)
    net = AttentionPoolNet(in_dim=6, n_classes=3, pooling=pooling).eval()
    x = torch.randn(1, 5, 6)
    order = torch.tensor([3, 0, 4, 1, 2])
    logits, _, attention = net(x)
    logits_p, _, attention_p = net(x[:, order])
    torch.testing.assert_close(logits_p, logits)
    torch.testing.assert_close(attention_p, attention[:, order])


def test_hidden_dims_follow_parameters():
    net = AttentionPoolNet(in_dim=10, n_classes=2, hidden_dims=(32, 8, 4))
    assert net(torch.randn(3, 2, 10))[1].shape == (3, 4)


def test_learns_and_predicts_labels_from_classes():
    X, y = planted_bags()
    labels = np.array(["healthy", "disease"])[y]
    clf = AttentionPoolClassifier(max_epochs=30, random_state=0).fit(X[:40], labels[:40])
    assert list(clf.classes_) == ["disease", "healthy"]
    assert set(clf.predict(X[40:])) <= {"disease", "healthy"}
    proba = clf.predict_proba(X[40:])
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    assert roc_auc_score(labels[40:] == "healthy", proba[:, 1]) > 0.95
    assert clf.score(X[40:], labels[40:]) > 0.9


def test_multiclass():
    X, y = planted_bags(n=90, n_classes=3)
    clf = AttentionPoolClassifier(max_epochs=40, random_state=0).fit(X[:60], y[:60])
    assert clf.predict_proba(X[60:]).shape == (30, 3)
    assert clf.score(X[60:], y[60:]) > 0.8


def test_mean_and_max_pooling_weights():
    x = torch.tensor([[[1.0, 5.0], [3.0, 2.0], [float("nan"), float("nan")]]])
    for pooling, pooled, weights in [
        ("mean", [2.0, 3.5], [0.5, 0.5, 0.0]),
        ("max", [3.0, 5.0], [0.5, 0.5, 0.0]),
    ]:
        net = AttentionPoolNet(in_dim=2, n_classes=2, pooling=pooling)
        mask = torch.tensor([[True, True, False]])
        out, w = net.pooling(torch.nan_to_num(x), mask)
        torch.testing.assert_close(out, torch.tensor([pooled]))
        torch.testing.assert_close(w, torch.tensor([weights]))
        torch.testing.assert_close(net(x)[2], torch.tensor([weights]))


@pytest.mark.parametrize("pooling", POOLINGS)
def test_every_pooling_learns_the_planted_signal(pooling):
    X, y = planted_bags(n=80)
    clf = AttentionPoolClassifier(pooling=pooling, max_epochs=30, random_state=0)
    clf.fit(X[:60], y[:60])
    assert roc_auc_score(y[60:], clf.predict_proba(X[60:])[:, 1]) > 0.85  # chance: 0.5


def test_unknown_pooling():
    X, y = planted_bags()
    with pytest.raises(ValueError, match="pooling must be one of"):
        AttentionPoolClassifier(pooling="sum").fit(X, y)


def test_attention_finds_the_planted_slice():
    X, y = planted_bags()
    clf = AttentionPoolClassifier(max_epochs=30, random_state=0).fit(X, y)
    attention = clf.attention_weights(X)
    assert attention.shape == (60, 8)
    np.testing.assert_allclose(attention.sum(axis=1), 1, rtol=1e-5)
    assert (attention[y == 1].argmax(axis=1) == 3).mean() > 0.9


def test_attention_peaks_on_planted_slices_of_volumes():
    """End to end: synthetic volumes -> DINOv2 slice embeddings -> trained head."""
    X, y, signal = make_volumes(n_samples=40, shape=(32, 32, 16), return_signal=True,
                                random_state=0)
    E = DinoSliceEmbedder(weights="random", image_size=56, verbose=0).fit_transform(X)
    clf = AttentionPoolClassifier(max_epochs=50, random_state=0).fit(E, y)
    attention = clf.attention_weights(E)
    positives = np.flatnonzero(y == 1)
    hits = [attention[i].argmax() in signal[i] for i in positives]
    mass = [attention[i, signal[i]].sum() for i in positives]
    # 2 of 16 slices hold the signal: chance would be 12.5 % of hits and of mass.
    assert np.mean(hits) > 0.8
    assert np.mean(mass) > 0.25


def test_padding_in_training_data():
    X, y = planted_bags()
    X[::2, 6:] = np.nan  # every other bag has 6 slices only
    clf = AttentionPoolClassifier(max_epochs=20, random_state=0).fit(X, y)
    assert np.isfinite(clf.predict_proba(X)).all()
    assert (clf.attention_weights(X)[::2, 6:] == 0).all()


@pytest.mark.parametrize("Classifier", CLASSIFIERS)
def test_same_random_state_same_fit(Classifier):
    X, y = planted_bags()
    a = Classifier(max_epochs=5, random_state=3).fit(X, y).predict_proba(X)
    b = Classifier(max_epochs=5, random_state=3).fit(X, y).predict_proba(X)
    c = Classifier(max_epochs=5, random_state=4).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("Classifier", CLASSIFIERS)
def test_fit_does_not_change_global_torch_rng(Classifier):
    X, y = planted_bags()
    state = torch.get_rng_state()
    Classifier(max_epochs=1, random_state=0).fit(X, y)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("Classifier", CLASSIFIERS)
def test_pickle_round_trip(Classifier, tmp_path):
    X, y = planted_bags()
    clf = Classifier(max_epochs=5, random_state=0).fit(X, y)
    joblib.dump(clf, tmp_path / "clf.joblib")
    loaded = joblib.load(tmp_path / "clf.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.attention_weights(X), clf.attention_weights(X))


@pytest.mark.parametrize("Classifier", CLASSIFIERS)
def test_routed_skorch_parameters(Classifier):
    X, y = planted_bags()
    clf = Classifier(max_epochs=1, optimizer__weight_decay=0.123)
    assert clf.get_params()["optimizer__weight_decay"] == 0.123
    clf.set_params(optimizer__weight_decay=0.5, lr=0.01)
    cloned = clone(clf)
    assert cloned.optimizer__weight_decay == 0.5 and cloned.lr == 0.01
    cloned.fit(X, y)
    group = cloned.net_.optimizer_.param_groups[0]
    assert group["weight_decay"] == 0.5 and group["lr"] == 0.01
    assert "optimizer__weight_decay=0.5" in repr(cloned)


def test_unknown_keyword_raises_in_fit():
    X, y = planted_bags()
    clf = AttentionPoolClassifier(learning_rate=0.1)
    with pytest.raises(ValueError, match="unknown parameters \\['learning_rate'\\]"):
        clf.fit(X, y)


def test_class_weight_balanced():
    X, y = planted_bags()
    keep = np.r_[np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:10]]
    clf = AttentionPoolClassifier(class_weight="balanced", max_epochs=2).fit(X[keep], y[keep])
    np.testing.assert_allclose(clf.net_.criterion_.class_weight.cpu().numpy(), [40 / 60, 40 / 20])


def unmoved_parameters(clf, X, y):
    """Names of the parameters still equal to their value before training (the network
    is rebuilt under the seed fit used)."""
    with seeded_torch(clf.random_state, torch.device("cpu")):
        start = clf._build_module(X.shape[-1], len(np.unique(y))).state_dict()
    return [name for name, value in clf.net_.module_.state_dict().items()
            if value.is_floating_point() and "running_" not in name
            and torch.equal(value.cpu(), start[name])]


# Without weight decay, a parameter moves only if training gave it a gradient.
NO_DECAY = dict(optimizer__weight_decay=0.0, random_state=0)


@pytest.mark.parametrize("Classifier", CLASSIFIERS)
def test_early_stopping_restores_a_trained_epoch(Classifier):
    X, y = planted_bags(n=80)
    clf = Classifier(early_stopping=True, n_iter_no_change=3, max_epochs=40, lr=1e-2,
                     **NO_DECAY).fit(X, y)
    losses = clf.net_.history[:, "valid_loss"]
    best = int(np.argmin(losses))
    assert best > 0 and losses[best] < losses[0]  # restored: a better epoch than the first
    assert unmoved_parameters(clf, X, y) == []


@pytest.mark.parametrize("Classifier", [AttentionPoolClassifier, SliceTransformerClassifier])
def test_early_stopping_stops(Classifier):
    # (SC-MIL's loss anneals towards CE over max_epochs, so its validation log-loss
    # keeps improving for as long as the schedule runs.)
    X, y = planted_bags(n=80)
    clf = Classifier(early_stopping=True, n_iter_no_change=3, max_epochs=200, lr=1e-2,
                     random_state=0).fit(X, y)
    assert len(clf.net_.history) < 200


@pytest.mark.parametrize("Classifier", CLASSIFIERS)
def test_one_epoch_trains_every_parameter(Classifier):
    X, y = planted_bags()
    clf = Classifier(max_epochs=1, **NO_DECAY).fit(X, y)
    assert unmoved_parameters(clf, X, y) == []  # the classifier head included


@pytest.mark.parametrize("Classifier", CLASSIFIERS)
def test_early_stopping_on_a_given_validation_set_watches_its_log_loss(Classifier):
    X, y = planted_bags(n=100)
    clf = Classifier(early_stopping=True, n_iter_no_change=3, max_epochs=100, lr=1e-2,
                     random_state=0).fit(X[:70], y[:70], X_val=X[70:], y_val=y[70:])
    losses = clf.net_.history[:, "valid_loss"]
    batches = clf.net_.history[-1, "batches"]
    assert sum(b.get("train_batch_size", 0) for b in batches) == 70  # all of X trains
    assert sum(b.get("valid_batch_size", 0) for b in batches) == 30
    assert log_loss(y[70:], clf.predict_proba(X[70:])) == pytest.approx(min(losses), rel=1e-4,
                                                                        abs=1e-6)


@pytest.mark.parametrize("fit_params, message", [
    (dict(X_val=np.ones((4, 8, 16))), "X_val and y_val go together"),
    (dict(X_val=np.ones((4, 8, 16)), y_val=[0, 1, 0, 7]), "y_val has class 7"),
    (dict(X_val=np.ones((4, 8, 5)), y_val=[0, 1, 0, 1]), "X has 5 features"),
])
def test_bad_validation_set(fit_params, message):
    X, y = planted_bags()
    with pytest.raises(ValueError, match=message):
        AttentionPoolClassifier(early_stopping=True).fit(X, y, **fit_params)
    with pytest.raises(ValueError, match="set early_stopping=True"):
        AttentionPoolClassifier().fit(X, y, X_val=X[:4], y_val=y[:4])


@pytest.mark.parametrize("schedule, last_lr", [("constant", 0.01), ("cosine", 0.0),
                                               ("step", 1e-4)])
def test_learning_rate_schedules(schedule, last_lr):
    X, y = planted_bags()
    clf = AttentionPoolClassifier(lr=0.01, lr_schedule=schedule, max_epochs=8,
                                  random_state=0).fit(X, y)
    assert clf.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(last_lr, abs=1e-12)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        AttentionPoolClassifier(lr_schedule="linear").fit(X, y)


@pytest.mark.parametrize(
    "X, y, message",
    [
        (np.ones((4, 3, 2)), [0, 0, 0, 0], "only one class"),
        (np.ones((4, 3, 2)), [0.5, 1.5, 2.5, 3.5], "Unknown label type"),
        (np.where([[[True, False]]], np.nan, np.ones((4, 3, 2))), [0, 1, 0, 1],
         "NaN inside a slice"),
        (np.full((4, 3, 2), np.inf), [0, 1, 0, 1], "infinity"),
        (np.concatenate([np.full((1, 3, 2), np.nan), np.ones((3, 3, 2))]), [0, 1, 0, 1],
         "Samples \\[0\\] of X have no slices"),
        (np.ones((4, 3, 2, 1)), [0, 1, 0, 1], "got shape"),
        (np.ones((3, 3, 2)), [0, 1, 0, 1], "inconsistent numbers of samples"),
    ],
)
@pytest.mark.parametrize("Classifier", CLASSIFIERS)
def test_bad_input_raises(Classifier, X, y, message):
    with pytest.raises(ValueError, match=message):
        Classifier(max_epochs=1).fit(X, y)


def test_feature_count_must_match():
    X, y = planted_bags()
    clf = AttentionPoolClassifier(max_epochs=1).fit(X, y)
    message = "X has 4 features, but AttentionPoolClassifier is expecting 16"
    with pytest.raises(ValueError, match=message):
        clf.predict(X[..., :4])
    assert clf.predict(X[:, :3]).shape == (60,)  # fewer slices are fine


@pytest.mark.parametrize("Classifier, dim", [(AttentionPoolClassifier, 128),
                                             (SliceTransformerClassifier, 16),
                                             (SCMILClassifier, 128)])
def test_volume_embeddings_separate_the_classes(Classifier, dim):
    X, y = planted_bags()
    clf = Classifier(max_epochs=20, random_state=0).fit(X, y)
    embedding = clf.volume_embeddings(X)
    assert embedding.shape == (60, dim) and np.isfinite(embedding).all()
    centroids = [embedding[y == c].mean(axis=0) for c in (0, 1)]
    within = np.mean([np.linalg.norm(embedding[y == c] - centroids[c], axis=1).mean()
                      for c in (0, 1)])
    assert np.linalg.norm(centroids[0] - centroids[1]) > within  # classes apart
