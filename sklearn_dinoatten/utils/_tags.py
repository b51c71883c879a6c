"""The scikit-learn tag of the estimators that take volumes."""


class VolumeInputMixin:
    """Declare 3D input (``input_tags.three_d_array``): volumes, or bags of slice
    embeddings. Goes left of ``BaseEstimator``."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags
