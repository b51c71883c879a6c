import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sklearn_dinoatten.nn import CompositeLoss, class_variance_loss, supervised_contrastive_loss


def supcon_by_loops(embedding, labels, temperature):
    """Khosla et al. (2020), eq. 2, written out term by term."""
    z = F.normalize(embedding, dim=1).double()
    terms = []
    for i in range(len(z)):
        positives = [p for p in range(len(z)) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(torch.exp(z[i] @ z[a] / temperature) for a in range(len(z)) if a != i)
        terms.append(-sum(torch.log(torch.exp(z[i] @ z[p] / temperature) / denominator)
                          for p in positives) / len(positives))
    return torch.stack(terms).mean()


def test_supcon_matches_the_definition():
    torch.manual_seed(0)
    embedding = torch.randn(9, 5)
    labels = torch.tensor([0, 1, 2, 0, 1, 0, 2, 2, 1])
    expected = supcon_by_loops(embedding, labels, 0.5)
    torch.testing.assert_close(supervised_contrastive_loss(embedding, labels,
                                                           temperature=0.5).double(),
                               expected, rtol=1e-5, atol=1e-6)


def test_supcon_is_lower_when_classes_cluster():
    labels = torch.tensor([0, 0, 1, 1])
    clustered = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    mixed = clustered[[0, 2, 1, 3]]
    loss = supervised_contrastive_loss
    assert loss(clustered, labels) < loss(mixed, labels)


def test_class_variance_matches_the_definition():
    torch.manual_seed(1)
    embedding = torch.randn(6, 4)
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    z = F.normalize(embedding, dim=1)
    expected = torch.stack([
        ((z[i] - z[labels == labels[i]].mean(0)) ** 2).sum() for i in range(6)
    ]).mean()
    torch.testing.assert_close(class_variance_loss(embedding, labels), expected)


@pytest.mark.parametrize("labels", [[0], [0, 1], [0, 1, 2], [1, 1], [0, 0, 1]])
def test_edge_cases_are_finite_with_finite_gradients(labels):
    # A batch of one, classes with one sample each, no positives at all.
    torch.manual_seed(0)
    labels = torch.tensor(labels)
    n_classes = 3
    logits = torch.randn(len(labels), n_classes, requires_grad=True)
    embedding = torch.randn(len(labels), 8, requires_grad=True)
    loss = CompositeLoss()(logits, embedding, labels)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all() and torch.isfinite(embedding.grad).all()


def test_without_positives_supcon_is_zero():
    embedding = torch.randn(3, 4)
    assert supervised_contrastive_loss(embedding, torch.tensor([0, 1, 2])).item() == 0.0
    assert class_variance_loss(embedding, torch.tensor([0, 1, 2])).item() == pytest.approx(0.0)


def test_composite_weights():
    torch.manual_seed(2)
    logits, embedding = torch.randn(6, 2), torch.randn(6, 4)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    ce = F.cross_entropy(logits, labels)
    supcon = supervised_contrastive_loss(embedding, labels, temperature=0.1)
    variance = class_variance_loss(embedding, labels)
    for a, b in itertools.product([0.0, 0.5], [0.0, 2.0]):
        loss = CompositeLoss(supcon_weight=a, variance_weight=b, temperature=0.1)
        torch.testing.assert_close(loss(logits, embedding, labels), ce + a * supcon + b * variance)


def test_class_weight_reaches_cross_entropy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    weight = torch.tensor([1.0, 5.0])
    loss = CompositeLoss(supcon_weight=0, variance_weight=0, class_weight=weight)
    torch.testing.assert_close(loss(logits, torch.zeros(3, 2), labels),
                               F.cross_entropy(logits, labels, weight=weight))
    assert np.isclose(loss.class_weight.numpy(), [1, 5]).all()


def test_rank_n_contrast_prefers_embeddings_ordered_as_the_targets():
    from sklearn_dinoatten.nn import rank_n_contrast_loss

    target = torch.arange(10.0)
    along_an_arc = torch.stack([torch.cos(target / 6), torch.sin(target / 6)], dim=1)
    shuffled = along_an_arc[torch.randperm(10, generator=torch.Generator().manual_seed(0))]
    ordered = rank_n_contrast_loss(along_an_arc, target, temperature=0.1)
    assert ordered < rank_n_contrast_loss(shuffled, target, temperature=0.1)
    # By hand, for one anchor and one positive: -log(exp(s_ij) / sum over k as far or farther)
    z = torch.nn.functional.normalize(along_an_arc, dim=1)
    s = -torch.cdist(z, z) / 0.1
    far = [k for k in range(10) if k != 0 and abs(target[k] - target[0]) >= 3]
    by_hand = torch.logsumexp(s[0, far], dim=0) - s[0, 3]
    terms = []
    for i in range(10):
        for j in range(10):
            if i != j:
                ks = [k for k in range(10) if k != i and abs(target[k] - target[i]) >= abs(
                    target[j] - target[i])]
                terms.append(torch.logsumexp(s[i, ks], dim=0) - s[i, j])
    torch.testing.assert_close(ordered, torch.stack(terms).mean())
    assert by_hand in torch.stack(terms)
    embedding = along_an_arc.clone().requires_grad_()
    rank_n_contrast_loss(embedding, target).backward()
    assert embedding.grad.abs().sum() > 0
    assert rank_n_contrast_loss(along_an_arc[:2], target[:2]) == 0
