import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from sklearn_dinoatten import SliceTransformerClassifier
from sklearn_dinoatten.nn import SliceTransformerNet
from sklearn_dinoatten.nn.transformer import default_heads

from ..classifiers.test_classifiers import planted_bags


def test_default_heads_follow_mst():
    assert default_heads(384) == 12
    assert default_heads(768) == 12
    assert default_heads(16) == 8
    assert default_heads(7) == 7
    assert default_heads(13) == 1


@pytest.mark.parametrize("position_embedding", [False, True])
def test_padding_is_masked(position_embedding):
    torch.manual_seed(0)
    net = SliceTransformerNet(24, 2, position_embedding=position_embedding).eval()
    x = torch.randn(3, 5, 24)
    padded = torch.cat([x, torch.full((3, 2, 24), float("nan"))], dim=1)
    logits, embedding, attention = net(x)
    logits_p, _, attention_p = net(padded)
    torch.testing.assert_close(logits_p, logits, atol=1e-5, rtol=1e-5)
    assert (attention_p[:, 5:] == 0).all()
    torch.testing.assert_close(attention.sum(dim=1), torch.ones(3))
    assert embedding.shape == (3, 24)


def test_without_positions_slice_order_does_not_matter():
    torch.manual_seed(0)
    net = SliceTransformerNet(24, 2).eval()
    x = torch.randn(2, 6, 24)
    order = torch.tensor([5, 2, 0, 1, 4, 3])
    logits, _, attention = net(x)
    logits_p, _, attention_p = net(x[:, order])
    torch.testing.assert_close(logits_p, logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attention_p, attention[:, order], atol=1e-6, rtol=1e-5)


def test_position_embedding_limits():
    net = SliceTransformerNet(8, 2, position_embedding=True, max_slices=4)
    with pytest.raises(ValueError, match="raise max_slices"):
        net(torch.randn(1, 5, 8))
    with pytest.raises(ValueError, match="n_heads=3 does not divide"):
        SliceTransformerNet(8, 2, n_heads=3)


def test_learns_the_planted_signal_and_attends_to_it():
    X, y = planted_bags(n=80)
    clf = SliceTransformerClassifier(max_epochs=40, random_state=0).fit(X[:60], y[:60])
    assert roc_auc_score(y[60:], clf.predict_proba(X[60:])[:, 1]) > 0.9  # chance: 0.5
    attention = clf.attention_weights(X[y == 1])
    assert attention.mean(axis=0).argmax() == 3  # the planted slice


def test_multiclass_and_string_labels():
    X, y = planted_bags(n=180, n_classes=3)
    labels = np.array(["a", "b", "c"])[y]
    clf = SliceTransformerClassifier(max_epochs=40, random_state=0).fit(X[:120], labels[:120])
    assert list(clf.classes_) == ["a", "b", "c"]
    assert clf.score(X[120:], labels[120:]) > 0.7  # chance: 1/3
