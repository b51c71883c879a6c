"""What the package adds to skorch's nets: Ctrl-C stops a fit instead of ending it.

skorch catches ``KeyboardInterrupt`` in ``fit`` and returns the net as trained so far
(its early stopping raises one to end training), so an interrupted fit would look
finished: cross-validation would go on to the next fold and write results. Here early
stopping ends training with its own exception, a Ctrl-C reaches the caller, and the
estimator being fitted is left unfitted rather than half-fitted (by
:func:`~sklearn_dinoatten.utils._fit.fit_context`).
"""

from skorch import NeuralNet
from skorch.callbacks import EarlyStopping as SkorchEarlyStopping


class _TrainingInterrupted(Exception):
    """Carries a KeyboardInterrupt past skorch's ``except KeyboardInterrupt``."""


class _EarlyStop(Exception):
    """Early stopping's end of training, told apart from Ctrl-C."""


class EarlyStopping(SkorchEarlyStopping):
    """skorch's early stopping, ending training without a KeyboardInterrupt."""

    def on_epoch_end(self, net, **kwargs):
        try:
            super().on_epoch_end(net, **kwargs)
        except KeyboardInterrupt:
            if self.misses_ == self.patience:  # its own stop, not Ctrl-C
                raise _EarlyStop from None
            raise


class InterruptibleNet(NeuralNet):
    """A skorch ``NeuralNet`` whose ``fit`` raises ``KeyboardInterrupt`` on Ctrl-C."""

    def fit_loop(self, *args, **kwargs):
        try:
            return super().fit_loop(*args, **kwargs)
        except _EarlyStop:
            return self
        except KeyboardInterrupt as exc:
            raise _TrainingInterrupted from exc

    def fit(self, *args, **kwargs):
        try:
            return super().fit(*args, **kwargs)
        except _TrainingInterrupted:
            raise KeyboardInterrupt from None
