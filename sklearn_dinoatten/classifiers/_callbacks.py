"""The skorch callbacks the classifiers train with, beside the estimators they drive."""

from skorch.callbacks import Callback, LRScheduler

from ..utils._options import LR_SCHEDULES as LR_SCHEDULES  # re-exported


def lr_schedule(schedule, max_epochs):
    """The callbacks ``[(name, callback)]`` of a learning-rate schedule: none for
    ``"constant"``; cosine annealing to 0 at ``max_epochs``; or division by 10 at half
    and at three quarters of ``max_epochs`` (``"step"``, MedMNIST v2's schedule)."""
    if schedule == "cosine":
        return [("lr_schedule", LRScheduler("CosineAnnealingLR", T_max=max_epochs))]
    if schedule == "step":
        milestones = [max_epochs // 2, 3 * max_epochs // 4]
        return [("lr_schedule", LRScheduler("MultiStepLR", gamma=0.1, milestones=milestones))]
    return []


class AnnealCEWeight(Callback):
    """SC-MIL's schedule: before epoch ``e`` (from 1), set the criterion's CE weight to
    ``(e - 1/2) / max_epochs`` and record it in the history as ``ce_weight``."""

    def on_epoch_begin(self, net, **kwargs):
        epoch = len(net.history)  # the history already holds the starting epoch
        net.criterion_.ce_weight = min(1.0, (epoch - 0.5) / net.max_epochs)
        net.history.record("ce_weight", net.criterion_.ce_weight)
