"""Docstring sections shared by several estimators, written once."""


def shared_docs(**sections):
    """Class decorator: replace each ``{name}`` in the class's docstring by
    ``sections[name]`` (numpydoc text, indented for a class docstring)."""
    def fill(cls):
        doc = cls.__doc__
        for name, text in sections.items():
            doc = doc.replace("{" + name + "}", text)
        cls.__doc__ = doc
        return cls

    return fill


# The training parameters of every estimator, at the end of its docstring's Parameters
TRAINING_PARAMETER_DOCS = """lr : float, default=1e-3
        Learning rate.
    max_epochs : int, default=50
        Training epochs (the most, with early stopping).
    batch_size : int, default=16
        Volumes per training batch.
    optimizer : torch optimizer class, default=torch.optim.AdamW
        Its own parameters are routed skorch-style, e.g. ``optimizer__weight_decay=1e-2``.
    lr_schedule : {"constant", "cosine", "step"}, default="constant"
        The learning rate over the epochs: constant; cosine annealing to 0 at
        ``max_epochs``; or divided by 10 at half and at three quarters of ``max_epochs``
        (MedMNIST v2's schedule).
    early_stopping : bool, default=False
        Stop when the validation loss (for classifiers the log-loss of the predicted
        probabilities, whatever the training loss; for regressors the training loss of
        the standardised target) has not improved for ``n_iter_no_change`` epochs, and
        keep the weights of the best epoch. The validation set is ``X_val, y_val`` given
        to ``fit``, else a ``validation_fraction`` of the training data (stratified by
        class, for classifiers).
    validation_fraction : float, default=0.1
        Share of the training data held out when ``early_stopping`` and no ``X_val``.
    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    device : str, default="auto"
        ``"auto"`` uses CUDA when present, else the CPU.
    random_state : int, RandomState or None, default=None
        Seeds initialisation, shuffling and the validation split: a fixed value gives
        identical fits on the CPU.
    verbose : int, default=0
        ``1`` prints skorch's table of losses per epoch.
    **kwargs
        Parameters starting with ``optimizer__``, ``iterator_train__``,
        ``iterator_valid__`` or ``callbacks__``, passed to the skorch net."""

# The fitted attributes of every estimator, at the end of its docstring's Attributes
TRAINING_ATTRIBUTE_DOCS = """n_features_in_ : int
        Size of one slice embedding seen in ``fit``.
    net_ : skorch.NeuralNet
        The trained net: ``net_.module_`` is the torch module, ``net_.history`` the
        training history.
    device_ : torch.device
        The device it was trained on."""
