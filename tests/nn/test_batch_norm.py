import numpy as np
import torch
from torch import nn

from sklearn_dinoatten.nn import refresh_batch_norm


def test_running_statistics_are_the_average_of_the_final_weights_batches():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU()).eval()
    norm = module[1]
    norm.running_mean.fill_(5.0)  # stale statistics, as training leaves them
    X = np.random.default_rng(0).normal(2.0, 3.0, size=(12, 4)).astype(np.float32)
    weights = [p.clone() for p in module.parameters()]
    refresh_batch_norm(module, X, batch_size=4, device="cpu")
    with torch.no_grad():
        hidden = module[0](torch.as_tensor(X))
    batch_means = hidden.reshape(3, 4, 3).mean(dim=1)
    torch.testing.assert_close(norm.running_mean, batch_means.mean(dim=0))
    assert norm.momentum == 0.1 and not module.training  # restored; inference mode
    assert all(torch.equal(a, b) for a, b in zip(weights, module.parameters(), strict=True))
    assert int(norm.num_batches_tracked) == 3
