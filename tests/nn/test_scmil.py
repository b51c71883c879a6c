import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from sklearn_dinoatten import SCMILClassifier
from sklearn_dinoatten.nn import AnnealedSupConLoss, SCMILNet, supervised_contrastive_loss

from ..classifiers.test_classifiers import planted_bags


def test_module_outputs_and_padding():
    torch.manual_seed(0)
    net = SCMILNet(16, 3, projection_dims=(32, 8)).eval()
    x = torch.randn(4, 5, 16)
    padded = torch.cat([x, torch.full((4, 2, 16), float("nan"))], dim=1)
    logits, projection, attention = net(padded)
    assert logits.shape == (4, 3) and projection.shape == (4, 8) and attention.shape == (4, 7)
    assert (attention[:, 5:] == 0).all()
    torch.testing.assert_close(net(x)[0], logits)


def test_loss_moves_from_supcon_to_cross_entropy():
    torch.manual_seed(0)
    logits, projection = torch.randn(6, 2), torch.randn(6, 4)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    loss = AnnealedSupConLoss(temperature=0.1)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    supcon = supervised_contrastive_loss(projection, labels, temperature=0.1)
    for weight in (0.0, 0.25, 1.0):
        loss.ce_weight = weight
        torch.testing.assert_close(loss(logits, projection, labels),
                                   weight * ce + (1 - weight) * supcon)


def test_ce_weight_anneals_linearly_over_epochs():
    X, y = planted_bags()
    clf = SCMILClassifier(max_epochs=5, random_state=0).fit(X, y)
    assert clf.net_.history[:, "ce_weight"] == [0.1, 0.3, 0.5, 0.7, 0.9]


@pytest.mark.parametrize("gated", [True, False])
def test_learns_the_planted_signal(gated):
    X, y = planted_bags(n=80)
    clf = SCMILClassifier(gated=gated, max_epochs=40, random_state=0).fit(X[:60], y[:60])
    assert roc_auc_score(y[60:], clf.predict_proba(X[60:])[:, 1]) > 0.9  # chance: 0.5
    assert clf.attention_weights(X[y == 1]).mean(axis=0).argmax() == 3


def test_multiclass():
    X, y = planted_bags(n=90, n_classes=3)
    clf = SCMILClassifier(max_epochs=40, random_state=0).fit(X[:60], y[:60])
    assert clf.score(X[60:], y[60:]) > 0.7  # chance: 1/3
    np.testing.assert_allclose(clf.predict_proba(X[60:]).sum(axis=1), 1, rtol=1e-6)
