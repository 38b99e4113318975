"""Model registry. A model factory is called as ``factory(num_classes, in_channels, params)`` and
returns an ``nn.Module`` whose last layer is an ``nn.Linear`` named ``classifier``. ``params`` is an
instance of the frozen dataclass registered with the factory (``@MODELS.register("name", Params)``),
which declares the config's ``model_args`` for it; ``build_model`` checks ``model_args`` into one
(``MODELS.params``), so an unknown argument is one line naming the allowed ones.

Adding a model: one file in this package with ``@MODELS.register("name", Params)`` and its import below.
"""
from __future__ import annotations

import torch.nn as nn

from pipeline.registry import Registry

MODELS: Registry = Registry("model")


def build_model(name: str, num_classes: int, in_channels: int, **args) -> nn.Module:
    return MODELS.get(name)(num_classes, in_channels, MODELS.params(name, args))


from pipeline.models import (  # noqa: E402,F401
    cnn,
    mobilenetv2,
    resnet_cifar,
    shufflenetv1,
    shufflenetv2,
    torchvision_resnet,
    vgg,
    wrn,
)
