"""Property-based tests (hypothesis) of the preprocessing, the pooling and the losses."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sklearn_dinoatten.nn.losses import (
    CompositeLoss,
    class_variance_loss,
    supervised_contrastive_loss,
)
from sklearn_dinoatten.nn.pooling import AttentionPoolNet
from sklearn_dinoatten.volumes import normalize_intensity, resize_stack

SETTINGS = settings(max_examples=40, deadline=None)

# Slice stacks (n, h, w) of finite intensities as scanners write them (int16 range).
stacks = st.tuples(
    st.integers(1, 4), st.integers(1, 12), st.integers(1, 12)
).flatmap(lambda shape: arrays(
    np.float32, shape, elements=st.floats(-32768, 32767, width=32),
))


@SETTINGS
@given(stacks)
def test_minmax_is_finite_in_unit_range_and_keeps_the_shape(stack):
    out = normalize_intensity(stack, method="minmax")
    assert out.shape == stack.shape and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1 + 1e-6


# Integer intensities of a moderate range, so float32 resolves them after any gain.
integer_stacks = st.tuples(
    st.integers(1, 4), st.integers(1, 12), st.integers(1, 12)
).flatmap(lambda shape: arrays(np.float32, shape, elements=st.integers(-1000, 1000)))


@SETTINGS
@given(integer_stacks, st.floats(0.5, 4), st.floats(-100, 100))
def test_normalisation_ignores_scanner_gain_and_offset(stack, gain, offset):
    for method in ("minmax", "zscore"):
        np.testing.assert_allclose(
            normalize_intensity(stack * gain + offset, method=method),
            normalize_intensity(stack, method=method), atol=2e-3,
        )


@SETTINGS
@given(stacks)
def test_zscore_is_finite_and_standardised(stack):
    out = normalize_intensity(stack, method="zscore")
    assert out.shape == stack.shape and np.isfinite(out).all()
    assert abs(float(out.mean())) < 1e-3
    assert float(out.std()) == pytest.approx(1.0, abs=1e-3) or float(out.std()) < 1e-6


@SETTINGS
@given(stacks, st.sampled_from([14, 28]), st.sampled_from(["minmax", "zscore"]))
def test_resized_stacks_are_square_finite_and_one_channel(stack, size, method):
    out = resize_stack(stack, size, method=method)
    assert tuple(out.shape) == (len(stack), 1, size, size)
    assert torch.isfinite(out).all()


# Losses and pooling ------------------------------------------------------------------

batches = st.integers(1, 12).flatmap(lambda n: st.tuples(
    arrays(np.float32, (n, 8), elements=st.floats(-10, 10, width=32)),
    arrays(np.int64, (n,), elements=st.integers(0, 2)),
))


@SETTINGS
@given(batches, st.floats(0.05, 1.0))
def test_losses_are_finite_non_negative_scalars(batch, temperature):
    embedding, labels = map(torch.from_numpy, batch)
    logits = torch.zeros(len(labels), 3)
    for loss in (
        supervised_contrastive_loss(embedding, labels, temperature=temperature),
        class_variance_loss(embedding, labels),
        CompositeLoss(temperature=temperature)(logits, embedding, labels),
    ):
        assert loss.shape == () and torch.isfinite(loss) and loss >= 0


@SETTINGS
@given(batches, st.randoms(use_true_random=False))
def test_losses_do_not_depend_on_the_order_of_the_batch(batch, random):
    embedding, labels = map(torch.from_numpy, batch)
    order = list(range(len(labels)))
    random.shuffle(order)
    for loss in (supervised_contrastive_loss, class_variance_loss):
        torch.testing.assert_close(
            loss(embedding[order], labels[order]), loss(embedding, labels),
            rtol=1e-4, atol=1e-5,
        )


@SETTINGS
@given(
    st.integers(1, 10).flatmap(
        lambda n: arrays(np.float32, (2, n, 6), elements=st.floats(-5, 5, width=32))
    ),
    st.randoms(use_true_random=False),
    st.sampled_from(["attention", "gated", "mean"]),
)
def test_permuting_slices_permutes_the_attention_and_keeps_the_output(x, random, pooling):
    torch.manual_seed(0)
    net = AttentionPoolNet(6, 2, pooling=pooling, hidden_dims=(8,)).eval()
    order = list(range(x.shape[1]))
    random.shuffle(order)
    x = torch.from_numpy(x)
    with torch.no_grad():
        logits, _, weights = net(x)
        permuted_logits, _, permuted_weights = net(x[:, order])
    torch.testing.assert_close(permuted_weights, weights[:, order], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(permuted_logits, logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2), rtol=1e-5, atol=1e-5)


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 6))
def test_padding_slices_get_no_weight_and_change_nothing(n_real, n_padding):
    torch.manual_seed(0)
    net = AttentionPoolNet(6, 2, hidden_dims=(8,)).eval()
    x = torch.randn(1, n_real, 6)
    padded = torch.cat([x, torch.full((1, n_padding, 6), float("nan"))], dim=1)
    with torch.no_grad():
        logits, _, weights = net(x)
        padded_logits, _, padded_weights = net(padded)
    assert (padded_weights[0, n_real:] == 0).all()
    torch.testing.assert_close(padded_logits, logits, rtol=1e-5, atol=1e-6)


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=40)
       .filter(lambda pairs: len({label for label, _ in pairs}) == 2))
@settings(deadline=None)
def test_binary_auc_is_sklearns(pairs):
    """The rank AUC of the bootstrap equals roc_auc_score, ties (few score values) too."""
    from sklearn.metrics import roc_auc_score

    from sklearn_dinoatten.evaluation import binary_auc

    y, score = np.array([int(label) for label, _ in pairs]), np.array([s for _, s in pairs])
    assert binary_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
