"""torchvision classification CNNs, named ``"torchvision:<model name>"``: the pooled
feature map is their one prefix token, its cells their patches."""

import torch

from ...volumes import IMAGENET_MEAN, IMAGENET_STD
from ._backbone import Family, with_weights

TORCHVISION_PREFIX = "torchvision:"


class TorchvisionCNN(torch.nn.Module):
    """A torchvision classifier with an ``avgpool`` module (ResNet, EfficientNet, ConvNeXt,
    RegNet, MobileNetV3, Swin, VGG...) as a timm vision transformer: the mean of the
    feature map that module pools is the one prefix token, its cells are the patches (in
    raster order), and the network's total stride is the patch size.

    Parameters
    ----------
    model : torch.nn.Module
        A torchvision classifier with an ``avgpool`` module before its head.
    mean, std : tuples of 3 floats
        Its input normalisation (its weights' ``transforms()``).
    """

    def __init__(self, model, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        if not isinstance(getattr(model, "avgpool", None), torch.nn.Module):
            raise ValueError(f"{type(model).__name__} has no 'avgpool' module to take its "
                             "feature map from: use a ResNet (ResNeXt, Wide ResNet), "
                             "EfficientNet, ConvNeXt, RegNet, MobileNetV3, Swin or VGG.")
        self.model = model.eval()  # the forward below must not move BatchNorm statistics
        self.num_prefix_tokens = 1
        with torch.no_grad():  # the channels and the stride, from one small forward
            feature_map = self._feature_map(torch.zeros(1, 3, 64, 64))
        self.num_features = int(feature_map.shape[1])
        self.patch_size = 64 // int(feature_map.shape[-1])
        self.pretrained_cfg = {"mean": tuple(mean), "std": tuple(std)}

    def _feature_map(self, images):
        maps = []
        hook = self.model.avgpool.register_forward_hook(
            lambda module, inputs, output: maps.append(inputs[0]))
        try:
            self.model(images)
        finally:
            hook.remove()
        return maps[0]

    def forward_features(self, images):
        feature_map = self._feature_map(images)
        pooled = feature_map.mean(dim=(2, 3))
        return torch.cat([pooled[:, None], feature_map.flatten(2).transpose(1, 2)], dim=1)


def torchvision_cnn(name, weights):
    """A :class:`TorchvisionCNN` of torchvision model ``name``; ``weights``: ``None``
    for its default pretrained weights (downloaded once), ``"random"`` for a seeded
    random initialisation, or a path to a state dict file."""
    import torchvision

    try:
        default = torchvision.models.get_model_weights(name).DEFAULT
    except (KeyError, ValueError):
        raise ValueError(
            f"backbone='{TORCHVISION_PREFIX}{name}' is not a torchvision classification "
            f"model; they are {torchvision.models.list_models(torchvision.models)}.") from None
    if weights is None:
        try:
            model = torchvision.models.get_model(name, weights=default)
        except Exception as exc:
            raise RuntimeError(
                f"Could not get the pretrained weights of {name!r} ({type(exc).__name__}: "
                f"{exc}). Without a network, pass weights=<path to its state dict file> or "
                "weights='random'.") from exc
    else:
        model = torchvision.models.get_model(name, weights=None)
    if isinstance(weights, str) and weights != "random":
        try:
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        except Exception as exc:
            raise ValueError(f"weights file {weights!r} does not fit backbone {name!r}: "
                             f"{type(exc).__name__}: {str(exc)[:1000]}") from exc
    transforms = default.transforms()
    return TorchvisionCNN(model, transforms.mean, transforms.std)




def build(name, weights, image_size, in_chans=3):
    """torchvision classifier ``name`` as a :class:`TorchvisionCNN`."""
    return with_weights(lambda w: torchvision_cnn(name, w), weights)


TORCHVISION = Family(prefix=TORCHVISION_PREFIX, library="torchvision", build=build,
                     adapt=TorchvisionCNN)  # every torchvision classifier's weights: ImageNet's
